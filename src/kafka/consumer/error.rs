//! Why the consumer stopped for good: errors of the rebalance callbacks,
//! which librdkafka calls on the poll thread and which cannot return one.
//! They are kept for the poll loop, which ends the process with them (the
//! orchestrator restarts it and the group hands the partitions on).

use arus_actors::ErrorClass;

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// Revoked partitions could not be committed and released: their work
    /// since the last commit is lost to this instance, and going on would
    /// count it again elsewhere without its state.
    #[error("revoking {partitions}: {source:#}")]
    Revoke {
        partitions: String,
        source: anyhow::Error,
    },
    /// Assigned partitions could not be paused and their restore begun.
    #[error("assigning {partitions}: {source:#}")]
    Assign {
        partitions: String,
        source: anyhow::Error,
    },
}

impl ConsumerError {
    /// Always fatal: decided here, where the error is made.
    pub fn class(&self) -> ErrorClass {
        match self {
            ConsumerError::Revoke { .. } | ConsumerError::Assign { .. } => ErrorClass::Fatal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebalance_failures_are_fatal_and_say_what_failed() {
        let e = ConsumerError::Revoke {
            partitions: "[\"user-events/0\"]".into(),
            source: anyhow::anyhow!("commit timed out"),
        };
        assert_eq!(e.class(), ErrorClass::Fatal);
        assert_eq!(
            e.to_string(),
            "revoking [\"user-events/0\"]: commit timed out"
        );
    }
}
