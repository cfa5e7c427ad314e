//! The committer: writes changed state to the changelog and the input
//! offsets it is valid through in one Kafka transaction.
//!
//! Its calls block (transactions are synchronous in librdkafka), so it lives
//! on the consumer driver's thread, never on an actix arbiter. The driver
//! calls it at its commit barrier, when no batch is in flight.

use std::time::{Duration, Instant};

use arus_actors::consume::dead_letter::DeadLetter;
use arus_actors::consume::retry::RetryRecord;
use arus_actors::state::changelog;
use arus_actors::state::owner;
use arus_actors::state::StateUpdate;
use arus_config::Settings;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::TopicPartitionList;
use tracing::{debug, warn};

use crate::kafka::{client_config, records};

/// How a failed commit is to be handled.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The transaction was aborted: nothing of it counts. The caller rolls
    /// its partitions back to the last commit and goes on.
    #[error("transaction aborted: {0}")]
    Aborted(KafkaError),
    /// The producer cannot go on (fenced by a newer instance with the same
    /// transactional.id, or a fatal error).
    #[error("transactional producer failed: {0}")]
    Fatal(KafkaError),
}

fn is_fatal(error: &KafkaError) -> bool {
    match error {
        KafkaError::Transaction(e) => e.is_fatal(),
        other => matches!(
            other.rdkafka_error_code(),
            Some(RDKafkaErrorCode::Fatal | RDKafkaErrorCode::ProducerFenced)
        ),
    }
}

fn is_retriable(error: &KafkaError) -> bool {
    matches!(error, KafkaError::Transaction(e) if e.is_retriable())
}

pub struct Committer {
    producer: ThreadedProducer<DefaultProducerContext>,
    topic: String,
    dead_letter_topic: String,
    retry_topic: String,
    timeout: Duration,
}

/// Everything one transaction writes besides the offsets.
#[derive(Default)]
pub struct Outputs {
    /// Changed state entries, to the changelog.
    pub updates: Vec<StateUpdate>,
    /// Deleted entries (changelog partition, key): tombstones.
    pub deletes: Vec<(i32, String)>,
    /// Dead letters, with the full name of their source topic.
    pub dead_letters: Vec<(String, DeadLetter)>,
    /// Retry records, with the full name of their origin's input topic.
    pub retries: Vec<(String, RetryRecord)>,
    /// Ownership records (see `arus_actors::state::owner`): partition and
    /// value, to the changelog partition of that number.
    pub owners: Vec<(i32, Vec<u8>)>,
}

impl Outputs {
    pub fn is_empty(&self) -> bool {
        self.updates.is_empty()
            && self.deletes.is_empty()
            && self.dead_letters.is_empty()
            && self.retries.is_empty()
            && self.owners.is_empty()
    }
}

impl Committer {
    /// Creates the transactional producer and fences any older producer of
    /// this instance (its open transaction is aborted).
    pub fn new(settings: &Settings, brokers: &str) -> anyhow::Result<Self> {
        let k = &settings.kafka;
        let producer: ThreadedProducer<DefaultProducerContext> =
            client_config::transactional_producer(settings, brokers).create()?;
        let timeout = Duration::from_millis(k.transaction_timeout_ms.max(k.admin_timeout_ms));
        producer.init_transactions(timeout)?;
        Ok(Self {
            producer,
            topic: k.topic_name(&k.topics.analytics_events),
            dead_letter_topic: k.topic_name(&k.topics.error_events),
            retry_topic: k.topic_name(&k.topics.retry_events),
            timeout,
        })
    }

    /// One transaction: every update to its changelog partition, a
    /// tombstone for every deleted entry, every dead letter and retry record,
    /// and the consumer offsets. Either all of it commits or none of it does.
    pub fn commit(
        &self,
        outputs: &Outputs,
        offsets: &TopicPartitionList,
        group: &ConsumerGroupMetadata,
    ) -> Result<(), CommitError> {
        self.producer.begin_transaction().map_err(|e| {
            if is_fatal(&e) {
                CommitError::Fatal(e)
            } else {
                CommitError::Aborted(e)
            }
        })?;
        let started = Instant::now();
        let written = self.write(outputs, offsets, group);
        if started.elapsed() > Duration::from_secs(2) {
            // The poll loop waits for this: a slow transaction is a stalled partition set.
            warn!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                updates = outputs.updates.len(),
                "slow transaction"
            );
        }
        match written {
            Ok(()) => {
                debug!(
                    updates = outputs.updates.len(),
                    retries = outputs.retries.len(),
                    partitions = offsets.count(),
                    "transaction committed"
                );
                Ok(())
            }
            Err(error) if is_fatal(&error) => Err(CommitError::Fatal(error)),
            Err(error) => {
                warn!(%error, "aborting transaction");
                if let Err(abort) = self.producer.abort_transaction(self.timeout) {
                    return Err(CommitError::Fatal(abort));
                }
                Err(CommitError::Aborted(error))
            }
        }
    }

    /// Sends one record; a full queue empties as the producer's thread
    /// sends, so wait for room rather than drop a state change.
    fn send<K, P>(&self, mut record: BaseRecord<'_, K, P>) -> Result<(), KafkaError>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((error, _)) => return Err(error),
            }
        }
    }

    /// Waits, up to the transaction timeout, until every record sent is
    /// acknowledged (the producer's own thread serves the acknowledgements).
    ///
    /// `commit_transaction` flushes first, and rust-rdkafka's flush, when it
    /// finds records in flight, polls in slices of a fixed 100 ms that end
    /// only when the slice does, however soon the records are acknowledged:
    /// every transaction carrying records took 100 ms more than it needed,
    /// which was most of the read model's freshness. With nothing left in
    /// flight, its flush returns at once. What is still in flight after the
    /// wait is left to `commit_transaction`, which fails the transaction if
    /// it cannot be delivered.
    fn wait_delivered(&self) {
        let deadline = Instant::now() + self.timeout;
        while self.producer.in_flight_count() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn write(
        &self,
        outputs: &Outputs,
        offsets: &TopicPartitionList,
        group: &ConsumerGroupMetadata,
    ) -> Result<(), KafkaError> {
        let (mut key, mut value) = (String::new(), Vec::new());
        for update in &outputs.updates {
            let partition =
                changelog::encode_into(update, &mut key, &mut value).map_err(|error| {
                    warn!(%error, "cannot encode state entry");
                    KafkaError::MessageProduction(RDKafkaErrorCode::InvalidRecord)
                })?;
            self.send(
                BaseRecord::to(&self.topic)
                    .partition(partition)
                    .key(key.as_str())
                    .payload(value.as_slice()),
            )?;
        }
        for (partition, value) in &outputs.owners {
            let key = owner::owner_key(*partition);
            self.send(
                BaseRecord::to(&self.topic)
                    .partition(*partition)
                    .key(key.as_str())
                    .payload(value.as_slice()),
            )?;
        }
        for (partition, key) in &outputs.deletes {
            // No value: a tombstone, which compaction removes with the key.
            self.send(
                BaseRecord::<str, [u8]>::to(&self.topic)
                    .partition(*partition)
                    .key(key.as_str()),
            )?;
        }
        for (topic, letter) in &outputs.dead_letters {
            // The record as it was (key, value, headers), and why it is here.
            let error = letter.error_headers(topic);
            let headers = records::owned_headers(
                letter
                    .record
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_deref()))
                    .chain(error.iter().map(|(k, v)| (*k, Some(v.as_bytes())))),
            );
            let mut record: BaseRecord<'_, [u8], [u8]> =
                BaseRecord::to(&self.dead_letter_topic).headers(headers);
            if let Some(key) = &letter.record.key {
                record = record.key(key.as_slice());
            }
            if let Some(value) = &letter.record.payload {
                record = record.payload(value.as_slice());
            }
            self.send(record)?;
        }
        for (topic, retry) in &outputs.retries {
            // To the retry partition numbered as the origin partition, so
            // every copy of one retry lands where one seen-set sees it.
            let headers = records::owned_headers_of(&retry.all_headers(topic));
            let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.retry_topic)
                .partition(retry.origin.source.partition)
                .headers(headers);
            if let Some(key) = &retry.key {
                record = record.key(key.as_slice());
            }
            if let Some(value) = &retry.payload {
                record = record.payload(value.as_slice());
            }
            self.send(record)?;
        }
        if offsets.count() > 0 {
            self.producer
                .send_offsets_to_transaction(offsets, group, self.timeout)?;
        }
        self.wait_delivered();
        let mut attempts = 0;
        loop {
            match self.producer.commit_transaction(self.timeout) {
                Ok(()) => return Ok(()),
                Err(error) if is_retriable(&error) && attempts < 3 => {
                    attempts += 1;
                    warn!(%error, attempts, "retrying transaction commit");
                }
                Err(error) => return Err(error),
            }
        }
    }
}
