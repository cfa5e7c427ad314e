//! The ingest producer: idempotent, `acks=all`, keyed by userId, and an
//! answer only once Kafka has acknowledged the write.

use std::sync::atomic::Ordering;
use std::time::Duration;

use arus_config::Settings;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tracing::Instrument as _;

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

/// Broker errors in a row (not timeouts, not full queues) after which the
/// producer is recreated.
const FAILURES_BEFORE_RECREATE: u32 = 3;

pub struct EventProducer {
    /// Swapped for a fresh one when the broker keeps failing this one's
    /// writes: an idempotent producer whose producer id the broker lost (a
    /// broker restart on some storage) is refused forever, and a fatal
    /// idempotence error can only be cleared by a new producer.
    producer: std::sync::RwLock<FutureProducer>,
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

impl EventProducer {
    pub fn new(settings: &Settings, brokers: &str) -> Result<Self, KafkaError> {
        Ok(Self {
            producer: std::sync::RwLock::new(client_config::producer(settings, brokers).create()?),
            config: client_config::producer(settings, brokers),
            failures: std::sync::atomic::AtomicU32::new(0),
            generation: std::sync::atomic::AtomicU64::new(0),
            source: format!("arus/{}", settings.instance_id),
            deadline: Duration::from_millis(settings.kafka.produce_timeout_ms),
            acknowledged_seconds: arus_actors::Histogram::default(),
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
    ) -> Result<Written, ProduceError> {
        let span = if crate::telemetry::tracing_on() {
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
        } else {
            tracing::Span::none()
        };
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: "correlation-id",
                value: Some(correlation_id),
            })
            .insert(Header {
                key: "source",
                value: Some(self.source.as_str()),
            })
            .insert(Header {
                key: arus_actors::source::SCHEMA_VERSION_HEADER,
                value: Some(arus_actors::schema::CURRENT_VERSION),
            });
        // The consumer's span continues this one's trace.
        let trace_headers = if crate::telemetry::tracing_on() {
            crate::telemetry::propagation::headers_of(&span)
        } else {
            Vec::new()
        };
        for (name, value) in trace_headers {
            headers = headers.insert(Header {
                key: &name,
                value: Some(&value),
            });
        }
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(payload)
            .headers(headers);
        let written = self.deliver(record).instrument(span.clone()).await;
        if let Ok(w) = &written {
            span.record("messaging.destination.partition.id", w.partition);
            span.record("messaging.kafka.offset", w.offset);
        }
        written
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
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(topic).headers(records::owned_headers_of(headers));
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(v) = payload {
            record = record.payload(v);
        }
        self.deliver(record).await
    }

    async fn deliver<K, P>(&self, record: FutureRecord<'_, K, P>) -> Result<Written, ProduceError>
    where
        K: rdkafka::message::ToBytes + ?Sized,
        P: rdkafka::message::ToBytes + ?Sized,
    {
        let started = std::time::Instant::now();
        let result = self.deliver_once(record).await;
        match &result {
            Ok(_) => self.acknowledged_seconds.observe(started.elapsed()),
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }

    async fn deliver_once<K, P>(
        &self,
        record: FutureRecord<'_, K, P>,
    ) -> Result<Written, ProduceError>
    where
        K: rdkafka::message::ToBytes + ?Sized,
        P: rdkafka::message::ToBytes + ?Sized,
    {
        let generation = self.generation.load(Ordering::Acquire);
        let delivery = self
            .current()
            .send_result(record)
            .map_err(|(error, _)| ProduceError::from(error))?;
        let Ok(delivered) = tokio::time::timeout(self.deadline, delivery).await else {
            // Not acknowledged in time: not accepted (it may still be
            // written; a client's retry with the same eventId counts once).
            return Err(ProduceError::Deadline(self.deadline.as_millis() as u64));
        };
        match delivered {
            Ok(Ok(d)) => {
                self.failures.store(0, Ordering::Relaxed);
                Ok(Written {
                    partition: d.partition,
                    offset: d.offset,
                })
            }
            Ok(Err((error, _))) => {
                let error = ProduceError::from(error);
                if matches!(&error, ProduceError::NotAcknowledged(e) if !is_timeout(e)) {
                    self.failed(generation);
                }
                Err(error)
            }
            Err(_canceled) => Err(ProduceError::NotAcknowledged(KafkaError::Canceled)),
        }
    }

    fn current(&self) -> FutureProducer {
        self.producer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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
        match self.config.create::<FutureProducer>() {
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
