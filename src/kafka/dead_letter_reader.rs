//! Reading the dead-letter topic for `GET /v1/dead-letters`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use arus_actors::model::source::RawRecord;
use arus_config::Settings;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::{Headers, Message};
use serde::Serialize;

use super::changelog_reader::{partitions_of, read_to_end};
use super::{client_config, records};

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
                    if arus_actors::consume::retry::is_own_header(h.key) {
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

/// One dead letter as stored: its partition, and the record.
#[derive(Debug, Clone)]
pub struct StoredLetter {
    pub partition: i32,
    pub record: RawRecord,
}

impl StoredLetter {
    pub fn header(&self, name: &str) -> Option<String> {
        self.record
            .header(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// The dead letters at exactly these (partition, offset) places; `None`
/// where there is none (a transaction marker, or past the end). Blocking.
/// The partitions of the dead-letter topic, from the broker's metadata.
pub fn partitions(settings: &Settings, brokers: &str) -> anyhow::Result<Vec<i32>> {
    let k = &settings.kafka;
    let consumer: BaseConsumer =
        client_config::changelog_reader(settings, brokers, "dead-letter-partitions")
            .create()
            .context("creating the dead-letter metadata client")?;
    super::changelog_reader::partitions_of(
        &consumer,
        &k.topic_name(&k.topics.error_events),
        Duration::from_millis(k.admin_timeout_ms),
    )
}

pub fn fetch(
    settings: &Settings,
    brokers: &str,
    wanted: &[(i32, i64)],
) -> anyhow::Result<Vec<Option<StoredLetter>>> {
    use rdkafka::consumer::Consumer;
    let k = &settings.kafka;
    let topic = k.topic_name(&k.topics.error_events);
    // Partition EOF ends the search for an offset past the end. (Not the
    // watermarks: the test broker's can lag behind the records it serves.)
    let consumer: BaseConsumer =
        client_config::changelog_reader(settings, brokers, "dead-letter-replay")
            .set("enable.partition.eof", "true")
            .create()
            .context("creating the dead-letter reader")?;
    let timeout = Duration::from_millis(k.admin_timeout_ms);
    // One pass per partition, from the first offset wanted to the last.
    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for &(partition, offset) in wanted {
        if offset >= 0 {
            by_partition.entry(partition).or_default().push(offset);
        }
    }
    let mut letters: BTreeMap<(i32, i64), StoredLetter> = BTreeMap::new();
    for (partition, mut offsets) in by_partition {
        offsets.sort_unstable();
        let (first, last) = (offsets[0], offsets[offsets.len() - 1]);
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(&topic, partition, rdkafka::Offset::Offset(first))?;
        consumer.assign(&tpl)?;
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            let m = match consumer.poll(Duration::from_millis(100)) {
                None => continue,
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
                Some(Err(error)) => {
                    return Err(error).context("reading the dead-letter topic");
                }
                Some(Ok(m)) => m,
            };
            if offsets.binary_search(&m.offset()).is_ok() {
                letters.insert(
                    (partition, m.offset()),
                    StoredLetter {
                        partition,
                        record: records::raw_record(&m),
                    },
                );
            }
            if m.offset() >= last {
                break;
            }
        }
    }
    let found = wanted
        .iter()
        .map(|place| letters.get(place).cloned())
        .collect();
    Ok(found)
}
