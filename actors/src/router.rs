//! Routing events to aggregator shards: per metric, by a stable hash of the
//! metric's key, so one key always lands on one shard and keeps its order.

use std::sync::Arc;

use actix::{Actor, ArbiterHandle, Recipient};

use crate::aggregator_shard::{AggregatorShard, Apply, Flush, Forget, Restore};
use crate::event::Event;
use crate::metrics::{EventCounts, Metric, Sessions, TopPages, Users};
use crate::source::SourcePartition;
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

struct Route {
    metric: &'static str,
    key: fn(&Event) -> Option<&str>,
    shards: Vec<Shard>,
}

/// One shard's mailboxes, by message.
#[derive(Clone)]
struct Shard {
    apply: Recipient<Apply>,
    flush: Recipient<Flush>,
    restore: Recipient<Restore>,
    forget: Recipient<Forget>,
}

impl Route {
    fn shard_of(&self, key: &str) -> usize {
        (key_hash(key) % self.shards.len() as u64) as usize
    }
}

struct ShardSpawner<'a> {
    shards: usize,
    mailbox_capacity: usize,
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
                let cap = self.mailbox_capacity;
                let addr = AggregatorShard::<M>::start_in_arbiter(arbiter, move |_| {
                    AggregatorShard::new(index, cap)
                });
                Shard {
                    apply: addr.clone().recipient(),
                    flush: addr.clone().recipient(),
                    restore: addr.clone().recipient(),
                    forget: addr.recipient(),
                }
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
    pub fn start(shards: usize, mailbox_capacity: usize, arbiters: &[ArbiterHandle]) -> Self {
        assert!(!arbiters.is_empty(), "shards need an arbiter to run on");
        let mut spawner = ShardSpawner {
            shards: shards.max(1),
            mailbox_capacity,
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
            let mut per_shard: Vec<Vec<(i64, Arc<Event>)>> = vec![Vec::new(); route.shards.len()];
            for (offset, event) in events {
                if let Some(key) = (route.key)(event) {
                    per_shard[route.shard_of(key)].push((*offset, Arc::clone(event)));
                }
            }
            for (shard, events) in per_shard.into_iter().enumerate() {
                if !events.is_empty() {
                    out.push((
                        route.metric,
                        route.shards[shard].apply.clone(),
                        Apply { source, events },
                    ));
                }
            }
        }
        out
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
                let (metric, key) = update.route();
                self.routes
                    .iter()
                    .position(|r| r.metric == metric)
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
