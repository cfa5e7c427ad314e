//! An offset reset of this instance's own partitions, in the protocol:
//! rolled back, restored, and committed with the new offsets (see
//! [`super::reset`] for the request and the answer).

use std::sync::atomic::Ordering;

use arus_actors::model::source::{InputTopic, SourcePartition};
use arus_actors::state::changelog;
use arus_actors::state::StateUpdate;
use futures::executor::block_on;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};
use tracing::info;

use super::committer::{CommitError, Outputs};
use super::exactly_once::{names, Partitions};
use super::reset::{ResetRefused, ResetRequest};

impl Partitions {
    /// Starts an offset reset of partitions this instance holds (see
    /// [`super::reset`]). Called by the poll loop right after a commit, with
    /// no batch in flight: the partitions' whole state is in the changelog.
    /// They are rolled back (state forgotten, paused) and their state read;
    /// [`Partitions::finish_restore`] then commits the reset and resumes.
    pub fn begin_reset<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        reset: ResetRequest,
    ) -> anyhow::Result<()> {
        // A partition's partner restores with it: the two share their
        // partition number's visits, which are read again from the changelog
        // only as a whole. The partner keeps its offsets (it seeks back to
        // its committed one, where it is: no batch is in flight).
        let sources = with_partners(&reset.sources());
        let (not_ready, retries_held) = {
            let slots = self.slots();
            let not_ready: Vec<String> = sources
                .iter()
                .filter(|s| slots.get(s).is_none_or(|slot| slot.actor.is_none()))
                .map(ToString::to_string)
                .collect();
            let held: usize = slots.values().map(|slot| slot.held.len()).sum();
            (not_ready, held)
        };
        if !not_ready.is_empty() || self.is_fenced() {
            reset.refuse(ResetRefused::Busy(format!(
                "this instance does not hold {} ready to reset (a rebalance or a restore is \
                 under way); try again shortly",
                if not_ready.is_empty() {
                    "its partitions".to_string()
                } else {
                    not_ready.join(", ")
                }
            )));
            return Ok(());
        }
        if reset.rebuild && retries_held > 0 {
            // A retried hop applied after the rebuild began would mark its
            // entry as including offsets the rebuild has not replayed yet.
            reset.refuse(ResetRefused::Busy(format!(
                "{retries_held} retry records are waiting for their time; a rebuild waits \
                 until the retry topic is drained"
            )));
            return Ok(());
        }
        block_on(self.router.forget(&sources))?;
        info!(partitions = ?names(&sources), rebuild = reset.rebuild, "resetting offsets");
        self.begin_restore(consumer, &sources, true, Some(reset))
    }

    /// The reset's transaction: the new offsets and, for a rebuild, a
    /// tombstone for each of `state`'s entries but the dead-letter marks.
    /// Returns how many entries it deleted.
    pub(super) fn commit_reset<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        reset: &ResetRequest,
        state: &[StateUpdate],
    ) -> Result<usize, ResetRefused> {
        let deletes: Vec<(i32, String)> = if reset.rebuild {
            state
                .iter()
                .filter(|u| !matches!(u, StateUpdate::DeadLetters { .. }))
                .map(changelog::tombstone)
                .collect()
        } else {
            Vec::new()
        };
        let deleted = deletes.len();
        let out = Outputs {
            deletes,
            ..Outputs::default()
        };
        let mut offsets = TopicPartitionList::new();
        for (source, offset) in &reset.offsets {
            offsets
                .add_partition_offset(
                    self.topic_name(source.topic),
                    source.partition,
                    Offset::Offset(*offset),
                )
                .map_err(|e| ResetRefused::Failed(e.to_string()))?;
        }
        let group = consumer.group_metadata().ok_or_else(|| {
            ResetRefused::Busy("the consumer is not in its group right now".into())
        })?;
        let committer = self.committer.lock().unwrap_or_else(|p| p.into_inner());
        match committer.commit(&out, &offsets, &group) {
            Ok(()) => {
                self.stats.commits.inc_by(1);
                Ok(deleted)
            }
            Err(CommitError::Aborted(error)) => Err(ResetRefused::Failed(format!(
                "the reset's transaction aborted ({error}); nothing was reset"
            ))),
            Err(CommitError::Fatal(error)) => {
                self.fenced.store(true, Ordering::SeqCst);
                Err(ResetRefused::Failed(format!(
                    "the reset's transaction failed ({error}); nothing was reset"
                )))
            }
        }
    }
}

/// `sources` and, for each input partition among them, the other input
/// topic's partition of the same number, in order and without repeats.
fn with_partners(sources: &[SourcePartition]) -> Vec<SourcePartition> {
    let mut all: Vec<SourcePartition> = Vec::with_capacity(2 * sources.len());
    for source in sources {
        let partner = match source.topic {
            InputTopic::UserEvents => Some(InputTopic::PageViews),
            InputTopic::PageViews => Some(InputTopic::UserEvents),
            InputTopic::RetryEvents => None,
        };
        let partner = partner.map(|topic| SourcePartition::new(topic, source.partition));
        for s in std::iter::once(*source).chain(partner) {
            if !all.contains(&s) {
                all.push(s);
            }
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_restores_each_input_partition_with_its_partner() {
        let (u, p, r) = (
            InputTopic::UserEvents,
            InputTopic::PageViews,
            InputTopic::RetryEvents,
        );
        let s = SourcePartition::new;
        assert_eq!(
            with_partners(&[s(u, 1), s(p, 1), s(p, 2), s(r, 0)]),
            vec![s(u, 1), s(p, 1), s(p, 2), s(u, 2), s(r, 0)]
        );
    }
}
