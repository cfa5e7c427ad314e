//! `AggregatorShard<M>`: owns metric `M`'s state for the keys hashed to it.

use std::sync::Arc;

use actix::{Actor, Context, Handler, Message, MessageResult};
use tracing::debug;

use crate::event::Event;
use crate::metrics::Metric;
use crate::read_model::ReadModel;
use crate::source::SourcePartition;
use crate::state::StateUpdate;

/// Events of one source partition for one shard, in offset order.
#[derive(Message)]
#[rtype(result = "ApplyOutcome")]
pub struct Apply {
    pub source: SourcePartition,
    pub events: Vec<(i64, Arc<Event>)>,
}

/// What a shard did with an [`Apply`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    pub applied: usize,
    /// Events the state already included (replays).
    pub skipped: usize,
}

pub struct AggregatorShard<M: Metric> {
    index: usize,
    state: M,
    read_model: Arc<ReadModel>,
    mailbox_capacity: usize,
    updates: Vec<StateUpdate>,
}

impl<M: Metric> AggregatorShard<M> {
    pub fn new(index: usize, read_model: Arc<ReadModel>, mailbox_capacity: usize) -> Self {
        Self {
            index,
            state: M::default(),
            read_model,
            mailbox_capacity,
            updates: Vec::new(),
        }
    }
}

impl<M: Metric> Actor for AggregatorShard<M> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Bounded: a partition consumer's `send` waits here when the shard
        // falls behind, which in turn holds back the poll loop.
        ctx.set_mailbox_capacity(self.mailbox_capacity);
        debug!(
            metric = M::NAME,
            shard = self.index,
            "aggregator shard started"
        );
    }
}

impl<M: Metric> Handler<Apply> for AggregatorShard<M> {
    type Result = MessageResult<Apply>;

    fn handle(&mut self, msg: Apply, _ctx: &mut Self::Context) -> Self::Result {
        let mut outcome = ApplyOutcome::default();
        for (offset, event) in &msg.events {
            if self.state.apply(msg.source, *offset, event) {
                outcome.applied += 1;
            } else {
                outcome.skipped += 1;
            }
        }
        self.state.drain_updates(&mut self.updates);
        for update in self.updates.drain(..) {
            self.read_model.apply(update);
        }
        MessageResult(outcome)
    }
}
