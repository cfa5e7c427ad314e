//! How old the first unread record of a partition is, without reading it:
//! each partition keeps when the monitor first and last saw each end
//! offset. The record at the committed offset was appended after the last
//! sighting of an end at or below it and no later than the first sighting
//! of an end past it; its time is interpolated between the two.

use std::collections::VecDeque;

/// Samples kept per partition: at one per lag interval (5 s by default),
/// an hour of history. Older lag is reported as at least that old.
const CAPACITY: usize = 720;

#[derive(Debug, Default)]
pub struct OffsetHistory {
    /// (end offset, first seen, last seen), times in ms, all increasing.
    samples: VecDeque<(i64, i64, i64)>,
}

impl OffsetHistory {
    /// The partition's end offset as read at `at_ms`.
    pub fn record(&mut self, end: i64, at_ms: i64) {
        match self.samples.back_mut() {
            Some((last, _, seen)) if end == *last => {
                *seen = at_ms;
                return;
            }
            // The partition was recreated or truncated: the past is moot.
            Some(&mut (last, _, _)) if end < last => self.samples.clear(),
            _ => {}
        }
        if self.samples.len() == CAPACITY {
            self.samples.pop_front();
        }
        self.samples.push_back((end, at_ms, at_ms));
    }

    /// Milliseconds since the record at offset `next` (the first the group
    /// has not read) was appended, as of `now_ms`; 0 when the history shows
    /// no record at or after it.
    pub fn age_ms(&self, next: i64, now_ms: i64) -> i64 {
        let Some(i) = self.samples.iter().position(|&(end, _, _)| end > next) else {
            return 0;
        };
        let (end1, t1, _) = self.samples[i];
        let appended = match i.checked_sub(1).map(|j| self.samples[j]) {
            // Offsets end0..end1 were appended after t0 (the end was still
            // end0 then) and by t1.
            Some((end0, _, t0)) => t0 + (t1 - t0) * (next - end0 + 1) / (end1 - end0),
            // Older than the history: at least this old.
            None => t1,
        };
        (now_ms - appended).max(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_up_partition_has_no_age() {
        let mut h = OffsetHistory::default();
        h.record(100, 1_000);
        assert_eq!(h.age_ms(100, 9_000), 0);
        assert_eq!(OffsetHistory::default().age_ms(0, 9_000), 0);
    }

    #[test]
    fn the_age_is_interpolated_between_the_samples_around_the_offset() {
        let mut h = OffsetHistory::default();
        h.record(100, 10_000);
        h.record(100, 15_000); // still 100: nothing was appended before 15 s
        h.record(200, 20_000);
        h.record(300, 30_000);
        // Offsets 100..199 were appended between 15 s and 20 s; 149 is the
        // 50th of them: 17.5 s.
        assert_eq!(h.age_ms(149, 40_000), 22_500);
        // The last record of that span: when the span was first seen.
        assert_eq!(h.age_ms(199, 40_000), 20_000);
        // 200..299 between 20 s and 30 s; 200 is the first: 20.1 s.
        assert_eq!(h.age_ms(200, 40_000), 19_900);
        // Older than the history: as old as its first sample, at least.
        assert_eq!(h.age_ms(50, 40_000), 30_000);
    }

    #[test]
    fn a_truncated_partition_starts_a_new_history() {
        let mut h = OffsetHistory::default();
        h.record(500, 1_000);
        h.record(10, 2_000);
        assert_eq!(h.age_ms(0, 3_000), 1_000);
    }

    #[test]
    fn the_history_is_bounded() {
        let mut h = OffsetHistory::default();
        for i in 0..(CAPACITY as i64 + 10) {
            h.record(i + 1, i * 1_000);
        }
        assert_eq!(h.samples.len(), CAPACITY);
        // Offset 0 is older than what is kept: the oldest sample's time.
        assert_eq!(h.age_ms(0, 1_000_000), 1_000_000 - 10_000);
    }
}
