//! A test broker of the test's own, for tests that stop and restart it or
//! need what the shared one's in-memory storage does not give: with
//! file-backed storage (`sqlite://`), a restart keeps the topics, records,
//! transactions and group offsets, and end offsets are exact (the in-memory
//! storage can answer a partition's end offset with that of an earlier batch
//! written in the same millisecond).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use uuid::Uuid;

pub struct OwnBroker {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
    /// Whether clients must authenticate (SASL/SCRAM).
    authentication: bool,
}

impl OwnBroker {
    /// A new broker with empty storage in a temporary directory named after
    /// `name`, on a free loopback port.
    pub fn start(name: &str) -> Self {
        Self::start_with(name)
    }

    /// A new broker that requires every client to authenticate with
    /// SASL/SCRAM-SHA-512, as one of `users` (name, password). The users are
    /// made before authentication is turned on: making one needs a client
    /// that may talk to the broker.
    pub fn start_authenticated(name: &str, users: &[(&str, &str)]) -> Self {
        let mut broker = Self::start_with(name);
        for (user, password) in users {
            broker.create_user(user, password);
        }
        broker.stop();
        broker.authentication = true;
        broker.restart();
        broker
    }

    fn start_with(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("arus-{name}-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("broker dir");
        let port = super::process::free_port();
        let mut broker = Self {
            child: None,
            dir,
            port,
            authentication: false,
        };
        broker.restart();
        broker
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same storage and port.
    pub fn restart(&mut self) {
        let url = format!("tcp://{}", self.address());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("broker.log"))
            .expect("broker log");
        let mut command = Command::new("nisshi");
        command.current_dir(&self.dir).args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "sqlite://broker.db",
        ]);
        if self.authentication {
            command.arg("--authentication");
        }
        let child = command
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("the test broker (nisshi) is on PATH: run the tests with scripts/test.sh");
        self.child = Some(child);
        super::process::wait_listening(self.port, "the broker");
    }

    /// Makes a SCRAM-SHA-512 user `name` with `password`.
    fn create_user(&self, name: &str, password: &str) {
        let status = Command::new("nisshi")
            .current_dir(&self.dir)
            .args([
                "user",
                "create",
                "--broker",
                &format!("tcp://{}", self.address()),
                "--mechanism",
                "scram512",
                name,
                password,
            ])
            .status()
            .expect("nisshi user create runs");
        assert!(status.success(), "nisshi user create {name}: {status}");
    }

    /// Kills it; its storage stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
