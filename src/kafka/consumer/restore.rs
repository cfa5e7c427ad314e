//! Restoring assigned partitions from the changelog, and what a finished
//! restore starts.
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
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Supervisor;
use arus_actors::consume::dead_letter::DeadLetters;
use arus_actors::consume::dedupe::Dedupe;
use arus_actors::model::source::{InputTopic, SourcePartition};
use arus_actors::state::{SeenEntry, StateUpdate};
use arus_actors::window::{PartitionVisits, PartitionWindows, VisitConfig, VisitEntry};
use arus_actors::PartitionConsumer;
use futures::executor::block_on;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::Offset;
use tracing::info;

use super::continuity::HoleCheck;
use super::exactly_once::{names, Partitions, Slot};
use super::reset::{ResetDone, ResetRefused, ResetRequest};
use super::resume::{resume_from, Restored, ResumeFrom};
use super::retry_hold::RetryHold;
use crate::kafka::changelog_reader;

/// A partition's restored eventId buckets: first offset and ids.
type SeenBuckets = Vec<(i64, Vec<(String, SeenEntry)>)>;

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
                    Arc::new(Mutex::new(PartitionVisits::new(visit_config, restored))),
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
        self.announce
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(
                current
                    .iter()
                    .filter(|s| s.topic == InputTopic::UserEvents)
                    .map(|s| s.partition),
            );
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
