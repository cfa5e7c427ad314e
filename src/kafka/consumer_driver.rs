//! The consumer driver: one group member per process, polled on its own
//! thread (never on an actix arbiter), feeding one `PartitionConsumer` actor
//! per assigned partition.
//!
//! One cycle:
//!
//! ```text
//! poll (up to consumer.max_batch records) ─▶ group by partition
//!   ─▶ ProcessBatch to each partition's actor, all at once ─▶ wait for every answer
//!   ─▶ remember next offsets ─▶ commit them every consumer.commit_interval_ms
//! ```
//!
//! Because the driver waits for every batch before it polls again, nothing is
//! in flight when librdkafka runs a rebalance callback (they run inside
//! `poll`): a revocation commits exactly the applied offsets of the revoked
//! partitions, synchronously, before the partitions are given up. Each
//! assignment of a partition gets a new epoch; records polled under an older
//! epoch are dropped, because the new assignment fetches again from the
//! committed offset.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, ArbiterHandle};
use arus_actors::source::{InputTopic, RawRecord, SourcePartition};
use arus_actors::{ConsumerStats, PartitionConsumer, ProcessBatch, Router};
use arus_config::Settings;
use futures::executor::block_on;
use futures::future::join_all;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{debug, error, info, warn};

use super::client_config;
use crate::health::Health;

struct Slot {
    actor: Addr<PartitionConsumer>,
    epoch: u64,
    /// One past the last applied record: what to commit.
    next_offset: Option<i64>,
    committed: Option<i64>,
}

/// What the driver thread and the rebalance callbacks share.
struct Shared {
    topics: [(String, InputTopic); 2],
    slots: Mutex<HashMap<SourcePartition, Slot>>,
    epochs: AtomicU64,
    router: Arc<Router>,
    stats: Arc<ConsumerStats>,
    health: Arc<Health>,
    arbiter: ArbiterHandle,
}

impl Shared {
    fn slots(&self) -> MutexGuard<'_, HashMap<SourcePartition, Slot>> {
        // A poisoned lock means a panic elsewhere, which ends the process anyway.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn input(&self, topic: &str) -> Option<InputTopic> {
        self.topics
            .iter()
            .find(|(name, _)| name == topic)
            .map(|(_, t)| *t)
    }

    fn topic_name(&self, topic: InputTopic) -> &str {
        self.topics
            .iter()
            .find(|(_, t)| *t == topic)
            .map_or("", |(name, _)| name.as_str())
    }

    /// The applied offsets of all slots or of `only`: those not yet
    /// committed, or with `force` all of them (an async commit marked done
    /// may still have failed; the commits that hand partitions over must not
    /// depend on it).
    fn pending(&self, only: Option<&[SourcePartition]>, force: bool) -> TopicPartitionList {
        let slots = self.slots();
        let mut tpl = TopicPartitionList::new();
        for (source, slot) in slots.iter() {
            if only.is_some_and(|o| !o.contains(source)) {
                continue;
            }
            if let Some(next) = slot.next_offset {
                if force || slot.committed != Some(next) {
                    // Cannot fail: the partition is new in this list.
                    let _ = tpl.add_partition_offset(
                        self.topic_name(source.topic),
                        source.partition,
                        Offset::Offset(next),
                    );
                }
            }
        }
        tpl
    }

    fn mark_committed(&self, tpl: &TopicPartitionList) {
        let mut slots = self.slots();
        for elem in tpl.elements() {
            let Some(topic) = self.input(elem.topic()) else {
                continue;
            };
            if let (Some(slot), Offset::Offset(o)) = (
                slots.get_mut(&SourcePartition::new(topic, elem.partition())),
                elem.offset(),
            ) {
                slot.committed = Some(o);
            }
        }
    }

    fn sources(&self, tpl: &TopicPartitionList) -> Vec<SourcePartition> {
        tpl.elements()
            .iter()
            .filter_map(|e| Some(SourcePartition::new(self.input(e.topic())?, e.partition())))
            .collect()
    }

    fn assigned(&self) -> Vec<String> {
        let mut list: Vec<String> = self.slots().keys().map(ToString::to_string).collect();
        list.sort();
        list
    }
}

struct DriverContext {
    shared: Arc<Shared>,
}

impl ClientContext for DriverContext {}

impl ConsumerContext for DriverContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let shared = &self.shared;
        shared.stats.rebalances.fetch_add(1, Ordering::Relaxed);
        let revoked = shared.sources(tpl);
        // Nothing is in flight (the driver waits for every batch before it
        // polls), so the applied offsets are final: commit them before the
        // partitions go to another member.
        let pending = shared.pending(Some(&revoked), true);
        if pending.count() > 0 {
            match consumer.commit(&pending, CommitMode::Sync) {
                Ok(()) => {
                    shared.stats.commits.fetch_add(1, Ordering::Relaxed);
                    shared.mark_committed(&pending);
                }
                Err(error) => {
                    warn!(%error, "commit on revocation failed; the next owner re-reads from the last commit")
                }
            }
        }
        let mut slots = shared.slots();
        for source in &revoked {
            // Dropping the last address stops the actor once its mailbox is empty.
            slots.remove(source);
        }
        info!(partitions = ?revoked.iter().map(ToString::to_string).collect::<Vec<_>>(), "partitions revoked");
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let shared = &self.shared;
                shared.stats.rebalances.fetch_add(1, Ordering::Relaxed);
                let assigned = shared.sources(tpl);
                {
                    let mut slots = shared.slots();
                    for source in &assigned {
                        let epoch = shared.epochs.fetch_add(1, Ordering::Relaxed);
                        let router = Arc::clone(&shared.router);
                        let stats = Arc::clone(&shared.stats);
                        let source = *source;
                        let actor =
                            PartitionConsumer::start_in_arbiter(&shared.arbiter, move |_| {
                                PartitionConsumer::new(source, router, stats)
                            });
                        slots.insert(
                            source,
                            Slot {
                                actor,
                                epoch,
                                next_offset: None,
                                committed: None,
                            },
                        );
                    }
                }
                shared.health.set_joined(true);
                info!(partitions = ?assigned.iter().map(ToString::to_string).collect::<Vec<_>>(), "partitions assigned");
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(error) => warn!(%error, "rebalance error"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        // Only a log: librdkafka does not report every async commit here.
        match result {
            Ok(()) => debug!(partitions = offsets.count(), "offsets committed"),
            Err(error) => warn!(%error, "offset commit failed; it is retried with the next one"),
        }
    }
}

/// The partitions this instance holds right now.
#[derive(Clone)]
pub struct Assignment(Arc<Shared>);

impl Assignment {
    /// As `topic/partition`, sorted.
    pub fn partitions(&self) -> Vec<String> {
        self.0.assigned()
    }
}

/// A handle on the driver thread.
pub struct ConsumerDriver {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    shared: Arc<Shared>,
}

impl ConsumerDriver {
    /// Creates the consumer, subscribes, and starts the driver thread.
    /// `on_fatal` is called if the driver stops on an error.
    pub fn spawn(
        settings: &Settings,
        brokers: &str,
        router: Arc<Router>,
        stats: Arc<ConsumerStats>,
        health: Arc<Health>,
        arbiter: ArbiterHandle,
        on_fatal: impl FnOnce(String) + Send + 'static,
    ) -> anyhow::Result<Self> {
        let k = &settings.kafka;
        let user_topic = k.topic_name(&k.topics.user_events);
        let page_topic = k.topic_name(&k.topics.page_views);
        let shared = Arc::new(Shared {
            topics: [
                (user_topic.clone(), InputTopic::UserEvents),
                (page_topic.clone(), InputTopic::PageViews),
            ],
            slots: Mutex::new(HashMap::new()),
            epochs: AtomicU64::new(0),
            router,
            stats,
            health,
            arbiter,
        });
        let consumer: BaseConsumer<DriverContext> = client_config::consumer(settings, brokers)
            .create_with_context(DriverContext {
                shared: Arc::clone(&shared),
            })?;
        consumer.subscribe(&[&user_topic, &page_topic])?;
        let stop = Arc::new(AtomicBool::new(false));
        let loop_ = PollLoop {
            consumer,
            shared: Arc::clone(&shared),
            stop: Arc::clone(&stop),
            max_batch: settings.consumer.max_batch,
            poll_timeout: Duration::from_millis(settings.consumer.poll_timeout_ms),
            commit_interval: Duration::from_millis(settings.consumer.commit_interval_ms),
        };
        let thread = std::thread::Builder::new()
            .name("arus-consumer".into())
            .spawn(move || {
                let result = loop_.run();
                if let Err(error) = &result {
                    error!(%error, "consumer driver stopped on an error");
                    on_fatal(error.to_string());
                }
                result
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
            shared,
        })
    }

    /// A view of the partitions this instance holds, for the HTTP handlers.
    pub fn assignment(&self) -> Assignment {
        Assignment(Arc::clone(&self.shared))
    }

    /// Stops polling, commits what was applied, leaves the group and waits
    /// for the thread to end.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| anyhow::anyhow!("consumer driver thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for ConsumerDriver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

struct PollLoop {
    consumer: BaseConsumer<DriverContext>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    max_batch: usize,
    poll_timeout: Duration,
    commit_interval: Duration,
}

impl PollLoop {
    fn run(self) -> anyhow::Result<()> {
        let mut last_commit = Instant::now();
        let result = self.cycle_until_stopped(&mut last_commit);
        // Whatever ended the loop, commit what was applied, then leave the
        // group: dropping the consumer closes it, which revokes (and the
        // revocation callback commits anything left) before leaving.
        self.commit(CommitMode::Sync, true);
        self.consumer.unsubscribe();
        drop(self.consumer);
        info!("consumer left the group");
        result
    }

    fn cycle_until_stopped(&self, last_commit: &mut Instant) -> anyhow::Result<()> {
        while !self.stop.load(Ordering::SeqCst) {
            let batches = self.poll_batches();
            if !batches.is_empty() {
                self.dispatch(batches)?;
            }
            if last_commit.elapsed() >= self.commit_interval {
                self.commit(CommitMode::Async, false);
                *last_commit = Instant::now();
            }
        }
        Ok(())
    }

    /// Polls up to `max_batch` records, grouped by partition and tagged with
    /// the partition's assignment epoch at the time each was returned.
    fn poll_batches(&self) -> HashMap<SourcePartition, (u64, Vec<RawRecord>)> {
        let mut batches: HashMap<SourcePartition, (u64, Vec<RawRecord>)> = HashMap::new();
        let mut taken = 0;
        let mut timeout = self.poll_timeout;
        while taken < self.max_batch {
            let Some(result) = self.consumer.poll(timeout) else {
                break;
            };
            // After the first record, take only what is already fetched.
            timeout = Duration::ZERO;
            let message = match result {
                Ok(m) => m,
                Err(error) => {
                    warn!(%error, "consumer error");
                    break;
                }
            };
            let Some(topic) = self.shared.input(message.topic()) else {
                continue;
            };
            let source = SourcePartition::new(topic, message.partition());
            // Rebalance callbacks run inside poll, so the epoch read now is
            // the one this record was fetched under.
            let Some(epoch) = self.shared.slots().get(&source).map(|s| s.epoch) else {
                continue;
            };
            let record = RawRecord {
                offset: message.offset(),
                key: message.key().map(<[u8]>::to_vec),
                payload: message.payload().map(<[u8]>::to_vec),
                timestamp_ms: message.timestamp().to_millis(),
            };
            let entry = batches.entry(source).or_insert_with(|| (epoch, Vec::new()));
            if entry.0 != epoch {
                // Reassigned mid-poll: the earlier records will be fetched again.
                *entry = (epoch, Vec::new());
            }
            entry.1.push(record);
            taken += 1;
        }
        batches
    }

    /// Hands every partition's batch to its actor and waits for all of them.
    fn dispatch(
        &self,
        batches: HashMap<SourcePartition, (u64, Vec<RawRecord>)>,
    ) -> anyhow::Result<()> {
        let mut sends = Vec::with_capacity(batches.len());
        {
            let slots = self.shared.slots();
            for (source, (epoch, records)) in batches {
                match slots.get(&source) {
                    Some(slot) if slot.epoch == epoch => {
                        sends.push((source, epoch, slot.actor.send(ProcessBatch { records })));
                    }
                    _ => debug!(%source, "dropped records of a partition no longer assigned"),
                }
            }
        }
        let results =
            block_on(join_all(sends.into_iter().map(
                |(source, epoch, send)| async move { (source, epoch, send.await) },
            )));
        let mut slots = self.shared.slots();
        for (source, epoch, result) in results {
            let outcome = result
                .map_err(|e| anyhow::anyhow!("partition consumer {source} is gone: {e}"))?
                .map_err(|e| {
                    anyhow::anyhow!("processing {source} failed ({:?}): {e}", e.class())
                })?;
            if let Some(slot) = slots.get_mut(&source).filter(|s| s.epoch == epoch) {
                slot.next_offset = Some(outcome.next_offset);
            }
        }
        Ok(())
    }

    fn commit(&self, mode: CommitMode, force: bool) {
        let pending = self.shared.pending(None, force);
        if pending.count() == 0 {
            return;
        }
        debug!(partitions = pending.count(), ?mode, "committing offsets");
        match self.consumer.commit(&pending, mode) {
            Ok(()) => {
                // For an async commit, accepted for sending; a failure shows
                // in the log, and the forced commits on revocation and at
                // shutdown cover it.
                self.shared.stats.commits.fetch_add(1, Ordering::Relaxed);
                self.shared.mark_committed(&pending);
            }
            Err(error) => warn!(%error, "offset commit failed; it is retried with the next one"),
        }
    }
}
