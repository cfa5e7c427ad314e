//! What to do after a transaction aborted: the decision, apart from the
//! Kafka calls that carry it out, so it is tested without a broker.
//!
//! ```text
//! abort ──▶ same kind as the last one? ──▶ count it (else start again at 1)
//!   count <  N          roll back to the last commit and do the work again
//!   count == N          recreate the transactional producer (the fencing recovery)
//!   N < count < 2N      roll back again, with the new producer
//!   count >= 2N         stop the process: rolling back cannot help
//! a commit that moved input offsets ──▶ the streak ends
//! ```

/// Aborts of the same kind in a row before the producer is recreated; twice
/// as many end the process.
pub const MAX_ABORTS_IN_A_ROW: u32 = 5;

/// The decision after one abort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAbort {
    /// Roll every partition back to its last commit and go on.
    RollBack { in_a_row: u32 },
    /// The same failure `MAX_ABORTS_IN_A_ROW` times: what clears a producer
    /// the broker refuses for good (its producer id lost in a broker
    /// restart) is a new one.
    RecreateProducer { in_a_row: u32 },
    /// Twice that, before and after a new producer: the work itself fails
    /// (a record too large for the broker, a missing ACL). Stop loudly; the
    /// orchestrator's restart and an operator are what can help.
    Stop { in_a_row: u32 },
}

/// Aborts of one kind in a row.
#[derive(Debug, Default)]
pub struct AbortStreak {
    kind: String,
    in_a_row: u32,
}

impl AbortStreak {
    /// An abort of `kind` (what makes two aborts the same: the error's
    /// code, not its text, which carries timings and partitions).
    pub fn aborted(&mut self, kind: &str) -> AfterAbort {
        if self.in_a_row > 0 && self.kind == kind {
            self.in_a_row += 1;
        } else {
            self.kind = kind.to_string();
            self.in_a_row = 1;
        }
        let in_a_row = self.in_a_row;
        if in_a_row == MAX_ABORTS_IN_A_ROW {
            AfterAbort::RecreateProducer { in_a_row }
        } else if in_a_row >= 2 * MAX_ABORTS_IN_A_ROW {
            AfterAbort::Stop { in_a_row }
        } else {
            AfterAbort::RollBack { in_a_row }
        }
    }

    /// A commit went through that moved input offsets: the work that kept
    /// aborting is done. (One that carried state alone, such as sessions
    /// closed by time, proves nothing about it and does not end the streak.)
    pub fn committed(&mut self) {
        self.in_a_row = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_abort_rolls_back_then_recreates_the_producer_then_stops() {
        let mut streak = AbortStreak::default();
        let decisions: Vec<AfterAbort> = (0..10).map(|_| streak.aborted("Fenced")).collect();
        let expected: Vec<AfterAbort> = (1..=10)
            .map(|in_a_row| match in_a_row {
                5 => AfterAbort::RecreateProducer { in_a_row },
                10 => AfterAbort::Stop { in_a_row },
                _ => AfterAbort::RollBack { in_a_row },
            })
            .collect();
        assert_eq!(decisions, expected);
        assert_eq!(streak.aborted("Fenced"), AfterAbort::Stop { in_a_row: 11 });
    }

    #[test]
    fn another_kind_or_a_commit_starts_the_count_again() {
        let mut streak = AbortStreak::default();
        for _ in 0..4 {
            streak.aborted("A");
        }
        assert_eq!(streak.aborted("B"), AfterAbort::RollBack { in_a_row: 1 });
        for _ in 0..3 {
            streak.aborted("B");
        }
        streak.committed();
        assert_eq!(streak.aborted("B"), AfterAbort::RollBack { in_a_row: 1 });
        // An empty kind is a kind like any other, not "no streak".
        let mut empty = AbortStreak::default();
        assert_eq!(empty.aborted(""), AfterAbort::RollBack { in_a_row: 1 });
        assert_eq!(empty.aborted(""), AfterAbort::RollBack { in_a_row: 2 });
    }
}
