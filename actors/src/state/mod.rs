//! State: the entries the aggregators keep (each with its `as_of`), the
//! per-partition table that holds them, the changelog codec that writes
//! and reads them, and the partitions' ownership records.

pub mod changelog;
mod entries;
pub mod owner;
mod table;

pub use entries::{
    Counter, DeadLetterMark, Entry, PageStats, SeenEntry, SessionState, StateUpdate, UserActivity,
    NOTHING_APPLIED,
};
pub use table::Table;
