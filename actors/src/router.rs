//! Routing events to aggregator shards: per metric, by a stable hash of the
//! metric's key, so one key always lands on one shard and keeps its order.

use std::sync::Arc;

use actix::{Actor, ArbiterHandle, Recipient};

use crate::aggregator_shard::{AggregatorShard, Apply};
use crate::event::Event;
use crate::metrics::{EventCounts, Metric, Sessions, TopPages, Users};
use crate::read_model::ReadModel;
use crate::source::SourcePartition;

/// FNV-1a: stable across builds and platforms, unlike std's `DefaultHasher`.
pub fn key_hash(key: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

struct Route {
    metric: &'static str,
    key: fn(&Event) -> Option<&str>,
    shards: Vec<Recipient<Apply>>,
}

struct ShardSpawner<'a> {
    shards: usize,
    mailbox_capacity: usize,
    read_model: &'a Arc<ReadModel>,
    arbiters: &'a [ArbiterHandle],
    /// Shards started so far, to spread them round-robin over the arbiters.
    placed: usize,
}

impl ShardSpawner<'_> {
    fn route<M: Metric>(&mut self) -> Route {
        let shards = (0..self.shards)
            .map(|index| {
                let arbiter = &self.arbiters[self.placed % self.arbiters.len()];
                self.placed += 1;
                let read_model = Arc::clone(self.read_model);
                let cap = self.mailbox_capacity;
                AggregatorShard::<M>::start_in_arbiter(arbiter, move |_| {
                    AggregatorShard::new(index, read_model, cap)
                })
                .recipient()
            })
            .collect();
        Route {
            metric: M::NAME,
            key: M::shard_key,
            shards,
        }
    }
}

/// The shards of every metric.
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Starts `shards` shards of every metric, spread over `arbiters`.
    pub fn start(
        shards: usize,
        mailbox_capacity: usize,
        read_model: &Arc<ReadModel>,
        arbiters: &[ArbiterHandle],
    ) -> Self {
        assert!(!arbiters.is_empty(), "shards need an arbiter to run on");
        let mut spawner = ShardSpawner {
            shards: shards.max(1),
            mailbox_capacity,
            read_model,
            arbiters,
            placed: 0,
        };
        let routes = vec![
            spawner.route::<EventCounts>(),
            spawner.route::<Users>(),
            spawner.route::<TopPages>(),
            spawner.route::<Sessions>(),
        ];
        Self { routes }
    }

    /// Splits a batch of one source partition into one [`Apply`] per shard
    /// that has events in it, each in offset order.
    pub fn split(
        &self,
        source: SourcePartition,
        events: &[(i64, Arc<Event>)],
    ) -> Vec<(&'static str, Recipient<Apply>, Apply)> {
        let mut out = Vec::new();
        for route in &self.routes {
            let n = route.shards.len();
            let mut per_shard: Vec<Vec<(i64, Arc<Event>)>> = vec![Vec::new(); n];
            for (offset, event) in events {
                if let Some(key) = (route.key)(event) {
                    let shard = (key_hash(key) % n as u64) as usize;
                    per_shard[shard].push((*offset, Arc::clone(event)));
                }
            }
            for (shard, events) in per_shard.into_iter().enumerate() {
                if !events.is_empty() {
                    out.push((
                        route.metric,
                        route.shards[shard].clone(),
                        Apply { source, events },
                    ));
                }
            }
        }
        out
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
