//! The arus actor system.
//!
//! ```text
//! consumer driver (src/, its own thread)
//!   │ ProcessBatch: a poll's worth of one partition
//!   ▼
//! PartitionConsumer (one per assigned partition)
//!   │ decode + validate; invalid records are skipped, never counted
//!   │ a retried eventId (same partition, within the window) is dropped
//!   │ Router::split: per metric, by stable hash of the metric's key
//!   ▼
//! AggregatorShard<EventCounts | Users | TopPages | Sessions>  (N shards each, bounded mailboxes)
//!   │ apply unless the entry's `as_of` already includes the offset
//!   │ Flush at each commit: the changed entries, written to the changelog
//!   ▼
//! changelog (Kafka) ──▶ ReadModel (dashmap, all partitions) ──▶ query endpoints
//! ```
//!
//! Batches, not single events, cross every actor boundary: one message per
//! partition per poll, and one per shard per such batch. Every hop is a
//! bounded `send().await`, so a slow shard slows the poll loop instead of
//! filling memory. This crate knows nothing of Kafka clients or HTTP.

mod activity;
mod aggregator_shard;
pub mod breaker;
pub mod changelog;
pub mod dead_letter;
pub mod dedupe;
pub mod event;
pub mod event_time;
pub mod json;
pub mod metric_kind;
pub mod metrics;
mod partition_consumer;
pub mod read_model;
pub mod retry;
mod router;
pub mod schema;
pub mod source;
pub mod state;
mod stats;
pub mod supervision;

pub use aggregator_shard::{
    AggregatorShard, Apply, ApplyOutcome, Flush, Forget, Outage, Restore, ShardRefused,
};
pub use metric_kind::{EntryKind, MetricKind};
pub use partition_consumer::{
    decode, BatchOutcome, DecodeError, ErrorClass, FlushPartition, PartitionConsumer,
    PartitionFlush, ProcessBatch, ProcessError,
};
pub use read_model::ReadModel;
pub use router::{key_hash, BreakerView, MetricSet, Router};
pub use stats::{ConsumerStats, Histogram, HistogramSnapshot};
