//! The assigned partitions and what happens to them: the commit barrier's
//! transaction, rebalances, restore and rollback. Everything here runs on the
//! consumer driver's thread, in its poll loop or in librdkafka's rebalance
//! callbacks (which run inside `poll`), never on an actix arbiter; only the
//! reading of the changelog for a restore runs on a thread of its own.
//!
//! Restoring can take longer than `max.poll.interval.ms` allows a poll loop
//! to stall, so it never blocks the loop: an assigned partition's changelog
//! is read on a restore thread while the loop keeps polling (and so stays in
//! the group). A record the partition delivers meanwhile is not processed:
//! the loop pauses the partition and remembers that record's offset. When
//! the restore is done, the loop loads the state, starts the partition's
//! actor, seeks back to the remembered offset and resumes. (Pausing in the
//! assignment callback itself does not hold: librdkafka applies an
//! incremental assignment after the callback and clears the pause.)

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix::{Addr, ArbiterHandle, Supervisor};
use arus_actors::consume::dead_letter::DeadLetters;
use arus_actors::consume::dedupe::Dedupe;
use arus_actors::model::source::{InputTopic, SourcePartition};
use arus_actors::state::changelog;
use arus_actors::state::{SeenEntry, StateUpdate};
use arus_actors::window::{
    PartitionVisits, PartitionWindows, SharedVisits, VisitConfig, VisitEntry,
};
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
use super::reset::{ResetDone, ResetRefused, ResetRequest};
use super::resume::{resume_from, Restored, ResumeFrom};
use super::retry_hold::RetryHold;
use crate::health::Health;
use crate::kafka::changelog_reader;

/// A partition's restored eventId buckets: first offset and ids.
type SeenBuckets = Vec<(i64, Vec<(String, SeenEntry)>)>;

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
}

/// Most links one commit span carries; a commit of more traced records
/// links the first ones.
const MAX_COMMIT_LINKS: usize = 128;

/// A finished read of the changelog for some partitions, each with the
/// epoch of the assignment it was started for.
pub(super) struct RestoreDone {
    sources: Vec<(SourcePartition, u64)>,
    /// A rollback: the partitions were consumed past their committed offsets.
    rewind: bool,
    /// An offset reset to make once the partitions' state is read.
    reset: Option<ResetRequest>,
    result: anyhow::Result<Vec<StateUpdate>>,
}

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
    fn shared_visits(&self, source: SourcePartition) -> Option<SharedVisits> {
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
        let mut out = Outputs {
            updates: block_on(self.router.flush())?,
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

    /// Pauses `sources` and starts reading their state from the changelog on
    /// a restore thread. Their slots get new epochs and no actor until the
    /// restore is finished. `rewind`: seek them back to their committed
    /// offsets then (a rollback). `reset`: make this offset reset once the
    /// state is read (see [`Partitions::begin_reset`]).
    pub(super) fn begin_restore<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        sources: &[SourcePartition],
        rewind: bool,
        reset: Option<ResetRequest>,
    ) -> anyhow::Result<()> {
        if sources.is_empty() {
            if let Some(reset) = reset {
                reset.refuse(ResetRefused::Busy("no partitions to reset".into()));
            }
            return Ok(());
        }
        let mut started = Vec::with_capacity(sources.len());
        {
            let mut slots = self.slots();
            for &source in sources {
                let epoch = self.epochs.fetch_add(1, Ordering::Relaxed);
                slots.insert(
                    source,
                    Slot {
                        actor: None,
                        epoch,
                        next_offset: None,
                        holes: HoleCheck::default(),
                        committed: None,
                        resume_at: None,
                        held: RetryHold::default(),
                    },
                );
                started.push((source, epoch));
            }
        }
        if rewind {
            // Consumed partitions, so certainly fetching: pausing holds.
            consumer.pause(&self.tpl(sources))?;
        }
        self.health.restore_started();
        let settings = self.settings.clone();
        let brokers = self.brokers.clone();
        let done = self
            .restored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let wanted: Vec<SourcePartition> = sources.to_vec();
        let spawned = std::thread::Builder::new()
            .name("arus-restore".into())
            .spawn(move || {
                let partitions: BTreeSet<i32> = wanted.iter().map(|s| s.partition).collect();
                let partitions: Vec<i32> = partitions.into_iter().collect();
                let result = changelog_reader::restore(&settings, &brokers, &partitions, |u| {
                    wanted.contains(&u.source())
                });
                // The loop may have ended meanwhile; then nobody needs it.
                let _ = done.send(RestoreDone {
                    sources: started,
                    rewind,
                    reset,
                    result,
                });
            });
        if let Err(error) = spawned {
            self.health.restore_ended();
            return Err(error.into());
        }
        Ok(())
    }

    /// Called by the poll loop with a finished restore: loads the state of
    /// the partitions still assigned under the same epoch, starts their
    /// actors, seeks them to the committed offsets and resumes them.
    pub fn finish_restore<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        done: RestoreDone,
    ) -> anyhow::Result<()> {
        self.health.restore_ended();
        let mut updates = done.result?;
        // The partitions still assigned under the restore's epoch, with where
        // each is to resume.
        let resume_at: Vec<(SourcePartition, Option<i64>)> = {
            let slots = self.slots();
            done.sources
                .iter()
                .filter_map(|(source, epoch)| {
                    let slot = slots.get(source)?;
                    (slot.epoch == *epoch && slot.actor.is_none())
                        .then_some((*source, slot.resume_at))
                })
                .collect()
        };
        let current: Vec<SourcePartition> = resume_at.iter().map(|(s, _)| *s).collect();
        // A reset moves the partitions to its offsets, in one transaction
        // with (for a rebuild) the deletion of their state, which then
        // restores as nothing.
        let mut seek_to = None;
        let mut answer = None;
        if let Some(reset) = done.reset {
            if current.len() < done.sources.len() {
                reset.refuse(ResetRefused::Busy(
                    "partitions moved to another member during the reset; nothing was reset".into(),
                ));
            } else {
                match self.commit_reset(consumer, &reset, &updates) {
                    Ok(entries_deleted) => {
                        if reset.rebuild {
                            updates.retain(|u| matches!(u, StateUpdate::DeadLetters { .. }));
                        }
                        seek_to = Some(reset.offsets.clone());
                        answer = Some((reset, ResetDone { entries_deleted }));
                    }
                    Err(why) => reset.refuse(why),
                }
            }
        }
        if current.is_empty() {
            return Ok(());
        }
        let mut seen: HashMap<SourcePartition, SeenBuckets> = HashMap::new();
        let mut marks = HashMap::new();
        let mut windows: HashMap<SourcePartition, Vec<StateUpdate>> = HashMap::new();
        let mut visits: HashMap<i32, Vec<VisitEntry>> = HashMap::new();
        let mut metrics = Vec::with_capacity(updates.len());
        let restored = updates.len();
        for update in updates
            .into_iter()
            .filter(|u| current.contains(&u.source()))
        {
            match update {
                StateUpdate::SeenIds {
                    source,
                    bucket,
                    ids,
                } => seen.entry(source).or_default().push((bucket, ids)),
                StateUpdate::DeadLetters { source, entry } => {
                    marks.insert(source, entry);
                }
                window @ (StateUpdate::Bucket { .. } | StateUpdate::Watermark { .. }) => {
                    windows.entry(window.source()).or_default().push(window)
                }
                StateUpdate::UserVisits {
                    source,
                    user_id,
                    visits: list,
                } => visits
                    .entry(source.partition)
                    .or_default()
                    .push(VisitEntry::User(user_id, list)),
                StateUpdate::VisitBucket {
                    source,
                    resolution,
                    start_ms,
                    entry,
                } => visits
                    .entry(source.partition)
                    .or_default()
                    .push(VisitEntry::Bucket(resolution, start_ms, Some(entry))),
                StateUpdate::VisitMark { source, entry } => visits
                    .entry(source.partition)
                    .or_default()
                    .push(VisitEntry::Mark(entry)),
                other => metrics.push(other),
            }
        }
        block_on(self.router.restore(metrics))?;
        let window = i64::try_from(self.settings.consumer.dedupe_window_ms).unwrap_or(i64::MAX);
        let visit_config = VisitConfig::new(&self.settings.windows, &self.settings.sessions);
        {
            let mut shared = self.visits();
            // A user-events partition's restore starts its partition
            // number's visits afresh; its page-views partner, restored with
            // it, shares them.
            for source in current.iter().filter(|s| s.topic == InputTopic::UserEvents) {
                let restored = visits.remove(&source.partition).unwrap_or_default();
                shared.insert(
                    source.partition,
                    Arc::new(Mutex::new(PartitionVisits::new(
                        source.partition,
                        visit_config,
                        restored,
                    ))),
                );
            }
        }
        {
            let mut slots = self.slots();
            for &source in &current {
                let router = Arc::clone(&self.router);
                let stats = Arc::clone(&self.stats);
                let dedupe = Dedupe::new(source, window, seen.remove(&source).unwrap_or_default());
                let dead = DeadLetters::new(source, marks.remove(&source));
                let policy = (&self.settings.retry).into();
                let mut windows = PartitionWindows::new(
                    source,
                    (&self.settings.windows).into(),
                    windows.remove(&source).unwrap_or_default(),
                );
                if let Some(visits) = self.shared_visits(source) {
                    windows = windows.with_visits(visits);
                }
                // Supervised: one that stops is started again on the same
                // address (see arus_actors::aggregate::supervision).
                let actor = Supervisor::start_in_arbiter(&self.arbiter, move |_| {
                    PartitionConsumer::new(source, router, stats, dedupe, dead, policy, windows)
                });
                if let Some(slot) = slots.get_mut(&source) {
                    slot.actor = Some(actor);
                }
            }
        }
        self.seek_restored(consumer, &resume_at, seek_to.as_deref(), done.rewind)?;
        consumer.resume(&self.tpl(&current))?;
        info!(entries = restored, partitions = ?names(&current), "state restored from the changelog");
        if let Some((reset, done)) = answer {
            info!(partitions = ?names(&current), rebuild = reset.rebuild, entries_deleted = done.entries_deleted, "offsets reset");
            reset.done(done);
        }
        Ok(())
    }

    /// Seeks each restored partition to where its state ends (see
    /// [`resume_from`]).
    fn seek_restored<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        resume_at: &[(SourcePartition, Option<i64>)],
        reset: Option<&[(SourcePartition, i64)]>,
        rewind: bool,
    ) -> anyhow::Result<()> {
        let timeout = Duration::from_millis(self.settings.kafka.admin_timeout_ms);
        let mut to_committed = Vec::new();
        for &(source, first_unprocessed) in resume_at {
            let reset_to =
                reset.and_then(|r| r.iter().find(|(s, _)| *s == source).map(|(_, o)| *o));
            let restored = match (reset_to, rewind) {
                (Some(to), _) => Restored::Reset { to },
                (None, true) => Restored::RolledBack,
                (None, false) => Restored::Assigned { first_unprocessed },
            };
            match resume_from(restored) {
                ResumeFrom::Offset(at) => consumer.seek(
                    self.topic_name(source.topic),
                    source.partition,
                    Offset::Offset(at),
                    timeout,
                )?,
                ResumeFrom::Committed => to_committed.push(source),
                ResumeFrom::AsFetched => {}
            }
        }
        if !to_committed.is_empty() {
            let committed = consumer.committed_offsets(self.tpl(&to_committed), timeout)?;
            for elem in committed.elements() {
                let offset = match elem.offset() {
                    Offset::Offset(o) => Offset::Offset(o),
                    _ => Offset::Beginning,
                };
                consumer.seek(elem.topic(), elem.partition(), offset, timeout)?;
            }
        }
        Ok(())
    }
}

pub(super) fn names(sources: &[SourcePartition]) -> Vec<String> {
    sources.iter().map(ToString::to_string).collect()
}
