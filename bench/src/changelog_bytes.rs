//! What the changelog holds after a run: records and bytes (key and value)
//! by entry kind (the key's first segment: `users/…`, `seen/…`, `visit/…`),
//! read from the beginning of every partition to its end, tombstones
//! counted apart.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// One kind's share of the changelog.
#[derive(Debug, Default, Clone, Copy)]
pub struct KindBytes {
    pub records: u64,
    pub bytes: u64,
    pub tombstones: u64,
}

/// Every record of `topic` now, by entry kind. Reads uncommitted records
/// too: a run's last transaction may still be open.
pub fn by_kind(brokers: &str, topic: &str) -> anyhow::Result<BTreeMap<String, KindBytes>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "arus-bench-changelog-bytes")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_uncommitted")
        .set("fetch.wait.max.ms", "50")
        .create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    let mut ends = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, timeout)?;
        if high > low {
            ends.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Offset(low))?;
        }
    }
    consumer.assign(&tpl)?;
    let mut out: BTreeMap<String, KindBytes> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while !ends.is_empty() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "reading {topic} took over 10 minutes"
        );
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.context("reading the changelog")?;
            let key = message.key().unwrap_or_default();
            let kind = key
                .split(|b| *b == b'/')
                .next()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_default();
            let entry = out.entry(kind).or_default();
            entry.records += 1;
            entry.bytes += (key.len() + message.payload_len()) as u64;
            entry.tombstones += u64::from(message.payload().is_none());
            if ends
                .get(&message.partition())
                .is_some_and(|end| message.offset() + 1 >= *end)
            {
                ends.remove(&message.partition());
            }
        }
        // Transaction markers end partitions without a record to deliver.
        let positions = consumer.position()?;
        ends.retain(|p, end| {
            !matches!(
                positions.find_partition(topic, *p).map(|e| e.offset()),
                Some(Offset::Offset(o)) if o >= *end
            )
        });
    }
    Ok(out)
}

/// A Markdown table of `kinds` against `input_events`.
pub fn table(kinds: &BTreeMap<String, KindBytes>, input_events: usize) -> String {
    let mut table = String::from(
        "| changelog entry kind | records (tombstones) | bytes (key + value) | bytes per input event |\n|---|---|---|---|\n",
    );
    let per_event = |bytes: u64| bytes as f64 / input_events.max(1) as f64;
    for (kind, k) in kinds {
        table += &format!(
            "| {kind} | {} ({}) | {} | {:.1} |\n",
            k.records,
            k.tombstones,
            k.bytes,
            per_event(k.bytes)
        );
    }
    let (records, bytes) = kinds
        .values()
        .fold((0, 0), |(r, b), k| (r + k.records, b + k.bytes));
    table += &format!("| all | {records} | {bytes} | {:.1} |\n", per_event(bytes));
    table
}
