//! `PartitionConsumer`: one per assigned input partition. Decodes a polled
//! batch, hands it to the aggregator shards, and answers once every shard has
//! applied its part, so the driver commits an offset only for applied events.

use std::collections::HashSet;
use std::sync::Arc;

use actix::{
    Actor, ActorContext, ActorFutureExt, AtomicResponse, Context, Handler, MessageResult,
    Supervised, WrapFuture,
};
use chrono::Utc;
use futures::future::join_all;
use tracing::{debug, warn};

use crate::aggregate::router::{MetricSet, Routed, Router};
use crate::aggregate::supervision::Stop;
use crate::consume::dead_letter::{DeadLetter, DeadLetters};
use crate::consume::dedupe::{event_identity, handoff_id, Dedupe};
use crate::consume::retry::{Origin, Retried, RetryPolicy, RetryRecord};
use crate::model::event::Event;
use crate::model::metric_kind::MetricKind;
use crate::model::source::{InputTopic, RawRecord, SourcePartition};
use crate::stats::ConsumerStats;
use crate::window::{PartitionWindows, Placed};

pub use super::decode::{decode, DecodeError};
use super::hop::send_hop;
pub use super::hop::ProcessError;
pub use super::messages::{BatchOutcome, FlushPartition, PartitionFlush, ProcessBatch};
pub use crate::model::error_class::ErrorClass;

pub struct PartitionConsumer {
    source: SourcePartition,
    router: Arc<Router>,
    stats: Arc<ConsumerStats>,
    dedupe: Dedupe,
    dead_letters: DeadLetters,
    policy: RetryPolicy,
    windows: PartitionWindows,
    retries: Vec<RetryRecord>,
    /// Late events, to copy to the dead-letter topic at the next flush.
    late_copies: Vec<DeadLetter>,
}

impl PartitionConsumer {
    pub fn new(
        source: SourcePartition,
        router: Arc<Router>,
        stats: Arc<ConsumerStats>,
        dedupe: Dedupe,
        dead_letters: DeadLetters,
        policy: RetryPolicy,
        windows: PartitionWindows,
    ) -> Self {
        Self {
            source,
            router,
            stats,
            dedupe,
            dead_letters,
            policy,
            windows,
            retries: Vec::new(),
            late_copies: Vec::new(),
        }
    }
}

impl Handler<FlushPartition> for PartitionConsumer {
    type Result = MessageResult<FlushPartition>;

    fn handle(&mut self, _msg: FlushPartition, _ctx: &mut Self::Context) -> Self::Result {
        let (mut dead_letters, mark) = self.dead_letters.flush();
        dead_letters.append(&mut self.late_copies);
        MessageResult(PartitionFlush {
            seen: self.dedupe.flush(),
            dead_letters,
            mark,
            retries: std::mem::take(&mut self.retries),
            windows: self.windows.flush(),
        })
    }
}

impl Actor for PartitionConsumer {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        debug!(source = %self.source, "partition consumer started");
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        debug!(source = %self.source, "partition consumer stopped");
    }
}

impl Supervised for PartitionConsumer {
    /// Started again after stopping. Its seen-ids, dead-letter mark and held
    /// retries are not trusted any more; the recorded restart makes the
    /// commit barrier roll the partitions back, which replaces this actor
    /// with one restored from the changelog.
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.router
            .restarts()
            .record(&format!("partition consumer {}", self.source));
    }
}

impl Handler<Stop> for PartitionConsumer {
    type Result = ();

    fn handle(&mut self, _msg: Stop, ctx: &mut Self::Context) {
        warn!(source = %self.source, "injected stop");
        ctx.stop();
    }
}

/// A record of this partition whose event is routed on: where the event
/// first came from and which try this is.
struct Tracked {
    /// Where the record is in the batch.
    index: usize,
    offset: i64,
    /// Time for seen-set entries: the record's own, so replays decide alike.
    at_ms: i64,
    /// For a retry record, the event as it entered arus (key, value, client
    /// headers, origin offset); an input record is that itself.
    original: Option<RawRecord>,
    origin: Origin,
    /// 1 for an input record; a retry record's attempt header otherwise.
    try_number: u32,
    /// For a retry record: its metric and its seen-set id, marked once applied.
    retried: Option<(MetricKind, String)>,
}

/// An event hop that did not happen, by record offset.
struct Failed {
    offset: i64,
    metric: MetricKind,
    message: String,
    /// A replay of a hop handed off before: already in the seen-set.
    replayed: bool,
}

impl PartitionConsumer {
    /// Places an event in its time buckets; a late one is counted as late
    /// and, unless turned off, copied to the dead-letter topic (it still
    /// counts in the all-time totals).
    fn place_in_windows(&mut self, record: &RawRecord, event: &Event) {
        if self.windows.apply(record.offset, event) != Placed::Late {
            return;
        }
        let config = self.windows.config();
        debug!(source = %self.source, offset = record.offset, "late event: in no time bucket");
        if config.late_copies {
            let watermark = self.windows.watermark().unwrap_or(i64::MIN);
            self.late_copies.push(DeadLetter {
                source: self.source,
                record: record.clone(),
                class: ErrorClass::Permanent,
                label: "late",
                message: format!(
                    "event time {} is in a minute that ended before the partition's watermark {} (latest event time minus windows.grace_ms {}): counted in the all-time totals, in no time bucket",
                    event.timestamp_ms(),
                    watermark,
                    config.grace_ms
                ),
                attempt: 1,
                metric: None,
            });
        }
    }

    /// A record that can never be counted: to the dead-letter topic, once.
    fn reject(&mut self, record: &RawRecord, error: &DecodeError) {
        if self
            .dead_letters
            .add_labelled(record, error.class(), error.label(), error.to_string())
        {
            warn!(source = %self.source, offset = record.offset, %error, "sent to dead-letter topic");
        }
    }

    /// Decodes a record of an input topic; `None` when it is a dead letter
    /// or a client's retry.
    fn take_input(
        &mut self,
        index: usize,
        record: &RawRecord,
        invalid: &mut usize,
        duplicates: &mut usize,
    ) -> Option<(Event, Tracked, MetricSet)> {
        let source = self.source;
        let event = match decode(source.topic, record) {
            Ok(event) => event,
            Err(error) => {
                *invalid += 1;
                self.reject(record, &error);
                return None;
            }
        };
        let at_ms = record.timestamp_ms.unwrap_or_else(|| event.timestamp_ms());
        if let Err(error) = self
            .windows
            .config()
            .bounds
            .check(event.timestamp_ms(), at_ms)
        {
            *invalid += 1;
            self.reject(record, &DecodeError::EventTime(error));
            return None;
        }
        if let Some(id) = event.event_id() {
            // A retry is the same eventId with the same content; the same
            // eventId with other content is another event, and counts.
            // Entries written before the content was part of the identity
            // hold the bare eventId: looked up too while any are held.
            let identity = event_identity(id, event.content_hash());
            let bare = &identity[..36];
            if (self.dedupe.has_bare_ids() && self.dedupe.seen_before(bare, record.offset))
                || !self.dedupe.is_first(&identity, record.offset, at_ms)
            {
                *duplicates += 1;
                debug!(%source, offset = record.offset, event_id = %id, "dropped a retried event");
                return None;
            }
        }
        self.place_in_windows(record, &event);
        let tracked = Tracked {
            index,
            offset: record.offset,
            at_ms,
            original: None,
            origin: Origin {
                source,
                offset: record.offset,
                timestamp_ms: record.timestamp_ms,
            },
            try_number: 1,
            retried: None,
        };
        Some((event, tracked, MetricSet::ALL))
    }

    /// Decodes a record of the retry topic; `None` when it is a dead letter
    /// or a repeat of a retry already applied.
    fn take_retry(
        &mut self,
        index: usize,
        record: &RawRecord,
        batch_ids: &mut HashSet<String>,
        invalid: &mut usize,
        duplicates: &mut usize,
    ) -> Option<(Event, Tracked, MetricSet)> {
        let source = self.source;
        let decoded = Retried::parse(record)
            .map_err(DecodeError::from)
            .and_then(|retried| {
                let event = decode(retried.origin.source.topic, &retried.original)?;
                let metric = MetricKind::parse(&retried.metric)
                    .ok_or_else(|| DecodeError::UnknownMetric(retried.metric.clone()))?;
                Ok((retried, event, metric))
            });
        let (retried, event, metric) = match decoded {
            Ok(d) => d,
            Err(error) => {
                *invalid += 1;
                self.reject(record, &error);
                return None;
            }
        };
        let id = retried.origin.retried_id(metric);
        if self.dedupe.seen_before(&id, record.offset) || !batch_ids.insert(id.clone()) {
            *duplicates += 1;
            debug!(%source, offset = record.offset, %id, "dropped a repeated retry");
            return None;
        }
        let tracked = Tracked {
            index,
            offset: record.offset,
            at_ms: record.timestamp_ms.unwrap_or(retried.not_before_ms),
            original: Some(retried.original),
            origin: retried.origin,
            try_number: retried.attempt,
            retried: Some((metric, id)),
        };
        let metrics = MetricSet::only(metric);
        Some((event, tracked, metrics))
    }

    /// After the shards answered: failed hops go to the retry topic (or,
    /// with no attempts left, to the dead-letter topic), applied retries are
    /// marked as such.
    fn settle(&mut self, records: &[RawRecord], tracked: &[Tracked], failed: Vec<Failed>) -> usize {
        let now_ms = Utc::now().timestamp_millis();
        let mut handed_off = 0;
        let find = |offset: i64| {
            tracked
                .binary_search_by_key(&offset, |t| t.offset)
                .ok()
                .map(|i| &tracked[i])
        };
        for failure in &failed {
            let Some(t) = find(failure.offset) else {
                continue;
            };
            let original = t.original.as_ref().unwrap_or(&records[t.index]);
            if t.try_number >= self.policy.max_attempts && !failure.replayed {
                let letter = DeadLetter {
                    source: t.origin.source,
                    record: original.clone(),
                    class: ErrorClass::Transient,
                    label: ErrorClass::Transient.label(),
                    message: format!(
                        "{} (attempt {} of {}, metric {})",
                        failure.message, t.try_number, self.policy.max_attempts, failure.metric
                    ),
                    attempt: t.try_number,
                    metric: Some(failure.metric),
                };
                if self.dead_letters.add_exhausted(t.offset, letter) {
                    self.stats.retries_exhausted.inc_by(1);
                    warn!(source = %self.source, offset = t.offset, metric = %failure.metric, "retries exhausted: sent to dead-letter topic");
                }
                continue;
            }
            let attempt = t.try_number + 1;
            let seed = (t.origin.offset as u64).rotate_left(17)
                ^ u64::from(attempt).rotate_left(48)
                ^ (now_ms as u64)
                ^ crate::aggregate::router::key_hash(failure.metric.as_str());
            let delay = self.policy.delay(attempt, seed);
            if !failure.replayed {
                self.dedupe
                    .is_first(&handoff_id(t.offset, failure.metric), t.offset, t.at_ms);
            }
            self.retries.push(RetryRecord {
                origin: t.origin,
                key: original.key.clone(),
                payload: original.payload.clone(),
                headers: original.headers.clone(),
                metric: failure.metric,
                attempt,
                not_before_ms: now_ms + delay.as_millis() as i64,
                message: failure.message.clone(),
            });
            handed_off += 1;
        }
        let mut applied_retries = 0;
        for t in tracked {
            if let Some((metric, id)) = &t.retried {
                let failed_here = failed
                    .iter()
                    .any(|f| f.offset == t.offset && f.metric == *metric);
                if !failed_here {
                    self.dedupe.is_first(id, t.offset, t.at_ms);
                    applied_retries += 1;
                }
            }
        }
        self.stats.retries_scheduled.inc_by(handed_off as u64);
        self.stats.retries_applied.inc_by(applied_retries);
        handed_off
    }
}

impl Handler<ProcessBatch> for PartitionConsumer {
    // Atomic: the next batch of this partition waits until this one is
    // applied, which keeps each key's events in offset order.
    // Never an error: a record that cannot be counted is a dead letter, a
    // hop that failed goes to the retry topic, and both are in the outcome.
    type Result = AtomicResponse<Self, BatchOutcome>;

    fn handle(&mut self, msg: ProcessBatch, _ctx: &mut Self::Context) -> Self::Result {
        let source = self.source;
        let next_offset = msg.records.last().map_or(-1, |r| r.offset + 1);
        let mut routed = Vec::with_capacity(msg.records.len());
        let mut tracked: Vec<Tracked> = Vec::with_capacity(msg.records.len());
        let mut failed: Vec<Failed> = Vec::new();
        let mut batch_ids = HashSet::new();
        let (mut invalid, mut duplicates) = (0, 0);
        let records = msg.records;
        let mut traces = msg.traces.into_iter().peekable();
        // Hand-offs are added only after the shards answer: one look per batch.
        let handoffs = self.dedupe.has_handoffs();
        for (index, record) in records.iter().enumerate() {
            let taken = if source.topic == InputTopic::RetryEvents {
                self.take_retry(index, record, &mut batch_ids, &mut invalid, &mut duplicates)
            } else {
                self.take_input(index, record, &mut invalid, &mut duplicates)
            };
            let Some((event, t, mut metrics)) = taken else {
                continue;
            };
            // A replay of a record handed to the retry topic before: hand it
            // over again rather than apply it here (the retry partition drops
            // the copy it may already have).
            for metric in MetricKind::ALL {
                if handoffs
                    && metrics.contains(metric)
                    && self.dedupe.contains(&handoff_id(record.offset, metric))
                {
                    metrics = metrics.without(metric);
                    failed.push(Failed {
                        offset: record.offset,
                        metric,
                        message: "handed to the retry topic before a replay".into(),
                        replayed: true,
                    });
                }
            }
            if !metrics.is_empty() {
                // Both in offset order: skip the spans of records not routed.
                while traces.next_if(|(o, _)| *o < record.offset).is_some() {}
                let trace = traces
                    .next_if(|(o, _)| *o == record.offset)
                    .map(|(_, span)| span);
                routed.push(Routed {
                    offset: record.offset,
                    event: Arc::new(event),
                    metrics,
                    trace,
                });
            }
            tracked.push(t);
        }
        self.stats.records_consumed.inc_by(records.len() as u64);
        self.stats.records_invalid.inc_by(invalid as u64);
        self.stats.duplicates_dropped.inc_by(duplicates as u64);
        let hops = self.router.split(source, &routed);
        let router = Arc::clone(&self.router);
        let work = async move {
            let results = join_all(hops.into_iter().map(send_hop)).await;
            let mut replayed_updates = 0;
            for (metric, shard, result) in results {
                match result {
                    Ok(outcome) => replayed_updates += outcome.skipped,
                    Err(error) => {
                        let offsets = router.offsets_on(&routed, metric, shard);
                        debug!(%source, %error, events = offsets.len(), "hop failed; to the retry topic");
                        let message = error.to_string();
                        failed.extend(offsets.into_iter().map(|offset| Failed {
                            offset,
                            metric,
                            message: message.clone(),
                            replayed: false,
                        }));
                    }
                }
            }
            (replayed_updates, failed, routed)
        };
        AtomicResponse::new(Box::pin(work.into_actor(self).map(
            move |(replayed_updates, failed, routed), actor, _ctx| {
                let applied = if failed.is_empty() {
                    routed.len()
                } else {
                    let failed_offsets: HashSet<i64> = failed.iter().map(|f| f.offset).collect();
                    routed
                        .iter()
                        .filter(|r| !failed_offsets.contains(&r.offset))
                        .count()
                };
                let retried = actor.settle(&records, &tracked, failed);
                actor.stats.events_applied.inc_by(applied as u64);
                BatchOutcome {
                    next_offset,
                    applied,
                    invalid,
                    duplicates,
                    replayed_updates,
                    retried,
                }
            },
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::breaker::BreakerConfig;
    use crate::model::event_time::TimeBounds;
    use crate::read_model::ReadModel;
    use crate::window::WindowConfig;
    use actix::Arbiter;
    use std::time::Duration;

    fn record(offset: i64, json: &str) -> RawRecord {
        RawRecord {
            offset,
            key: None,
            payload: Some(json.as_bytes().to_vec()),
            timestamp_ms: Some(1_700_000_000_000),
            headers: Vec::new(),
        }
    }

    fn breaker_config() -> BreakerConfig {
        BreakerConfig {
            failure_threshold: 2,
            open_for: Duration::from_millis(300),
        }
    }

    /// The default bounds (windows.max_future_ms, windows.max_past_ms).
    const CONFIG: WindowConfig = WindowConfig {
        bounds: TimeBounds {
            max_future_ms: 300_000,
            max_past_ms: 604_800_000,
        },
        grace_ms: 300_000,
        retention_ms: [172_800_000, 7_776_000_000, 63_072_000_000],
        lg_k: 12,
        late_copies: true,
        top_pages: 200,
    };

    fn windows(source: SourcePartition) -> PartitionWindows {
        PartitionWindows::new(source, CONFIG, Vec::new())
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(10),
            max: Duration::from_millis(40),
        }
    }

    #[test]
    fn a_consumed_user_event_is_validated_whole_but_keeps_no_metadata() {
        let text = r#"{"eventId":"0b7f6a3c-8f7e-4d43-9c5c-2d8b5d3c1a10","userId":"u\"1","eventType":"purchase","metadata":{"amount":42,"sku":"S-1"},"extra":true}"#;
        let Event::User(event) = decode(InputTopic::UserEvents, &record(3, text)).expect("valid")
        else {
            panic!("a user event")
        };
        assert_eq!(event.user_id, "u\"1");
        assert_eq!(event.event_type, crate::model::event::EventType::Purchase);
        assert_eq!(
            event.event_id.map(|id| id.to_string()).as_deref(),
            Some("0b7f6a3c-8f7e-4d43-9c5c-2d8b5d3c1a10")
        );
        // No timestamp: the record's own.
        assert_eq!(event.timestamp.timestamp_millis(), 1_700_000_000_000);
        assert_eq!(event.metadata, None);
        // Metadata is still checked against the schema.
        let bad = r#"{"userId":"u","eventType":"view","metadata":3}"#;
        assert_eq!(
            decode(InputTopic::UserEvents, &record(4, bad))
                .expect_err("invalid")
                .to_string(),
            "metadata: must be an object"
        );
    }

    #[actix::test]
    async fn a_hop_counts_as_in_flight_until_its_shard_answers() {
        let arbiters = [Arbiter::current()];
        let router = Router::start(1, 4, breaker_config(), &arbiters);
        let source = SourcePartition::new(InputTopic::UserEvents, 0);
        let event = decode(
            source.topic,
            &record(0, r#"{"userId":"d","eventType":"login"}"#),
        )
        .expect("valid");
        let routed = [Routed {
            offset: 0,
            event: Arc::new(event),
            metrics: MetricSet::ALL,
            trace: None,
        }];
        let depth = |router: &Router| -> Vec<(MetricKind, u64)> {
            router
                .breakers()
                .iter()
                .map(|b| (b.metric, b.in_flight))
                .collect()
        };
        let mut hops = router.split(source, &routed);
        // A user event goes to event counts, users and sessions.
        assert_eq!(hops.len(), 3);
        let first = hops.remove(0);
        let (a, b) = (first.in_flight_guard(), first.in_flight_guard());
        assert!(
            depth(&router).contains(&(first.metric, 2)),
            "{:?}",
            depth(&router)
        );
        drop((a, b));
        assert!(depth(&router).iter().all(|(_, n)| *n == 0));
        let (_, _, answer) = send_hop(first).await;
        assert_eq!(answer.expect("applied").applied, 1);
        assert!(depth(&router).iter().all(|(_, n)| *n == 0));
    }

    #[actix::test]
    async fn batches_are_applied_once_and_invalid_records_skipped() {
        let read_model = Arc::new(ReadModel::new());
        let arbiters = [Arbiter::current()];
        let router = Arc::new(Router::start(3, 4, breaker_config(), &arbiters));
        let stats = Arc::new(ConsumerStats::default());
        let source = SourcePartition::new(InputTopic::UserEvents, 2);
        let dedupe = Dedupe::new(source, 600_000, Vec::new());
        let dead = DeadLetters::new(source, None);
        let consumer = PartitionConsumer::new(
            source,
            Arc::clone(&router),
            Arc::clone(&stats),
            dedupe,
            dead,
            policy(),
            windows(source),
        )
        .start();
        let batch = vec![
            record(10, r#"{"userId":"a","eventType":"login"}"#),
            record(11, r#"{"userId":"b","eventType":"purchase"}"#),
            record(12, "not json"),
            record(13, r#"{"userId":"a","eventType":"click"}"#),
            record(
                14,
                r#"{"userId":"a","eventType":"logout","timestamp":"2023-11-14T22:14:20Z"}"#,
            ),
        ];
        let outcome = consumer
            .send(ProcessBatch::of(batch.clone()))
            .await
            .expect("delivered");
        assert_eq!(
            outcome,
            BatchOutcome {
                next_offset: 15,
                applied: 3,
                invalid: 2,
                duplicates: 0,
                replayed_updates: 0,
                retried: 0,
            }
        );
        // The same records again, as after a crash before the commit: the
        // state's as_of offsets make them no-ops.
        let again = consumer
            .send(ProcessBatch::of(batch))
            .await
            .expect("delivered");
        // 3 event counts + 3 users + 2 sessions (login, logout).
        assert_eq!(again.replayed_updates, 8);
        assert_eq!(again.applied, 3);
        // The changed entries, each once: login, purchase, logout counts;
        // users a and b; a's session.
        let updates = router.flush().await.expect("flushed");
        assert_eq!(updates.len(), 6);
        assert!(router.flush().await.expect("flushed").is_empty());
        for update in updates {
            read_model.apply(update);
        }
        let counts = read_model.event_counts();
        assert_eq!(counts.get("login"), Some(&1));
        assert_eq!(counts.get("purchase"), Some(&1));
        assert_eq!(counts.get("logout"), Some(&1));
        assert_eq!(counts.get("view"), Some(&0));
        assert_eq!(read_model.unique_users(), 2);
        let sessions = read_model.sessions();
        assert_eq!(sessions.completed_sessions, 1);
        assert_eq!(sessions.active_sessions, 0);
        // login at the record timestamp (22:13:20Z, no timestamp field), logout at 22:14:20Z.
        assert_eq!(sessions.average_session_ms, 60_000.0);
        let a = read_model.user("a").expect("user a");
        assert_eq!((a.events, a.page_views, a.sessions), (2, 0, 1));
        assert_eq!(ConsumerStats::get(&stats.records_consumed), 10);
        assert_eq!(ConsumerStats::get(&stats.records_invalid), 4);
        // The two bad records are dead-lettered once, though seen twice.
        let flushed = consumer.send(FlushPartition).await.expect("flushed");
        let offsets: Vec<i64> = flushed
            .dead_letters
            .iter()
            .map(|d| d.record.offset)
            .collect();
        assert_eq!(offsets, vec![12, 13]);
        assert_eq!(
            flushed.dead_letters[1].message,
            "eventType: must be one of login, logout, purchase, view (got \"click\")"
        );
    }

    fn as_retry_topic(first_offset: i64, retries: &[RetryRecord]) -> Vec<RawRecord> {
        retries
            .iter()
            .enumerate()
            .map(|(i, r)| RawRecord {
                offset: first_offset + i as i64,
                key: r.key.clone(),
                payload: r.payload.clone(),
                timestamp_ms: Some(1_700_000_000_500),
                headers: r.all_headers("test.user-events"),
            })
            .collect()
    }

    fn start_consumer(
        source: SourcePartition,
        router: &Arc<Router>,
        stats: &Arc<ConsumerStats>,
    ) -> actix::Addr<PartitionConsumer> {
        PartitionConsumer::new(
            source,
            Arc::clone(router),
            Arc::clone(stats),
            Dedupe::new(source, 600_000, Vec::new()),
            DeadLetters::new(source, None),
            policy(),
            windows(source),
        )
        .start()
    }

    #[actix::test]
    async fn a_failed_hop_goes_through_the_retry_topic_once() {
        let arbiters = [Arbiter::current()];
        let router = Arc::new(Router::start(1, 4, breaker_config(), &arbiters));
        let stats = Arc::new(ConsumerStats::default());
        let input = SourcePartition::new(InputTopic::UserEvents, 0);
        let retry = SourcePartition::new(InputTopic::RetryEvents, 0);
        let consumer = start_consumer(input, &router, &stats);
        let retrier = start_consumer(retry, &router, &stats);
        router
            .outage(MetricKind::Users, 0, Duration::from_millis(150))
            .await
            .expect("shard exists")
            .expect("delivered");
        let batch = vec![
            record(0, r#"{"userId":"a","eventType":"purchase"}"#),
            record(1, r#"{"userId":"b","eventType":"purchase"}"#),
            record(2, r#"{"userId":"a","eventType":"view"}"#),
        ];
        let outcome = consumer
            .send(ProcessBatch::of(batch.clone()))
            .await
            .expect("delivered");
        // Event counts applied; the users hop refused: 3 events to the retry topic.
        assert_eq!((outcome.applied, outcome.retried), (0, 3));
        let flushed = consumer.send(FlushPartition).await.expect("flushed");
        assert_eq!(flushed.retries.len(), 3);
        assert!(flushed
            .retries
            .iter()
            .all(|r| r.metric == MetricKind::Users && r.attempt == 2));
        assert_eq!(
            flushed
                .retries
                .iter()
                .map(|r| r.origin.offset)
                .collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        // The shard refused once: below the threshold, the breaker is closed.
        assert_eq!(router.breakers()[1].state, 0);

        // Once the outage is over, the retry partition applies them.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let retried = as_retry_topic(0, &flushed.retries);
        let outcome = retrier
            .send(ProcessBatch::of(retried.clone()))
            .await
            .expect("delivered");
        assert_eq!((outcome.applied, outcome.retried), (3, 0));
        // The same retry records again, as a broker showing an aborted
        // transaction's copy next to the committed one: all dropped.
        let again = retrier
            .send(ProcessBatch::of(as_retry_topic(3, &flushed.retries)))
            .await
            .expect("delivered");
        assert_eq!((again.applied, again.duplicates), (0, 3));
        // A replay of the input batch (a crash before the commit): the
        // users hop is handed over again, not applied here.
        let replay = consumer
            .send(ProcessBatch::of(batch))
            .await
            .expect("delivered");
        assert_eq!((replay.replayed_updates, replay.retried), (3, 3));
        let flushed_again = consumer.send(FlushPartition).await.expect("flushed");
        // ... and that copy is dropped by the retry partition too.
        let third = retrier
            .send(ProcessBatch::of(as_retry_topic(6, &flushed_again.retries)))
            .await
            .expect("delivered");
        assert_eq!((third.applied, third.duplicates), (0, 3));

        let read_model = ReadModel::new();
        for update in router.flush().await.expect("flushed") {
            read_model.apply(update);
        }
        assert_eq!(read_model.unique_users(), 2);
        let a = read_model.user("a").expect("user a");
        assert_eq!((a.events, a.page_views), (2, 0));
        let b = read_model.user("b").expect("user b");
        assert_eq!((b.events, b.page_views), (1, 0));
        assert_eq!(read_model.event_counts().get("purchase"), Some(&2));
        assert_eq!(ConsumerStats::get(&stats.retries_scheduled), 6);
        assert_eq!(ConsumerStats::get(&stats.retries_applied), 3);
    }

    #[actix::test]
    async fn an_open_breaker_sends_at_once_and_the_last_attempt_dead_letters() {
        let arbiters = [Arbiter::current()];
        let router = Arc::new(Router::start(1, 4, breaker_config(), &arbiters));
        let stats = Arc::new(ConsumerStats::default());
        let input = SourcePartition::new(InputTopic::UserEvents, 1);
        let retry = SourcePartition::new(InputTopic::RetryEvents, 1);
        let consumer = start_consumer(input, &router, &stats);
        let retrier = start_consumer(retry, &router, &stats);
        router
            .outage(MetricKind::EventCounts, 0, Duration::from_secs(60))
            .await
            .expect("shard exists")
            .expect("delivered");
        for offset in 0..3 {
            let outcome = consumer
                .send(ProcessBatch::of(vec![record(
                    offset,
                    r#"{"userId":"c","eventType":"login"}"#,
                )]))
                .await
                .expect("delivered");
            assert_eq!(outcome.retried, 1);
        }
        // Two refusals opened it; the third batch never reached the shard.
        let view = router.breakers()[0];
        assert_eq!(
            (view.metric, view.state, view.times_opened),
            (MetricKind::EventCounts, 1, 1)
        );
        let flushed = consumer.send(FlushPartition).await.expect("flushed");
        assert!(flushed
            .retries
            .iter()
            .all(|r| r.metric == MetricKind::EventCounts));
        assert!(flushed.retries[2]
            .message
            .contains("breaker of shard 0 of event-counts is open"));
        // The last attempt (3 of 3) fails too: a dead letter carrying the
        // original record, its source partition and offset.
        let mut last = flushed.retries[2].clone();
        last.attempt = 3;
        let outcome = retrier
            .send(ProcessBatch::of(as_retry_topic(0, &[last])))
            .await
            .expect("delivered");
        assert_eq!(outcome.retried, 0);
        let dead = retrier.send(FlushPartition).await.expect("flushed");
        assert!(dead.retries.is_empty());
        assert_eq!(dead.dead_letters.len(), 1);
        let letter = &dead.dead_letters[0];
        assert_eq!(
            (letter.source, letter.record.offset, letter.attempt),
            (input, 2, 3)
        );
        assert_eq!(letter.class, ErrorClass::Transient);
        assert_eq!(
            letter.record.payload.as_deref(),
            Some(br#"{"userId":"c","eventType":"login"}"#.as_slice())
        );
        assert_eq!(ConsumerStats::get(&stats.retries_exhausted), 1);
    }

    #[actix::test]
    async fn a_stopped_partition_consumer_restarts_and_the_restart_is_recorded() {
        let arbiters = [Arbiter::current()];
        let router = Arc::new(Router::start(1, 4, breaker_config(), &arbiters));
        let source = SourcePartition::new(InputTopic::UserEvents, 0);
        let shared = Arc::clone(&router);
        let consumer = actix::Supervisor::start(move |_| {
            PartitionConsumer::new(
                source,
                shared,
                Arc::new(ConsumerStats::default()),
                Dedupe::new(source, 600_000, Vec::new()),
                DeadLetters::new(source, None),
                policy(),
                windows(source),
            )
        });
        consumer.send(Stop).await.expect("delivered");
        let outcome = consumer
            .send(ProcessBatch::of(vec![record(
                0,
                r#"{"userId":"a","eventType":"login"}"#,
            )]))
            .await
            .expect("the same address answers");
        assert_eq!((outcome.next_offset, outcome.applied), (1, 1));
        assert_eq!(router.restarts().total(), 1);
        assert!(router.restarts().take_unhandled());
    }
}
