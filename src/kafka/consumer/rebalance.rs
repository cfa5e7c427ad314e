//! Rebalances: librdkafka's callbacks, on the poll thread, become work on
//! the partitions (commit and release what is revoked, restore what is
//! assigned); a failure is kept for the poll loop, which stops with it.
//!
//! **Co-partitioned.** The group subscribes to `user-events` (and the retry
//! topic); partition *p* of `page-views` follows partition *p* of
//! `user-events` into and out of every assignment. A user's page views and
//! user events then always reach the same member, which builds the user's
//! visits from both (see `arus_actors::window::visits`), whatever the
//! assignor: librdkafka's cooperative-sticky assignor would otherwise place
//! the two partitions independently. The followers' offsets are committed in
//! the same transactions as everything else, so the group's offsets and lag
//! cover both topics as before.

use std::sync::Arc;

use arus_actors::model::source::{InputTopic, SourcePartition};
use futures::executor::block_on;
use rdkafka::consumer::{
    BaseConsumer, Consumer as _, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::error::KafkaError;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{ClientContext, TopicPartitionList};
use tracing::{error, info, warn};

use super::error::ConsumerError;
use super::exactly_once::{names, Partitions};

impl Partitions {
    /// Adds to `tpl` the `page-views` partition of each `user-events`
    /// partition in it.
    pub(super) fn add_followers(&self, tpl: &mut TopicPartitionList) {
        let leader = self.topic_name(InputTopic::UserEvents).to_string();
        let follower = self.topic_name(InputTopic::PageViews).to_string();
        let partitions: Vec<i32> = tpl
            .elements()
            .iter()
            .filter(|e| e.topic() == leader)
            .map(|e| e.partition())
            .collect();
        for partition in partitions {
            if tpl.find_partition(&follower, partition).is_none() {
                tpl.add_partition(&follower, partition);
            }
        }
    }

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
        drop(slots);
        let mut visits = self.visits();
        for source in revoked.iter().filter(|s| s.topic == InputTopic::UserEvents) {
            visits.remove(&source.partition);
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
    /// librdkafka's default rebalance, with each `user-events` partition's
    /// `page-views` partner added to what is assigned or revoked.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        self.partitions.add_followers(tpl);
        let assign = err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
        let revoke = err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS;
        let rebalance = if assign {
            Rebalance::Assign(tpl)
        } else if revoke {
            Rebalance::Revoke(tpl)
        } else {
            Rebalance::Error(KafkaError::Rebalance(RDKafkaErrorCode::from(err)))
        };
        self.pre_rebalance(consumer, &rebalance);
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let applied = match (assign, cooperative) {
            (true, true) => consumer.incremental_assign(tpl),
            (true, false) => consumer.assign(tpl),
            (false, true) => consumer.incremental_unassign(tpl),
            (false, false) => consumer.unassign(),
        };
        if let Err(error) = applied {
            error!(%error, assign, "applying the assignment failed");
        }
        self.post_rebalance(consumer, &rebalance);
    }

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
