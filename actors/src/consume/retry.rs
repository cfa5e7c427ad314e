//! The retry topic: an event whose hop to an aggregator shard failed (the
//! shard stopped or refused, or the hop's breaker is open) is written to
//! `retry-events` for that one metric, with an attempt count and a
//! not-before time, in the same transaction as the offsets that move past it.
//! The consumer driver holds a retry partition back until its next record is
//! due (the retry scheduler), then the partition consumer of that retry
//! partition applies the event to the metric it failed for. After the last
//! attempt it goes to the dead-letter topic.
//!
//! Never lost, never applied twice, even across crashes and a broker that
//! shows aborted records, by two entries in the partition's seen-set (see
//! [`crate::consume::dedupe`]), both restored with the partition's state:
//!
//! - `handoff/<offset>/<metric>` where a record was handed to the retry
//!   topic: a replay of that record hands it over again instead of applying
//!   it (the replayed record and any earlier copy are one retry, below);
//! - `retried/<origin>/<metric>` where a retried event was applied: a second
//!   retry record of the same origin and metric is a duplicate.
//!
//! Retried events are state of the retry partition (its own `as_of`), merged
//! with every other partition's in the read model. Counts are sums, so the
//! detour does not change them; the order of one user's events does change,
//! which only the sessions metric (login/logout pairing) can notice.

use std::time::Duration;

use crate::model::headers::dead_letter as dl;
use crate::model::metric_kind::MetricKind;
use crate::model::source::{InputTopic, RawRecord, SourcePartition};

pub use crate::model::headers::is_own as is_own_header;
/// The headers of a retry record.
pub use crate::model::headers::retry as headers;

/// Where an event first entered arus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub source: SourcePartition,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
}

impl Origin {
    /// The seen-set id of this event's retry for `metric`.
    pub fn retried_id(&self, metric: MetricKind) -> String {
        format!("retried/{}/{}/{metric}", self.source, self.offset)
    }
}

/// A record on its way to the retry topic.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryRecord {
    pub origin: Origin,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// The client's headers (schema-version and any of its own).
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub metric: MetricKind,
    /// The try this record will be: 2 for the first retry.
    pub attempt: u32,
    pub not_before_ms: i64,
    pub message: String,
}

impl RetryRecord {
    /// Every header of the record to write: the client's, then arus's.
    /// `topic` is the full name of the origin's input topic.
    pub fn all_headers(&self, topic: &str) -> Vec<(String, Option<Vec<u8>>)> {
        let mut out = self.headers.clone();
        let own = [
            (dl::ERROR_CLASS, "transient".to_string()),
            (dl::ERROR_MESSAGE, self.message.clone()),
            (dl::SOURCE_TOPIC, topic.to_string()),
            (
                dl::SOURCE_PARTITION,
                self.origin.source.partition.to_string(),
            ),
            (dl::SOURCE_OFFSET, self.origin.offset.to_string()),
            (
                dl::SOURCE_TIMESTAMP,
                self.origin
                    .timestamp_ms
                    .map_or_else(String::new, |t| t.to_string()),
            ),
            (dl::ATTEMPT, self.attempt.to_string()),
            (
                headers::INPUT,
                self.origin.source.topic.as_str().to_string(),
            ),
            (headers::METRIC, self.metric.as_str().to_string()),
            (headers::NOT_BEFORE, self.not_before_ms.to_string()),
        ];
        out.extend(
            own.into_iter()
                .map(|(k, v)| (k.to_string(), Some(v.into_bytes()))),
        );
        out
    }
}

/// A record read back from the retry topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Retried {
    pub origin: Origin,
    pub metric: String,
    pub attempt: u32,
    pub not_before_ms: i64,
    /// The record as it entered arus: original key, value and headers, at
    /// its original offset (what a dead letter carries).
    pub original: RawRecord,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RetryHeaderError {
    #[error("retry record without a valid {0} header")]
    Missing(&'static str),
}

fn header<T: std::str::FromStr>(
    record: &RawRecord,
    name: &'static str,
) -> Result<T, RetryHeaderError> {
    record
        .header(name)
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse().ok())
        .ok_or(RetryHeaderError::Missing(name))
}

/// The not-before time of a retry record, if it has one; the driver holds
/// its partition back until then.
pub fn not_before_ms(record: &RawRecord) -> Option<i64> {
    header(record, headers::NOT_BEFORE).ok()
}

impl Retried {
    pub fn parse(record: &RawRecord) -> Result<Self, RetryHeaderError> {
        let input: String = header(record, headers::INPUT)?;
        let topic = InputTopic::parse(&input)
            .filter(|t| *t != InputTopic::RetryEvents)
            .ok_or(RetryHeaderError::Missing(headers::INPUT))?;
        let partition = header(record, dl::SOURCE_PARTITION)?;
        let offset = header(record, dl::SOURCE_OFFSET)?;
        let timestamp_ms = header(record, dl::SOURCE_TIMESTAMP).ok();
        let origin = Origin {
            source: SourcePartition::new(topic, partition),
            offset,
            timestamp_ms,
        };
        let original = RawRecord {
            offset,
            key: record.key.clone(),
            payload: record.payload.clone(),
            timestamp_ms,
            headers: record
                .headers
                .iter()
                .filter(|(k, _)| !is_own_header(k))
                .cloned()
                .collect(),
        };
        Ok(Self {
            origin,
            metric: header(record, headers::METRIC)?,
            attempt: header(record, dl::ATTEMPT)?,
            not_before_ms: header(record, headers::NOT_BEFORE)?,
            original,
        })
    }
}

/// When to try again.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl From<&arus_config::RetrySettings> for RetryPolicy {
    fn from(s: &arus_config::RetrySettings) -> Self {
        Self {
            max_attempts: s.max_attempts,
            base: Duration::from_millis(s.backoff_base_ms),
            max: Duration::from_millis(s.backoff_max_ms),
        }
    }
}

impl RetryPolicy {
    /// The delay before try `attempt` (2 for the first retry): base ×
    /// 2^(attempt − 2), capped at max, times a jitter factor in [0.5, 1.0)
    /// drawn from `seed`, so that events failed together do not all come
    /// back at once.
    pub fn delay(&self, attempt: u32, seed: u64) -> Duration {
        let doublings = attempt.saturating_sub(2).min(30);
        let full = self.base.saturating_mul(1u32 << doublings).min(self.max);
        let unit = (splitmix(seed) >> 11) as f64 / (1u64 << 53) as f64;
        full.mul_f64(0.5 + unit / 2.0)
    }
}

fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_with_jitter_in_the_upper_half() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base: Duration::from_millis(500),
            max: Duration::from_secs(3),
        };
        for seed in 0..200 {
            for (attempt, full_ms) in [(2, 500), (3, 1_000), (4, 2_000), (5, 3_000), (9, 3_000)] {
                let d = policy.delay(attempt, seed).as_millis() as u64;
                assert!(
                    (full_ms / 2..full_ms).contains(&d),
                    "attempt {attempt}: {d} ms not in [{}, {full_ms})",
                    full_ms / 2
                );
            }
        }
        // The jitter spreads: 200 seeds give many different delays.
        let mut delays: Vec<u128> = (0..200).map(|s| policy.delay(2, s).as_millis()).collect();
        delays.sort_unstable();
        delays.dedup();
        assert!(delays.len() > 100, "only {} distinct delays", delays.len());
    }

    #[test]
    fn a_retry_record_reads_back_as_written() {
        let origin = Origin {
            source: SourcePartition::new(InputTopic::PageViews, 3),
            offset: 41,
            timestamp_ms: Some(1_700_000_000_000),
        };
        let retry = RetryRecord {
            origin,
            key: Some(b"u1".to_vec()),
            payload: Some(br#"{"userId":"u1","url":"/a"}"#.to_vec()),
            headers: vec![("schema-version".into(), Some(b"1".to_vec()))],
            metric: MetricKind::TopPages,
            attempt: 3,
            not_before_ms: 1_700_000_005_000,
            message: "shard refused".into(),
        };
        let record = RawRecord {
            offset: 7,
            key: retry.key.clone(),
            payload: retry.payload.clone(),
            timestamp_ms: Some(1_700_000_001_000),
            headers: retry.all_headers("test.page-views"),
        };
        let back = Retried::parse(&record).expect("parsed");
        assert_eq!(back.origin, origin);
        assert_eq!(back.metric, "top-pages");
        assert_eq!(back.attempt, 3);
        assert_eq!(back.not_before_ms, 1_700_000_005_000);
        assert_eq!(not_before_ms(&record), Some(1_700_000_005_000));
        assert_eq!(
            back.original,
            RawRecord {
                offset: 41,
                key: Some(b"u1".to_vec()),
                payload: retry.payload.clone(),
                timestamp_ms: Some(1_700_000_000_000),
                headers: vec![("schema-version".into(), Some(b"1".to_vec()))],
            }
        );
        assert_eq!(
            origin.retried_id(MetricKind::TopPages),
            "retried/page-views/3/41/top-pages"
        );
        let mut broken = record.clone();
        broken.headers.retain(|(k, _)| k != headers::METRIC);
        assert_eq!(
            Retried::parse(&broken),
            Err(RetryHeaderError::Missing(headers::METRIC))
        );
    }
}
