//! Counters and latency histograms of this instance's consuming, shown by
//! `/events/stats` and served by `/metrics`. They are the Prometheus
//! library's own types, each declared here once with its name and help.

use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{HistogramOpts, IntCounter};

#[derive(Debug)]
pub struct ConsumerStats {
    /// Records polled from the input topics.
    pub records_consumed: IntCounter,
    /// Records skipped because they could not be decoded or validated.
    pub records_invalid: IntCounter,
    /// Records this instance sent to the dead-letter topic.
    pub dead_letters: IntCounter,
    /// Client retries dropped by eventId.
    pub duplicates_dropped: IntCounter,
    /// Event hops handed to the retry topic (one per event and metric).
    pub retries_scheduled: IntCounter,
    /// Retried event hops applied.
    pub retries_applied: IntCounter,
    /// Retried events whose attempts ran out: dead letters.
    pub retries_exhausted: IntCounter,
    /// Events the aggregators applied.
    pub events_applied: IntCounter,
    /// Event hops (one per event and metric) skipped because the state
    /// already included them: replays after a rollback or an offset reset.
    pub replayed_hops_skipped: IntCounter,
    /// Offset commits that succeeded.
    pub commits: IntCounter,
    /// Aborted transactions rolled back to the last commit.
    pub rollbacks: IntCounter,
    /// Times the transactional producer was fenced and recreated.
    pub producer_recreated: IntCounter,
    /// Rebalances this instance took part in.
    pub rebalances: IntCounter,
    /// Fetches that had left out records in the log, fetched again.
    pub input_holes_filled: IntCounter,
    /// How long each commit's transaction took (state, offsets, commit).
    pub commit_seconds: Histogram,
    /// How long the partition consumers took with each poll's batches.
    pub batch_seconds: Histogram,
}

/// A counter of the library; the names below are constants, so a bad one
/// is a bug that the first test finds.
fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"))
}

impl Default for ConsumerStats {
    fn default() -> Self {
        Self {
            records_consumed: counter("arus_records_consumed_total", "Input records this instance polled."),
            records_invalid: counter(
                "arus_records_invalid_total",
                "Input records that could not be decoded or validated.",
            ),
            dead_letters: counter(
                "arus_dead_letters_total",
                "Records this instance sent to the dead-letter topic.",
            ),
            duplicates_dropped: counter("arus_duplicates_dropped_total", "Client retries dropped by eventId."),
            retries_scheduled: counter(
                "arus_retries_scheduled_total",
                "Event hops (one per event and metric) sent to the retry topic.",
            ),
            retries_applied: counter("arus_retries_applied_total", "Retried event hops applied."),
            retries_exhausted: counter(
                "arus_retries_exhausted_total",
                "Retried events whose attempts ran out (sent to the dead-letter topic).",
            ),
            events_applied: counter("arus_events_applied_total", "Events the aggregators applied."),
            replayed_hops_skipped: counter(
                "arus_replayed_hops_skipped_total",
                "Event hops (one per event and metric) skipped because the state already included them (replays).",
            ),
            commits: counter(
                "arus_transactions_committed_total",
                "Transactions of state and offsets committed.",
            ),
            rollbacks: counter(
                "arus_rollbacks_total",
                "Aborted transactions rolled back to the last commit.",
            ),
            producer_recreated: counter(
                "arus_producer_recreated_total",
                "Times the fenced transactional producer was recreated.",
            ),
            rebalances: counter(
                "arus_rebalances_total",
                "Rebalance callbacks (assignments and revocations).",
            ),
            input_holes_filled: counter(
                "arus_input_holes_filled_total",
                "Fetches of an input partition that left out records that are in the log, fetched again before going on.",
            ),
            commit_seconds: Histogram::new(
                "arus_commit_seconds",
                "Time one commit's transaction (state, offsets, commit) took.",
            ),
            batch_seconds: Histogram::new(
                "arus_batch_process_seconds",
                "Time the partition consumers took with one poll's records.",
            ),
        }
    }
}

impl ConsumerStats {
    pub fn get(counter: &IntCounter) -> u64 {
        counter.get()
    }

    /// Every metric here, for a registry.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        let counters = [
            &self.records_consumed,
            &self.records_invalid,
            &self.dead_letters,
            &self.duplicates_dropped,
            &self.retries_scheduled,
            &self.retries_applied,
            &self.retries_exhausted,
            &self.events_applied,
            &self.replayed_hops_skipped,
            &self.commits,
            &self.rollbacks,
            &self.producer_recreated,
            &self.rebalances,
            &self.input_holes_filled,
        ];
        let mut all: Vec<Box<dyn Collector>> = counters
            .into_iter()
            .map(|c| Box::new(c.clone()) as Box<dyn Collector>)
            .collect();
        all.push(self.commit_seconds.collector());
        all.push(self.batch_seconds.collector());
        all
    }
}

/// Upper bounds of the latency buckets, in seconds (Prometheus `le`).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram over [`LATENCY_BUCKETS`]: the library's, observed
/// with a `Duration`.
#[derive(Debug, Clone)]
pub struct Histogram(prometheus::Histogram);

impl Histogram {
    pub fn new(name: &str, help: &str) -> Self {
        let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
        Self(
            prometheus::Histogram::with_opts(opts).unwrap_or_else(|e| panic!("metric {name}: {e}")),
        )
    }

    pub fn observe(&self, took: Duration) {
        self.0.observe(took.as_secs_f64());
    }

    /// For a registry.
    pub fn collector(&self) -> Box<dyn Collector> {
        Box::new(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = Histogram::new("t_seconds", "test");
        h.observe(Duration::from_micros(300)); // <= 0.0005
        h.observe(Duration::from_millis(1)); // <= 0.001, on the bound
        h.observe(Duration::from_millis(30)); // <= 0.05
        h.observe(Duration::from_secs(20)); // +Inf only
        let family = &h.collector().collect()[0];
        let histogram = family.get_metric()[0].get_histogram();
        assert_eq!(histogram.get_sample_count(), 4);
        let cumulative: Vec<(f64, u64)> = histogram
            .get_bucket()
            .iter()
            .map(|b| (b.upper_bound(), b.cumulative_count()))
            .collect();
        assert_eq!(cumulative[0], (0.000_5, 1));
        assert_eq!(cumulative[1], (0.001, 2));
        assert_eq!(cumulative[5], (0.025, 2));
        assert_eq!(cumulative[6], (0.05, 3));
        assert_eq!(cumulative[13], (10.0, 3));
        let sum = histogram.get_sample_sum();
        assert!((sum - 20.0313).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn every_counter_is_collected_once_under_its_name() {
        let stats = ConsumerStats::default();
        stats.commits.inc_by(3);
        let registry = prometheus::Registry::new();
        for c in stats.collectors() {
            registry.register(c).expect("names are unique");
        }
        let families = registry.gather();
        assert_eq!(families.len(), 16);
        let commits = families
            .iter()
            .find(|f| f.name() == "arus_transactions_committed_total")
            .expect("commits");
        assert_eq!(commits.get_metric()[0].get_counter().get_value(), 3.0);
    }
}
