//! Kafka wiring: client settings, topic provisioning, the embedded broker,
//! the ingest producer, the consumer with its exactly-once protocol
//! (`consumer/`), the changelog readers and the dead-letter reader.

pub mod admin;
pub mod changelog_reader;
pub mod client_config;
pub mod consumer;
pub mod dead_letter_reader;
pub mod embedded;
pub mod offsets;
pub mod partitioner;
pub mod producer;
pub mod records;
