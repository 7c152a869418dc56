//! A real SMTP server on 127.0.0.1 (aiosmtpd, started from `tests/smtp_server.py`), which
//! keeps every accepted message parsed by Python's email package.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One accepted message.
pub type Mail = serde_json::Value;

pub struct SmtpServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl SmtpServer {
    /// Starts a server; with `auth`, it requires that user name and password.
    pub fn start(port: Option<u16>, auth: Option<(&str, &str)>) -> SmtpServer {
        SmtpServer::launch(port, auth, None)
    }

    /// A server speaking TLS: `starttls` (required before anything else) or `implicit` (from
    /// the first byte), with a certificate for localhost and 127.0.0.1 from a test CA
    /// (`ca_file`).
    pub fn start_tls(tls: &str, auth: Option<(&str, &str)>) -> SmtpServer {
        SmtpServer::launch(None, auth, Some(tls))
    }

    /// The PEM file of the test CA a TLS server's certificate comes from.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn launch(port: Option<u16>, auth: Option<(&str, &str)>, tls: Option<&str>) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_server.py");
        let python = std::env::var("PORTICO_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut cmd = Command::new(&python);
        cmd.arg(script)
            .arg("--dir")
            .arg(dir.path())
            .arg("--port")
            .arg(port.unwrap_or(0).to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some((user, password)) = auth {
            cmd.args(["--user", user, "--password", password]);
        }
        if let Some(tls) = tls {
            cmd.args(["--tls", tls]);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start {python}: {e}; run the suite with `bash .ci/test`, which installs aiosmtpd")
        });
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!("the SMTP server did not start (is aiosmtpd installed? `bash .ci/test` installs it): {line:?}")
            });
        SmtpServer { port, dir, child }
    }

    /// A port nothing listens on now (for "server down").
    pub fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// `smtp://127.0.0.1:PORT?tls=none`.
    pub fn url(port: u16) -> String {
        format!("smtp://127.0.0.1:{port}?tls=none")
    }

    /// What the server answers next: "ok", "4xx", "5xx" or "delay:SECONDS".
    pub fn answer(&self, mode: &str) {
        std::fs::write(self.dir.path().join("mode"), mode).unwrap();
    }

    /// Every accepted message, oldest first.
    pub fn mails(&self) -> Vec<Mail> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    /// Waits until a session is in DATA (the server has the marker file), up to `limit`.
    pub fn wait_for_data(&self, limit: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < limit {
            if self.dir.path().join("receiving").exists() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A header of a received message.
pub fn header<'a>(mail: &'a Mail, name: &str) -> &'a str {
    mail["headers"][name].as_str().unwrap_or_default()
}
