//! Counters of this instance's consuming, shown by `/events/stats`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
    /// Event hops (one per event and metric) skipped because the state
    /// already included them: replays after a rollback or an offset reset.
    pub replayed_hops_skipped: AtomicU64,
    /// Offset commits that succeeded.
    pub commits: AtomicU64,
    /// Aborted transactions rolled back to the last commit.
    pub rollbacks: AtomicU64,
    /// Times the transactional producer was fenced and recreated.
    pub producer_recreated: AtomicU64,
    /// Rebalances this instance took part in.
    pub rebalances: AtomicU64,
    /// How long each commit's transaction took (state, offsets, commit).
    pub commit_seconds: Histogram,
    /// How long the partition consumers took with each poll's batches.
    pub batch_seconds: Histogram,
}

impl ConsumerStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the latency buckets, in seconds (Prometheus `le`).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram over [`LATENCY_BUCKETS`]; lock-free, shared by reference.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// A histogram as read at one moment: cumulative counts per bucket bound,
/// then the total count (`+Inf`) and the sum in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub cumulative: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let cumulative = LATENCY_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(bound, n)| {
                running += n.load(Ordering::Relaxed);
                (*bound, running)
            })
            .collect();
        // Read after the buckets: a scrape racing an observation may count
        // it in +Inf but not yet in its bucket, never the other way round.
        let count = self.count.load(Ordering::Relaxed).max(running);
        HistogramSnapshot {
            cumulative,
            count,
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(300)); // <= 0.0005
        h.observe(Duration::from_millis(1)); // <= 0.001, on the bound
        h.observe(Duration::from_millis(30)); // <= 0.05
        h.observe(Duration::from_secs(20)); // +Inf only
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.cumulative[0], (0.000_5, 1));
        assert_eq!(s.cumulative[1], (0.001, 2));
        assert_eq!(s.cumulative[5], (0.025, 2));
        assert_eq!(s.cumulative[6], (0.05, 3));
        assert_eq!(s.cumulative[13], (10.0, 3));
        assert!((s.sum_seconds - 20.0313).abs() < 1e-9, "{}", s.sum_seconds);
    }
}
