//! The settings themselves. Each field is documented in `config/default.toml`.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// This instance's name; empty in the file means the host name.
    pub instance_id: String,
    pub http: HttpSettings,
    pub kafka: KafkaSettings,
    pub consumer: ConsumerSettings,
    pub aggregator: AggregatorSettings,
    pub security: SecuritySettings,
    pub retry: RetrySettings,
    pub breaker: BreakerSettings,
    pub lag: LagSettings,
    pub telemetry: TelemetrySettings,
    pub chaos: ChaosSettings,
    pub shutdown: ShutdownSettings,
    pub windows: WindowSettings,
    pub sessions: SessionSettings,
}

/// Visits: a user's run of events (page views and user events together)
/// with no gap of `inactivity_ms` or more.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSettings {
    pub inactivity_ms: u64,
}

/// Event time: how far an event's timestamp may be from the time it was
/// written (its record's timestamp), ahead and behind; and the event-time
/// buckets (grace before a bucket closes, retention per resolution).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSettings {
    pub max_future_ms: u64,
    pub max_past_ms: u64,
    pub grace_ms: u64,
    pub late_copies: bool,
    pub minutes_retention_ms: u64,
    pub hours_retention_ms: u64,
    pub days_retention_ms: u64,
    pub visitors_lg_k: u8,
    pub top_pages: usize,
}

/// A value that must not appear in logs or printed configuration.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "[redacted]"
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    pub ingest_api_keys: Vec<Secret>,
    pub query_api_keys: Vec<Secret>,
    pub admin_token: Secret,
    pub visitor_salt: Secret,
    pub rate_limit_events_per_second: u64,
    pub rate_limit_burst: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub bind: String,
    pub workers: usize,
    pub max_body_bytes: usize,
    pub max_batch_size: usize,
    pub body_timeout_ms: u64,
    pub max_connections: usize,
    pub trusted_proxies: Vec<String>,
    pub cors_allowed_origins: Vec<String>,
    /// This instance's address as the other instances reach it
    /// (`http://host:port`); empty: `http://` and the bind address, its
    /// unspecified host (`0.0.0.0`) as the machine's host name.
    pub advertised_url: String,
    /// How long a per-user query forwarded to the user's owner may take.
    pub forward_timeout_ms: u64,
}

impl HttpSettings {
    /// `advertised_url`, or when empty [`Self::advertised_on`] the bind
    /// address's port.
    pub fn advertised(&self) -> String {
        if !self.advertised_url.is_empty() {
            return self.advertised_url.trim_end_matches('/').to_string();
        }
        let port = self
            .bind
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(3000);
        self.advertised_on(port)
    }

    /// `http://`, the bind address's host (an unspecified one, `0.0.0.0`
    /// or `[::]`, as this machine's host name: `HOSTNAME`, else
    /// `/etc/hostname`, else `localhost`) and `port` (the port bound, when
    /// the bind address asks for any).
    pub fn advertised_on(&self, port: u16) -> String {
        let host = self.bind.rsplit_once(':').map_or("", |(h, _)| h);
        let host = match host {
            "0.0.0.0" | "[::]" | "" => std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".into()),
            other => other.to_string(),
        };
        format!("http://{host}:{port}")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    pub brokers: String,
    pub group_id: String,
    pub topic_prefix: String,
    pub partitions: i32,
    pub replication_factor: i32,
    pub compression: Compression,
    pub produce_timeout_ms: u64,
    pub session_timeout_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub max_poll_interval_ms: u64,
    pub assignment_strategy: String,
    pub partitioner: String,
    pub static_membership: bool,
    pub admin_timeout_ms: u64,
    pub transaction_timeout_ms: u64,
    /// librdkafka settings passed through to every client.
    pub client: ClientOverrides,
    pub topics: Topics,
}

/// librdkafka's partitioners. `murmur2_random` is the Java client's and
/// kafkajs's: records keyed by the same user land in the same partition
/// whichever of them wrote it (`murmur2` differs only for empty keys).
pub const PARTITIONERS: [&str; 7] = [
    "murmur2_random",
    "murmur2",
    "consistent_random",
    "consistent",
    "fnv1a_random",
    "fnv1a",
    "random",
];

impl KafkaSettings {
    /// The embedded mock cluster is used when no broker is configured.
    pub fn uses_embedded_broker(&self) -> bool {
        self.brokers.trim().is_empty()
    }

    /// A topic's full name, with the configured prefix.
    pub fn topic_name(&self, topic: &TopicSettings) -> String {
        format!("{}{}", self.topic_prefix, topic.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The name librdkafka and the broker use.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topics {
    pub user_events: TopicSettings,
    pub page_views: TopicSettings,
    pub analytics_events: TopicSettings,
    pub error_events: TopicSettings,
    pub retry_events: TopicSettings,
}

impl Topics {
    /// Every topic with its config key, for provisioning and validation.
    pub fn all(&self) -> [(&'static str, &TopicSettings); 5] {
        [
            ("user_events", &self.user_events),
            ("page_views", &self.page_views),
            ("analytics_events", &self.analytics_events),
            ("error_events", &self.error_events),
            ("retry_events", &self.retry_events),
        ]
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSettings {
    pub name: String,
    /// `retention.ms`; -1 keeps records forever.
    pub retention_ms: i64,
    /// `cleanup.policy`: delete, compact or "compact,delete".
    pub cleanup_policy: String,
    /// Topic-level `compression.type`: producer, or a codec name.
    pub compression: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSettings {
    pub max_batch: usize,
    pub poll_timeout_ms: u64,
    pub commit_interval_ms: u64,
    pub mailbox_capacity: usize,
    pub restore_timeout_ms: u64,
    pub dedupe_window_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatorSettings {
    pub shards: usize,
    pub arbiters: usize,
    pub active_window_seconds: u64,
    pub top_pages_limit: usize,
    pub events_by_user_limit: usize,
}

/// The retry topic: how often and how late an event whose hop failed for
/// a while is tried again.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
}

/// The circuit breaker of each downstream hop.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerSettings {
    pub failure_threshold: u32,
    pub open_ms: u64,
}

/// Logs and traces.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    pub log_format: String,
    pub otlp_endpoint: String,
    pub sampling_ratio: f64,
    pub service_name: String,
}

/// The consumer-lag monitor and its alerts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LagSettings {
    pub interval_ms: u64,
    pub alert_threshold: i64,
    pub webhook_url: String,
    pub webhook_timeout_ms: u64,
    pub webhook_failure_threshold: u32,
    pub webhook_open_ms: u64,
}

/// Fault injection, for testing the failure paths on a running service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChaosSettings {
    pub enabled: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    pub timeout_ms: u64,
    pub drain_delay_ms: u64,
}

/// librdkafka settings passed through (`[kafka.client]`), such as
/// `security.protocol`, `sasl.username`, `sasl.password`. Printed with the
/// values of secret-looking keys as `[redacted]`.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct ClientOverrides(pub BTreeMap<String, String>);

impl ClientOverrides {
    /// Whether the value of librdkafka setting `key` is a secret.
    pub fn is_secret(key: &str) -> bool {
        ["password", "secret", "jaas", "token", "key.pem", "private"]
            .iter()
            .any(|word| key.contains(word))
    }
}

impl std::ops::Deref for ClientOverrides {
    type Target = BTreeMap<String, String>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for ClientOverrides {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl std::fmt::Debug for ClientOverrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                let shown = if Self::is_secret(k) {
                    "[redacted]"
                } else {
                    v.as_str()
                };
                (k, shown)
            }))
            .finish()
    }
}
