//! The VMmanager list-filter bench: `where` + `orderby` + `limit=0,50` over 100 000
//! hosts through the real server and plugin, against the same query run directly in
//! SQLite on the same database and indexes.
//
// Knobs: TESSERA_BENCH_HOSTS (default 100000), TESSERA_BENCH_REQUESTS (default 200).
// Prints per-request times and the ratio; writes target/vmmanager-bench.json.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::types::Value as SqlValue;
use serde_json::json;
use tessera::db::Database;
use tessera::primitives::auth::{self, Auth, AuthSettings, NewAccount, TokenFormat, TokenRequest};
use tessera::primitives::storage::{Storage, Write};

const TESSERA: &str = env!("CARGO_BIN_EXE_tessera");
const CLUSTERS: usize = 10;
const NODES: usize = 20;
const STATES: [&str; 3] = ["active", "active", "stopped"];

/// The measured request, and the SQL the storage primitive runs for it.
const QUERY: &str =
    "where=(state+EQ+'active')+AND+(cpu_number+GE+4)&orderby=cluster.name+desc&limit=0,50";
const FILTER_SQL: &str = "collection = ?1 AND ((json_extract(value, '$.state') = ?2 \
     AND json_extract(value, '$.cpu_number') >= ?3))";

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("vmmanager bench failed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let hosts = knob("TESSERA_BENCH_HOSTS", 100_000);
    let requests = knob("TESSERA_BENCH_REQUESTS", 200);
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let db = Database::open(&data.join("tessera.db"))?;
    let started = Instant::now();
    let (account_id, token) = seed_account(&db)?;
    seed_hosts(&db, hosts, &account_id)?;
    println!(
        "seeded {hosts} hosts in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(db);

    let mut server = start_server(dir.path(), &data)?;
    let result = measure(&server.1, &token, &data, requests);
    let _ = server.0.kill();
    let _ = server.0.wait();
    let (plugin, direct, size) = result?;

    let ratio = plugin.mean / direct.mean;
    println!("query: GET /vm/v3/host?{QUERY}  ({size} hosts match)");
    println!("{:<28} {:>10} {:>10} {:>10}", "", "mean", "p50", "p99");
    println!(
        "{:<28} {:>8.2}ms {:>8.2}ms {:>8.2}ms",
        "plugin over HTTP", plugin.mean, plugin.p50, plugin.p99
    );
    println!(
        "{:<28} {:>8.2}ms {:>8.2}ms {:>8.2}ms",
        "direct SQLite (page+count)", direct.mean, direct.p50, direct.p99
    );
    println!("ratio plugin / direct: {ratio:.2}x  (goal: <= 2x and < 20 ms)");
    let report = json!({
        "hosts": hosts, "requests": requests, "query": QUERY, "matches": size,
        "plugin_ms": plugin.to_json(), "direct_ms": direct.to_json(), "ratio": ratio,
    });
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").to_owned());
    std::fs::write(
        Path::new(&target).join("vmmanager-bench.json"),
        report.to_string(),
    )?;
    Ok(())
}

/// An admin and a session for it, made through the auth primitive itself.
fn seed_account(db: &Database) -> Result<(String, String), Box<dyn std::error::Error>> {
    let auth = Auth::new(
        db.clone(),
        AuthSettings::fast_hashing_for_tests(),
        Arc::new(auth::SystemClock),
    )?;
    let account = auth.create_account(NewAccount {
        login: "admin".into(),
        email: "admin@example.com".into(),
        password: None,
        first_name: None,
        last_name: None,
        company: None,
        phone: None,
        realm: None,
        admin: true,
        parent: None,
    })?;
    let token = auth.issue_token(TokenRequest {
        owner: "admin".into(),
        scope: "vmmanager:session".into(),
        binding: None,
        ttl_seconds: None,
        idle_ttl_seconds: Some(3600),
        description: None,
        format: TokenFormat::IdUuid,
        one_use: false,
    })?;
    Ok((account.id, token.value))
}

/// Host documents in the plugin's projection, in the shape the plugin writes.
fn seed_hosts(
    db: &Database,
    count: usize,
    account: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let storage = Storage::new(db.clone()).for_plugin("vmmanager")?;
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for chunk in (1..=count).collect::<Vec<_>>().chunks(5000) {
        let mut writes = Vec::with_capacity(chunk.len());
        for &id in chunk {
            let cluster = (next() as usize) % CLUSTERS;
            let node = (next() as usize) % NODES;
            let state = STATES[(next() as usize) % STATES.len()];
            let cpu = 1 + next() % 16;
            let host = json!({
                "id": id, "name": format!("host-{id:06}"), "state": state,
                "cpu_number": cpu, "ram_mib": 512 * (1 + next() % 32), "hdd_mib": 10240,
                "domain": "", "comment": "", "uuid": format!("uuid-{id}"),
                "ip_addr": format!("10.{}.{}.{}", id >> 16, (id >> 8) & 255, id & 255),
                "created": "2026-11-28 00:00:00",
                "cluster": {"id": cluster + 1, "name": format!("cluster-{cluster:02}")},
                "node": {"id": node + 1, "name": format!("node-{node:02}")},
                "os": {"id": 1, "name": "ubuntu-24.04"},
                "account": {"id": account, "email": "admin@example.com"},
                "ip4": [{"ip": "10.0.0.1"}], "ip6": [], "disks": [],
                "internal": {"hv_id": format!("uuid-{id}"), "owner": "admin"},
            });
            writes.push(Write::Insert {
                collection: "host".into(),
                key: format!("{id:020}"),
                value: host.to_string(),
            });
        }
        storage.batch(&writes)?;
    }
    Ok(())
}

fn start_server(dir: &Path, data: &Path) -> Result<(Child, String), Box<dyn std::error::Error>> {
    let site = dir.join("site.toml");
    std::fs::write(
        &site,
        format!(
            "log = \"warn\"\ndata_dir = {:?}\n[plugins.vmmanager]\nsource = \"vmmanager\"\n\
             mounts = [\"/vm/v3\", \"/auth/v4\"]\n\
             grants = [\"storage\", \"auth\", \"auth-admin\", \"jobs\", \"hypervisor\"]\n",
            data.display().to_string()
        ),
    )?;
    let mut child = Command::new(TESSERA)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&site)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    for line in BufReader::new(stdout).lines() {
        if let Some(address) = line?.strip_prefix("listening on ") {
            return Ok((child, address.to_owned()));
        }
    }
    Err("the server exited before listening".into())
}

struct Timing {
    mean: f64,
    p50: f64,
    p99: f64,
}

impl Timing {
    fn of(mut samples: Vec<f64>) -> Timing {
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
        Timing {
            mean: samples.iter().sum::<f64>() / samples.len() as f64,
            p50: at(0.5),
            p99: at(0.99),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        json!({ "mean": self.mean, "p50": self.p50, "p99": self.p99 })
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn measure(
    base: &str,
    token: &str,
    data: &Path,
    requests: usize,
) -> Result<(Timing, Timing, u64), Box<dyn std::error::Error>> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let url = format!("{base}/vm/v3/host?{QUERY}");
    let get = || -> Result<serde_json::Value, Box<dyn std::error::Error>> {
        let response = client.get(&url).header("x-xsrf-token", token).send()?;
        let status = response.status();
        let body: serde_json::Value = response.json()?;
        if !status.is_success() || body["list"].as_array().map(Vec::len) != Some(50) {
            return Err(format!("unexpected answer {status}: {body}").into());
        }
        Ok(body)
    };
    // The first request declares the plugin's indexes over the seeded rows.
    let first = Instant::now();
    let body = get()?;
    println!("first request (builds the indexes): {:.0} ms", ms(first));
    let size = body["size"].as_u64().unwrap_or(0);
    for _ in 0..10 {
        get()?;
    }
    let mut plugin = Vec::with_capacity(requests);
    for _ in 0..requests {
        let start = Instant::now();
        get()?;
        plugin.push(ms(start));
    }

    let conn = rusqlite::Connection::open(data.join("tessera.db"))?;
    let page_sql = format!(
        "SELECT key, version, value, created, updated FROM \"doc_vmmanager\" WHERE {FILTER_SQL} \
         ORDER BY json_extract(value, '$.cluster.name') DESC, key DESC LIMIT 50 OFFSET 0"
    );
    let count_sql = format!("SELECT count(*) FROM \"doc_vmmanager\" WHERE {FILTER_SQL}");
    let params = [
        SqlValue::Text("host".into()),
        SqlValue::Text("active".into()),
        SqlValue::Integer(4),
    ];
    let mut page = conn.prepare(&page_sql)?;
    let mut count = conn.prepare(&count_sql)?;
    let mut plan = conn.prepare(&format!("EXPLAIN QUERY PLAN {page_sql}"))?;
    let steps: Vec<String> = plan
        .query_map(rusqlite::params_from_iter(params.iter()), |row| row.get(3))?
        .collect::<Result<_, _>>()?;
    println!("page plan: {}", steps.join(" | "));
    let mut direct = Vec::with_capacity(requests);
    let mut total: u64 = 0;
    for _ in 0..requests + 10 {
        let start = Instant::now();
        let rows: Vec<(String, String)> = page
            .query_map(rusqlite::params_from_iter(params.iter()), |row| {
                Ok((row.get(0)?, row.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        total = count.query_row(rusqlite::params_from_iter(params.iter()), |row| row.get(0))?;
        if rows.len() != 50 {
            return Err("the direct query found no full page".into());
        }
        direct.push(ms(start));
    }
    direct.drain(..10);
    if total != size {
        return Err(format!("direct count {total} != plugin size {size}").into());
    }
    Ok((Timing::of(plugin), Timing::of(direct), size))
}
