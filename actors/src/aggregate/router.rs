//! Routing events to aggregator shards: per metric, by a stable hash of the
//! metric's key, so one key always lands on one shard and keeps its order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix::{ArbiterHandle, Recipient, Supervisor};

use crate::aggregate::aggregator_shard::{
    AggregatorShard, Apply, Crash, Flush, Forget, Outage, Restore,
};
use crate::aggregate::breaker::{Breaker, BreakerConfig, TokioClock};
use crate::aggregate::metrics::{EventCounts, Metric, Sessions, TopPages, Users};
use crate::aggregate::supervision::{Restarts, Stop};
use crate::model::event::Event;
use crate::model::metric_kind::{EntryKind, MetricKind};
use crate::model::source::SourcePartition;
use crate::state::StateUpdate;
use actix::MailboxError;
use futures::future::join_all;

/// FNV-1a: stable across builds and platforms, unlike std's `DefaultHasher`.
pub fn key_hash(key: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Which metrics an event is still to be applied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricSet(u8);

impl MetricSet {
    pub const ALL: MetricSet = MetricSet(0b1111);

    /// Just `metric`.
    pub fn only(metric: MetricKind) -> Self {
        MetricSet(1 << metric.index())
    }

    pub fn without(self, metric: MetricKind) -> Self {
        MetricSet(self.0 & !Self::only(metric).0)
    }

    pub fn contains(self, metric: MetricKind) -> bool {
        self.0 & Self::only(metric).0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// An event on its way to the shards of some metrics.
#[derive(Debug, Clone)]
pub struct Routed {
    pub offset: i64,
    pub event: Arc<Event>,
    pub metrics: MetricSet,
    /// The record's consume span, when it is traced.
    pub trace: Option<tracing::Span>,
}

/// One shard's part of a batch, with the breaker of the hop to it.
pub struct Hop {
    pub metric: MetricKind,
    pub shard: usize,
    pub recipient: Recipient<Apply>,
    pub apply: Apply,
    pub breaker: Arc<Mutex<Breaker>>,
    /// Apply messages sent to this shard and not yet answered.
    pub in_flight: Arc<AtomicU64>,
}

impl Hop {
    pub fn breaker(&self) -> MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one message to the shard as in flight until the guard drops
    /// (answered, failed or abandoned).
    pub fn in_flight_guard(&self) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(&self.in_flight))
    }
}

/// See [`Hop::in_flight_guard`].
pub struct InFlight(Arc<AtomicU64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What `/metrics` shows of one hop's breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerView {
    pub metric: MetricKind,
    pub shard: usize,
    /// 0 closed, 1 open, 2 half open.
    pub state: u8,
    pub times_opened: u64,
    /// Apply messages in the shard's mailbox or being applied: its depth.
    pub in_flight: u64,
}

struct Route {
    metric: MetricKind,
    key: fn(&Event) -> Option<&str>,
    shards: Vec<Shard>,
    breakers: Vec<Arc<Mutex<Breaker>>>,
    in_flight: Vec<Arc<AtomicU64>>,
}

/// One shard's mailboxes, by message.
#[derive(Clone)]
struct Shard {
    apply: Recipient<Apply>,
    flush: Recipient<Flush>,
    restore: Recipient<Restore>,
    forget: Recipient<Forget>,
    outage: Recipient<Outage>,
    crash: Recipient<Crash>,
    stop: Recipient<Stop>,
}

impl Route {
    fn shard_of(&self, key: &str) -> usize {
        (key_hash(key) % self.shards.len() as u64) as usize
    }
}

struct ShardSpawner<'a> {
    shards: usize,
    mailbox_capacity: usize,
    breaker: BreakerConfig,
    arbiters: &'a [ArbiterHandle],
    /// Shards started so far, to spread them round-robin over the arbiters.
    placed: usize,
    restarts: Arc<Restarts>,
}

impl ShardSpawner<'_> {
    fn route<M: Metric>(&mut self) -> Route {
        let shards = (0..self.shards)
            .map(|index| {
                let arbiter = &self.arbiters[self.placed % self.arbiters.len()];
                self.placed += 1;
                let cap = self.mailbox_capacity;
                let restarts = Arc::clone(&self.restarts);
                let addr = Supervisor::start_in_arbiter(arbiter, move |_| {
                    AggregatorShard::<M>::new(index, cap, restarts)
                });
                Shard {
                    apply: addr.clone().recipient(),
                    flush: addr.clone().recipient(),
                    restore: addr.clone().recipient(),
                    forget: addr.clone().recipient(),
                    outage: addr.clone().recipient(),
                    crash: addr.clone().recipient(),
                    stop: addr.recipient(),
                }
            })
            .collect();
        let breakers = (0..self.shards)
            .map(|index| {
                Arc::new(Mutex::new(Breaker::new(
                    format!("{}/{index}", M::KIND),
                    self.breaker,
                    TokioClock,
                )))
            })
            .collect();
        Route {
            metric: M::KIND,
            key: M::shard_key,
            shards,
            breakers,
            in_flight: (0..self.shards).map(|_| Arc::default()).collect(),
        }
    }
}

/// The shards of every metric.
pub struct Router {
    routes: Vec<Route>,
    /// Restarts of the shards, and of the partition consumers.
    restarts: Arc<Restarts>,
}

impl Router {
    /// Starts `shards` shards of every metric, spread over `arbiters`, each
    /// behind a breaker configured by `breaker`.
    pub fn start(
        shards: usize,
        mailbox_capacity: usize,
        breaker: BreakerConfig,
        arbiters: &[ArbiterHandle],
    ) -> Self {
        assert!(!arbiters.is_empty(), "shards need an arbiter to run on");
        let restarts = Arc::new(Restarts::default());
        let mut spawner = ShardSpawner {
            shards: shards.max(1),
            mailbox_capacity,
            breaker,
            arbiters,
            placed: 0,
            restarts: Arc::clone(&restarts),
        };
        let routes = vec![
            spawner.route::<EventCounts>(),
            spawner.route::<Users>(),
            spawner.route::<TopPages>(),
            spawner.route::<Sessions>(),
        ];
        Self { routes, restarts }
    }

    /// Restarts of supervised actors (shards and partition consumers).
    pub fn restarts(&self) -> &Restarts {
        &self.restarts
    }

    /// Splits a batch of one source partition into one [`Apply`] per shard
    /// that has events in it, each in offset order; an event goes only to
    /// the metrics in its set.
    pub fn split(&self, source: SourcePartition, events: &[Routed]) -> Vec<Hop> {
        let mut out = Vec::new();
        for route in &self.routes {
            let mut per_shard: Vec<Apply> = (0..route.shards.len())
                .map(|_| Apply {
                    source,
                    events: Vec::new(),
                    traces: Vec::new(),
                })
                .collect();
            for routed in events.iter().filter(|r| r.metrics.contains(route.metric)) {
                if let Some(key) = (route.key)(&routed.event) {
                    let apply = &mut per_shard[route.shard_of(key)];
                    apply
                        .events
                        .push((routed.offset, Arc::clone(&routed.event)));
                    if let Some(span) = &routed.trace {
                        apply.traces.push((routed.offset, span.clone()));
                    }
                }
            }
            for (shard, apply) in per_shard.into_iter().enumerate() {
                if !apply.events.is_empty() {
                    out.push(Hop {
                        metric: route.metric,
                        shard,
                        recipient: route.shards[shard].apply.clone(),
                        apply,
                        breaker: Arc::clone(&route.breakers[shard]),
                        in_flight: Arc::clone(&route.in_flight[shard]),
                    });
                }
            }
        }
        out
    }

    /// The offsets of the events in `events` that [`Router::split`] sends to
    /// shard `shard` of `metric`: a failed hop's events, worked out again
    /// rather than kept for every hop that succeeds.
    pub fn offsets_on(&self, events: &[Routed], metric: MetricKind, shard: usize) -> Vec<i64> {
        let Some(route) = self.routes.iter().find(|r| r.metric == metric) else {
            return Vec::new();
        };
        events
            .iter()
            .filter(|r| r.metrics.contains(metric))
            .filter(|r| (route.key)(&r.event).is_some_and(|key| route.shard_of(key) == shard))
            .map(|r| r.offset)
            .collect()
    }

    /// Every hop's breaker.
    pub fn breakers(&self) -> Vec<BreakerView> {
        let mut out = Vec::new();
        for route in &self.routes {
            for (shard, breaker) in route.breakers.iter().enumerate() {
                let b = breaker.lock().unwrap_or_else(|p| p.into_inner());
                out.push(BreakerView {
                    metric: route.metric,
                    shard,
                    state: b.state().as_u8(),
                    times_opened: b.times_opened(),
                    in_flight: route.in_flight[shard].load(Ordering::Relaxed),
                });
            }
        }
        out
    }

    fn shard(&self, metric: MetricKind, shard: usize) -> Option<&Shard> {
        self.routes
            .iter()
            .find(|r| r.metric == metric)
            .and_then(|r| r.shards.get(shard))
    }

    /// Fault injection: shard `shard` of `metric` panics. `false` when there
    /// is no such shard.
    pub fn crash(&self, metric: MetricKind, shard: usize) -> bool {
        self.shard(metric, shard)
            .map(|s| s.crash.do_send(Crash))
            .is_some()
    }

    /// Fault injection: shard `shard` of `metric` stops, and its supervisor
    /// restarts it. `false` when there is no such shard.
    pub fn stop(&self, metric: MetricKind, shard: usize) -> bool {
        self.shard(metric, shard)
            .map(|s| s.stop.do_send(Stop))
            .is_some()
    }

    /// Fault injection: shard `shard` of `metric` refuses every batch for
    /// `duration`. `None` when there is no such shard.
    pub async fn outage(
        &self,
        metric: MetricKind,
        shard: usize,
        duration: Duration,
    ) -> Option<Result<(), MailboxError>> {
        let target = self.shard(metric, shard)?;
        Some(target.outage.send(Outage(duration)).await)
    }
}

impl Router {
    fn shards(&self) -> impl Iterator<Item = &Shard> {
        self.routes.iter().flat_map(|r| r.shards.iter())
    }

    /// Every shard's changed entries since the last flush. Called with no
    /// batch in flight (the commit barrier), so the entries are exactly the
    /// effect of the events up to the offsets being committed.
    pub async fn flush(&self) -> Result<Vec<StateUpdate>, MailboxError> {
        let flushed = join_all(self.shards().map(|s| s.flush.send(Flush))).await;
        let mut updates = Vec::new();
        for result in flushed {
            updates.extend(result?);
        }
        Ok(updates)
    }

    /// Loads restored entries into the shards their keys route to.
    pub async fn restore(&self, updates: Vec<StateUpdate>) -> Result<(), MailboxError> {
        let mut per_shard: Vec<Vec<Vec<StateUpdate>>> = self
            .routes
            .iter()
            .map(|r| vec![Vec::new(); r.shards.len()])
            .collect();
        for update in updates {
            let target = {
                let (kind, key) = update.route();
                self.routes
                    .iter()
                    .position(|r| EntryKind::Metric(r.metric) == kind)
                    .map(|i| (i, self.routes[i].shard_of(&key)))
            };
            if let Some((i, shard)) = target {
                per_shard[i][shard].push(update);
            }
        }
        let mut sends = Vec::new();
        for (route, shards) in self.routes.iter().zip(per_shard) {
            for (shard, updates) in route.shards.iter().zip(shards) {
                if !updates.is_empty() {
                    sends.push(shard.restore.send(Restore(updates)));
                }
            }
        }
        for result in join_all(sends).await {
            result?;
        }
        Ok(())
    }

    /// Drops the state of these source partitions in every shard.
    pub async fn forget(&self, sources: &[SourcePartition]) -> Result<(), MailboxError> {
        let sends = self
            .shards()
            .map(|s| s.forget.send(Forget(sources.to_vec())));
        for result in join_all(sends).await {
            result?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hash_is_fnv1a() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(key_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(key_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(key_hash("foobar"), 0x8594_4171_f739_67e8);
    }
}
