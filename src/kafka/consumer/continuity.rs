//! Whether an input partition's records arrive without a hole.
//!
//! Records of a partition are delivered in offset order; the commit puts the
//! group one past the last record applied, so a record the client never
//! delivered would be skipped for good. Offsets may have legitimate holes
//! (a transactional producer's commit markers, records of its aborted
//! transactions under `read_committed`, compaction), but a fetch may also
//! come back without records that are in the log: the rolling-restart
//! rehearsal caught the test broker doing so (10–18 events of a run of
//! 160,000–400,000 accepted and never counted). So a hole is never trusted
//! on first sight: the partition is fetched again from the expected offset,
//! and the hole is accepted only when the second fetch shows it too.

/// What to do with a delivered record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continuity {
    /// Where expected: take it.
    Next,
    /// Where expected, after a fetch again that filled a hole of `skipped`
    /// records: take it (and say so).
    Filled { skipped: i64 },
    /// Behind what was taken already (a stale copy): drop it.
    Repeat,
    /// Past a hole: drop it, and fetch again from `from`.
    Refetch { from: i64 },
    /// Past the same hole a second fetch showed too: a real one; take it.
    Hole,
}

/// One partition's check, kept across polls.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HoleCheck {
    /// The hole fetched again: from the expected offset to the record seen.
    refetched: Option<(i64, i64)>,
}

impl HoleCheck {
    /// Decides about a record at `offset` when the partition's next record
    /// is expected at `expected` (`None`: nothing known yet, after an
    /// assignment or restore).
    pub fn offer(&mut self, expected: Option<i64>, offset: i64) -> Continuity {
        let Some(expected) = expected else {
            self.refetched = None;
            return Continuity::Next;
        };
        if offset < expected {
            return Continuity::Repeat;
        }
        match self.refetched.take() {
            Some((from, to)) if from == expected && offset == to => Continuity::Hole,
            Some((from, to)) if from == expected && offset == expected => {
                Continuity::Filled { skipped: to - from }
            }
            _ if offset == expected => Continuity::Next,
            _ => {
                self.refetched = Some((expected, offset));
                Continuity::Refetch { from: expected }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hole_is_fetched_again_once_and_accepted_only_when_it_stays() {
        let mut check = HoleCheck::default();
        assert_eq!(check.offer(None, 40), Continuity::Next);
        assert_eq!(check.offer(Some(41), 41), Continuity::Next);
        // 42..=55 missing from a fetch: fetch again from 42.
        assert_eq!(check.offer(Some(42), 56), Continuity::Refetch { from: 42 });
        // The second fetch has them: the hole was the fetch's, filled.
        assert_eq!(
            check.offer(Some(42), 42),
            Continuity::Filled { skipped: 14 }
        );
        assert_eq!(check.offer(Some(43), 43), Continuity::Next);
        // A commit marker at 60: the second fetch shows the same hole.
        assert_eq!(check.offer(Some(60), 61), Continuity::Refetch { from: 60 });
        assert_eq!(check.offer(Some(60), 61), Continuity::Hole);
        // And the next hole is fetched again too, not waved through.
        assert_eq!(check.offer(Some(62), 64), Continuity::Refetch { from: 62 });
        // A stale record behind what was taken is dropped, the check kept.
        assert_eq!(check.offer(Some(62), 50), Continuity::Repeat);
        assert_eq!(check.offer(Some(62), 64), Continuity::Hole);
        // A different hole on the second look: fetched again from there.
        assert_eq!(check.offer(Some(70), 75), Continuity::Refetch { from: 70 });
        assert_eq!(check.offer(Some(70), 72), Continuity::Refetch { from: 70 });
        assert_eq!(check.offer(Some(70), 72), Continuity::Hole);
        // A fresh assignment forgets it.
        assert_eq!(check.offer(Some(80), 90), Continuity::Refetch { from: 80 });
        assert_eq!(check.offer(None, 90), Continuity::Next);
        assert_eq!(check.offer(Some(91), 91), Continuity::Next);
    }
}
