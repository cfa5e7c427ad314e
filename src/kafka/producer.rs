//! The ingest producer: idempotent, `acks=all`, keyed by userId, and an
//! answer only once Kafka has acknowledged the write.

use std::time::Duration;

use arus_config::Settings;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use super::client_config;

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

pub struct EventProducer {
    producer: FutureProducer,
    source: String,
}

impl EventProducer {
    pub fn new(settings: &Settings, brokers: &str) -> Result<Self, KafkaError> {
        Ok(Self {
            producer: client_config::producer(settings, brokers).create()?,
            source: format!("arus/{}", settings.instance_id),
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
        let headers = OwnedHeaders::new()
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
                value: Some(arus_actors::source::SCHEMA_VERSIONS[0]),
            });
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(payload)
            .headers(headers);
        self.deliver(record).await
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
        let mut owned = OwnedHeaders::new_with_capacity(headers.len());
        for (name, value) in headers {
            owned = owned.insert(Header {
                key: name.as_str(),
                value: value.as_deref(),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(owned);
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
        let delivery = self
            .producer
            .send_result(record)
            .map_err(|(error, _)| ProduceError::from(error))?;
        match delivery.await {
            Ok(Ok(d)) => Ok(Written {
                partition: d.partition,
                offset: d.offset,
            }),
            Ok(Err((error, _))) => Err(error.into()),
            Err(_canceled) => Err(ProduceError::NotAcknowledged(KafkaError::Canceled)),
        }
    }

    /// Waits for every queued record to be acknowledged, up to `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }
}
