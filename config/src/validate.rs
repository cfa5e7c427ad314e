//! What the types cannot say: ranges, formats and relations between keys,
//! checked once the layers are merged. Each error names its key.

use std::net::SocketAddr;

use crate::settings::{Settings, PARTITIONERS};
use crate::ConfigError;

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// An `http://` URL or nothing: arus has no TLS client; a collector or
/// proxy beside it terminates TLS.
fn plain_http_or_empty(key: &str, value: &str, hint: &str) -> Result<(), ConfigError> {
    if value.is_empty() || value.starts_with("http://") {
        return Ok(());
    }
    Err(invalid(
        key,
        format!(
            "must be an http:// URL, {hint} (got {value:?}); \
             put a collector or TLS-terminating proxy beside arus for https"
        ),
    ))
}

fn at_least(key: &str, value: i64, min: i64) -> Result<(), ConfigError> {
    if value < min {
        return Err(invalid(
            key,
            format!("must be at least {min} (got {value})"),
        ));
    }
    Ok(())
}

/// `key` must not be below the setting `other_key`; `why` follows the
/// message (empty, or ", or ..." with the consequence).
fn not_below(
    key: &str,
    value: u64,
    other_key: &str,
    other: u64,
    why: &str,
) -> Result<(), ConfigError> {
    if value < other {
        return Err(invalid(
            key,
            format!("must be at least {other_key} ({value} < {other}){why}"),
        ));
    }
    Ok(())
}

impl Settings {
    /// The instance name, falling back to the host name when none is set.
    pub fn resolve_instance_id(&mut self) {
        if self.instance_id.trim().is_empty() {
            self.instance_id = std::env::var("HOSTNAME")
                .ok()
                .filter(|h| !h.is_empty())
                .or_else(|| {
                    std::fs::read_to_string("/proc/sys/kernel/hostname")
                        .ok()
                        .map(|h| h.trim().to_string())
                })
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "arus".into());
        }
    }

    /// Checks what the types cannot: ranges, formats, relations between keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let http = &self.http;
        if http.bind.parse::<SocketAddr>().is_err() {
            return Err(invalid(
                "http.bind",
                format!(
                    "not an address with a port, like 0.0.0.0:3000 (got {:?})",
                    http.bind
                ),
            ));
        }
        at_least("http.max_body_bytes", http.max_body_bytes as i64, 1024)?;
        at_least("http.max_batch_size", http.max_batch_size as i64, 1)?;
        at_least("http.body_timeout_ms", http.body_timeout_ms as i64, 100)?;
        at_least("http.max_connections", http.max_connections as i64, 1)?;
        for origin in &http.cors_allowed_origins {
            let ok = origin == "*"
                || origin.split_once("://").is_some_and(|(scheme, rest)| {
                    matches!(scheme, "http" | "https")
                        && !rest.is_empty()
                        && !rest.contains(['/', '?', '#', ' '])
                });
            if !ok {
                return Err(invalid(
                    "http.cors_allowed_origins",
                    format!(
                        "an origin is scheme://host[:port] with no path, like \"https://www.example.com\", or \"*\" (got {origin:?})"
                    ),
                ));
            }
        }
        let url = &http.advertised_url;
        let plain = url.split_once("://").is_some_and(|(scheme, rest)| {
            matches!(scheme, "http" | "https")
                && !rest.is_empty()
                && !rest.contains(['/', '?', '#', ' '])
        });
        if !url.is_empty() && !plain {
            return Err(invalid(
                "http.advertised_url",
                format!(
                    "an address is scheme://host[:port] with no path, like \"http://arus-0.arus:3000\", or empty (got {url:?})"
                ),
            ));
        }
        at_least("http.forward_timeout_ms", http.forward_timeout_ms as i64, 1)?;
        for proxy in &http.trusted_proxies {
            if crate::IpRange::parse(proxy).is_none() {
                return Err(invalid(
                    "http.trusted_proxies",
                    format!("not an address or CIDR range, like 10.0.0.0/8 (got {proxy:?})"),
                ));
            }
        }
        at_least(
            "windows.max_future_ms",
            self.windows.max_future_ms as i64,
            1000,
        )?;
        at_least("windows.max_past_ms", self.windows.max_past_ms as i64, 1000)?;
        let w = &self.windows;
        at_least(
            "windows.minutes_retention_ms",
            w.minutes_retention_ms as i64,
            3_600_000,
        )?;
        not_below(
            "windows.hours_retention_ms",
            w.hours_retention_ms,
            "windows.minutes_retention_ms",
            w.minutes_retention_ms,
            "",
        )?;
        not_below(
            "windows.days_retention_ms",
            w.days_retention_ms,
            "windows.hours_retention_ms",
            w.hours_retention_ms,
            "",
        )?;
        if w.grace_ms >= w.minutes_retention_ms {
            return Err(invalid(
                "windows.grace_ms",
                format!(
                    "must be below windows.minutes_retention_ms ({}), or a bucket would expire before it closes (got {})",
                    w.minutes_retention_ms, w.grace_ms
                ),
            ));
        }
        at_least(
            "sessions.inactivity_ms",
            i64::try_from(self.sessions.inactivity_ms).unwrap_or(i64::MAX),
            1_000,
        )?;
        if !(10..=100_000).contains(&w.top_pages) {
            return Err(invalid(
                "windows.top_pages",
                format!("must be from 10 to 100000 (got {})", w.top_pages),
            ));
        }
        if !(4..=21).contains(&w.visitors_lg_k) {
            return Err(invalid(
                "windows.visitors_lg_k",
                format!("must be from 4 to 21 (got {})", w.visitors_lg_k),
            ));
        }

        let r = &self.retry;
        at_least("retry.max_attempts", r.max_attempts.into(), 1)?;
        at_least("retry.backoff_base_ms", r.backoff_base_ms as i64, 1)?;
        not_below(
            "retry.backoff_max_ms",
            r.backoff_max_ms,
            "retry.backoff_base_ms",
            r.backoff_base_ms,
            "",
        )?;
        at_least(
            "breaker.failure_threshold",
            self.breaker.failure_threshold.into(),
            1,
        )?;
        at_least("breaker.open_ms", self.breaker.open_ms as i64, 1)?;

        let t = &self.telemetry;
        if !["pretty", "json"].contains(&t.log_format.as_str()) {
            return Err(invalid(
                "telemetry.log_format",
                format!("must be pretty or json (got {:?})", t.log_format),
            ));
        }
        if !(0.0..=1.0).contains(&t.sampling_ratio) {
            return Err(invalid(
                "telemetry.sampling_ratio",
                format!("must be between 0 and 1 (got {})", t.sampling_ratio),
            ));
        }
        plain_http_or_empty(
            "telemetry.otlp_endpoint",
            &t.otlp_endpoint,
            "such as http://collector:4318/v1/traces",
        )?;

        let lag = &self.lag;
        at_least("lag.interval_ms", lag.interval_ms as i64, 100)?;
        at_least("lag.alert_threshold", lag.alert_threshold, 1)?;
        at_least("lag.webhook_timeout_ms", lag.webhook_timeout_ms as i64, 1)?;
        at_least(
            "lag.webhook_failure_threshold",
            lag.webhook_failure_threshold.into(),
            1,
        )?;
        at_least("lag.webhook_open_ms", lag.webhook_open_ms as i64, 1)?;
        plain_http_or_empty(
            "lag.webhook_url",
            &lag.webhook_url,
            "or empty for no alerts",
        )?;

        let k = &self.kafka;
        if k.group_id.trim().is_empty() {
            return Err(invalid("kafka.group_id", "must not be empty"));
        }
        at_least("kafka.partitions", k.partitions.into(), 1)?;
        at_least("kafka.replication_factor", k.replication_factor.into(), 1)?;
        at_least("kafka.produce_timeout_ms", k.produce_timeout_ms as i64, 1)?;
        at_least("kafka.admin_timeout_ms", k.admin_timeout_ms as i64, 1)?;
        at_least(
            "kafka.transaction_timeout_ms",
            k.transaction_timeout_ms as i64,
            1000,
        )?;
        at_least("kafka.session_timeout_ms", k.session_timeout_ms as i64, 1)?;
        if k.heartbeat_interval_ms >= k.session_timeout_ms {
            return Err(invalid(
                "kafka.heartbeat_interval_ms",
                format!(
                    "must be below kafka.session_timeout_ms ({} >= {})",
                    k.heartbeat_interval_ms, k.session_timeout_ms
                ),
            ));
        }
        not_below(
            "kafka.max_poll_interval_ms",
            k.max_poll_interval_ms,
            "kafka.session_timeout_ms",
            k.session_timeout_ms,
            "",
        )?;
        if !matches!(
            k.assignment_strategy.as_str(),
            "range" | "roundrobin" | "cooperative-sticky"
        ) {
            return Err(invalid(
                "kafka.assignment_strategy",
                format!(
                    "must be range, roundrobin or cooperative-sticky (got {:?})",
                    k.assignment_strategy
                ),
            ));
        }
        if !PARTITIONERS.contains(&k.partitioner.as_str()) {
            return Err(invalid(
                "kafka.partitioner",
                format!(
                    "must be one of {} (got {:?})",
                    PARTITIONERS.join(", "),
                    k.partitioner
                ),
            ));
        }
        let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if !k.topic_prefix.chars().all(legal) {
            return Err(invalid(
                "kafka.topic_prefix",
                format!(
                    "may hold only letters, digits, '.', '_' and '-' (got {:?})",
                    k.topic_prefix
                ),
            ));
        }
        for (key, topic) in k.topics.all() {
            if topic.name.is_empty() || !topic.name.chars().all(legal) {
                return Err(invalid(
                    &format!("kafka.topics.{key}.name"),
                    format!(
                        "must be a non-empty Kafka topic name (got {:?})",
                        topic.name
                    ),
                ));
            }
            let full = k.topic_name(topic);
            if full.len() > 249 {
                return Err(invalid(
                    &format!("kafka.topics.{key}.name"),
                    "with the prefix, longer than Kafka's 249 characters",
                ));
            }
            if !matches!(
                topic.cleanup_policy.as_str(),
                "delete" | "compact" | "compact,delete" | "delete,compact"
            ) {
                return Err(invalid(
                    &format!("kafka.topics.{key}.cleanup_policy"),
                    format!(
                        "must be delete, compact or compact,delete (got {:?})",
                        topic.cleanup_policy
                    ),
                ));
            }
            if !matches!(
                topic.compression.as_str(),
                "producer" | "uncompressed" | "gzip" | "snappy" | "lz4" | "zstd"
            ) {
                return Err(invalid(
                    &format!("kafka.topics.{key}.compression"),
                    format!(
                        "must be producer, uncompressed, gzip, snappy, lz4 or zstd (got {:?})",
                        topic.compression
                    ),
                ));
            }
            if topic.retention_ms < -1 || topic.retention_ms == 0 {
                return Err(invalid(
                    &format!("kafka.topics.{key}.retention_ms"),
                    format!(
                        "must be positive, or -1 for forever (got {})",
                        topic.retention_ms
                    ),
                ));
            }
        }
        if k.topics.analytics_events.cleanup_policy != "compact" {
            return Err(invalid(
                "kafka.topics.analytics_events.cleanup_policy",
                "must be compact: the changelog keeps the latest state of every key",
            ));
        }

        let c = &self.consumer;
        at_least("consumer.max_batch", c.max_batch as i64, 1)?;
        at_least("consumer.poll_timeout_ms", c.poll_timeout_ms as i64, 1)?;
        at_least(
            "consumer.commit_interval_ms",
            c.commit_interval_ms as i64,
            1,
        )?;
        at_least("consumer.mailbox_capacity", c.mailbox_capacity as i64, 1)?;
        at_least(
            "consumer.restore_timeout_ms",
            c.restore_timeout_ms as i64,
            1,
        )?;
        at_least("consumer.dedupe_window_ms", c.dedupe_window_ms as i64, 1)?;
        let a = &self.aggregator;
        at_least("aggregator.shards", a.shards as i64, 1)?;
        at_least(
            "aggregator.active_window_seconds",
            a.active_window_seconds as i64,
            1,
        )?;
        at_least("aggregator.top_pages_limit", a.top_pages_limit as i64, 1)?;
        at_least(
            "aggregator.events_by_user_limit",
            a.events_by_user_limit as i64,
            1,
        )?;
        at_least("shutdown.timeout_ms", self.shutdown.timeout_ms as i64, 1)?;
        if self.shutdown.drain_delay_ms >= self.shutdown.timeout_ms {
            return Err(invalid(
                "shutdown.drain_delay_ms",
                format!(
                    "must be below shutdown.timeout_ms ({}), which it is part of (got {})",
                    self.shutdown.timeout_ms, self.shutdown.drain_delay_ms
                ),
            ));
        }
        let sec = &self.security;
        if sec.ingest_api_keys.iter().any(|k| k.expose().len() < 16) {
            return Err(invalid(
                "security.ingest_api_keys",
                "every key must be at least 16 characters long",
            ));
        }
        if sec.query_api_keys.iter().any(|k| k.expose().len() < 16) {
            return Err(invalid(
                "security.query_api_keys",
                "every key must be at least 16 characters long",
            ));
        }
        if !sec.admin_token.is_empty() && sec.admin_token.expose().len() < 16 {
            return Err(invalid(
                "security.admin_token",
                "must be at least 16 characters long (or empty to disable admin endpoints)",
            ));
        }
        if sec.rate_limit_events_per_second > 0 && sec.rate_limit_burst > 0 {
            not_below(
                "security.rate_limit_burst",
                sec.rate_limit_burst,
                "http.max_batch_size",
                self.http.max_batch_size as u64,
                ", or a full batch could never pass",
            )?;
        }
        Ok(())
    }
}
