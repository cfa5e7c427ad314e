//! Restarting actors that stop, and what a restart means for the state.
//!
//! Aggregator shards and partition consumers run under actix `Supervisor`s:
//! one that stops (`ctx.stop()`, or the [`Stop`] fault injection) is started
//! again on the same address and mailbox, so nothing that holds its address
//! notices. What it held in memory is no longer trusted: a shard drops its
//! state when it restarts, and every restart is recorded here. The commit
//! barrier checks for a restart after it has flushed the actors and before it
//! writes anything: if one happened, the flushed changes are thrown away and
//! every assigned partition rolls back to its last commit (state restored from
//! the changelog, input re-read from the committed offsets), exactly like an
//! aborted transaction. So a restart costs a replay, never a count.
//!
//! A panic is different: actix does not restart an actor that panicked, and
//! arus ends the process with a non-zero status instead (the orchestrator
//! restarts it, and the state is restored from the changelog).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use actix::Message;
use tracing::warn;

/// Fault injection: the actor stops, and its supervisor restarts it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

/// Restarts of supervised actors: how many, and whether one happened since
/// the commit barrier last looked.
#[derive(Debug, Default)]
pub struct Restarts {
    total: AtomicU64,
    unhandled: AtomicBool,
}

impl Restarts {
    /// Records that `actor` restarted and its in-memory state is not trusted.
    pub fn record(&self, actor: &str) {
        let total = self.total.fetch_add(1, Ordering::SeqCst) + 1;
        self.unhandled.store(true, Ordering::SeqCst);
        warn!(
            actor,
            total, "actor stopped and was restarted; rolling back to the last commit"
        );
    }

    /// Restarts since the service started.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::SeqCst)
    }

    /// Whether an actor restarted since the last call: the caller then owns
    /// the rollback.
    pub fn take_unhandled(&self) -> bool {
        self.unhandled.swap(false, Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_is_handled_once_and_counted_for_good() {
        let restarts = Restarts::default();
        assert!(!restarts.take_unhandled());
        restarts.record("shard event-counts/0");
        restarts.record("partition user-events/1");
        assert_eq!(restarts.total(), 2);
        assert!(restarts.take_unhandled());
        assert!(!restarts.take_unhandled());
        assert_eq!(restarts.total(), 2);
    }
}
