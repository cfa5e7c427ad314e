//! arus: real-time analytics on Apache Kafka.
//!
//! ```text
//! HTTP ──POST──▶ ingest (idempotent producer, acks=all, key=userId) ──▶ user-events / page-views
//!                                                                        │
//!   consumer driver (own thread, group member) ◀─────────────────────────┘
//!     │ ProcessBatch per partition (arus-actors)
//!     ▼
//!   PartitionConsumer ──▶ AggregatorShard per metric ──▶ ReadModel ──▶ query endpoints
//! ```
//!
//! `startup::Application` wires it together for `main` and for the tests.

pub mod cli;
pub mod demo;
pub mod error;
pub mod health;
pub mod http;
pub mod kafka;
pub mod lag;
pub mod startup;
pub mod stats_api;
pub mod telemetry;
