//! `PartitionConsumer`: one per assigned input partition. Decodes a polled
//! batch, hands it to the aggregator shards, and answers once every shard has
//! applied its part, so the driver commits an offset only for applied events.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix::{
    Actor, ActorFutureExt, AtomicResponse, Context, Handler, MailboxError, Message, MessageResult,
    WrapFuture,
};
use chrono::{DateTime, Utc};
use futures::future::join_all;
use tracing::{debug, warn};

use crate::dead_letter::{DeadLetter, DeadLetters};
use crate::dedupe::{Dedupe, SeenChanges};
use crate::event::{Defaults, Event, PageView, UserEvent, ValidationError};
use crate::router::Router;
use crate::source::{
    InputTopic, RawRecord, SourcePartition, SCHEMA_VERSIONS, SCHEMA_VERSION_HEADER,
};
use crate::state::StateUpdate;
use crate::stats::ConsumerStats;

/// A poll's worth of records of this partition, in offset order.
#[derive(Message)]
#[rtype(result = "Result<BatchOutcome, ProcessError>")]
pub struct ProcessBatch {
    pub records: Vec<RawRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    /// The offset to commit: one past the last record of the batch.
    pub next_offset: i64,
    pub applied: usize,
    /// Records that could not be decoded or failed validation: dead letters.
    pub invalid: usize,
    /// Client retries of an event already counted (same eventId); skipped.
    pub duplicates: usize,
    /// Metric updates skipped because the state already included the event
    /// (a replay); an event feeds one to three metrics.
    pub replayed_updates: usize,
}

/// How a processing error is to be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// May succeed if tried again later.
    Transient,
    /// Will fail again, whatever is retried.
    Permanent,
    /// The process cannot go on correctly.
    Fatal,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("aggregator shard of {metric} did not take the batch: {source}")]
    ShardUnavailable {
        metric: &'static str,
        source: MailboxError,
    },
}

impl ProcessError {
    pub fn class(&self) -> ErrorClass {
        match self {
            // A shard only stops when the system shuts down or has failed.
            ProcessError::ShardUnavailable { .. } => ErrorClass::Transient,
        }
    }
}

/// Why a record was not decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("record has no value")]
    Empty,
    #[error("unknown schema version {0:?}")]
    UnknownSchemaVersion(String),
    #[error("value is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("{0}")]
    Invalid(#[from] ValidationError),
}

/// Decodes a record of `topic` in the seed's shapes. A missing `timestamp` is
/// the record's own timestamp, so replays decode to the same event.
pub fn decode(topic: InputTopic, record: &RawRecord) -> Result<Event, DecodeError> {
    if let Some(version) = record.header(SCHEMA_VERSION_HEADER) {
        let version = String::from_utf8_lossy(version);
        if !SCHEMA_VERSIONS.contains(&version.as_ref()) {
            return Err(DecodeError::UnknownSchemaVersion(version.into_owned()));
        }
    }
    let payload = record.payload.as_deref().ok_or(DecodeError::Empty)?;
    let value: serde_json::Value = serde_json::from_slice(payload)?;
    let now = record
        .timestamp_ms
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .unwrap_or_else(Utc::now);
    let defaults = Defaults { now };
    Ok(match topic {
        InputTopic::UserEvents => Event::User(UserEvent::from_json(&value, defaults)?),
        InputTopic::PageViews => Event::Page(PageView::from_json(&value, defaults)?),
    })
}

/// Hands over what the partition produced since the last flush, for the
/// commit transaction.
#[derive(Message)]
#[rtype(result = "PartitionFlush")]
pub struct FlushPartition;

/// A partition consumer's part of a commit.
#[derive(Debug, Default)]
pub struct PartitionFlush {
    pub seen: SeenChanges,
    pub dead_letters: Vec<DeadLetter>,
    /// The partition's dead-letter mark, when it moved.
    pub mark: Option<StateUpdate>,
}

pub struct PartitionConsumer {
    source: SourcePartition,
    router: Arc<Router>,
    stats: Arc<ConsumerStats>,
    dedupe: Dedupe,
    dead_letters: DeadLetters,
}

impl PartitionConsumer {
    pub fn new(
        source: SourcePartition,
        router: Arc<Router>,
        stats: Arc<ConsumerStats>,
        dedupe: Dedupe,
        dead_letters: DeadLetters,
    ) -> Self {
        Self {
            source,
            router,
            stats,
            dedupe,
            dead_letters,
        }
    }
}

impl Handler<FlushPartition> for PartitionConsumer {
    type Result = MessageResult<FlushPartition>;

    fn handle(&mut self, _msg: FlushPartition, _ctx: &mut Self::Context) -> Self::Result {
        let (dead_letters, mark) = self.dead_letters.flush();
        MessageResult(PartitionFlush {
            seen: self.dedupe.flush(),
            dead_letters,
            mark,
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

impl Handler<ProcessBatch> for PartitionConsumer {
    // Atomic: the next batch of this partition waits until this one is
    // applied, which keeps each key's events in offset order.
    type Result = AtomicResponse<Self, Result<BatchOutcome, ProcessError>>;

    fn handle(&mut self, msg: ProcessBatch, _ctx: &mut Self::Context) -> Self::Result {
        let source = self.source;
        let next_offset = msg.records.last().map_or(-1, |r| r.offset + 1);
        let mut events = Vec::with_capacity(msg.records.len());
        let (mut invalid, mut duplicates) = (0, 0);
        for record in &msg.records {
            match decode(source.topic, record) {
                Ok(event) => {
                    if let Some(id) = event.event_id() {
                        let at = record.timestamp_ms.unwrap_or_else(|| event.timestamp_ms());
                        if !self.dedupe.is_first(&id.to_string(), record.offset, at) {
                            duplicates += 1;
                            debug!(%source, offset = record.offset, event_id = %id, "dropped a retried event");
                            continue;
                        }
                    }
                    events.push((record.offset, Arc::new(event)));
                }
                Err(error) => {
                    invalid += 1;
                    if self
                        .dead_letters
                        .add(record, ErrorClass::Permanent, error.to_string())
                    {
                        warn!(%source, offset = record.offset, %error, "sent to dead-letter topic");
                    }
                }
            }
        }
        self.stats
            .records_consumed
            .fetch_add(msg.records.len() as u64, Ordering::Relaxed);
        self.stats
            .records_invalid
            .fetch_add(invalid as u64, Ordering::Relaxed);
        self.stats
            .duplicates_dropped
            .fetch_add(duplicates as u64, Ordering::Relaxed);
        let applied_events = events.len();
        let sends = self.router.split(source, &events);
        let stats = Arc::clone(&self.stats);
        let work = async move {
            let results = join_all(sends.into_iter().map(|(metric, shard, apply)| async move {
                shard
                    .send(apply)
                    .await
                    .map_err(|source| ProcessError::ShardUnavailable { metric, source })
            }))
            .await;
            let mut replayed_updates = 0;
            for result in results {
                replayed_updates += result?.skipped;
            }
            stats
                .events_applied
                .fetch_add(applied_events as u64, Ordering::Relaxed);
            Ok(BatchOutcome {
                next_offset,
                applied: applied_events,
                invalid,
                duplicates,
                replayed_updates,
            })
        };
        AtomicResponse::new(Box::pin(work.into_actor(self).map(|result, _, _| result)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_model::ReadModel;
    use actix::Arbiter;

    fn record(offset: i64, json: &str) -> RawRecord {
        RawRecord {
            offset,
            key: None,
            payload: Some(json.as_bytes().to_vec()),
            timestamp_ms: Some(1_700_000_000_000),
            headers: Vec::new(),
        }
    }

    #[actix::test]
    async fn batches_are_applied_once_and_invalid_records_skipped() {
        let read_model = Arc::new(ReadModel::new());
        let arbiters = [Arbiter::current()];
        let router = Arc::new(Router::start(3, 4, &arbiters));
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
            .send(ProcessBatch {
                records: batch.clone(),
            })
            .await
            .expect("delivered")
            .expect("applied");
        assert_eq!(
            outcome,
            BatchOutcome {
                next_offset: 15,
                applied: 3,
                invalid: 2,
                duplicates: 0,
                replayed_updates: 0
            }
        );
        // The same records again, as after a crash before the commit: the
        // state's as_of offsets make them no-ops.
        let again = consumer
            .send(ProcessBatch { records: batch })
            .await
            .expect("delivered")
            .expect("applied");
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
}
