//! Pausing this instance's consumption (`POST /v1/consumer/pause`): which
//! partitions to pause or resume on each turn of the poll loop, apart from
//! the Kafka calls, so the decision is tested without a broker.
//!
//! A partition is paused under the epoch of its assignment. One revoked or
//! assigned again since (a new epoch) is forgotten: its new assignment
//! starts unpaused and, while consumption is paused, is paused on the next
//! turn. On resume, a partition still restoring (no actor yet) or still
//! holding retry records not yet due stays paused: the restore and the
//! retry scheduler resume those themselves.

use std::collections::HashMap;

use arus_actors::model::source::SourcePartition;

/// What the decision needs of an assigned partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assigned {
    pub epoch: u64,
    /// Its actor runs (its state is restored).
    pub running: bool,
    /// It holds retry records that are not due yet.
    pub holding: bool,
}

/// The partitions to pause, or to resume, now; each with its epoch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PauseChange {
    pub pause: Vec<(SourcePartition, u64)>,
    pub resume: Vec<(SourcePartition, u64)>,
}

/// The partitions this instance paused for the operator.
#[derive(Debug, Default)]
pub struct Paused(HashMap<SourcePartition, u64>);

impl Paused {
    /// One turn: what to change so that the partitions follow `want_paused`.
    /// The caller makes the Kafka calls, then reports with [`Self::paused`]
    /// or [`Self::not_resumed`].
    pub fn turn(
        &mut self,
        want_paused: bool,
        assigned: &HashMap<SourcePartition, Assigned>,
    ) -> PauseChange {
        self.0
            .retain(|source, epoch| assigned.get(source).is_some_and(|a| a.epoch == *epoch));
        let mut change = PauseChange::default();
        if want_paused {
            change.pause = assigned
                .iter()
                .filter(|(source, a)| a.running && !self.0.contains_key(source))
                .map(|(source, a)| (*source, a.epoch))
                .collect();
            change.pause.sort();
        } else {
            change.resume = self
                .0
                .drain()
                .filter(|(source, _)| {
                    assigned
                        .get(source)
                        .is_some_and(|a| a.running && !a.holding)
                })
                .collect();
            change.resume.sort();
        }
        change
    }

    /// The pause of `partitions` took hold.
    pub fn paused(&mut self, partitions: Vec<(SourcePartition, u64)>) {
        self.0.extend(partitions);
    }

    /// The resume of `partitions` failed: they are still paused.
    pub fn not_resumed(&mut self, partitions: Vec<(SourcePartition, u64)>) {
        self.0.extend(partitions);
    }

    /// How many partitions are paused now (`pausedPartitions`).
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arus_actors::model::source::InputTopic;

    fn p(n: i32) -> SourcePartition {
        SourcePartition::new(InputTopic::UserEvents, n)
    }

    fn running(epoch: u64) -> Assigned {
        Assigned {
            epoch,
            running: true,
            holding: false,
        }
    }

    #[test]
    fn a_pause_takes_running_partitions_and_later_assignments() {
        let mut paused = Paused::default();
        let mut assigned = HashMap::from([
            (p(0), running(1)),
            (
                p(1),
                Assigned {
                    running: false,
                    ..running(1)
                },
            ),
        ]);
        let change = paused.turn(true, &assigned);
        assert_eq!(change.pause, vec![(p(0), 1)]);
        paused.paused(change.pause);
        // Nothing new: nothing to do.
        assert_eq!(paused.turn(true, &assigned), PauseChange::default());
        // p(1) restored, p(2) assigned during the pause: both paused next.
        assigned.insert(p(1), running(1));
        assigned.insert(p(2), running(2));
        let change = paused.turn(true, &assigned);
        assert_eq!(change.pause, vec![(p(1), 1), (p(2), 2)]);
        paused.paused(change.pause);
        assert_eq!(paused.len(), 3);
    }

    #[test]
    fn a_reassigned_partition_is_paused_again_under_its_new_epoch() {
        let mut paused = Paused::default();
        let mut assigned = HashMap::from([(p(0), running(1))]);
        let change = paused.turn(true, &assigned);
        paused.paused(change.pause);
        // Revoked and assigned again: a new epoch, unpaused by Kafka.
        assigned.insert(p(0), running(2));
        let change = paused.turn(true, &assigned);
        assert_eq!(change.pause, vec![(p(0), 2)]);
        // Revoked for good: forgotten.
        paused.paused(change.pause);
        assigned.clear();
        assert_eq!(paused.turn(true, &assigned), PauseChange::default());
        assert_eq!(paused.len(), 0);
    }

    #[test]
    fn a_resume_leaves_restoring_and_holding_partitions_to_their_owners() {
        let mut paused = Paused::default();
        let mut assigned =
            HashMap::from([(p(0), running(1)), (p(1), running(1)), (p(2), running(1))]);
        let change = paused.turn(true, &assigned);
        paused.paused(change.pause);
        assigned.insert(
            p(1),
            Assigned {
                holding: true,
                ..running(1)
            },
        );
        assigned.insert(
            p(2),
            Assigned {
                running: false,
                ..running(1)
            },
        );
        let change = paused.turn(false, &assigned);
        assert_eq!(change.resume, vec![(p(0), 1)]);
        assert!(change.pause.is_empty());
        // The other two are no longer this pause's: the retry scheduler
        // and the restore resume them.
        assert_eq!(paused.len(), 0);
        // A failed resume keeps p(0) paused, and the next turn tries again.
        paused.not_resumed(change.resume);
        assert_eq!(paused.turn(false, &assigned).resume, vec![(p(0), 1)]);
    }
}
