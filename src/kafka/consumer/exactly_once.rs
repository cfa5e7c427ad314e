//! The assigned partitions and what happens to them: the commit barrier's
//! transaction, rebalances, restore and rollback. Everything here runs on the
//! consumer driver's thread, in its poll loop or in librdkafka's rebalance
//! callbacks (which run inside `poll`), never on an actix arbiter; only the
//! reading of the changelog for a restore runs on a thread of its own
//! (`restore.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

use actix::{Addr, ArbiterHandle};
use arus_actors::model::source::{InputTopic, SourcePartition};
use arus_actors::state::changelog;
use arus_actors::window::SharedVisits;
use arus_actors::{ConsumerStats, FlushPartition, PartitionConsumer, Router};
use arus_config::Settings;
use futures::executor::block_on;
use futures::future::join_all;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{error, info, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::abort_streak::{AbortStreak, AfterAbort};
use super::committer::{CommitError, Committer, Outputs};
use super::continuity::HoleCheck;
use super::error::ConsumerError;
use super::restore::RestoreDone;
use super::retry_hold::RetryHold;
use crate::health::Health;

/// What makes two aborts "the same": the error's code. Not its text, which
/// carries the request's timing ("after 0ms", "after 2ms") and the
/// partitions the transaction held, so the same failure read as a new one
/// and reset the count.
fn abort_kind(error: &rdkafka::error::KafkaError) -> String {
    match error.rdkafka_error_code() {
        Some(code) => format!("{code:?}"),
        None => error.to_string(),
    }
}

pub(super) struct Slot {
    /// `None` while the partition's state is being restored.
    pub actor: Option<Addr<PartitionConsumer>>,
    pub epoch: u64,
    /// One past the last applied record: where the next commit puts the group.
    pub next_offset: Option<i64>,
    /// Holes in its offsets, fetched again before they are believed.
    pub holes: HoleCheck,
    /// What the last successful transaction committed.
    pub committed: Option<i64>,
    /// While restoring: the first record delivered and not processed, where
    /// the partition is to resume.
    pub resume_at: Option<i64>,
    /// A retry partition's records delivered but not yet due, in offset
    /// order; the partition is paused while there are any (the retry
    /// scheduler, see the consumer driver).
    pub held: RetryHold,
}

/// What the poll loop and the rebalance callbacks share.
pub(super) struct Partitions {
    pub settings: Settings,
    pub brokers: String,
    pub topics: [(String, InputTopic); 3],
    pub slots: Mutex<HashMap<SourcePartition, Slot>>,
    /// Each held partition number's visits (see `arus_actors::window::visits`).
    pub visits: Mutex<HashMap<i32, SharedVisits>>,
    pub epochs: AtomicU64,
    pub router: Arc<Router>,
    pub stats: Arc<ConsumerStats>,
    pub health: Arc<Health>,
    pub arbiter: ArbiterHandle,
    pub committer: Mutex<Committer>,
    /// The committer failed for good (fenced by a newer producer with the
    /// same transactional.id): nothing more may be committed with it.
    pub fenced: AtomicBool,
    /// Set when a callback hits an error the process cannot go on after.
    pub fatal: Mutex<Option<ConsumerError>>,
    /// The last abort's kind (see `abort_kind`) and how many transactions in
    /// a row ended on it.
    pub aborts: Mutex<AbortStreak>,
    /// Where restore threads report; the poll loop holds the receiver.
    pub restored: Mutex<mpsc::Sender<RestoreDone>>,
    /// When tracing: the consume spans of the records the next commit
    /// covers, which its span links to (at most [`MAX_COMMIT_LINKS`]).
    pub trace_links: Mutex<Vec<opentelemetry::trace::SpanContext>>,
    /// Partition numbers restored since the last commit, whose ownership
    /// record the next commit writes (see `arus_actors::state::owner`).
    pub announce: Mutex<Vec<i32>>,
    /// This instance's ownership record's value.
    pub owner_record: Vec<u8>,
}

/// Most links one commit span carries; a commit of more traced records
/// links the first ones.
const MAX_COMMIT_LINKS: usize = 128;

impl Partitions {
    pub fn slots(&self) -> MutexGuard<'_, HashMap<SourcePartition, Slot>> {
        // A poisoned lock means a panic elsewhere, which ends the process anyway.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn visits(&self) -> MutexGuard<'_, HashMap<i32, SharedVisits>> {
        self.visits.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The visits `source` feeds: its partition number's, for an input
    /// partition (`None` for the retry topic, or a page-views partition
    /// whose user-events partner is not held).
    pub(super) fn shared_visits(&self, source: SourcePartition) -> Option<SharedVisits> {
        if source.topic == InputTopic::RetryEvents {
            return None;
        }
        let found = self.visits().get(&source.partition).cloned();
        if found.is_none() {
            warn!(%source, "no visits for this partition number: its user-events partition is not assigned here; its events count in every total and bucket, in no visit");
        }
        found
    }

    /// Links `span` (a record's consume span) from the next commit's span.
    pub fn link_to_next_commit(&self, span: &tracing::Span) {
        let mut links = self.trace_links.lock().unwrap_or_else(|p| p.into_inner());
        if links.len() < MAX_COMMIT_LINKS {
            links.push(crate::telemetry::propagation::span_context(span));
        }
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

    /// The topics the group subscribes to: `page-views` partitions follow
    /// `user-events` ones (see the rebalance callbacks).
    pub fn subscription(&self) -> [&str; 2] {
        [
            self.topic_name(InputTopic::UserEvents),
            self.topic_name(InputTopic::RetryEvents),
        ]
    }

    pub(super) fn sources(&self, tpl: &TopicPartitionList) -> Vec<SourcePartition> {
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

    pub(super) fn fail(&self, error: ConsumerError) {
        error!(%error, class = ?error.class(), "consumer cannot go on");
        self.fatal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(error);
    }

    /// The error a rebalance callback stopped the consumer with, if any.
    pub fn failure(&self) -> Option<ConsumerError> {
        self.fatal.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Applied offsets not yet committed.
    pub(super) fn pending(&self) -> TopicPartitionList {
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

    pub(super) fn mark_committed(&self, tpl: &TopicPartitionList) {
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
    /// The commit's span, linked to the consume spans of the traced records
    /// it covers; none when tracing is off.
    pub(super) fn commit_span(&self, out: &Outputs, partitions: usize) -> tracing::Span {
        // Links are gathered only while tracing: nothing to take otherwise.
        if !crate::telemetry::tracing_on() {
            return tracing::Span::none();
        }
        let links =
            std::mem::take(&mut *self.trace_links.lock().unwrap_or_else(|p| p.into_inner()));
        let span = tracing::info_span!(
            "commit",
            otel.name = "changelog commit",
            otel.kind = "producer",
            changelog.entries = (out.updates.len() + out.deletes.len()) as u64,
            offsets.partitions = partitions as u64,
            traced.records = links.len() as u64,
        );
        for link in links {
            span.add_link(link);
        }
        span
    }

    pub fn commit<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>) -> anyhow::Result<()> {
        // Taken now: a commit that fails rolls back, and the restore that
        // follows announces the partitions again.
        // Only partitions still held: one revoked since its restore is
        // another member's to announce.
        let announced: Vec<i32> = {
            let taken =
                std::mem::take(&mut *self.announce.lock().unwrap_or_else(|p| p.into_inner()));
            let slots = self.slots();
            taken
                .into_iter()
                .filter(|p| {
                    slots
                        .get(&SourcePartition::new(InputTopic::UserEvents, *p))
                        .is_some_and(|slot| slot.actor.is_some())
                })
                .collect()
        };
        let mut out = Outputs {
            updates: block_on(self.router.flush())?,
            owners: announced
                .into_iter()
                .map(|p| (p, self.owner_record.clone()))
                .collect(),
            ..Outputs::default()
        };
        let actors: Vec<_> = self
            .slots()
            .values()
            .filter_map(|s| s.actor.clone())
            .collect();
        for flushed in block_on(join_all(actors.iter().map(|a| a.send(FlushPartition)))) {
            let flushed = flushed?;
            out.updates.extend(flushed.seen.puts);
            out.deletes
                .extend(flushed.seen.deletes.iter().map(changelog::tombstone));
            out.updates.extend(flushed.mark);
            out.updates.extend(flushed.windows.updates);
            out.deletes
                .extend(flushed.windows.expired.iter().map(changelog::tombstone));
            out.dead_letters.extend(
                flushed
                    .dead_letters
                    .into_iter()
                    .map(|d| (self.topic_name(d.source.topic).to_string(), d)),
            );
            out.retries.extend(
                flushed
                    .retries
                    .into_iter()
                    .map(|r| (self.topic_name(r.origin.source.topic).to_string(), r)),
            );
        }
        // After the flushes: a restart before one of them may have emptied
        // what it handed over. Nothing flushed is written then; everything
        // rolls back to the last commit instead.
        if self.router.restarts().take_unhandled() {
            return self.rollback(consumer);
        }
        let offsets = self.pending();
        if out.is_empty() && offsets.count() == 0 {
            return Ok(());
        }
        let dead_lettered = out.dead_letters.len() as u64;
        let group = consumer
            .group_metadata()
            .ok_or_else(|| anyhow::anyhow!("the consumer has no group metadata"))?;
        let committer = self.committer.lock().unwrap_or_else(|p| p.into_inner());
        let span = self.commit_span(&out, offsets.count());
        let _entered = span.enter();
        let started = std::time::Instant::now();
        match committer.commit(&out, &offsets, &group) {
            Ok(()) => {
                self.stats.commit_seconds.observe(started.elapsed());
                // Only a transaction that moved input offsets clears the
                // abort count: one that carried state alone (sessions closed
                // by time) proves nothing about the work that keeps aborting.
                if offsets.count() > 0 {
                    self.aborts
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .committed();
                }
                self.mark_committed(&offsets);
                self.stats.commits.inc_by(1);
                self.stats.dead_letters.inc_by(dead_lettered);
                Ok(())
            }
            Err(CommitError::Aborted(error)) => {
                let decision = self
                    .aborts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .aborted(&abort_kind(&error));
                match decision {
                    AfterAbort::RecreateProducer { in_a_row } => {
                        // Through the fencing recovery: drop the
                        // partitions, new producer, rejoin, restore.
                        warn!(%error, in_a_row, "transactions keep aborting the same way; recreating the producer");
                        self.fenced.store(true, Ordering::SeqCst);
                        Err(anyhow::anyhow!(
                            "transactional producer keeps aborting: {error}"
                        ))
                    }
                    AfterAbort::Stop { in_a_row } => anyhow::bail!(
                        "{in_a_row} transactions in a row aborted with the same error, \
                         before and after recreating the producer: {error}"
                    ),
                    AfterAbort::RollBack { in_a_row } => {
                        warn!(%error, in_a_row, "transaction aborted; rolling back to the last commit");
                        self.rollback(consumer)
                    }
                }
            }
            Err(fatal @ CommitError::Fatal(_)) => {
                self.fenced.store(true, Ordering::SeqCst);
                Err(fatal.into())
            }
        }
    }

    pub fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::SeqCst)
    }

    /// After the committer failed for good: drops every partition and its
    /// uncommitted state, leaves the group, recreates the transactional
    /// producer (fencing whoever fenced it, if that was an older copy of this
    /// instance) and joins again. Whoever gets the partitions restores them
    /// from the last commit.
    pub fn recover_from_fencing<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
    ) -> anyhow::Result<()> {
        warn!("transactional producer fenced; dropping partitions, recreating it, rejoining");
        let sources: Vec<SourcePartition> = self.slots().keys().copied().collect();
        block_on(self.router.forget(&sources))?;
        self.slots().clear();
        self.visits().clear();
        consumer.unsubscribe();
        let fresh = Committer::new(&self.settings, &self.brokers)?;
        *self.committer.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
        self.fenced.store(false, Ordering::SeqCst);
        consumer.subscribe(&self.subscription())?;
        self.stats.producer_recreated.inc_by(1);
        Ok(())
    }

    /// Forgets the state of every assigned partition and restores it from
    /// the changelog; when the restore is done the partitions seek back to
    /// their committed offsets (see [`Partitions::finish_restore`]).
    pub(super) fn rollback<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
    ) -> anyhow::Result<()> {
        let sources: Vec<SourcePartition> = self.slots().keys().copied().collect();
        block_on(self.router.forget(&sources))?;
        self.begin_restore(consumer, &sources, true, None)?;
        self.stats.rollbacks.inc_by(1);
        info!(
            partitions = sources.len(),
            "rolling back to the last commit"
        );
        Ok(())
    }

    pub fn tpl(&self, sources: &[SourcePartition]) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for source in sources {
            tpl.add_partition(self.topic_name(source.topic), source.partition);
        }
        tpl
    }
}

pub(super) fn names(sources: &[SourcePartition]) -> Vec<String> {
    sources.iter().map(ToString::to_string).collect()
}
