//! Kafka wiring: client settings, topic provisioning, the embedded broker,
//! the ingest producer, the consumer driver with its transactional
//! committer, and the changelog readers.

mod abort_streak;
pub mod admin;
pub mod changelog_reader;
pub mod client_config;
pub mod committer;
pub mod consumer_driver;
pub mod dead_letters;
pub mod embedded;
pub mod offsets;
mod partitions;
pub mod producer;
pub mod records;
pub mod reset;
mod resume;
mod retry_hold;
