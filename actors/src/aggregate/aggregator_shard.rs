//! `AggregatorShard<M>`: owns metric `M`'s state for the keys hashed to it.
//!
//! Events change the state and mark entries dirty; at each commit the driver
//! collects the dirty entries with [`Flush`] and writes them to the changelog
//! in the same Kafka transaction as the input offsets they are valid through.

use actix::{Actor, ActorContext, Context, Handler, Message, MessageResult, Supervised};
use std::time::{Duration, Instant};
use tracing::{debug, warn};

use crate::aggregate::metrics::Metric;
use crate::aggregate::supervision::{Restarts, Stop};
use crate::model::event::Event;
use crate::model::metric_kind::MetricKind;
use crate::model::source::SourcePartition;
use crate::state::StateUpdate;
use std::sync::Arc;

/// Events of one source partition for one shard, in offset order.
#[derive(Message)]
#[rtype(result = "Result<ApplyOutcome, ShardRefused>")]
pub struct Apply {
    pub source: SourcePartition,
    pub events: Vec<(i64, Arc<Event>)>,
    /// The consume spans of the traced events among them, in offset order:
    /// each gets an `apply` child span here.
    pub traces: Vec<(i64, tracing::Span)>,
}

/// What a shard did with an [`Apply`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    pub applied: usize,
    /// Events the state already included (replays).
    pub skipped: usize,
}

/// A shard that did not apply an [`Apply`] at all: none of its events changed
/// the state, so all of them can go elsewhere (the retry topic).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("shard {shard} of {metric} refused the batch: {reason}")]
pub struct ShardRefused {
    pub metric: MetricKind,
    pub shard: usize,
    pub reason: &'static str,
}

/// Fault injection: the shard refuses every [`Apply`] for this long.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Outage(pub Duration);

/// Fault injection: the shard panics (which ends the process).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Crash;

/// Hands over the entries changed since the last flush.
#[derive(Message)]
#[rtype(result = "Vec<StateUpdate>")]
pub struct Flush;

/// Loads entries restored from the changelog.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Restore(pub Vec<StateUpdate>);

/// Drops the state of these source partitions.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Forget(pub Vec<SourcePartition>);

pub struct AggregatorShard<M: Metric> {
    index: usize,
    state: M,
    mailbox_capacity: usize,
    /// Refusing every batch until then (an injected outage).
    out_until: Option<Instant>,
    restarts: Arc<Restarts>,
}

impl<M: Metric> AggregatorShard<M> {
    pub fn new(index: usize, mailbox_capacity: usize, restarts: Arc<Restarts>) -> Self {
        Self {
            index,
            state: M::default(),
            mailbox_capacity,
            out_until: None,
            restarts,
        }
    }
}

impl<M: Metric> Supervised for AggregatorShard<M> {
    /// Started again after stopping: the state it held is dropped (the
    /// rollback the restart triggers restores it from the changelog).
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.state = M::default();
        self.out_until = None;
        self.restarts
            .record(&format!("shard {}/{}", M::KIND, self.index));
    }
}

impl<M: Metric> Handler<Stop> for AggregatorShard<M> {
    type Result = ();

    fn handle(&mut self, _msg: Stop, ctx: &mut Self::Context) {
        warn!(metric = %M::KIND, shard = self.index, "injected stop");
        ctx.stop();
    }
}

impl<M: Metric> Actor for AggregatorShard<M> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Bounded: a partition consumer's `send` waits here when the shard
        // falls behind, which in turn holds back the poll loop.
        ctx.set_mailbox_capacity(self.mailbox_capacity);
        debug!(
            metric = %M::KIND,
            shard = self.index,
            "aggregator shard started"
        );
    }
}

impl<M: Metric> Handler<Apply> for AggregatorShard<M> {
    type Result = MessageResult<Apply>;

    fn handle(&mut self, msg: Apply, _ctx: &mut Self::Context) -> Self::Result {
        if self.out_until.is_some_and(|until| Instant::now() < until) {
            return MessageResult(Err(ShardRefused {
                metric: M::KIND,
                shard: self.index,
                reason: "injected outage",
            }));
        }
        let mut outcome = ApplyOutcome::default();
        let mut traces = msg.traces.iter().peekable();
        for (offset, event) in &msg.events {
            let _span = traces.next_if(|(o, _)| o == offset).map(|(_, parent)| {
                tracing::info_span!(
                    parent: parent,
                    "apply",
                    otel.name = %format!("apply {}", M::KIND),
                    metric = %M::KIND,
                    shard = self.index,
                    offset = *offset,
                )
                .entered()
            });
            if self.state.apply(msg.source, *offset, event) {
                outcome.applied += 1;
            } else {
                outcome.skipped += 1;
            }
        }
        MessageResult(Ok(outcome))
    }
}

impl<M: Metric> Handler<Crash> for AggregatorShard<M> {
    type Result = ();

    #[allow(clippy::panic)]
    fn handle(&mut self, _msg: Crash, _ctx: &mut Self::Context) {
        panic!("injected panic in shard {} of {}", self.index, M::KIND);
    }
}

impl<M: Metric> Handler<Outage> for AggregatorShard<M> {
    type Result = ();

    fn handle(&mut self, msg: Outage, _ctx: &mut Self::Context) {
        warn!(
            metric = %M::KIND,
            shard = self.index,
            ms = msg.0.as_millis() as u64,
            "injected outage: refusing every batch"
        );
        self.out_until = Some(Instant::now() + msg.0);
    }
}

impl<M: Metric> Handler<Flush> for AggregatorShard<M> {
    type Result = MessageResult<Flush>;

    fn handle(&mut self, _msg: Flush, _ctx: &mut Self::Context) -> Self::Result {
        let mut updates = Vec::new();
        self.state.drain_updates(&mut updates);
        MessageResult(updates)
    }
}

impl<M: Metric> Handler<Restore> for AggregatorShard<M> {
    type Result = ();

    fn handle(&mut self, msg: Restore, _ctx: &mut Self::Context) {
        for update in msg.0 {
            self.state.restore(update);
        }
    }
}

impl<M: Metric> Handler<Forget> for AggregatorShard<M> {
    type Result = ();

    fn handle(&mut self, msg: Forget, _ctx: &mut Self::Context) {
        for source in msg.0 {
            self.state.forget(source);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::metrics::EventCounts;
    use crate::model::event::{EventType, UserEvent};
    use crate::model::source::InputTopic;
    use actix::Supervisor;
    use chrono::Utc;

    fn apply(offsets: std::ops::Range<i64>) -> Apply {
        let event = Arc::new(Event::User(UserEvent {
            event_id: None,
            user_id: "u".into(),
            event_type: EventType::Login,
            timestamp: Utc::now(),
            metadata: None,
        }));
        Apply {
            source: SourcePartition::new(InputTopic::UserEvents, 0),
            events: offsets.map(|o| (o, Arc::clone(&event))).collect(),
            traces: Vec::new(),
        }
    }

    #[actix::test]
    async fn a_stopped_shard_restarts_on_the_same_address_without_its_state() {
        let restarts = Arc::new(Restarts::default());
        let shared = Arc::clone(&restarts);
        let shard = Supervisor::start(move |_| AggregatorShard::<EventCounts>::new(0, 8, shared));
        let outcome = shard.send(apply(0..3)).await.expect("delivered");
        assert_eq!(
            outcome,
            Ok(ApplyOutcome {
                applied: 3,
                skipped: 0
            })
        );

        shard.send(Stop).await.expect("delivered");
        // The same address answers: restarted, with nothing in memory (the
        // three applied events are gone, not flushed) and the restart noted.
        assert_eq!(shard.send(Flush).await.expect("delivered"), Vec::new());
        assert_eq!(restarts.total(), 1);
        assert!(restarts.take_unhandled());

        // Offsets it had applied before are applied again: its `as_of` is gone.
        let outcome = shard.send(apply(0..2)).await.expect("delivered");
        assert_eq!(
            outcome,
            Ok(ApplyOutcome {
                applied: 2,
                skipped: 0
            })
        );
        assert_eq!(shard.send(Flush).await.expect("delivered").len(), 1);
        assert_eq!(restarts.total(), 1);
    }
}
