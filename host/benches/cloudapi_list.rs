//! ListMachines at scale: 10 000 machines for one account, seeded straight through the
//! hypervisor primitive's API (not 10 000 HTTP creates), then signed CloudAPI requests
//! over loopback HTTP: `limit=1000` alone and with a `tag.*` filter. Reports p50/p99.
//
// Knobs: TESSERA_BENCH_MACHINES (default 10000), TESSERA_BENCH_REQUESTS (default 200).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use tessera::config::SiteConfig;
use tessera::db::Database;
use tessera::primitives::hypervisor::{Hypervisor, VmSpec};

const TESSERA: &str = env!("CARGO_BIN_EXE_tessera");

const SITE: &str = r#"
[plugins.cloudapi]
source = "cloudapi"
mounts = ["/"]
grants = ["storage", "auth", "auth-admin", "jobs", "hypervisor"]
[plugins.cloudapi.settings]
throttle = { rate = 0.0, burst = 1.0 }

[hypervisor.sim]
transition_delay_ms = 0
[[hypervisor.sim.nodes]]
name = "big-1"
cpus = 1000000
ram_mib = 1000000000
disk_mib = 1000000000000
"#;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cli(data: &Path, site: &Path, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(TESSERA)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .arg("--config")
        .arg(site)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tessera");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("tessera");
    assert!(
        out.status.success(),
        "tessera {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() {
    let machines = env_number("TESSERA_BENCH_MACHINES", 10_000);
    let requests = env_number("TESSERA_BENCH_REQUESTS", 200);
    let temp = tempfile::tempdir().expect("temp dir");
    let data = temp.path().join("data");
    let site_path = temp.path().join("site.toml");
    std::fs::write(&site_path, SITE).expect("site");

    // The account and its key, through the operator CLI.
    cli(
        &data,
        &site_path,
        &[
            "user",
            "add",
            "alice",
            "--email",
            "alice@example.com",
            "--password-stdin",
        ],
        "bench password 123\n",
    );
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let public = ssh_key::PublicKey::new(
        ssh_key::public::KeyData::Ed25519(ssh_key::public::Ed25519PublicKey(
            key.verifying_key().to_bytes(),
        )),
        "bench",
    );
    let public_file = temp.path().join("bench.pub");
    std::fs::write(&public_file, public.to_openssh().expect("openssh")).expect("key file");
    cli(
        &data,
        &site_path,
        &[
            "key",
            "add",
            "alice",
            "--name",
            "bench",
            "--file",
            public_file.to_str().expect("utf-8"),
        ],
        "",
    );

    // Seed the machines straight through the primitive.
    let site = SiteConfig::parse(SITE, "bench").expect("site parses");
    let db = Database::open(&data.join("tessera.db")).expect("db");
    let account = {
        let auth = tessera::primitives::auth::Auth::new(
            db.clone(),
            site.auth.clone(),
            Arc::new(tessera::primitives::auth::SystemClock),
        )
        .expect("auth");
        auth.get_account("alice")
            .expect("lookup")
            .expect("alice")
            .id
    };
    let hv = Hypervisor::open(db.clone(), &site.hypervisor, &data).expect("hypervisor");
    let image = hv
        .list_images()
        .expect("images")
        .into_iter()
        .find(|i| i.name == "alpine-3.20")
        .expect("alpine")
        .id;
    let seeding = Instant::now();
    for i in 0..machines {
        let role = if i % 2 == 0 { "web" } else { "db" };
        let spec = VmSpec {
            name: format!("m{i:05}"),
            owner: account.clone(),
            image: image.clone(),
            cpus: 1,
            ram_mib: 512,
            disk_mib: 10_240,
            networks: Vec::new(),
            tags: format!(r#"{{"role":"{role}","n":{i}}}"#),
            metadata: "{}".into(),
            deletion_protection: false,
            data_disks: Vec::new(),
        };
        let (_, transition) = hv.create_vm(&spec, "bench", "cloudapi").expect("create");
        hv.complete(&transition.id).expect("complete");
    }
    eprintln!(
        "seeded {machines} machines in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    drop(hv);
    drop(db);

    let mut server = Command::new(TESSERA)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--config")
        .arg(&site_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let base = listening(&mut server);
    let client = reqwest::blocking::Client::new();
    let get = |path: &str| {
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        let signed = format!("(request-target): get {path}\ndate: {date}");
        let signature = base64::engine::general_purpose::STANDARD
            .encode(key.sign(signed.as_bytes()).to_bytes());
        let authorization = format!(
            "Signature keyId=\"/alice/keys/bench\",algorithm=\"ed25519\",headers=\"(request-target) date\",signature=\"{signature}\""
        );
        let started = Instant::now();
        let response = client
            .get(format!("{base}{path}"))
            .header("date", date)
            .header("authorization", authorization)
            .header("accept-version", "~9")
            .send()
            .expect("request");
        let status = response.status().as_u16();
        let count = response
            .headers()
            .get("x-resource-count")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = response.bytes().expect("body");
        (started.elapsed(), status, count, body.len())
    };
    println!("ListMachines, {machines} machines of one account, {requests} sequential requests");
    println!(
        "{:<40} {:>9} {:>9} {:>8} {:>10}",
        "query", "p50 ms", "p99 ms", "count", "body KiB"
    );
    for path in [
        "/alice/machines?limit=1000&offset=0",
        "/alice/machines?limit=1000&offset=0&tag.role=web",
        "/alice/machines?limit=1000&offset=4000&tag.role=web",
        "/alice/machines?limit=100&offset=0&tag.n=4242",
    ] {
        for _ in 0..5 {
            get(path);
        }
        let mut times = Vec::with_capacity(requests);
        let mut last = (0, String::new(), 0);
        for _ in 0..requests {
            let (elapsed, status, count, bytes) = get(path);
            assert_eq!(status, 200, "{path}");
            times.push(elapsed);
            last = (status, count, bytes);
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{:<40} {:>9.1} {:>9.1} {:>8} {:>10.0}",
            path.trim_start_matches("/alice/machines?"),
            ms(percentile(&times, 0.50)),
            ms(percentile(&times, 0.99)),
            last.1,
            last.2 as f64 / 1024.0
        );
    }
    let _ = server.kill();
    let _ = server.wait();
}

fn listening(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("tessera exited before listening")
            .expect("read");
        if let Some(addr) = line.strip_prefix("listening on ") {
            break addr.to_string();
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    addr
}
