//! The consumer driver: one group member per process, polled on its own
//! thread (never on an actix arbiter), feeding one `PartitionConsumer` actor
//! per assigned partition.
//!
//! One cycle:
//!
//! ```text
//! poll (up to consumer.max_batch records) ─▶ group by partition
//!   ─▶ ProcessBatch to each partition's actor, all at once ─▶ wait for every answer
//!   ─▶ every consumer.commit_interval_ms: the commit barrier, one transaction of
//!      the shards' changed state (to the changelog) and the input offsets
//! ```
//!
//! Because the driver waits for every batch before it polls again, nothing is
//! in flight at the barrier or when librdkafka runs a rebalance callback (they
//! run inside `poll`): the state flushed is exactly the effect of the records
//! below the offsets committed with it. Each assignment of a partition gets a
//! new epoch; records polled under an older epoch are dropped, because the new
//! assignment fetches again from the committed offset.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::ArbiterHandle;
use arus_actors::model::source::{InputTopic, RawRecord, SourcePartition};
use arus_actors::state::owner::Owner;
use arus_actors::{ConsumerStats, ProcessBatch, Router};
use arus_config::Settings;
use futures::executor::block_on;
use futures::future::join_all;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, error, info, warn};

use super::abort_streak::AbortStreak;
pub use super::assignment::Assignment;
use super::committer::Committer;
use super::continuity::Continuity;
use super::exactly_once::{Partitions, Slot};
use super::pause::{Assigned, Paused};
use super::rebalance::DriverContext;
use super::reset::ResetRequest;
use super::restore::RestoreDone;
use super::retry_hold::Offered;
use crate::health::Health;
use crate::kafka::{client_config, records};
use crate::telemetry::propagation;

/// Pauses and resumes this instance's consumption. The instance stays in
/// the group and keeps its partitions (nothing moves to another member);
/// it just stops fetching them. Records already fetched when the pause is
/// seen are still processed: nothing is skipped, and resuming fetches from
/// where processing stopped.
#[derive(Clone, Default)]
pub struct Consumption {
    wanted: Arc<AtomicBool>,
    /// Partitions the driver has paused for it, as of its last cycle.
    applied: Arc<AtomicUsize>,
    /// An offset reset waiting for the driver's next commit barrier.
    reset: Arc<Mutex<Option<ResetRequest>>>,
}

impl Consumption {
    /// Hands `request` to the driver, which takes it at its next commit
    /// barrier and answers on its channel. Gives it back while another
    /// reset is waiting.
    pub fn request_reset(&self, request: ResetRequest) -> Result<(), ResetRequest> {
        let mut slot = self.reset.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return Err(request);
        }
        *slot = Some(request);
        Ok(())
    }

    fn take_reset(&self) -> Option<ResetRequest> {
        self.reset.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    pub fn set_paused(&self, paused: bool) {
        self.wanted.store(paused, Ordering::SeqCst);
    }

    /// Whether a pause was asked for (and not yet undone).
    pub fn paused(&self) -> bool {
        self.wanted.load(Ordering::SeqCst)
    }

    /// How many partitions are paused for it now: the pause has taken hold
    /// once this equals the assigned partitions (those not restoring).
    pub fn paused_partitions(&self) -> usize {
        self.applied.load(Ordering::SeqCst)
    }
}

/// A handle on the driver thread.
pub struct ConsumerDriver {
    stop: Arc<AtomicBool>,
    consumption: Consumption,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    assignment: Assignment,
}

/// What the driver thread needs to start.
pub struct DriverParts {
    pub router: Arc<Router>,
    pub stats: Arc<ConsumerStats>,
    pub health: Arc<Health>,
    pub arbiter: ArbiterHandle,
}

impl ConsumerDriver {
    /// Starts the driver thread, which creates the transactional committer
    /// (blocking calls) and the consumer, then subscribes. Returns once both
    /// exist. `on_fatal` is called if the driver stops on an error.
    pub fn spawn(
        settings: &Settings,
        brokers: &str,
        parts: DriverParts,
        on_fatal: impl FnOnce(String) + Send + 'static,
    ) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let consumption = Consumption::default();
        let assignment = Assignment::default();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let settings = settings.clone();
            let brokers = brokers.to_string();
            let stop = Arc::clone(&stop);
            let consumption = consumption.clone();
            let assignment = assignment.clone();
            std::thread::Builder::new()
                .name("arus-consumer".into())
                .spawn(move || {
                    let poll_loop = match PollLoop::new(settings, brokers, parts, stop, consumption) {
                        Ok(l) => l,
                        Err(error) => {
                            let message = format!("{error:#}");
                            let _ = ready_tx.send(Err(error));
                            return Err(anyhow::anyhow!(message));
                        }
                    };
                    *assignment.0.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(Arc::clone(&poll_loop.partitions));
                    let _ = ready_tx.send(Ok(()));
                    let result = poll_loop.run();
                    if let Err(error) = &result {
                        error!(error = %format!("{error:#}"), "consumer driver stopped on an error");
                        on_fatal(format!("{error:#}"));
                    }
                    result
                })?
        };
        ready_rx
            .recv()
            .map_err(|_| anyhow::anyhow!("consumer driver thread ended at start"))??;
        Ok(Self {
            stop,
            consumption,
            thread: Some(thread),
            assignment,
        })
    }

    pub fn assignment(&self) -> Assignment {
        self.assignment.clone()
    }

    pub fn consumption(&self) -> Consumption {
        self.consumption.clone()
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

type Batches = HashMap<SourcePartition, (u64, Vec<RawRecord>)>;

struct PollLoop {
    consumer: BaseConsumer<DriverContext>,
    partitions: Arc<Partitions>,
    restored: mpsc::Receiver<RestoreDone>,
    stop: Arc<AtomicBool>,
    consumption: Consumption,
    /// Partitions paused for [`Consumption`], with their assignment epoch.
    paused: RefCell<Paused>,
    max_batch: usize,
    poll_timeout: Duration,
    commit_interval: Duration,
}

impl PollLoop {
    fn new(
        settings: Settings,
        brokers: String,
        parts: DriverParts,
        stop: Arc<AtomicBool>,
        consumption: Consumption,
    ) -> anyhow::Result<Self> {
        let k = &settings.kafka;
        let user_topic = k.topic_name(&k.topics.user_events);
        let page_topic = k.topic_name(&k.topics.page_views);
        let retry_topic = k.topic_name(&k.topics.retry_events);
        let committer = Committer::new(&settings, &brokers)?;
        let consumer_config = client_config::consumer(&settings, &brokers);
        let (max_batch, poll_timeout, commit_interval) = (
            settings.consumer.max_batch,
            Duration::from_millis(settings.consumer.poll_timeout_ms),
            Duration::from_millis(settings.consumer.commit_interval_ms),
        );
        let (restored_tx, restored) = mpsc::channel();
        let owner_record = serde_json::to_vec(&Owner {
            instance: settings.instance_id.clone(),
            url: settings.http.advertised(),
        })?;
        let partitions = Arc::new(Partitions {
            topics: [
                (user_topic, InputTopic::UserEvents),
                (page_topic, InputTopic::PageViews),
                (retry_topic, InputTopic::RetryEvents),
            ],
            settings,
            brokers,
            slots: Mutex::new(HashMap::new()),
            visits: Mutex::new(HashMap::new()),
            epochs: AtomicU64::new(0),
            router: parts.router,
            stats: parts.stats,
            health: parts.health,
            arbiter: parts.arbiter,
            committer: Mutex::new(committer),
            fenced: AtomicBool::new(false),
            fatal: Mutex::new(None),
            aborts: Mutex::new(AbortStreak::default()),
            trace_links: Mutex::new(Vec::new()),
            restored: Mutex::new(restored_tx),
            announce: Mutex::new(Vec::new()),
            owner_record,
        });
        let consumer: BaseConsumer<DriverContext> =
            consumer_config.create_with_context(DriverContext {
                partitions: Arc::clone(&partitions),
            })?;
        consumer.subscribe(&partitions.subscription())?;
        Ok(Self {
            consumer,
            partitions,
            restored,
            stop,
            consumption,
            paused: RefCell::new(Paused::default()),
            max_batch,
            poll_timeout,
            commit_interval,
        })
    }

    fn run(self) -> anyhow::Result<()> {
        let result = self.cycle_until_stopped();
        // However the loop ended, commit what was applied (unless the
        // producer is what failed), then leave the group: closing the
        // consumer revokes, and the revocation commits anything left.
        if result.is_ok() {
            if let Err(error) = self.partitions.commit(&self.consumer) {
                warn!(error = %format!("{error:#}"), "final commit failed; the next owner re-reads from the last commit");
            }
        }
        self.consumer.unsubscribe();
        drop(self.consumer);
        info!("consumer left the group");
        result
    }

    fn cycle_until_stopped(&self) -> anyhow::Result<()> {
        let mut last_commit = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            // Never wait in poll past the next commit: a record processed
            // just after one would otherwise wait a whole poll timeout more
            // before its commit, and the read model with it.
            let until_commit = self.commit_interval.saturating_sub(last_commit.elapsed());
            let mut batches = self.poll_batches(self.poll_timeout.min(until_commit));
            self.release_due(&mut batches);
            if let Some(error) = self.partitions.failure() {
                return Err(error.into());
            }
            while let Ok(done) = self.restored.try_recv() {
                self.partitions.finish_restore(&self.consumer, done)?;
            }
            self.apply_pause();
            if !batches.is_empty() {
                self.dispatch(batches)?;
            }
            // A reset starts right after a commit: the changelog then holds
            // the whole state of the partitions it moves.
            let reset = self.consumption.take_reset();
            if reset.is_some() || last_commit.elapsed() >= self.commit_interval {
                if let Err(error) = self.partitions.commit(&self.consumer) {
                    if !self.partitions.is_fenced() {
                        return Err(error);
                    }
                    warn!(error = %format!("{error:#}"), "commit failed for good");
                    self.partitions.recover_from_fencing(&self.consumer)?;
                }
                last_commit = Instant::now();
            }
            if let Some(reset) = reset {
                self.partitions.begin_reset(&self.consumer, reset)?;
            }
        }
        Ok(())
    }

    /// Polls up to `max_batch` records, waiting up to `timeout` for the
    /// first, grouped by partition and tagged with the partition's
    /// assignment epoch at the time each was returned.
    fn poll_batches(&self, mut timeout: Duration) -> Batches {
        let mut batches = Batches::new();
        let mut taken = 0;
        // Partitions fetched again from a hole: the rest of this poll's
        // records of theirs are stale.
        let mut refetching = std::collections::HashSet::new();
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
            let Some(topic) = self.partitions.input(message.topic()) else {
                continue;
            };
            let source = SourcePartition::new(topic, message.partition());
            // Rebalance callbacks run inside poll, so the epoch read now is
            // the one this record was fetched under.
            let epoch = {
                let mut slots = self.partitions.slots();
                let Some(slot) = slots.get_mut(&source) else {
                    continue;
                };
                if slot.actor.is_none() {
                    // Still restoring: not now. Pause, and come back here.
                    if slot.resume_at.is_none() {
                        slot.resume_at = Some(message.offset());
                        let mut tpl = TopicPartitionList::new();
                        tpl.add_partition(message.topic(), message.partition());
                        if let Err(error) = self.consumer.pause(&tpl) {
                            warn!(%source, %error, "cannot pause a restoring partition");
                        }
                    }
                    continue;
                }
                if topic != InputTopic::RetryEvents {
                    // Where this partition's records continue: after the
                    // last one taken in this poll, else the last applied.
                    let expected = match batches.get(&source) {
                        Some((epoch, records)) if *epoch == slot.epoch && !records.is_empty() => {
                            records.last().map(|r| r.offset + 1)
                        }
                        _ => slot.next_offset,
                    };
                    if refetching.contains(&source) {
                        continue;
                    }
                    match slot.holes.offer(expected, message.offset()) {
                        Continuity::Next => {}
                        Continuity::Filled { skipped } => {
                            self.partitions.stats.input_holes_filled.inc_by(1);
                            warn!(%source, offset = message.offset(), skipped, "a fetch had left out records that are in the log; fetched again, nothing skipped");
                        }
                        Continuity::Hole => {
                            debug!(%source, offset = message.offset(), ?expected, "a hole in the offsets, seen twice (commit markers, aborted or compacted records)");
                        }
                        Continuity::Repeat => continue,
                        Continuity::Refetch { from } => {
                            debug!(%source, from, offset = message.offset(), "a hole in the offsets: fetching again before believing it");
                            refetching.insert(source);
                            let timeout = Duration::from_millis(
                                self.partitions.settings.kafka.admin_timeout_ms,
                            );
                            if let Err(error) = self.consumer.seek(
                                message.topic(),
                                message.partition(),
                                Offset::Offset(from),
                                timeout,
                            ) {
                                // Nothing taken past the hole: the commit
                                // stays before it, and a restart fetches it.
                                warn!(%source, %error, "cannot fetch a hole again");
                            }
                            continue;
                        }
                    }
                }
                slot.epoch
            };
            let record = records::raw_record(&message);
            let record = if topic == InputTopic::RetryEvents {
                match self.hold_if_early(source, record) {
                    Some(due) => due,
                    None => continue,
                }
            } else {
                record
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

    /// The retry scheduler's first half (see [`RetryHold`]): a record not
    /// yet due, or behind one, is held and its partition paused; `None` then.
    fn hold_if_early(&self, source: SourcePartition, record: RawRecord) -> Option<RawRecord> {
        let mut slots = self.partitions.slots();
        let slot = slots.get_mut(&source)?;
        match slot
            .held
            .offer(record, chrono::Utc::now().timestamp_millis())
        {
            Offered::Due(record) => Some(record),
            Offered::Held { pause } => {
                if pause {
                    if let Err(error) = self.consumer.pause(&self.tpl_of(source)) {
                        warn!(%source, %error, "cannot pause a retry partition");
                    }
                }
                None
            }
        }
    }

    /// The retry scheduler's second half: the held records now due join
    /// this cycle's batches, in order; a partition with none left held
    /// resumes.
    fn release_due(&self, batches: &mut Batches) {
        let now = chrono::Utc::now().timestamp_millis();
        let mut slots = self.partitions.slots();
        for (source, slot) in slots.iter_mut() {
            if slot.held.is_empty() || slot.actor.is_none() {
                continue;
            }
            let (due, emptied) = slot.held.release_due(now);
            if due.is_empty() {
                continue;
            }
            let entry = batches
                .entry(*source)
                .or_insert_with(|| (slot.epoch, Vec::new()));
            if entry.0 == slot.epoch {
                entry.1.extend(due);
            }
            // While consumption is paused, the pause's end resumes it.
            if emptied && !self.consumption.paused() {
                if let Err(error) = self.consumer.resume(&self.tpl_of(*source)) {
                    warn!(%source, %error, "cannot resume a retry partition");
                }
            }
        }
    }

    /// Follows [`Consumption`]: while paused, every partition with a running
    /// actor is paused, including ones assigned during the pause; at its end
    /// they resume, except retry partitions still holding records not yet
    /// due (the retry scheduler resumes those) and partitions restoring.
    fn apply_pause(&self) {
        let mut paused = self.paused.borrow_mut();
        let assigned: HashMap<SourcePartition, Assigned> = self
            .partitions
            .slots()
            .iter()
            .map(|(source, slot)| {
                let a = Assigned {
                    epoch: slot.epoch,
                    running: slot.actor.is_some(),
                    holding: !slot.held.is_empty(),
                };
                (*source, a)
            })
            .collect();
        let change = paused.turn(self.consumption.paused(), &assigned);
        if !change.pause.is_empty() {
            let sources: Vec<SourcePartition> = change.pause.iter().map(|(s, _)| *s).collect();
            let names: Vec<String> = sources.iter().map(ToString::to_string).collect();
            match self.consumer.pause(&self.partitions.tpl(&sources)) {
                Ok(()) => {
                    info!(partitions = ?names, "consumption paused");
                    paused.paused(change.pause);
                }
                Err(error) => warn!(%error, "cannot pause consumption; trying again"),
            }
        }
        if !change.resume.is_empty() {
            let sources: Vec<SourcePartition> = change.resume.iter().map(|(s, _)| *s).collect();
            let names: Vec<String> = sources.iter().map(ToString::to_string).collect();
            match self.consumer.resume(&self.partitions.tpl(&sources)) {
                Ok(()) => info!(partitions = ?names, "consumption resumed"),
                Err(error) => {
                    warn!(%error, "cannot resume consumption; trying again");
                    paused.not_resumed(change.resume);
                }
            }
        }
        self.consumption
            .applied
            .store(paused.len(), Ordering::SeqCst);
    }

    fn tpl_of(&self, source: SourcePartition) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(self.partitions.topic_name(source.topic), source.partition);
        tpl
    }

    /// When tracing is on: a consume span for each record that carries a
    /// trace context, continuing its producer's trace; the next commit's
    /// span links to them.
    fn trace_spans(
        &self,
        source: SourcePartition,
        records: &[RawRecord],
    ) -> Vec<(i64, tracing::Span)> {
        if !crate::telemetry::tracing_on() {
            return Vec::new();
        }
        let topic = self.partitions.topic_name(source.topic);
        let mut spans = Vec::new();
        for record in records.iter().filter(|r| r.header("traceparent").is_some()) {
            let span = tracing::info_span!(
                "process",
                otel.name = %format!("{topic} process"),
                otel.kind = "consumer",
                messaging.system = "kafka",
                messaging.destination.name = %topic,
                messaging.destination.partition.id = source.partition,
                messaging.kafka.offset = record.offset,
            );
            propagation::continue_trace(&span, &propagation::RecordHeaders(&record.headers));
            self.partitions.link_to_next_commit(&span);
            spans.push((record.offset, span));
        }
        spans
    }

    /// Hands every partition's batch to its actor and waits for all of them.
    fn dispatch(&self, batches: Batches) -> anyhow::Result<()> {
        let mut sends = Vec::with_capacity(batches.len());
        {
            let slots = self.partitions.slots();
            for (source, (epoch, records)) in batches {
                match slots.get(&source) {
                    Some(Slot {
                        actor: Some(actor),
                        epoch: current,
                        ..
                    }) if *current == epoch => {
                        let traces = self.trace_spans(source, &records);
                        sends.push((source, epoch, actor.send(ProcessBatch { records, traces })));
                    }
                    _ => debug!(%source, "dropped records of a partition no longer assigned"),
                }
            }
        }
        let started = Instant::now();
        let results =
            block_on(join_all(sends.into_iter().map(
                |(source, epoch, send)| async move { (source, epoch, send.await) },
            )));
        self.partitions
            .stats
            .batch_seconds
            .observe(started.elapsed());
        let mut slots = self.partitions.slots();
        for (source, epoch, result) in results {
            let outcome =
                result.map_err(|e| anyhow::anyhow!("partition consumer {source} is gone: {e}"))?;
            self.partitions
                .stats
                .replayed_hops_skipped
                .inc_by(outcome.replayed_updates as u64);
            if let Some(slot) = slots.get_mut(&source).filter(|s| s.epoch == epoch) {
                slot.next_offset = Some(outcome.next_offset);
            }
        }
        Ok(())
    }
}
