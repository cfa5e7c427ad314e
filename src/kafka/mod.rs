//! Kafka wiring: client settings, topic provisioning, the embedded broker,
//! the ingest producer and the consumer driver.

pub mod admin;
pub mod client_config;
pub mod consumer_driver;
pub mod embedded;
pub mod producer;
