//! The arus actor system: the data model, state and its changelog codec,
//! the partition consumers, the aggregator shards and the read model.
//!
//! ```text
//! consumer driver (src/, its own thread)
//!   │ ProcessBatch: a poll's worth of one partition            consume/messages.rs
//!   ▼
//! PartitionConsumer (one per assigned partition)              consume/partition_consumer.rs
//!   │ decode + validate against the schema files              consume/decode.rs, model/schema.rs
//!   │ event time within bounds                                model/event_time.rs
//!   │ a retried eventId (same content, same partition) dropped consume/dedupe.rs
//!   │ bad records → dead letters; failed hops → retry topic    consume/dead_letter.rs, consume/retry.rs
//!   │ Router::split: per metric, by stable hash of its key     aggregate/router.rs
//!   ▼ one hop per shard, through its breaker                  consume/hop.rs, aggregate/breaker.rs
//! AggregatorShard<EventCounts | Users | TopPages | Sessions>  aggregate/aggregator_shard.rs, aggregate/metrics.rs
//!   │ apply unless the entry's `as_of` already includes it     state/entries.rs, state/table.rs
//!   │ Flush at each commit: the changed entries
//!   ▼
//! changelog (Kafka; codec in state/changelog.rs) ──▶ ReadModel (all partitions) ──▶ queries
//!                                                    read_model/
//! ```
//!
//! Folders by role: `model/` what an event is and how it is checked (no
//! actors), `state/` what is kept and how it is written, `consume/` and
//! `aggregate/` the two kinds of actor and what they use, `read_model/`
//! what queries read. Dependencies point from the actors to `state` and
//! `model`, never back.
//!
//! Batches, not single events, cross every actor boundary: one message per
//! partition per poll, and one per shard per such batch. Every hop is a
//! bounded `send().await`, so a slow shard slows the poll loop instead of
//! filling memory. This crate knows nothing of Kafka clients or HTTP.

pub mod aggregate;
pub mod consume;
pub mod model;
pub mod read_model;
pub mod state;
mod stats;
pub mod window;

pub use aggregate::aggregator_shard::{
    AggregatorShard, Apply, ApplyOutcome, Flush, Forget, Outage, Restore, ShardRefused,
};
pub use aggregate::router::{key_hash, BreakerView, MetricSet, Router};
pub use consume::partition_consumer::{
    decode, BatchOutcome, DecodeError, ErrorClass, FlushPartition, PartitionConsumer,
    PartitionFlush, ProcessBatch, ProcessError,
};
pub use model::metric_kind::{EntryKind, MetricKind};
pub use read_model::ReadModel;
pub use stats::{ConsumerStats, Histogram, LATENCY_BUCKETS};
