//! Aggregating: the router that splits batches by metric and key, the
//! aggregator shard actors, one state machine per metric, the breakers on
//! the hops to them, and their supervision.

pub mod aggregator_shard;
pub mod breaker;
pub mod metrics;
pub mod router;
pub mod supervision;
