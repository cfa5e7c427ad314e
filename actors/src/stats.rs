//! Counters of this instance's consuming, shown by `/events/stats`.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct ConsumerStats {
    /// Records polled from the input topics.
    pub records_consumed: AtomicU64,
    /// Records skipped because they could not be decoded or validated.
    pub records_invalid: AtomicU64,
    /// Records this instance sent to the dead-letter topic.
    pub dead_letters: AtomicU64,
    /// Client retries dropped by eventId.
    pub duplicates_dropped: AtomicU64,
    /// Event hops handed to the retry topic (one per event and metric).
    pub retries_scheduled: AtomicU64,
    /// Retried event hops applied.
    pub retries_applied: AtomicU64,
    /// Retried events whose attempts ran out: dead letters.
    pub retries_exhausted: AtomicU64,
    /// Events the aggregators applied.
    pub events_applied: AtomicU64,
    /// Offset commits that succeeded.
    pub commits: AtomicU64,
    /// Aborted transactions rolled back to the last commit.
    pub rollbacks: AtomicU64,
    /// Times the transactional producer was fenced and recreated.
    pub producer_recreated: AtomicU64,
    /// Rebalances this instance took part in.
    pub rebalances: AtomicU64,
}

impl ConsumerStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
