//! arus as the benchmarks run it: a release binary in its own process, and
//! what they ask of it.

use std::cell::Cell;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::Value;

use crate::{event, Args, BATCH, PARTITIONS};

pub struct Arus {
    child: Child,
    pub url: String,
}

impl Drop for Arus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn get(client: &awc::Client, url: &str) -> Option<Value> {
    let mut resp = client.get(url).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json::<Value>().limit(1 << 20).await.ok()
}

/// The admin token the bench's arus runs with (the bench pauses its
/// consumption for the ingest-alone figure).
pub const ADMIN_TOKEN: &str = "arus-bench-admin-token";

pub async fn start_arus(args: &Args, prefix: &str, client: &awc::Client) -> anyhow::Result<Arus> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(&args.arus)
        .arg("serve")
        .env("ARUS__KAFKA__BROKERS", &args.brokers)
        .env("ARUS__KAFKA__TOPIC_PREFIX", prefix)
        .env("ARUS__KAFKA__GROUP_ID", format!("{prefix}group"))
        .env("ARUS__KAFKA__PARTITIONS", PARTITIONS.to_string())
        .env("ARUS__INSTANCE_ID", prefix.trim_end_matches('-'))
        .env("ARUS__HTTP__BIND", format!("127.0.0.1:{port}"))
        .env("ARUS__SECURITY__ADMIN_TOKEN", ADMIN_TOKEN)
        .env("ARUS__KAFKA__SESSION_TIMEOUT_MS", "2000")
        .env("ARUS__KAFKA__HEARTBEAT_INTERVAL_MS", "500")
        .env("ARUS__KAFKA__MAX_POLL_INTERVAL_MS", "10000")
        .env(
            "RUST_LOG",
            std::env::var("BENCH_ARUS_LOG").unwrap_or_else(|_| "warn".into()),
        )
        // Its log (stdout) only when asked for, with BENCH_ARUS_LOG.
        .stdout(if std::env::var_os("BENCH_ARUS_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", args.arus))?;
    let arus = Arus {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let started = Instant::now();
    while get(client, &format!("{}/health/ready", arus.url))
        .await
        .is_none()
    {
        if started.elapsed() > Duration::from_secs(120) {
            bail!("arus not ready");
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(arus)
}

impl Arus {
    /// Its resident set size, in MiB.
    pub fn rss_mib(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in /proc/PID/status")?;
        Ok(kib / 1024.0)
    }
}

/// Batch ingest paced at a steady rate in the background, not waiting for
/// answers, until stopped.
pub struct Load {
    stop: Rc<Cell<bool>>,
    task: actix_web::rt::task::JoinHandle<()>,
}

impl Load {
    pub fn start(
        client: &awc::Client,
        arus: &Arus,
        event_ids: bool,
        events_per_second: f64,
    ) -> Self {
        let stop = Rc::new(Cell::new(false));
        let (flag, client, url) = (
            stop.clone(),
            client.clone(),
            format!("{}/events/batch-events", arus.url),
        );
        let period = Duration::from_secs_f64(BATCH as f64 / events_per_second);
        let task = actix_web::rt::spawn(async move {
            let (mut next, mut i) = (Instant::now(), 0);
            while !flag.get() {
                let body =
                    Value::Array((i..i + BATCH).map(|n| event(n, event_ids)).collect()).to_string();
                i += BATCH;
                let send = client
                    .post(&url)
                    .insert_header(("content-type", "application/json"))
                    .send_body(body);
                actix_web::rt::spawn(async move {
                    let _ = send.await;
                });
                next += period;
                actix_web::rt::time::sleep_until(next.into()).await;
            }
        });
        Self { stop, task }
    }

    pub async fn stop(self) {
        self.stop.set(true);
        let _ = self.task.await;
    }
}
