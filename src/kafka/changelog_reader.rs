//! Reading the changelog: restoring assigned partitions' state, and feeding
//! the global read model from every partition.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use arus_actors::state::changelog;
use arus_actors::state::owner::{self, Owner};
use arus_actors::state::StateUpdate;
use arus_actors::ReadModel;
use arus_config::Settings;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{error, info, warn};

use super::client_config;
use crate::health::Health;

fn changelog_topic(settings: &Settings) -> String {
    let k = &settings.kafka;
    k.topic_name(&k.topics.analytics_events)
}

/// How far `reader` is from the end of each partition: end offset minus
/// position. The position passes transaction markers, which are never
/// delivered as records, so a read-to-the-end ends at 0. End offsets are asked
/// through `ends`, another client: asking through the reader itself stalls
/// its fetches on some brokers.
/// Each partition's read position and end (high watermark).
fn positions_and_ends(
    reader: &BaseConsumer,
    ends: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
) -> anyhow::Result<HashMap<i32, (i64, i64)>> {
    let positions = reader.position()?;
    let mut out = HashMap::new();
    for &p in partitions {
        let (low, high) = ends.fetch_watermarks(topic, p, timeout)?;
        let position = match positions.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => low,
        };
        out.insert(p, (position.max(low), high));
    }
    Ok(out)
}

/// Whether the reader has caught up: nothing left to read now, or
/// everything that was there at the previous look read. (While other
/// instances commit every few hundred milliseconds the end moves on
/// between any two looks; waiting for a look at which the reader is
/// exactly at the end made a busy group's restarted member wait for
/// minutes to become ready.)
fn caught_up(now: &HashMap<i32, (i64, i64)>, previous_ends: Option<&HashMap<i32, i64>>) -> bool {
    now.values().all(|(position, end)| position >= end)
        || previous_ends.is_some_and(|before| {
            now.iter()
                .all(|(p, (position, _))| before.get(p).is_some_and(|end| position >= end))
        })
}

/// The partition ids of `topic`, from the broker's metadata.
pub fn partitions_of(
    consumer: &BaseConsumer,
    topic: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<i32>> {
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default())
}

/// Reads `partitions` of `topic` from `start(low, high)` to the end they
/// have now, handing every record to `each`. Fails after `limit`.
pub fn read_to_end(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
    start: impl Fn(i64, i64) -> i64,
    limit: Duration,
    mut each: impl FnMut(&BorrowedMessage<'_>),
) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(10).min(limit);
    let mut ends = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, timeout)?;
        let from = start(low, high).clamp(low, high);
        if high > from {
            ends.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Offset(from))?;
        }
    }
    if ends.is_empty() {
        return Ok(());
    }
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + limit;
    let mut last_check = Instant::now();
    while !ends.is_empty() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "reading {topic} partitions {partitions:?} to their end took longer than {limit:?}"
        );
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message?;
            each(&message);
            if ends
                .get(&message.partition())
                .is_some_and(|end| message.offset() + 1 >= *end)
            {
                ends.remove(&message.partition());
            }
        }
        // Transaction markers end many partitions and are never delivered:
        // ask for the position.
        if last_check.elapsed() > Duration::from_millis(200) {
            last_check = Instant::now();
            let positions = consumer.position()?;
            ends.retain(|p, end| {
                !matches!(
                    positions.find_partition(topic, *p).map(|e| e.offset()),
                    Some(Offset::Offset(o)) if o >= *end
                )
            });
        }
    }
    Ok(())
}

/// Reads changelog partitions from the start to their current end and
/// returns the latest state of every entry `keep` accepts (tombstones
/// delete), as compaction would leave it.
pub fn restore(
    settings: &Settings,
    brokers: &str,
    partitions: &[i32],
    keep: impl Fn(&StateUpdate) -> bool,
) -> anyhow::Result<Vec<StateUpdate>> {
    let topic = changelog_topic(settings);
    let consumer: BaseConsumer = client_config::changelog_reader(settings, brokers, "restore")
        .create()
        .context("creating the restore consumer")?;
    let mut latest: HashMap<Vec<u8>, StateUpdate> = HashMap::new();
    let limit = Duration::from_millis(settings.consumer.restore_timeout_ms);
    // A record that does not decode fails the restore: state without it
    // is not state to count on.
    let mut unreadable: Option<anyhow::Error> = None;
    read_to_end(
        &consumer,
        &topic,
        partitions,
        |low, _| low,
        limit,
        |message| {
            // Ownership records are no partition's state.
            if message.key().is_some_and(owner::is_owner_key) {
                return;
            }
            let key = message.key().unwrap_or_default().to_vec();
            match changelog::decode(message.key(), message.payload()) {
                Ok(Some(update)) if keep(&update) => {
                    latest.insert(key, update);
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    latest.remove(&key);
                }
                Err(error) => {
                    if unreadable.is_none() {
                        unreadable = Some(anyhow::anyhow!(
                            "changelog partition {} offset {} cannot be read: {error}",
                            message.partition(),
                            message.offset()
                        ));
                    }
                }
            }
        },
    )?;
    if let Some(error) = unreadable {
        return Err(error.context("restoring state from the changelog"));
    }
    Ok(latest.into_values().collect())
}

/// Feeds the read model from every changelog partition, on its own thread.
pub struct ReadModelFeeder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ReadModelFeeder {
    pub fn spawn(
        settings: &Settings,
        brokers: &str,
        read_model: Arc<ReadModel>,
        health: Arc<Health>,
    ) -> anyhow::Result<Self> {
        let topic = changelog_topic(settings);
        let timeout = Duration::from_millis(settings.kafka.admin_timeout_ms);
        let consumer: BaseConsumer =
            client_config::changelog_reader(settings, brokers, "read-model")
                .create()
                .context("creating the read model consumer")?;
        let partitions = partitions_of(&consumer, &topic, timeout)?;
        anyhow::ensure!(
            !partitions.is_empty(),
            "changelog topic {topic} has no partitions"
        );
        let mut tpl = TopicPartitionList::new();
        for &p in &partitions {
            tpl.add_partition_offset(&topic, p, Offset::Beginning)?;
        }
        consumer.assign(&tpl)?;
        let ends: BaseConsumer =
            client_config::changelog_reader(settings, brokers, "read-model-lag")
                .create()
                .context("creating the read model lag client")?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("arus-read-model".into())
                .spawn(move || {
                    let feeder = Feed {
                        reader: &consumer,
                        ends: &ends,
                        topic: &topic,
                        partitions: &partitions,
                        timeout,
                    };
                    feeder.run(&read_model, &health, &stop);
                })?
        };
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().ok();
        }
    }
}

impl Drop for ReadModelFeeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

struct Feed<'a> {
    reader: &'a BaseConsumer,
    ends: &'a BaseConsumer,
    topic: &'a str,
    partitions: &'a [i32],
    timeout: Duration,
}

impl Feed<'_> {
    fn run(&self, read_model: &ReadModel, health: &Health, stop: &AtomicBool) {
        let mut last_lag = Instant::now() - Duration::from_secs(1);
        let mut previous_ends: Option<HashMap<i32, i64>> = None;
        while !stop.load(Ordering::SeqCst) {
            if let Some(message) = self.reader.poll(Duration::from_millis(50)) {
                match message {
                    // Seen eventIds and users' open visits (and their
                    // tombstones) are no query's
                    // business: not even decoded here.
                    Ok(m) if m.key().is_some_and(changelog::only_for_restore) => {}
                    Ok(m) if m.key().is_some_and(owner::is_owner_key) => {
                        let owner = m.payload().map(serde_json::from_slice::<Owner>);
                        match (m.key().and_then(owner::owner_partition), owner) {
                            (Some(p), None) => read_model.set_owner(p, None),
                            (Some(p), Some(Ok(owner))) => read_model.set_owner(p, Some(owner)),
                            _ => {
                                health.unreadable_changelog_record();
                                error!(partition = m.partition(), offset = m.offset(), "ownership record cannot be read; not ready until this is looked into")
                            }
                        }
                    }
                    Ok(m) => match changelog::decode(m.key(), m.payload()) {
                        Ok(Some(update)) => read_model.apply(update),
                        // A deleted entry: expired eventIds (not held
                        // here) or an entry a rebuild removed.
                        Ok(None) => {
                            if let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) {
                                read_model.delete(key);
                            }
                        }
                        Err(error) => {
                            health.unreadable_changelog_record();
                            error!(partition = m.partition(), offset = m.offset(), %error, "changelog record cannot be read; not ready until this is looked into")
                        }
                    },
                    Err(error) => warn!(%error, "changelog read error"),
                }
            }
            if last_lag.elapsed() >= Duration::from_millis(500) {
                last_lag = Instant::now();
                match positions_and_ends(
                    self.reader,
                    self.ends,
                    self.topic,
                    self.partitions,
                    self.timeout,
                ) {
                    Ok(now) => {
                        let total = now.values().map(|(pos, end)| (end - pos).max(0)).sum();
                        read_model.set_lag(total);
                        if !health.read_model_ready() && caught_up(&now, previous_ends.as_ref()) {
                            info!(lag = total, "read model caught up with the changelog");
                            health.set_read_model_ready(true);
                        }
                        previous_ends = Some(now.iter().map(|(p, (_, end))| (*p, *end)).collect());
                    }
                    Err(error) => warn!(%error, "cannot read changelog end offsets"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caught_up_at_the_end_or_past_what_was_there_a_look_before() {
        let now: HashMap<i32, (i64, i64)> = [(0, (10, 10)), (1, (5, 5))].into();
        assert!(caught_up(&now, None));
        // Still moving: behind the end now, past the ends seen before.
        let moving: HashMap<i32, (i64, i64)> = [(0, (12, 15)), (1, (7, 9))].into();
        let before: HashMap<i32, i64> = [(0, 12), (1, 6)].into();
        assert!(caught_up(&moving, Some(&before)));
        // Behind what was there before: not yet.
        let behind: HashMap<i32, i64> = [(0, 13), (1, 6)].into();
        assert!(!caught_up(&moving, Some(&behind)));
        assert!(!caught_up(&moving, None));
    }
}
