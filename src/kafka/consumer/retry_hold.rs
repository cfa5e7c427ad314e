//! The retry scheduler's decision: which records of a retry partition wait,
//! and which are due. A retry record carries `x-not-before`; one not yet due,
//! and every record behind it (order is kept), waits in memory while its
//! partition is paused. The consumer driver does the pausing and resuming
//! this asks for; the decision itself is here, tested with a clock the
//! tests set.
//!
//! Holding in memory, not seeking back: the partition's fetch position is
//! already past these records, and what is held is never committed (the
//! offsets committed are those of processed records), so a rebalance or a
//! rollback simply fetches them again.

use std::collections::VecDeque;

use arus_actors::consume::retry::not_before_ms;
use arus_actors::model::source::RawRecord;

/// What became of a record offered to [`RetryHold::offer`].
#[derive(Debug, PartialEq)]
pub enum Offered {
    /// Due, and nothing held before it: process it now.
    Due(RawRecord),
    /// Held. `pause` is true for the first one held: the partition is to
    /// be paused until [`RetryHold::release_due`] empties the hold.
    Held { pause: bool },
}

/// The records a retry partition holds back, in offset order.
#[derive(Debug, Default)]
pub struct RetryHold {
    held: VecDeque<RawRecord>,
}

impl RetryHold {
    /// A record just polled, at wall-clock time `now_ms`.
    pub fn offer(&mut self, record: RawRecord, now_ms: i64) -> Offered {
        let early = not_before_ms(&record).is_some_and(|at| at > now_ms);
        if self.held.is_empty() && !early {
            return Offered::Due(record);
        }
        let pause = self.held.is_empty();
        self.held.push_back(record);
        Offered::Held { pause }
    }

    /// The held records due at `now_ms`, in order, up to the first that is
    /// not; and whether the hold is empty now (the partition may resume).
    pub fn release_due(&mut self, now_ms: i64) -> (Vec<RawRecord>, bool) {
        let mut due = Vec::new();
        while let Some(record) = self.held.front() {
            if not_before_ms(record).is_some_and(|at| at > now_ms) {
                break;
            }
            due.extend(self.held.pop_front());
        }
        (due, self.held.is_empty())
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arus_actors::consume::retry::headers::NOT_BEFORE;

    fn record(offset: i64, not_before: Option<i64>) -> RawRecord {
        RawRecord {
            offset,
            key: None,
            payload: None,
            timestamp_ms: Some(0),
            headers: not_before
                .map(|at| (NOT_BEFORE.to_string(), Some(at.to_string().into_bytes())))
                .into_iter()
                .collect(),
        }
    }

    fn offsets(records: &[RawRecord]) -> Vec<i64> {
        records.iter().map(|r| r.offset).collect()
    }

    #[test]
    fn due_records_pass_and_an_early_one_holds_what_follows_it() {
        let mut hold = RetryHold::default();
        assert_eq!(
            hold.offer(record(0, Some(1_000)), 1_000),
            Offered::Due(record(0, Some(1_000)))
        );
        assert_eq!(
            hold.offer(record(1, None), 1_000),
            Offered::Due(record(1, None))
        );
        // Not due until 5,000: held, and the partition paused.
        assert_eq!(
            hold.offer(record(2, Some(5_000)), 1_000),
            Offered::Held { pause: true }
        );
        // Due itself, but behind a held one: order is kept.
        assert_eq!(
            hold.offer(record(3, Some(900)), 1_000),
            Offered::Held { pause: false }
        );
        assert_eq!(
            hold.offer(record(4, Some(9_000)), 1_000),
            Offered::Held { pause: false }
        );
        assert_eq!(hold.len(), 3);

        let (due, empty) = hold.release_due(4_999);
        assert!(due.is_empty() && !empty);
        let (due, empty) = hold.release_due(5_000);
        assert_eq!((offsets(&due), empty), (vec![2, 3], false));
        let (due, empty) = hold.release_due(9_000);
        assert_eq!((offsets(&due), empty), (vec![4], true));
        assert!(hold.is_empty());
        // Empty again: the next early record pauses the partition again.
        assert_eq!(
            hold.offer(record(5, Some(20_000)), 9_000),
            Offered::Held { pause: true }
        );
    }

    #[test]
    fn a_record_without_a_valid_not_before_is_due() {
        let mut hold = RetryHold::default();
        let mut odd = record(0, None);
        odd.headers
            .push((NOT_BEFORE.to_string(), Some(b"soon".to_vec())));
        assert!(matches!(hold.offer(odd, 0), Offered::Due(_)));
    }
}
