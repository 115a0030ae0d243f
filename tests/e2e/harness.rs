//! Starts the real `tessera` binary on a loopback port with a temp data dir,
//! and gives tests a blocking HTTP client for it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const TESSERA: &str = env!("CARGO_BIN_EXE_tessera");
pub const HOSTILE_WASM: &str = concat!(env!("TESSERA_PLUGIN_DIR"), "/hostile.wasm");

/// A site with the hello example at /hello and the hostile plugin at /hostile,
/// with short budgets so the failure tests finish quickly.
pub fn test_site() -> String {
    format!(
        r#"
log = "info"
[limits]
time_budget_ms = 500
memory_mib = 32
body_limit_bytes = 4096

[plugins.hello]
source = "hello"
mounts = ["/hello"]
grants = ["storage", "auth", "jobs", "hypervisor"]
[plugins.hello.settings]
greeting = "hi from the site"

[hypervisor.sim]
transition_delay_ms = 0

[plugins.hostile]
source = "{HOSTILE_WASM}"
mounts = ["/hostile"]
grants = ["storage"]
[plugins.hostile.limits]
response_limit_bytes = 1048576
log_lines_per_call = 100
"#
    )
}

pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl Server {
    /// The built-in default site (all five shipped plugins).
    pub fn default_site() -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut server = Server::start_in(temp.path(), None);
        server._temp = Some(temp);
        server
    }

    /// A site from TOML text, in a fresh temp dir.
    pub fn with_site(site: &str) -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut server = Server::start_in(temp.path(), Some(site));
        server._temp = Some(temp);
        server
    }

    /// Start in `dir` (kept by the caller, for restart tests).
    pub fn start_in(dir: &Path, site: Option<&str>) -> Server {
        let mut cmd = Command::new(TESSERA);
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("data"));
        if let Some(site) = site {
            let path = dir.join("site.toml");
            std::fs::write(&path, site).expect("write site");
            cmd.arg("--config").arg(path);
        }
        let log = std::fs::File::create(dir.join("server.log")).expect("log file");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn tessera");
        let base = wait_for_listening(&mut child, dir);
        Server {
            child: Some(child),
            base,
            dir: dir.to_path_buf(),
            _temp: None,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The data dir the server was started with.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// SIGTERM, then wait for the exit.
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        terminate(&child);
        child.wait().expect("wait")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn terminate(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

fn wait_for_listening(child: &mut Child, dir: &Path) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(addr) => addr,
        Err(_) => {
            let _ = child.kill();
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            panic!("tessera did not start listening; its log:\n{log}");
        }
    }
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// Run the CLI to completion; returns (exit code, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (i32, String, String) {
    run_cli_with_stdin(args, "")
}

/// Run the CLI with `stdin` as its standard input.
pub fn run_cli_with_stdin(args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(TESSERA)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tessera");
    let mut input = child.stdin.take().expect("piped stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    let out = child.wait_with_output().expect("wait tessera");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run a command with `--data-dir data_dir` appended; asserts success and
/// returns stdout.
pub fn cli_ok(data_dir: &Path, args: &[&str], stdin: &str) -> String {
    let dir = data_dir.to_str().expect("utf-8 path");
    let mut full: Vec<&str> = args.to_vec();
    full.extend(["--data-dir", dir]);
    let (code, out, err) = run_cli_with_stdin(&full, stdin);
    assert_eq!(code, 0, "tessera {args:?} failed: {err}");
    out
}

/// The status of a plain `GET` of `path`.
/// The appliance admin API's first-run setup (`POST /api/v1/admin/setup` with
/// `newtoken`); the status it answered.
pub fn appliance_setup(
    http: &reqwest::blocking::Client,
    server: &Server,
    token: &str,
) -> reqwest::StatusCode {
    let boundary = "tessera-test-boundary";
    let form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"newtoken\"\r\n\r\n\
         {token}\r\n--{boundary}--\r\n"
    );
    http.post(server.url("/api/v1/admin/setup"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(form)
        .send()
        .unwrap()
        .status()
}

pub fn get_status(server: &Server, path: &str) -> u16 {
    client()
        .get(server.url(path))
        .send()
        .expect("request")
        .status()
        .as_u16()
}

/// The kernel's Prometheus text.
pub fn metrics(server: &Server) -> String {
    client()
        .get(server.url("/_tessera/metrics"))
        .send()
        .and_then(|r| r.text())
        .expect("metrics")
}

/// Assert that each line appears in the metrics text.
pub fn assert_metrics(server: &Server, lines: &[&str]) {
    let text = metrics(server);
    for line in lines {
        assert!(
            text.lines().any(|l| l == *line),
            "missing {line:?} in:\n{text}"
        );
    }
}

pub fn json(resp: reqwest::blocking::Response) -> serde_json::Value {
    resp.json().expect("JSON body")
}

/// A VM as the `hello` example plugin shows it (`GET /hello/vms/:id`).
pub fn hello_vm(server: &Server, id: &str) -> serde_json::Value {
    json(
        client()
            .get(server.url(&format!("/hello/vms/{id}")))
            .send()
            .unwrap(),
    )
}

/// Polls the `hello` plugin until the VM reaches `state`, for at most
/// `within`; a VM that goes `failed` on the way ends the wait at once.
pub fn wait_hello_vm(
    server: &Server,
    id: &str,
    state: &str,
    within: std::time::Duration,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + within;
    loop {
        let current = hello_vm(server, id);
        if current["state"] == state {
            return current;
        }
        assert!(
            current["state"] != "failed",
            "vm {id} failed: {current}\n{}",
            server.log()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "vm {id} never reached {state}: {current}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `POST /hello/vms/:id/:action` (start, stop, reboot, delete).
pub fn hello_vm_act(server: &Server, id: &str, action: &str) -> reqwest::blocking::Response {
    client()
        .post(server.url(&format!("/hello/vms/{id}/{action}")))
        .send()
        .unwrap()
}
