//! The assigned partitions and what happens to them: the commit barrier's
//! transaction, rebalances, restore and rollback. Everything here runs on the
//! consumer driver's thread, in its poll loop or in librdkafka's rebalance
//! callbacks (which run inside `poll`), never on an actix arbiter.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix::{Actor, Addr, ArbiterHandle};
use arus_actors::changelog;
use arus_actors::dedupe::Dedupe;
use arus_actors::source::{InputTopic, SourcePartition};
use arus_actors::state::{SeenEntry, StateUpdate};
use arus_actors::{ConsumerStats, FlushSeen, PartitionConsumer, Router};
use arus_config::Settings;
use futures::executor::block_on;
use futures::future::join_all;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{error, info, warn};

use super::changelog_reader;
use super::committer::{CommitError, Committer};
use crate::health::Health;

pub(super) struct Slot {
    pub actor: Addr<PartitionConsumer>,
    pub epoch: u64,
    /// One past the last applied record: where the next commit puts the group.
    pub next_offset: Option<i64>,
    /// What the last successful transaction committed.
    pub committed: Option<i64>,
}

/// What the poll loop and the rebalance callbacks share.
pub(super) struct Partitions {
    pub settings: Settings,
    pub brokers: String,
    pub topics: [(String, InputTopic); 2],
    pub slots: Mutex<HashMap<SourcePartition, Slot>>,
    pub epochs: AtomicU64,
    pub router: Arc<Router>,
    pub stats: Arc<ConsumerStats>,
    pub health: Arc<Health>,
    pub arbiter: ArbiterHandle,
    pub committer: Committer,
    /// Set when a callback hits an error the process cannot go on after.
    pub fatal: Mutex<Option<String>>,
}

impl Partitions {
    pub fn slots(&self) -> MutexGuard<'_, HashMap<SourcePartition, Slot>> {
        // A poisoned lock means a panic elsewhere, which ends the process anyway.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn input(&self, topic: &str) -> Option<InputTopic> {
        self.topics
            .iter()
            .find(|(name, _)| name == topic)
            .map(|(_, t)| *t)
    }

    pub fn topic_name(&self, topic: InputTopic) -> &str {
        self.topics
            .iter()
            .find(|(_, t)| *t == topic)
            .map_or("", |(name, _)| name.as_str())
    }

    fn sources(&self, tpl: &TopicPartitionList) -> Vec<SourcePartition> {
        tpl.elements()
            .iter()
            .filter_map(|e| Some(SourcePartition::new(self.input(e.topic())?, e.partition())))
            .collect()
    }

    pub fn assigned(&self) -> Vec<String> {
        let mut list: Vec<String> = self.slots().keys().map(ToString::to_string).collect();
        list.sort();
        list
    }

    fn fail(&self, reason: String) {
        error!(%reason, "consumer cannot go on");
        *self.fatal.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
    }

    pub fn failure(&self) -> Option<String> {
        self.fatal.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Applied offsets not yet committed.
    fn pending(&self) -> TopicPartitionList {
        let slots = self.slots();
        let mut tpl = TopicPartitionList::new();
        for (source, slot) in slots.iter() {
            if let Some(next) = slot.next_offset.filter(|n| slot.committed != Some(*n)) {
                // Cannot fail: the partition is new in this list.
                let _ = tpl.add_partition_offset(
                    self.topic_name(source.topic),
                    source.partition,
                    Offset::Offset(next),
                );
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

    /// The commit barrier. Called only when no batch is in flight: the
    /// shards' changed entries are then exactly the effect of the records
    /// before the pending offsets, and both go into one transaction. An
    /// aborted transaction rolls every assigned partition back to its last
    /// commit.
    pub fn commit<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>) -> anyhow::Result<()> {
        let mut updates = block_on(self.router.flush())?;
        let mut deletes = Vec::new();
        let actors: Vec<_> = self.slots().values().map(|s| s.actor.clone()).collect();
        for seen in block_on(join_all(actors.iter().map(|a| a.send(FlushSeen)))) {
            let seen = seen?;
            updates.extend(seen.puts);
            deletes.extend(seen.deletes.iter().map(changelog::tombstone));
        }
        let offsets = self.pending();
        if updates.is_empty() && deletes.is_empty() && offsets.count() == 0 {
            return Ok(());
        }
        let group = consumer
            .group_metadata()
            .ok_or_else(|| anyhow::anyhow!("the consumer has no group metadata"))?;
        match self.committer.commit(&updates, &deletes, &offsets, &group) {
            Ok(()) => {
                self.mark_committed(&offsets);
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(CommitError::Aborted(error)) => {
                warn!(%error, "transaction aborted; rolling back to the last commit");
                self.rollback(consumer)
            }
            Err(fatal @ CommitError::Fatal(_)) => Err(fatal.into()),
        }
    }

    /// Forgets the state of every assigned partition, restores it from the
    /// changelog (with new partition consumers, new epochs) and seeks the
    /// input back to the last committed offsets.
    fn rollback<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>) -> anyhow::Result<()> {
        let sources: Vec<SourcePartition> = self.slots().keys().copied().collect();
        block_on(self.router.forget(&sources))?;
        self.slots().clear();
        self.on_assign(&sources)?;
        let timeout = Duration::from_millis(self.settings.kafka.admin_timeout_ms);
        let mut asked = TopicPartitionList::new();
        for source in &sources {
            asked.add_partition(self.topic_name(source.topic), source.partition);
        }
        let committed = consumer.committed_offsets(asked, timeout)?;
        let mut slots = self.slots();
        for elem in committed.elements() {
            let Some(topic) = self.input(elem.topic()) else {
                continue;
            };
            let source = SourcePartition::new(topic, elem.partition());
            let offset = match elem.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            consumer.seek(elem.topic(), elem.partition(), offset, timeout)?;
            if let Some(slot) = slots.get_mut(&source) {
                slot.next_offset = None;
                slot.committed = None;
            }
        }
        info!(partitions = sources.len(), "rolled back to the last commit");
        Ok(())
    }

    /// Loads the state of `sources` from the changelog: metric entries into
    /// the shards; the seen eventIds are returned, per source partition.
    fn restore(
        &self,
        sources: &[SourcePartition],
    ) -> anyhow::Result<HashMap<SourcePartition, Vec<(String, SeenEntry)>>> {
        let mut seen: HashMap<SourcePartition, Vec<(String, SeenEntry)>> = HashMap::new();
        if sources.is_empty() {
            return Ok(seen);
        }
        self.health.restore_started();
        let result = (|| {
            let partitions: BTreeSet<i32> = sources.iter().map(|s| s.partition).collect();
            let partitions: Vec<i32> = partitions.into_iter().collect();
            let updates =
                changelog_reader::restore(&self.settings, &self.brokers, &partitions, |u| {
                    sources.contains(&u.source())
                })?;
            let restored = updates.len();
            let mut metrics = Vec::with_capacity(updates.len());
            for update in updates {
                match update {
                    StateUpdate::Seen {
                        source,
                        event_id,
                        entry,
                    } => seen.entry(source).or_default().push((event_id, entry)),
                    other => metrics.push(other),
                }
            }
            block_on(self.router.restore(metrics))?;
            info!(entries = restored, partitions = ?partitions, "state restored from the changelog");
            anyhow::Ok(())
        })();
        self.health.restore_ended();
        result.map(|()| seen)
    }

    fn on_assign(&self, assigned: &[SourcePartition]) -> anyhow::Result<()> {
        // State first: no input of these partitions is processed before it.
        let mut seen = self.restore(assigned)?;
        let window = i64::try_from(self.settings.consumer.dedupe_window_ms).unwrap_or(i64::MAX);
        let mut slots = self.slots();
        for &source in assigned {
            let epoch = self.epochs.fetch_add(1, Ordering::Relaxed);
            let router = Arc::clone(&self.router);
            let stats = Arc::clone(&self.stats);
            let dedupe = Dedupe::new(source, window, seen.remove(&source).unwrap_or_default());
            let actor = PartitionConsumer::start_in_arbiter(&self.arbiter, move |_| {
                PartitionConsumer::new(source, router, stats, dedupe)
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
        Ok(())
    }

    fn on_revoke<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        revoked: &[SourcePartition],
    ) -> anyhow::Result<()> {
        // Nothing is in flight, so this commits the partitions' work whole
        // before another member takes them.
        self.commit(consumer)?;
        block_on(self.router.forget(revoked))?;
        let mut slots = self.slots();
        for source in revoked {
            // Dropping the last address stops the actor once its mailbox is empty.
            slots.remove(source);
        }
        Ok(())
    }
}

/// The consumer's context: rebalance callbacks become work on the partitions.
pub(super) struct DriverContext {
    pub partitions: Arc<Partitions>,
}

impl ClientContext for DriverContext {}

fn names(sources: &[SourcePartition]) -> Vec<String> {
    sources.iter().map(ToString::to_string).collect()
}

impl ConsumerContext for DriverContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let p = &self.partitions;
        p.stats.rebalances.fetch_add(1, Ordering::Relaxed);
        let revoked = p.sources(tpl);
        match p.on_revoke(consumer, &revoked) {
            Ok(()) => info!(partitions = ?names(&revoked), "partitions revoked"),
            Err(e) => p.fail(format!("revoking {:?}: {e:#}", names(&revoked))),
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let p = &self.partitions;
                p.stats.rebalances.fetch_add(1, Ordering::Relaxed);
                let assigned = p.sources(tpl);
                match p.on_assign(&assigned) {
                    Ok(()) => info!(partitions = ?names(&assigned), "partitions assigned"),
                    Err(e) => p.fail(format!("assigning {:?}: {e:#}", names(&assigned))),
                }
                p.health.set_joined(true);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(error) => warn!(%error, "rebalance error"),
        }
    }
}
