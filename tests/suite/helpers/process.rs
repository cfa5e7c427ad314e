//! arus as a separate process, for what only a process can suffer: SIGKILL.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

use super::test_env;

pub struct Process {
    child: Child,
    pub address: String,
    pub log: std::path::PathBuf,
}

/// Waits until something listens on loopback `port`; panics naming `what`
/// after 30 s.
pub fn wait_listening(port: u16, what: &str) {
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "{what} did not listen on 127.0.0.1:{port} within 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Process {
    /// Starts `arus serve` with the test settings and `extra`; its log goes
    /// to target/test-logs/<instance>.log.
    pub fn start(brokers: &str, prefix: &str, instance: &str, extra: &[(&str, &str)]) -> Self {
        let port = free_port();
        let bind = format!("127.0.0.1:{port}");
        let mut all: Vec<(&str, &str)> =
            vec![("ARUS__HTTP__BIND", &bind), ("ARUS__INSTANCE_ID", instance)];
        all.extend_from_slice(extra);
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-logs");
        std::fs::create_dir_all(&dir).expect("log dir");
        let log = dir.join(format!("{instance}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_arus"))
            .arg("serve")
            .envs(test_env(brokers, prefix, &all))
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(file.try_clone().expect("log file")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("arus starts");
        Self {
            child,
            address: format!("http://{bind}"),
            log,
        }
    }

    /// SIGKILL: no shutdown, no final commit, an open transaction left behind.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// Waits up to `limit` for the process to end on its own; its status.
    pub fn wait_exit(&mut self, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
        let start = std::time::Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().expect("status") {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        None
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.send_terminate();
        self.child.wait().expect("exit status")
    }

    /// SIGTERM, without waiting for the exit.
    pub fn send_terminate(&self) {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
