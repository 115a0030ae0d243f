//! Soak: the default site (all five families) under a realistic mix at about
//! 70 % of the peak this machine measured a moment before, for a fixed time
//! (60 s here; `TESSERA_SOAK_SECS=600` for the long variant). No request may
//! fail; after warm-up the floor of the server's resident memory may not grow
//! by more than 10 % (peaks by 25 %); no file descriptor or instance slot may leak. Latency per window is
//! printed, not asserted (machines here are shared and noisy).
//!
//! It is `#[ignore]`d in the plain `cargo test` run, whose other tests would
//! load the machine at the same time and blur every figure; `.ci/run` runs it
//! alone right after the suite.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::cloudapi::{Signer, account_with_key};
use crate::harness::{Server, cli_ok, client, metrics};

const THREADS: usize = 8;

/// One kind of request of the mix.
#[derive(Clone, Copy, Debug)]
enum Call {
    CloudApiAccount,
    CloudApiKeys,
    TiCryptDrives,
    VmManagerHosts,
    FossCloudRealms,
    FossCloudVms,
    ApplianceVersion,
    KernelHealth,
}

/// Weights: reads dominate, one request in 40 pays a password hash.
const MIX: &[(Call, u32)] = &[
    (Call::CloudApiAccount, 8),
    (Call::CloudApiKeys, 4),
    (Call::TiCryptDrives, 8),
    (Call::VmManagerHosts, 8),
    (Call::FossCloudRealms, 4),
    (Call::FossCloudVms, 1),
    (Call::ApplianceVersion, 4),
    (Call::KernelHealth, 3),
];

struct Clients {
    base: String,
    /// One CloudAPI account per thread: each stays under its 50 req/s bucket.
    cloudapi: Vec<Signer>,
    ticrypt_token: String,
    vmmanager_token: String,
    /// Whether the appliance admin API answers (set up with a token).
    appliance: bool,
}

impl Clients {
    fn send(&self, http: &reqwest::blocking::Client, thread: usize, call: Call) -> u16 {
        let base = &self.base;
        let response = match call {
            Call::CloudApiAccount => return self.cloudapi[thread].get("/my").status().as_u16(),
            Call::CloudApiKeys => return self.cloudapi[thread].get("/my/keys").status().as_u16(),
            Call::TiCryptDrives => {
                http.get(format!("{base}/api/drives?token={}", self.ticrypt_token))
            }
            Call::VmManagerHosts => http
                .get(format!("{base}/vm/v3/host"))
                .header("x-xsrf-token", &self.vmmanager_token),
            Call::FossCloudRealms => http.get(format!("{base}/vm-manager/api/server/realms")),
            Call::FossCloudVms => http
                .get(format!("{base}/vm-manager/api/vm/list/owner"))
                .basic_auth("soak", Some(crate::cloudapi::PASSWORD)),
            Call::ApplianceVersion if self.appliance => http.get(format!(
                "{base}/api/v1/admin/version?token=soak-admin-token"
            )),
            Call::ApplianceVersion => http.get(format!("{base}/_tessera/health")),
            Call::KernelHealth => http.get(format!("{base}/_tessera/health")),
        };
        response.send().map(|r| r.status().as_u16()).unwrap_or(0)
    }
}

fn pick(n: u64) -> Call {
    let total: u32 = MIX.iter().map(|(_, w)| w).sum();
    let mut at = (n % u64::from(total)) as u32;
    for (call, weight) in MIX {
        if at < *weight {
            return *call;
        }
        at -= weight;
    }
    MIX[0].0
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn setup(server: &Server) -> Clients {
    let cloudapi = (0..THREADS)
        .map(|t| account_with_key(server, &format!("soak-cloud-{t}")))
        .collect();
    crate::cloudapi::add_account(server, "soak");
    let data = server.data_dir();
    let ticrypt_token = cli_ok(
        &data,
        &[
            "token",
            "create",
            "soak",
            "--scope",
            "ticrypt:drive",
            "--format",
            "alnum32",
        ],
        "",
    )
    .trim()
    .to_string();
    let http = client();
    let login: serde_json::Value = http
        .post(server.url("/auth/v4/public/token"))
        .json(&serde_json::json!({"email": "soak@example.com", "password": crate::cloudapi::PASSWORD}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let vmmanager_token = login["token"]
        .as_str()
        .expect("a vmmanager session")
        .to_string();
    let status = crate::harness::appliance_setup(&http, server, "soak-admin-token");
    // Until the appliance API exists its stub answers 404; then the mix skips it.
    let appliance = status != 404;
    assert!(
        !appliance || status.is_success(),
        "appliance setup: {status}"
    );
    let clients = Clients {
        base: server.base.clone(),
        cloudapi,
        ticrypt_token,
        vmmanager_token,
        appliance,
    };
    for (call, _) in MIX {
        let status = clients.send(&http, 0, *call);
        assert!(
            (200..300).contains(&status),
            "{call:?} answers {status} before the soak"
        );
    }
    clients
}

/// Closed loop for `secs`: requests per second at saturation.
fn peak(clients: &Arc<Clients>, secs: u64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (clients, stop, done) = (clients.clone(), stop.clone(), done.clone());
            thread::spawn(move || {
                let http = client();
                let mut n = t as u64;
                while !stop.load(Ordering::Relaxed) {
                    clients.send(&http, t, pick(n));
                    n += THREADS as u64;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    workers.into_iter().for_each(|w| w.join().unwrap());
    done.load(Ordering::Relaxed) as f64 / secs as f64
}

#[test]
#[ignore = "needs the machine to itself: `cargo test --test e2e soak -- --ignored` (CI runs it after the suite)"]
fn the_default_site_holds_70_percent_of_peak_without_errors_or_leaks() {
    let secs: u64 = std::env::var("TESSERA_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let server = Server::default_site();
    let pid = server.pid();
    let clients = Arc::new(setup(&server));
    // The peak run doubles as the warm-up: every instance slot and cache touched.
    let peak = peak(&clients, 5);
    let rate = peak * 0.7;
    let interval = Duration::from_secs_f64(THREADS as f64 / rate);
    let (rss_warm, fds_warm) = (rss_kib(pid), open_fds(pid));

    let started = Instant::now();
    let end = started + Duration::from_secs(secs);
    let latencies = Arc::new(Mutex::new(Vec::<(Duration, Duration)>::new()));
    let failures = Arc::new(Mutex::new(Vec::<(Call, u16)>::new()));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (clients, latencies, failures) =
                (clients.clone(), latencies.clone(), failures.clone());
            thread::spawn(move || {
                let http = client();
                // Open loop: each request has its slot; lateness counts as latency.
                let mut due = started + interval.mul_f64(t as f64 / THREADS as f64);
                let mut n = t as u64;
                let mut mine = Vec::new();
                while due < end {
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        thread::sleep(wait);
                    }
                    let call = pick(n);
                    let status = clients.send(&http, t, call);
                    mine.push((due - started, due.elapsed()));
                    if !(200..300).contains(&status) {
                        failures.lock().unwrap().push((call, status));
                    }
                    n += THREADS as u64;
                    due += interval;
                }
                latencies.lock().unwrap().extend(mine);
            })
        })
        .collect();
    // RSS every half second: the trend tells a leak (steady climb) from a
    // plateau reached late because a loaded machine warms up slowly.
    let mut samples = vec![(0.0f64, rss_warm)];
    while Instant::now() < end {
        thread::sleep(Duration::from_millis(500));
        samples.push((started.elapsed().as_secs_f64(), rss_kib(pid)));
    }
    workers.into_iter().for_each(|w| w.join().unwrap());
    let (rss_end, fds_end) = (rss_kib(pid), open_fds(pid));

    // Warm-up is the peak run plus the first quarter of the soak. A leak
    // raises the floor of the resident set; a working set the allocator keeps
    // for a while after a burst does not. So the floor of the last quarter is
    // held to +10 % of the warmed-up size, and any peak to +25 % (a burst of
    // fresh 19 MiB Argon2 buffers once broke that; they are kept and capped now).
    let settle_at = secs as f64 / 4.0;
    let last_quarter = secs as f64 * 3.0 / 4.0;
    let rss_settled = samples
        .iter()
        .filter(|(at, _)| *at <= settle_at)
        .map(|(_, r)| *r)
        .max()
        .unwrap_or(rss_warm);
    let rss_max = samples.iter().map(|(_, r)| *r).max().unwrap_or(rss_warm);
    let rss_floor_end = samples
        .iter()
        .filter(|(at, _)| *at >= last_quarter)
        .map(|(_, r)| *r)
        .min()
        .unwrap_or(rss_end);

    let latencies = latencies.lock().unwrap();
    let windows = secs.clamp(1, 6);
    let mut report = format!(
        "soak: peak {peak:.0} req/s, offered {rate:.0} req/s for {secs} s, {} requests; RSS {rss_warm} KiB after the peak run, {rss_settled} after the first quarter, max {rss_max}, floor of the last quarter {rss_floor_end}, end {rss_end}; fds {fds_warm} -> {fds_end}\n",
        latencies.len()
    );
    for w in 0..windows {
        let (from, to) = (secs * w / windows, secs * (w + 1) / windows);
        let mut in_window: Vec<Duration> = latencies
            .iter()
            .filter(|(at, _)| at.as_secs() >= from && at.as_secs() < to)
            .map(|(_, l)| *l)
            .collect();
        in_window.sort();
        report += &format!(
            "  {from:>4}-{to:<4}s  n={:<6} p50={:?} p99={:?}\n",
            in_window.len(),
            percentile(&in_window, 0.5),
            percentile(&in_window, 0.99)
        );
    }
    let trend: Vec<String> = samples
        .iter()
        .step_by(10)
        .map(|(at, r)| format!("{at:.0}s:{}M", r / 1024))
        .collect();
    report += &format!("  RSS trend {}\n", trend.join(" "));
    eprintln!("{report}");

    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed requests, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        rss_floor_end <= rss_settled + rss_settled / 10,
        "resident memory grew past 10 % after warm-up: {rss_settled} KiB -> a floor of {rss_floor_end} KiB in the last quarter"
    );
    assert!(
        rss_max <= rss_settled + rss_settled / 4,
        "resident memory peaked past 25 % of its warmed-up size: {rss_settled} KiB -> {rss_max} KiB"
    );
    assert!(
        fds_end <= fds_warm + 8,
        "file descriptors leak: {fds_warm} -> {fds_end}"
    );
    let text = metrics(&server);
    assert!(
        text.contains("tessera_instances_live 0"),
        "instance slots leak:\n{text}"
    );
}
