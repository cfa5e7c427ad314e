//! State: the entries the aggregators keep (each with its `as_of`), the
//! per-partition table that holds them, and the changelog codec that
//! writes and reads them.

pub mod changelog;
mod entries;
mod table;

pub use entries::{
    Counter, DeadLetterMark, Entry, PageStats, SeenEntry, SessionState, StateUpdate, UserActivity,
    NOTHING_APPLIED,
};
pub use table::Table;
