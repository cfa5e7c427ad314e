//! Rebalances: librdkafka's callbacks, on the poll thread, become work on
//! the partitions (commit and release what is revoked, restore what is
//! assigned); a failure is kept for the poll loop, which stops with it.

use std::sync::Arc;

use arus_actors::model::source::SourcePartition;
use futures::executor::block_on;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::ClientContext;
use tracing::{info, warn};

use super::error::ConsumerError;
use super::exactly_once::{names, Partitions};

impl Partitions {
    fn on_assign<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        assigned: &[SourcePartition],
    ) -> anyhow::Result<()> {
        // State first: no input of these partitions is processed before it.
        self.begin_restore(consumer, assigned, false, None)
    }

    fn on_revoke<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        revoked: &[SourcePartition],
    ) -> anyhow::Result<()> {
        // Nothing is in flight, so this commits the partitions' work whole
        // before another member takes them; unless the producer is fenced,
        // and the work is abandoned whole instead.
        if !self.is_fenced() {
            self.commit(consumer)?;
        }
        block_on(self.router.forget(revoked))?;
        let mut slots = self.slots();
        for source in revoked {
            // Dropping the last address stops the actor once its mailbox is empty.
            slots.remove(source);
        }
        Ok(())
    }
}

/// The consumer's context: rebalance callbacks become work on the partitions.
pub(super) struct DriverContext {
    pub partitions: Arc<Partitions>,
}

impl ClientContext for DriverContext {}

impl ConsumerContext for DriverContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let p = &self.partitions;
        p.stats.rebalances.inc_by(1);
        let revoked = p.sources(tpl);
        match p.on_revoke(consumer, &revoked) {
            Ok(()) => info!(partitions = ?names(&revoked), "partitions revoked"),
            Err(source) => p.fail(ConsumerError::Revoke {
                partitions: format!("{:?}", names(&revoked)),
                source,
            }),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let p = &self.partitions;
                p.stats.rebalances.inc_by(1);
                let assigned = p.sources(tpl);
                match p.on_assign(consumer, &assigned) {
                    Ok(()) => info!(partitions = ?names(&assigned), "partitions assigned"),
                    Err(source) => p.fail(ConsumerError::Assign {
                        partitions: format!("{:?}", names(&assigned)),
                        source,
                    }),
                }
                p.health.set_joined(true);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(error) => warn!(%error, "rebalance error"),
        }
    }
}
