//! A QMP client: the QEMU Machine Protocol over a VM's unix socket. One
//! command at a time, newline-delimited JSON; asynchronous events that arrive
//! between the command and its answer are skipped.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

/// How long one answer may take; QMP answers at once, even under TCG.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on a line, so a confused peer cannot make us buffer without end.
const MAX_LINE: usize = 1 << 20;

pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects, reads the greeting and leaves capabilities negotiation mode.
    pub fn connect(socket: &Path) -> Result<Qmp, String> {
        let stream = UnixStream::connect(socket)
            .map_err(|e| format!("QMP socket {}: {e}", socket.display()))?;
        stream
            .set_read_timeout(Some(ANSWER_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(ANSWER_TIMEOUT)))
            .map_err(|e| format!("QMP socket: {e}"))?;
        let writer = stream.try_clone().map_err(|e| format!("QMP socket: {e}"))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(format!("not a QMP greeting: {greeting}"));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// Runs a command and returns its `return` value, or its error's description.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, String> {
        let mut message = json!({ "execute": command });
        if let Some(arguments) = arguments {
            message["arguments"] = arguments;
        }
        let mut line = message.to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| format!("QMP {command}: {e}"))?;
        loop {
            let answer = self.read_message()?;
            if let Some(value) = answer.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = answer.get("error") {
                let desc = error["desc"].as_str().unwrap_or("unknown error");
                return Err(format!("QMP {command}: {desc}"));
            }
            // An event ({"event": ...}); the answer follows.
        }
    }

    /// A human monitor command (`savevm`, `delvm`): QMP has no equivalent
    /// for internal snapshots of a running VM. HMP answers errors as text.
    pub fn human(&mut self, command_line: &str) -> Result<String, String> {
        let output = self.execute(
            "human-monitor-command",
            Some(json!({ "command-line": command_line })),
        )?;
        let text = output.as_str().unwrap_or_default().trim().to_string();
        if text.to_ascii_lowercase().contains("error") {
            return Err(format!("{command_line}: {text}"));
        }
        Ok(text)
    }

    /// The run state: `running`, `paused`, `shutdown`, ...
    pub fn status(&mut self) -> Result<String, String> {
        let status = self.execute("query-status", None)?;
        Ok(status["status"].as_str().unwrap_or("unknown").to_string())
    }

    fn read_message(&mut self) -> Result<Value, String> {
        let mut line = String::new();
        loop {
            line.clear();
            let read = std::io::Read::take(&mut self.reader, MAX_LINE as u64)
                .read_line(&mut line)
                .map_err(|e| format!("QMP read: {e}"))?;
            if read == 0 {
                return Err("QMP socket closed".into());
            }
            if !line.trim().is_empty() {
                break;
            }
        }
        serde_json::from_str(&line).map_err(|e| format!("QMP sent bad JSON: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixListener;

    /// A fake QMP server: greets, then answers each command from `answers`
    /// (after an event, to show events are skipped).
    fn serve(dir: &Path, answers: Vec<&'static str>) -> std::path::PathBuf {
        let socket = dir.join("qmp.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n")
                .unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            for answer in std::iter::once("{\"return\": {}}").chain(answers) {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 {
                    return;
                }
                stream
                    .write_all(b"{\"event\": \"RESUME\", \"timestamp\": {}}\r\n")
                    .unwrap();
                stream.write_all(answer.as_bytes()).unwrap();
                stream.write_all(b"\r\n").unwrap();
            }
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest);
        });
        socket
    }

    #[test]
    fn commands_get_their_answers_past_events() {
        let dir = tempfile::tempdir().unwrap();
        let socket = serve(
            dir.path(),
            vec![
                "{\"return\": {\"status\": \"running\", \"running\": true}}",
                "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no such device\"}}",
                "{\"return\": \"Error: snapshot not found\\r\\n\"}",
            ],
        );
        let mut qmp = Qmp::connect(&socket).unwrap();
        assert_eq!(qmp.status().unwrap(), "running");
        let error = qmp.execute("device_del", None).unwrap_err();
        assert!(error.contains("no such device"), "{error}");
        assert!(qmp.human("delvm x").is_err());
    }

    #[test]
    fn a_missing_socket_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Qmp::connect(&dir.path().join("none.sock")).is_err());
    }
}
