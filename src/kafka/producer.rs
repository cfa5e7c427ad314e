//! The ingest producer: idempotent, `acks=all`, keyed by userId, and an
//! answer only once Kafka has acknowledged the write.
//!
//! A request's records are handed to librdkafka together and awaited
//! together: each carries a ticket (its request's [`Pending`] and its place
//! in it) that the producer's polling thread settles when the record is
//! acknowledged or fails, and the request is woken once, when the last one
//! is settled. rust-rdkafka's `FutureProducer` gives every record its own
//! channel, future, wake-up and timer; for a batch of 1,000 events that
//! machinery cost more than the producing itself.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use arus_config::Settings;
use futures::task::AtomicWaker;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message as _, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use super::{client_config, records};

/// Where an event was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub partition: i32,
    pub offset: i64,
}

/// Why an event was not written. Every variant means "not written", so the
/// caller never answers 2xx for it.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("the producer queue is full")]
    QueueFull,
    #[error("the event is larger than Kafka accepts")]
    TooLarge,
    #[error("Kafka did not acknowledge the write: {0}")]
    NotAcknowledged(KafkaError),
    #[error("Kafka did not acknowledge the write within {0} ms")]
    Deadline(u64),
}

fn is_timeout(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageTimedOut | RDKafkaErrorCode::RequestTimedOut)
    )
}

impl From<KafkaError> for ProduceError {
    fn from(error: KafkaError) -> Self {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::QueueFull) => ProduceError::QueueFull,
            Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize) => {
                ProduceError::TooLarge
            }
            _ => ProduceError::NotAcknowledged(error),
        }
    }
}

/// What became of one record.
enum Outcome {
    /// Acknowledged: where it was written, and how long that took.
    Written(Written, Duration),
    /// Taken by librdkafka, then not written.
    Failed(KafkaError),
    /// Refused by librdkafka at once (a full queue, a record too large):
    /// never sent, so no sign of a failing broker.
    Refused(KafkaError),
}

/// The records of one request, until each is acknowledged or has failed.
struct Pending {
    /// Each record's outcome, by its place in the request.
    outcomes: Mutex<Vec<Option<Outcome>>>,
    /// Records not settled yet.
    unsettled: AtomicUsize,
    /// The request, woken when the last record is settled.
    waker: AtomicWaker,
    sent_at: Instant,
}

impl Pending {
    fn new(records: usize) -> Self {
        Self {
            outcomes: Mutex::new((0..records).map(|_| None).collect()),
            unsettled: AtomicUsize::new(records),
            waker: AtomicWaker::new(),
            sent_at: Instant::now(),
        }
    }

    fn settle(&self, index: usize, outcome: Outcome) {
        {
            let mut outcomes = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
            // Gone when the request stopped waiting (its deadline).
            if let Some(slot) = outcomes.get_mut(index) {
                *slot = Some(outcome);
            }
        }
        if self.unsettled.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.waker.wake();
        }
    }

    /// Resolves once every record is settled.
    async fn settled(&self) {
        std::future::poll_fn(|cx| {
            if self.unsettled.load(Ordering::Acquire) == 0 {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            if self.unsettled.load(Ordering::Acquire) == 0 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// The outcomes as they are now; records settled later are not kept.
    fn take(&self) -> Vec<Option<Outcome>> {
        std::mem::take(&mut *self.outcomes.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A record's delivery opaque: its request and its place there.
struct Ticket {
    pending: Arc<Pending>,
    index: usize,
}

/// Settles each record's ticket from librdkafka's delivery report, on the
/// producer's polling thread.
struct Acknowledgements;

impl ClientContext for Acknowledgements {}

impl ProducerContext for Acknowledgements {
    type DeliveryOpaque = Box<Ticket>;

    fn delivery(&self, result: &DeliveryResult<'_>, ticket: Box<Ticket>) {
        let outcome = match result {
            Ok(message) => Outcome::Written(
                Written {
                    partition: message.partition(),
                    offset: message.offset(),
                },
                ticket.pending.sent_at.elapsed(),
            ),
            Err((error, _)) => Outcome::Failed(error.clone()),
        };
        ticket.pending.settle(ticket.index, outcome);
    }
}

type IngestProducer = ThreadedProducer<Acknowledgements>;

/// One record to write.
struct Outgoing<'a> {
    topic: &'a str,
    partition: Option<i32>,
    key: Option<&'a [u8]>,
    payload: Option<&'a [u8]>,
    headers: OwnedHeaders,
    timestamp_ms: Option<i64>,
}

/// What ingest stamps on each record of a request: the schema version its
/// events were checked against, and the time they were checked at as the
/// record's timestamp, so the consumer's check of an event's time against
/// its record's is the very check ingest made.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    pub schema_version: &'static str,
    pub timestamp_ms: i64,
}

/// The most bytes a record's framing adds to its key, value and headers in
/// librdkafka's size check (`message.max.bytes` bounds the whole): a
/// record batch header (61) and a record's varints and attributes, with
/// room to spare.
pub const RECORD_OVERHEAD: usize = 128;

/// Broker errors in a row (not timeouts, not full queues) after which the
/// producer is recreated.
const FAILURES_BEFORE_RECREATE: u32 = 3;

pub struct EventProducer {
    /// Swapped for a fresh one when the broker keeps failing this one's
    /// writes: an idempotent producer whose producer id the broker lost (a
    /// broker restart on some storage) is refused forever, and a fatal
    /// idempotence error can only be cleared by a new producer.
    producer: std::sync::RwLock<Arc<IngestProducer>>,
    config: rdkafka::ClientConfig,
    failures: std::sync::atomic::AtomicU32,
    /// Bumped with every new producer, so that failures of the old one's
    /// records do not count against the new one.
    generation: std::sync::atomic::AtomicU64,
    source: String,
    /// The longest an answer waits for an acknowledgement: librdkafka's
    /// message timeout is checked only now and then, and a producer that
    /// cannot reach its broker may hold a record past it.
    deadline: Duration,
    /// Time from handing a record to librdkafka to its acknowledgement.
    pub acknowledged_seconds: arus_actors::Histogram,
    /// Records not written (refused, not acknowledged, or too late).
    pub failed: std::sync::atomic::AtomicU64,
}

fn create(config: &rdkafka::ClientConfig) -> Result<Arc<IngestProducer>, KafkaError> {
    config.create_with_context(Acknowledgements).map(Arc::new)
}

impl EventProducer {
    pub fn new(settings: &Settings, brokers: &str) -> Result<Self, KafkaError> {
        let config = client_config::producer(settings, brokers);
        Ok(Self {
            producer: std::sync::RwLock::new(create(&config)?),
            config,
            failures: std::sync::atomic::AtomicU32::new(0),
            generation: std::sync::atomic::AtomicU64::new(0),
            source: format!("arus/{}", settings.instance_id),
            deadline: Duration::from_millis(settings.kafka.produce_timeout_ms),
            acknowledged_seconds: arus_actors::Histogram::new(
                "arus_produce_acknowledged_seconds",
                "Time from handing an ingested record to the producer to Kafka's acknowledgement.",
            ),
            failed: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Writes one record and waits for Kafka's acknowledgement. Returns at
    /// once with `QueueFull` when librdkafka's queue is full, rather than
    /// buffering without bound.
    pub async fn send(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        correlation_id: &str,
        stamp: Stamp,
    ) -> Result<Written, ProduceError> {
        only(
            self.send_all(topic, [(key, payload)], correlation_id, stamp)
                .await,
        )
    }

    /// The bytes of arus's headers on a record of this producer, as
    /// librdkafka counts them toward `message.max.bytes` (names and
    /// values), without the trace context.
    pub fn header_bytes(&self, correlation_id: &str, stamp: Stamp) -> usize {
        "correlation-id".len()
            + correlation_id.len()
            + "source".len()
            + self.source.len()
            + arus_actors::model::source::SCHEMA_VERSION_HEADER.len()
            + stamp.schema_version.len()
            // traceparent and tracestate, when tracing is on.
            + if crate::telemetry::tracing_on() { 512 } else { 0 }
    }

    /// Writes records (key, value) to `topic`, each with arus's headers,
    /// and waits until every one is acknowledged or has failed (or the
    /// deadline passed): one result per record, in their order.
    pub async fn send_all<'r>(
        &self,
        topic: &str,
        records: impl IntoIterator<Item = (&'r str, &'r [u8])>,
        correlation_id: &str,
        stamp: Stamp,
    ) -> Vec<Result<Written, ProduceError>> {
        let traced = crate::telemetry::tracing_on();
        let mut spans = Vec::new();
        let outgoing: Vec<Outgoing<'_>> = records
            .into_iter()
            .map(|(key, payload)| {
                let mut headers = OwnedHeaders::new_with_capacity(if traced { 5 } else { 3 })
                    .insert(Header {
                        key: "correlation-id",
                        value: Some(correlation_id),
                    })
                    .insert(Header {
                        key: "source",
                        value: Some(self.source.as_str()),
                    })
                    .insert(Header {
                        key: arus_actors::model::source::SCHEMA_VERSION_HEADER,
                        value: Some(stamp.schema_version),
                    });
                if traced {
                    let span = publish_span(topic, key);
                    // The consumer's span continues this one's trace.
                    for (name, value) in crate::telemetry::propagation::headers_of(&span) {
                        headers = headers.insert(Header {
                            key: &name,
                            value: Some(&value),
                        });
                    }
                    spans.push(span);
                }
                Outgoing {
                    topic,
                    partition: None,
                    key: Some(key.as_bytes()),
                    payload: Some(payload),
                    headers,
                    timestamp_ms: Some(stamp.timestamp_ms),
                }
            })
            .collect();
        let results = self.deliver(outgoing).await;
        for (span, result) in spans.iter().zip(&results) {
            if let Ok(w) = result {
                span.record("messaging.destination.partition.id", w.partition);
                span.record("messaging.kafka.offset", w.offset);
            }
        }
        results
    }

    /// Writes a record as given (a dead letter's replay): key, value and
    /// headers untouched, to `partition` if one is named.
    pub async fn send_raw(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: &[(String, Option<Vec<u8>>)],
    ) -> Result<Written, ProduceError> {
        let record = Outgoing {
            topic,
            partition,
            key,
            payload,
            headers: records::owned_headers_of(headers),
            timestamp_ms: None,
        };
        only(self.deliver(vec![record]).await)
    }

    /// Hands every record to librdkafka, then waits for all of them
    /// together, up to the deadline.
    async fn deliver(&self, records: Vec<Outgoing<'_>>) -> Vec<Result<Written, ProduceError>> {
        let generation = self.generation.load(Ordering::Acquire);
        let producer = self.current();
        let pending = Arc::new(Pending::new(records.len()));
        for (index, r) in records.into_iter().enumerate() {
            let record = BaseRecord {
                topic: r.topic,
                partition: r.partition,
                payload: r.payload,
                key: r.key,
                timestamp: r.timestamp_ms,
                headers: Some(r.headers),
                delivery_opaque: Box::new(Ticket {
                    pending: Arc::clone(&pending),
                    index,
                }),
            };
            // Refused at once (a full queue, a record too large): settled
            // now; its ticket comes back with it and is dropped.
            if let Err((error, _record)) = producer.send(record) {
                pending.settle(index, Outcome::Refused(error));
            }
        }
        drop(producer);
        // Not acknowledged in time: not accepted (it may still be written;
        // a client's retry with the same eventId counts once).
        let _in_time = tokio::time::timeout(self.deadline, pending.settled()).await;
        pending
            .take()
            .into_iter()
            .map(|outcome| self.account(generation, outcome))
            .collect()
    }

    /// One record's result, counted in the producer's metrics and failure
    /// streak.
    fn account(&self, generation: u64, outcome: Option<Outcome>) -> Result<Written, ProduceError> {
        let result = match outcome {
            Some(Outcome::Written(written, took)) => {
                self.failures.store(0, Ordering::Relaxed);
                self.acknowledged_seconds.observe(took);
                return Ok(written);
            }
            Some(Outcome::Refused(error)) => ProduceError::from(error),
            Some(Outcome::Failed(error)) => {
                let error = ProduceError::from(error);
                if matches!(&error, ProduceError::NotAcknowledged(e) if !is_timeout(e)) {
                    self.failed(generation);
                }
                error
            }
            None => ProduceError::Deadline(self.deadline.as_millis() as u64),
        };
        self.failed.fetch_add(1, Ordering::Relaxed);
        Err(result)
    }

    fn current(&self) -> Arc<IngestProducer> {
        Arc::clone(&self.producer.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Counts a broker failure; at the limit, swaps in a new producer (the
    /// old one's queued records still finish or time out on their own).
    fn failed(&self, generation: u64) {
        if generation != self.generation.load(Ordering::Acquire) {
            return;
        }
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < FAILURES_BEFORE_RECREATE {
            return;
        }
        match create(&self.config) {
            Ok(fresh) => {
                let mut producer = self.producer.write().unwrap_or_else(|p| p.into_inner());
                if generation != self.generation.load(Ordering::Acquire) {
                    return; // another request swapped it already
                }
                *producer = fresh;
                self.generation.fetch_add(1, Ordering::AcqRel);
                self.failures.store(0, Ordering::Relaxed);
                tracing::warn!(
                    failures,
                    "ingest producer recreated after broker failures in a row"
                );
            }
            Err(error) => tracing::error!(%error, "cannot recreate the ingest producer"),
        }
    }

    /// Waits for every queued record to be acknowledged, up to `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.current().flush(timeout)
    }
}

/// The result of a request of one record.
fn only(mut results: Vec<Result<Written, ProduceError>>) -> Result<Written, ProduceError> {
    results
        .pop()
        .unwrap_or(Err(ProduceError::NotAcknowledged(KafkaError::Canceled)))
}

/// The span of one record's publication, when traces are exported.
fn publish_span(topic: &str, key: &str) -> tracing::Span {
    tracing::info_span!(
        "publish",
        otel.name = %format!("{topic} publish"),
        otel.kind = "producer",
        messaging.system = "kafka",
        messaging.destination.name = %topic,
        messaging.kafka.message.key = %key,
        messaging.destination.partition.id = tracing::field::Empty,
        messaging.kafka.offset = tracing::field::Empty,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(offset: i64) -> Outcome {
        Outcome::Written(
            Written {
                partition: 1,
                offset,
            },
            Duration::from_millis(2),
        )
    }

    #[actix_web::test]
    async fn a_request_wakes_once_its_last_record_is_settled_with_outcomes_in_order() {
        let pending = Arc::new(Pending::new(3));
        let settler = Arc::clone(&pending);
        // Settled out of order, from another thread, as the polling thread does.
        let thread = std::thread::spawn(move || {
            settler.settle(2, written(12));
            settler.settle(0, written(10));
            settler.settle(1, Outcome::Failed(KafkaError::Canceled));
        });
        tokio::time::timeout(Duration::from_secs(5), pending.settled())
            .await
            .expect("woken once all three are settled");
        thread.join().expect("settler");
        let outcomes = pending.take();
        assert_eq!(outcomes.len(), 3);
        let offsets: Vec<Option<i64>> = outcomes
            .iter()
            .map(|o| match o {
                Some(Outcome::Written(w, _)) => Some(w.offset),
                _ => None,
            })
            .collect();
        assert_eq!(offsets, vec![Some(10), None, Some(12)]);
        assert!(matches!(
            outcomes[1],
            Some(Outcome::Failed(KafkaError::Canceled))
        ));
    }

    #[actix_web::test]
    async fn records_settled_after_the_deadline_are_not_kept() {
        let pending = Pending::new(2);
        pending.settle(0, written(7));
        let waited = tokio::time::timeout(Duration::from_millis(20), pending.settled()).await;
        assert!(waited.is_err(), "one record is still unsettled");
        let outcomes = pending.take();
        assert!(matches!(
            outcomes[0],
            Some(Outcome::Written(Written { offset: 7, .. }, _))
        ));
        assert!(outcomes[1].is_none());
        // The late acknowledgement finds no slot and changes nothing.
        pending.settle(1, written(8));
        assert!(pending.take().is_empty());
        pending.settled().await;
    }
}
