//! Reading the dead-letter topic for `GET /v1/dead-letters`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use arus_actors::dead_letter::headers;
use arus_config::Settings;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::{Headers, Message};
use serde::Serialize;

use super::changelog_reader::{partitions_of, read_to_end};
use super::client_config;

/// Values longer than this are cut in listings.
const VALUE_SHOWN: usize = 2048;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterView {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<String>,
    /// The value as text (lossy), cut at 2 KiB.
    pub value: Option<String>,
    pub value_bytes: usize,
    /// The record's own headers, as the source had them.
    pub headers: BTreeMap<String, String>,
    pub error: BTreeMap<String, String>,
}

/// The newest `limit` dead letters, newest first. Blocking: call it off the
/// HTTP workers.
pub fn recent(
    settings: &Settings,
    brokers: &str,
    limit: usize,
) -> anyhow::Result<Vec<DeadLetterView>> {
    let k = &settings.kafka;
    let topic = k.topic_name(&k.topics.error_events);
    let consumer: BaseConsumer = client_config::changelog_reader(settings, brokers, "dead-letters")
        .create()
        .context("creating the dead-letter reader")?;
    let timeout = Duration::from_millis(k.admin_timeout_ms);
    let partitions = partitions_of(&consumer, &topic, timeout)?;
    let mut letters = Vec::new();
    // The last `limit` offsets of each partition hold its newest `limit`
    // records (fewer where transaction markers take offsets).
    let back = i64::try_from(limit).unwrap_or(i64::MAX);
    read_to_end(
        &consumer,
        &topic,
        &partitions,
        |_, high| high - back,
        timeout,
        |m| {
            let mut own = BTreeMap::new();
            let mut error = BTreeMap::new();
            if let Some(hs) = m.headers() {
                for h in hs.iter() {
                    let value = h
                        .value
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_default();
                    if h.key.starts_with("x-error-")
                        || h.key.starts_with("x-source-")
                        || h.key == headers::ATTEMPT
                    {
                        error.insert(h.key.trim_start_matches("x-").to_string(), value);
                    } else {
                        own.insert(h.key.to_string(), value);
                    }
                }
            }
            let payload = m.payload();
            letters.push(DeadLetterView {
                partition: m.partition(),
                offset: m.offset(),
                timestamp: m.timestamp().to_millis(),
                key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                value: payload
                    .map(|v| String::from_utf8_lossy(&v[..v.len().min(VALUE_SHOWN)]).into_owned()),
                value_bytes: payload.map_or(0, <[u8]>::len),
                headers: own,
                error,
            });
        },
    )?;
    letters.sort_by(|a, b| {
        (b.timestamp, b.partition, b.offset).cmp(&(a.timestamp, a.partition, a.offset))
    });
    letters.truncate(limit);
    Ok(letters)
}
