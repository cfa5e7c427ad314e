//! Booting arus for black-box tests: the real service on port 0, against the
//! real test broker (`ARUS_TEST_BROKERS`, set by scripts/test.sh), with a
//! random topic prefix and group per test.

#![allow(dead_code)]

pub mod broker;
pub mod process;
pub mod seed;
pub mod workload;

use std::time::{Duration, Instant};

use actix_web::rt::task::JoinHandle;
use arus::startup::{Application, ShutdownHandle};
use arus_config::Loader;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use serde_json::Value;
use uuid::Uuid;

pub fn test_brokers() -> String {
    std::env::var("ARUS_TEST_BROKERS").unwrap_or_else(|_| {
        panic!(
            "ARUS_TEST_BROKERS is not set: run the tests with scripts/test.sh, \
             which installs and starts the test broker"
        )
    })
}

pub struct TestApp {
    pub address: String,
    pub prefix: String,
    pub brokers: String,
    pub client: awc::Client,
    /// The embedded broker, for an app started without one.
    pub embedded: Option<std::rc::Rc<arus::kafka::embedded::EmbeddedBroker>>,
    shutdown: Option<ShutdownHandle>,
    running: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Settings every test app gets; `extra` overrides them.
pub fn test_env(brokers: &str, prefix: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let group = format!("{prefix}group");
    let mut env: Vec<(String, String)> = [
        ("ARUS__KAFKA__BROKERS", brokers),
        ("ARUS__KAFKA__TOPIC_PREFIX", prefix),
        ("ARUS__KAFKA__GROUP_ID", group.as_str()),
        ("ARUS__HTTP__BIND", "127.0.0.1:0"),
        ("ARUS__HTTP__WORKERS", "1"),
        ("ARUS__AGGREGATOR__ARBITERS", "1"),
        ("ARUS__INSTANCE_ID", prefix.trim_end_matches('-')),
        // The test broker's group join waits on the rebalance timeout
        // (max.poll.interval.ms): short timeouts keep joins near a second.
        ("ARUS__KAFKA__SESSION_TIMEOUT_MS", "2000"),
        ("ARUS__KAFKA__HEARTBEAT_INTERVAL_MS", "500"),
        ("ARUS__KAFKA__MAX_POLL_INTERVAL_MS", "2000"),
        ("ARUS__CONSUMER__COMMIT_INTERVAL_MS", "200"),
        ("ARUS__SHUTDOWN__TIMEOUT_MS", "15000"),
        // No load balancer in front of a test instance to wait for.
        ("ARUS__SHUTDOWN__DRAIN_DELAY_MS", "0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        env.retain(|(name, _)| name != k);
        env.push((k.to_string(), v.to_string()));
    }
    env
}

/// Group timeouts the embedded mock cluster accepts: it refuses the short
/// ones the tests use with the real test broker, like Kafka's
/// group.min.session.timeout.ms.
pub const MOCK_CLUSTER_TIMEOUTS: [(&str, &str); 3] = [
    ("ARUS__KAFKA__SESSION_TIMEOUT_MS", "10000"),
    ("ARUS__KAFKA__HEARTBEAT_INTERVAL_MS", "1000"),
    ("ARUS__KAFKA__MAX_POLL_INTERVAL_MS", "30000"),
];

/// Runs `script` of the suite's JavaScript (tests/js, installed by
/// scripts/node-tools.sh) with `args`, off this thread (a browser it drives
/// talks to this process's server), and reads the one JSON line it prints.
pub async fn run_node_script(script: &str, args: Vec<String>) -> Value {
    let tools = std::env::var("ARUS_TEST_NODE_TOOLS").unwrap_or_else(|_| {
        panic!(
            "ARUS_TEST_NODE_TOOLS is not set: run the tests with scripts/test.sh, \
             which installs kafkajs and playwright-core"
        )
    });
    let path = format!("{tools}/{script}");
    let output = actix_web::rt::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(path)
            .args(args)
            .output()
    })
    .await
    .expect("joined")
    .expect("node runs");
    assert!(
        output.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the script's JSON")
}

pub fn random_prefix() -> String {
    format!("t{}-", &Uuid::new_v4().simple().to_string()[..10])
}

/// Boots arus against the test broker and waits until it is ready.
pub async fn spawn_app(extra: &[(&str, &str)]) -> TestApp {
    spawn_app_on(&test_brokers(), &random_prefix(), extra).await
}

pub async fn spawn_app_on(brokers: &str, prefix: &str, extra: &[(&str, &str)]) -> TestApp {
    // Logs show in a failing test's output (RUST_LOG sets the level).
    arus::telemetry::init();
    let settings = Loader::new()
        .env(test_env(brokers, prefix, extra))
        .load()
        .expect("test settings load");
    let app = Application::build(settings).await.expect("arus builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_handle();
    let embedded = app.embedded_broker();
    let running = actix_web::rt::spawn(app.run_until_stopped());
    let app = TestApp {
        embedded,
        shutdown: Some(shutdown),
        running: Some(running),
        ..TestApp::unstarted(address, brokers, prefix)
    };
    app.wait_ready(Duration::from_secs(60)).await;
    app
}

/// The samples of a Prometheus scrape, by name with labels, the labels in
/// [`canonical`] order (the text format leaves their order to the writer).
pub fn scrape_samples(text: &str) -> std::collections::HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            Some((canonical(name), value.parse().ok()?))
        })
        .collect()
}

/// A sample's name with its labels sorted by label name:
/// `m{b="1",a="2"}` → `m{a="2",b="1"}`.
pub fn canonical(sample: &str) -> String {
    let Some((name, labels)) = sample.split_once('{') else {
        return sample.to_string();
    };
    let labels = labels.strip_suffix('}').unwrap_or(labels);
    let mut pairs: Vec<String> = labels
        .split("\",")
        .filter(|p| !p.is_empty())
        .map(|p| {
            if p.ends_with('"') {
                p.to_string()
            } else {
                format!("{p}\"")
            }
        })
        .collect();
    pairs.sort();
    format!("{name}{{{}}}", pairs.join(","))
}

/// Status and body of an answer.
async fn answer(mut resp: awc::ClientResponse) -> (u16, actix_web::web::Bytes) {
    let status = resp.status().as_u16();
    let body = resp.body().limit(16 << 20).await.expect("body read");
    (status, body)
}

fn json_answer((status, body): (u16, actix_web::web::Bytes)) -> (u16, Value) {
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

impl TestApp {
    /// A handle on an instance at `address` that this test does not run.
    fn unstarted(address: String, brokers: &str, prefix: &str) -> Self {
        TestApp {
            address,
            prefix: prefix.to_string(),
            brokers: brokers.to_string(),
            client: awc::Client::builder()
                .timeout(Duration::from_secs(30))
                // Under the server's keep-alive (5 s): a pooled connection
                // is never one the server has just closed.
                .connector(awc::Connector::new().conn_keep_alive(Duration::from_secs(2)))
                .finish(),
            embedded: None,
            shutdown: None,
            running: None,
        }
    }

    /// An instance running elsewhere (another process), reached over HTTP.
    pub async fn remote(address: String, brokers: &str, prefix: &str) -> Self {
        let app = Self::unstarted(address, brokers, prefix);
        app.wait_ready(Duration::from_secs(90)).await;
        app
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn topic(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    async fn wait_ready(&self, limit: Duration) {
        let start = Instant::now();
        loop {
            if let Ok(resp) = self.client.get(self.url("/health/ready")).send().await {
                if resp.status().is_success() {
                    return;
                }
            }
            assert!(
                start.elapsed() < limit,
                "arus was not ready within {limit:?}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// POSTs a raw body; returns status and JSON answer.
    pub async fn post_raw(&self, path: &str, body: impl Into<String>) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url(path))
            .insert_header(("content-type", "application/json"))
            .send_body(body.into())
            .await
            .expect("request sent");
        json_answer(answer(resp).await)
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, body.to_string()).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.client.get(self.url(path))).await
    }

    /// GET of a text answer.
    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let resp = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent");
        let (status, body) = answer(resp).await;
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// GET with one extra header.
    pub async fn get_with(&self, path: &str, header: (&str, &str)) -> (u16, Value) {
        self.send(self.client.get(self.url(path)).insert_header(header))
            .await
    }

    /// POSTs with a header (an admin or ingest key). Waits up to 90 s: an
    /// offset reset answers once its partitions' state is read again, which
    /// the server bounds by `consumer.restore_timeout_ms` (60 s) and a
    /// commit; the test broker reads a long changelog slowly (its fetches
    /// cost time in proportion to the partition's length).
    pub async fn post_with(&self, path: &str, body: &Value, header: (&str, &str)) -> (u16, Value) {
        let request = self
            .client
            .post(self.url(path))
            .timeout(Duration::from_secs(90))
            .insert_header(("content-type", "application/json"))
            .insert_header(header);
        let resp = request
            .send_body(body.to_string())
            .await
            .expect("request sent");
        json_answer(answer(resp).await)
    }

    async fn send(&self, request: awc::ClientRequest) -> (u16, Value) {
        let resp = request.send().await.expect("request sent");
        json_answer(answer(resp).await)
    }

    /// Polls `path` until `done` holds for its JSON answer, or panics after `limit`.
    pub async fn wait_for(
        &self,
        path: &str,
        limit: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_for_with(path, None, limit, done).await
    }

    /// [`Self::wait_for`], sending `header` (a token) with each request.
    pub async fn wait_for_with(
        &self,
        path: &str,
        header: Option<(&str, &str)>,
        limit: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let (status, body) = match header {
                Some(header) => self.get_with(path, header).await,
                None => self.get(path).await,
            };
            if status == 200 && done(&body) {
                return body;
            }
            assert!(
                start.elapsed() < limit,
                "{path} did not reach the expected state within {limit:?}; last answer: {body}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every committed record of `topic`, from the beginning to the end of
    /// each of its `partitions` (control records of transactions skipped).
    pub fn read_all(&self, topic: &str, partitions: i32) -> Vec<rdkafka::message::OwnedMessage> {
        use rdkafka::message::Message as _;
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", format!("{}reader", self.prefix))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", "read_committed")
            // Room for the largest records the tests write (900 KB values).
            .set("fetch.message.max.bytes", "2000000")
            .create()
            .expect("consumer");
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
                .expect("partition");
        }
        reader.assign(&tpl).expect("assign");
        let mut at_end = std::collections::HashSet::new();
        let mut records = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while at_end.len() < partitions as usize {
            assert!(Instant::now() < deadline, "reading {topic} took too long");
            match reader.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    at_end.remove(&m.partition());
                    records.push(m.detach());
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                    at_end.insert(p);
                }
                Some(Err(e)) => panic!("reading {topic}: {e}"),
                None => {}
            }
        }
        records
    }

    /// The end offset of every partition of `topic`.
    pub fn end_offsets(&self, topic: &str, partitions: i32) -> Vec<i64> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", format!("{}watermarks", self.prefix))
            .create()
            .expect("consumer");
        (0..partitions)
            .map(|p| {
                consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .expect("watermarks")
                    .1
            })
            .collect()
    }

    /// Shuts the app down as SIGTERM would and checks it stopped cleanly.
    /// Waits up to `limit` for the app to stop on its own, and returns the
    /// error it stopped with.
    pub async fn failure(mut self, limit: Duration) -> String {
        let running = self.running.take().expect("a running app");
        match actix_web::rt::time::timeout(limit, running).await {
            Ok(result) => match result.expect("app task") {
                Ok(()) => panic!("the app stopped without an error"),
                Err(error) => format!("{error:#}"),
            },
            Err(_) => panic!("the app still runs after {limit:?}"),
        }
    }

    pub async fn stop(mut self) {
        if let Some(shutdown) = &self.shutdown {
            shutdown.shutdown();
        }
        if let Some(running) = self.running.take() {
            running
                .await
                .expect("app task")
                .expect("arus shut down cleanly");
        }
    }
}
