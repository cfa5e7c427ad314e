//! The read model the query endpoints answer from.
//!
//! It holds the latest [`StateUpdate`] of every entry, per source partition,
//! in concurrent maps keyed the way queries look things up. Queries merge the
//! partitions' entries. An update never replaces a newer one (`as_of` only
//! moves forward), so applying updates again or out of order is harmless.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hash;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use dashmap::DashMap;
use serde::Serialize;

use crate::model::event::EventType;
use crate::model::metric_kind::{EntryKind, MetricKind};
use crate::model::source::SourcePartition;
use crate::read_model::activity::ActivityIndex;
use crate::read_model::windows::WindowStore;
use crate::state::owner::Owner;
use crate::state::{
    Counter, DeadLetterMark, Entry, PageStats, SessionState, StateUpdate, UserActivity,
};

type PerSource<E> = Vec<(SourcePartition, E)>;

/// The answers that would otherwise walk every user or page, kept up to date
/// as entries change: queries read them in constant time, however many users
/// there are.
#[derive(Default)]
pub struct ReadModel {
    event_counts: DashMap<EventType, PerSource<Counter>>,
    users: DashMap<String, PerSource<UserActivity>>,
    pages: DashMap<String, PerSource<PageStats>>,
    sessions: DashMap<String, PerSource<SessionState>>,
    dead_letters: DashMap<SourcePartition, DeadLetterMark>,
    windows: WindowStore,
    activity: Mutex<ActivityIndex>,
    /// Users with user events, most first, ties by id: the top users in
    /// O(limit), kept in step with `users`.
    by_events: Mutex<BTreeSet<(Reverse<u64>, String)>>,
    session_totals: Mutex<SessionTotals>,
    page_views: AtomicU64,
    updates_applied: AtomicU64,
    updated_at_ms: AtomicI64,
    lag: AtomicI64,
    /// Each partition number's owner, as the changelog last named it.
    owners: DashMap<i32, Owner>,
}

/// Sessions summed over every user and partition.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct SessionTotals {
    active: u64,
    completed: u64,
    total_ms: i64,
}

impl SessionTotals {
    fn of(entries: &[(SourcePartition, SessionState)]) -> Self {
        let mut totals = Self::default();
        for (_, s) in entries {
            totals.active += u64::from(s.open_since_ms.is_some());
            totals.completed += s.completed;
            totals.total_ms += s.total_duration_ms;
        }
        totals
    }

    /// Replaces `before`'s share of the totals with `after`'s.
    fn moved(&mut self, before: Self, after: Self) {
        self.active = self.active - before.active + after.active;
        self.completed = self.completed - before.completed + after.completed;
        self.total_ms = self.total_ms - before.total_ms + after.total_ms;
    }
}

/// The latest time a user was seen in any partition (`None`: not held).
fn last_seen(entries: &[(SourcePartition, UserActivity)]) -> Option<i64> {
    entries.iter().map(|(_, u)| u.last_seen_ms).max()
}

/// A user's last event and user-event total over all partitions.
fn seen_and_events(entries: &[(SourcePartition, UserActivity)]) -> (Option<i64>, u64) {
    (
        last_seen(entries),
        entries.iter().map(|(_, u)| u.events).sum(),
    )
}

fn views(entries: &[(SourcePartition, PageStats)]) -> u64 {
    entries.iter().map(|(_, p)| p.views).sum()
}

/// A bucket's key: `<resolution>/<start>`.
fn bucket_key(key: &str) -> Option<(crate::window::Resolution, i64)> {
    let (resolution, start) = key.split_once('/')?;
    Some((
        crate::window::Resolution::parse(resolution)?,
        start.parse().ok()?,
    ))
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values are updated in one step each; a panic elsewhere
    // cannot leave them half-written.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Replaces `source`'s entry under `key` unless the one held is newer, and
/// hands `changed` the key and its `measure` before and after, while the
/// key is still locked (so running aggregates see every key's changes in
/// order).
fn upsert<K: Hash + Eq, E: Entry, M>(
    map: &DashMap<K, PerSource<E>>,
    key: K,
    source: SourcePartition,
    entry: E,
    measure: impl Fn(&[(SourcePartition, E)]) -> M,
    changed: impl FnOnce(&K, M, M),
) {
    let mut slot = map.entry(key).or_default();
    let before = measure(&slot);
    match slot.iter_mut().find(|(s, _)| *s == source) {
        Some((_, current)) if current.as_of() <= entry.as_of() => *current = entry,
        Some(_) => return,
        None => slot.push((source, entry)),
    }
    changed(slot.key(), before, measure(&slot));
}

/// Removes `source`'s entry under `key`, and the key once no partition has
/// one; `changed` as for [`upsert`].
fn remove<K, Q, E, M>(
    map: &DashMap<K, PerSource<E>>,
    key: &Q,
    source: SourcePartition,
    measure: impl Fn(&[(SourcePartition, E)]) -> M,
    changed: impl FnOnce(M, M),
) where
    K: Hash + Eq + std::borrow::Borrow<Q>,
    Q: Hash + Eq + ?Sized,
{
    let mut measured = None;
    map.remove_if_mut(key, |_, slot| {
        let before = measure(slot);
        slot.retain(|(s, _)| *s != source);
        measured = Some((before, measure(slot)));
        slot.is_empty()
    });
    if let Some((before, after)) = measured {
        changed(before, after);
    }
}

/// One page in the top-pages answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PageRank {
    pub url: String,
    pub views: u64,
    pub average_duration: f64,
}

/// The sessions answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    pub active_sessions: u64,
    pub completed_sessions: u64,
    pub average_session_ms: f64,
}

/// One user's activity over all partitions.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSummary {
    pub user_id: String,
    pub events: u64,
    pub page_views: u64,
    pub last_seen_ms: i64,
    pub sessions: u64,
    pub in_session: bool,
}

impl ReadModel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Partition `partition`'s owner record (`None`: deleted).
    pub fn set_owner(&self, partition: i32, owner: Option<Owner>) {
        match owner {
            Some(owner) => {
                self.owners.insert(partition, owner);
            }
            None => {
                self.owners.remove(&partition);
            }
        }
    }

    /// Who the changelog last named as partition `partition`'s owner.
    pub fn owner(&self, partition: i32) -> Option<Owner> {
        self.owners.get(&partition).map(|o| o.value().clone())
    }

    pub fn apply(&self, update: StateUpdate) {
        match update {
            StateUpdate::EventCount {
                source,
                event_type,
                entry,
            } => upsert(
                &self.event_counts,
                event_type,
                source,
                entry,
                |_| (),
                |_, _, _| {},
            ),
            StateUpdate::User {
                source,
                user_id,
                entry,
            } => upsert(
                &self.users,
                user_id,
                source,
                entry,
                seen_and_events,
                |user, b, a| self.user_moved(user, b, a),
            ),
            StateUpdate::Page { source, url, entry } => {
                upsert(&self.pages, url, source, entry, views, |_, b, a| {
                    self.views_moved(b, a)
                })
            }
            StateUpdate::Session {
                source,
                user_id,
                entry,
            } => upsert(
                &self.sessions,
                user_id,
                source,
                entry,
                SessionTotals::of,
                |_, b, a| self.sessions_moved(b, a),
            ),
            StateUpdate::DeadLetters { source, entry } => {
                let mut slot = self.dead_letters.entry(source).or_default();
                if slot.as_of <= entry.as_of {
                    *slot = entry;
                }
            }
            StateUpdate::SeenIds { .. } => return,
            StateUpdate::Bucket {
                source,
                resolution,
                start_ms,
                entry,
            } => self
                .windows
                .apply_bucket(source, resolution, start_ms, entry),
            StateUpdate::Watermark { source, entry } => self.windows.apply_watermark(source, entry),
            StateUpdate::VisitBucket {
                source,
                resolution,
                start_ms,
                entry,
            } => self
                .windows
                .apply_visits(source, resolution, start_ms, entry),
            StateUpdate::UserVisits { .. } | StateUpdate::VisitMark { .. } => return,
        }
        self.updates_applied.fetch_add(1, Ordering::Relaxed);
        self.updated_at_ms
            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
    }

    fn user_moved(&self, user: &str, before: (Option<i64>, u64), after: (Option<i64>, u64)) {
        locked(&self.activity).moved(before.0, after.0);
        if before.1 != after.1 {
            let mut ranked = locked(&self.by_events);
            if before.1 > 0 {
                ranked.remove(&(Reverse(before.1), user.to_string()));
            }
            if after.1 > 0 {
                ranked.insert((Reverse(after.1), user.to_string()));
            }
        }
    }

    fn views_moved(&self, before: u64, after: u64) {
        // Wrapping add of the difference: one atomic step, never a moment
        // in which the old views are gone and the new ones not yet there.
        self.page_views
            .fetch_add(after.wrapping_sub(before), Ordering::Relaxed);
    }

    fn sessions_moved(&self, before: SessionTotals, after: SessionTotals) {
        locked(&self.session_totals).moved(before, after);
    }

    /// Applies a changelog tombstone: the entry its key names is gone (a
    /// rebuild deleted it; expired eventId buckets are not held here).
    pub fn delete(&self, key: &str) {
        let Some(entry) = crate::state::changelog::parse_key(key) else {
            return;
        };
        let source = entry.source;
        match entry.metric {
            EntryKind::Metric(MetricKind::EventCounts) => {
                if let Some(event_type) = EventType::parse(entry.key) {
                    remove(&self.event_counts, &event_type, source, |_| (), |_, _| {});
                }
            }
            EntryKind::Metric(MetricKind::Users) => {
                remove(&self.users, entry.key, source, seen_and_events, |b, a| {
                    self.user_moved(entry.key, b, a)
                })
            }
            EntryKind::Metric(MetricKind::TopPages) => {
                remove(&self.pages, entry.key, source, views, |b, a| {
                    self.views_moved(b, a)
                })
            }
            EntryKind::Metric(MetricKind::Sessions) => remove(
                &self.sessions,
                entry.key,
                source,
                SessionTotals::of,
                |b, a| self.sessions_moved(b, a),
            ),
            EntryKind::DeadLetters => {
                self.dead_letters.remove(&source);
            }
            EntryKind::SeenIds => return,
            EntryKind::Windows => {
                if let Some((resolution, start)) = bucket_key(entry.key) {
                    self.windows.delete_bucket(source, resolution, start);
                }
            }
            EntryKind::Watermark => self.windows.delete_watermark(source),
            EntryKind::Visits => {
                if let Some((resolution, start)) = bucket_key(entry.key) {
                    self.windows.delete_visits(source, resolution, start);
                }
            }
            EntryKind::Visit | EntryKind::VisitMark => return,
        }
        self.updated_at_ms
            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
    }

    /// The event-time buckets and watermarks.
    pub fn windows(&self) -> &WindowStore {
        &self.windows
    }

    /// When the read model last changed, in milliseconds since the epoch (0: never).
    pub fn updated_at_ms(&self) -> i64 {
        self.updated_at_ms.load(Ordering::Relaxed)
    }

    /// Changelog records not yet applied, as last measured.
    pub fn lag(&self) -> i64 {
        self.lag.load(Ordering::Relaxed)
    }

    pub fn set_lag(&self, lag: i64) {
        self.lag.store(lag, Ordering::Relaxed);
    }

    pub fn updates_applied(&self) -> u64 {
        self.updates_applied.load(Ordering::Relaxed)
    }

    /// Events by type, every type present.
    pub fn event_counts(&self) -> BTreeMap<&'static str, u64> {
        let mut counts: BTreeMap<&'static str, u64> =
            EventType::ALL.iter().map(|t| (t.as_str(), 0)).collect();
        for item in self.event_counts.iter() {
            let total: u64 = item.value().iter().map(|(_, c)| c.count).sum();
            *counts.entry(item.key().as_str()).or_default() += total;
        }
        counts
    }

    /// Input records sent to the dead-letter topic, all partitions.
    pub fn dead_letters(&self) -> u64 {
        self.dead_letters.iter().map(|m| m.count).sum()
    }

    pub fn total_page_views(&self) -> u64 {
        self.page_views.load(Ordering::Relaxed)
    }

    pub fn unique_users(&self) -> usize {
        self.users.len()
    }

    /// Users whose last event is at or after `since_ms`.
    pub fn active_users(&self, since_ms: i64) -> u64 {
        locked(&self.activity).since(since_ms)
    }

    /// The users with the most user events, most first, ties by user id:
    /// the seed's `eventsByUser`, bounded to `limit` users. Read from an
    /// index kept as entries change, so its cost is `limit`, not the
    /// number of users.
    pub fn top_users(&self, limit: usize) -> Vec<(String, u64)> {
        locked(&self.by_events)
            .iter()
            .take(limit)
            .map(|(Reverse(events), user)| (user.clone(), *events))
            .collect()
    }

    /// The most viewed pages, most views first, ties by URL.
    pub fn top_pages(&self, limit: usize) -> Vec<PageRank> {
        let mut pages: Vec<PageRank> = self
            .pages
            .iter()
            .map(|item| {
                let views: u64 = item.value().iter().map(|(_, p)| p.views).sum();
                // Summed wide: each partition's sum may be saturated.
                let milli: u128 = item
                    .value()
                    .iter()
                    .map(|(_, p)| u128::from(p.total_duration_milli))
                    .sum();
                let duration = milli as f64 / 1000.0;
                PageRank {
                    url: item.key().clone(),
                    views,
                    average_duration: if views == 0 {
                        0.0
                    } else {
                        duration / views as f64
                    },
                }
            })
            .collect();
        pages.sort_by(|a, b| b.views.cmp(&a.views).then_with(|| a.url.cmp(&b.url)));
        pages.truncate(limit);
        pages
    }

    pub fn sessions(&self) -> SessionSummary {
        let totals = *locked(&self.session_totals);
        SessionSummary {
            active_sessions: totals.active,
            completed_sessions: totals.completed,
            average_session_ms: if totals.completed == 0 {
                0.0
            } else {
                totals.total_ms as f64 / totals.completed as f64
            },
        }
    }

    pub fn user(&self, user_id: &str) -> Option<UserSummary> {
        let activity = self.users.get(user_id)?;
        let mut summary = UserSummary {
            user_id: user_id.to_string(),
            events: 0,
            page_views: 0,
            last_seen_ms: i64::MIN,
            sessions: 0,
            in_session: false,
        };
        for (_, u) in activity.value() {
            summary.events += u.events;
            summary.page_views += u.page_views;
            summary.last_seen_ms = summary.last_seen_ms.max(u.last_seen_ms);
        }
        drop(activity);
        if let Some(sessions) = self.sessions.get(user_id) {
            for (_, s) in sessions.value() {
                summary.sessions += s.completed;
                summary.in_session |= s.open_since_ms.is_some();
            }
        }
        Some(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::source::InputTopic;

    #[test]
    fn merges_partitions_and_never_goes_back() {
        let rm = ReadModel::new();
        let p0 = SourcePartition::new(InputTopic::UserEvents, 0);
        let p1 = SourcePartition::new(InputTopic::UserEvents, 1);
        let count = |source, count, as_of| StateUpdate::EventCount {
            source,
            event_type: EventType::Login,
            entry: Counter { count, as_of },
        };
        rm.apply(count(p0, 3, 10));
        rm.apply(count(p1, 2, 4));
        // An older state of p0 arriving late must not replace the newer one.
        rm.apply(count(p0, 1, 2));
        let counts = rm.event_counts();
        assert_eq!(counts.get("login"), Some(&5));
        assert_eq!(counts.get("logout"), Some(&0));
        assert_eq!(counts.len(), 4);
        assert_eq!(rm.updates_applied(), 3);
    }

    #[test]
    fn top_users_are_the_full_ranking_cut_to_the_limit() {
        let rm = ReadModel::new();
        let p0 = SourcePartition::new(InputTopic::UserEvents, 0);
        let p1 = SourcePartition::new(InputTopic::UserEvents, 1);
        let mut reference: BTreeMap<String, u64> = BTreeMap::new();
        for i in 0..300u64 {
            let user = format!("u{i:03}");
            // Two partitions for some users; ties on purpose (i % 37).
            let (a, b) = (i % 37, if i % 3 == 0 { i % 5 } else { 0 });
            for (source, events) in [(p0, a), (p1, b)] {
                rm.apply(StateUpdate::User {
                    source,
                    user_id: user.clone(),
                    entry: UserActivity {
                        events,
                        page_views: 1,
                        last_seen_ms: 1,
                        as_of: 1,
                    },
                });
            }
            if a + b > 0 {
                reference.insert(user, a + b);
            }
        }
        let mut expected: Vec<(String, u64)> = reference.into_iter().collect();
        expected.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
        for limit in [1, 7, 100, 1000] {
            let want: Vec<_> = expected.iter().take(limit).cloned().collect();
            assert_eq!(rm.top_users(limit), want, "limit {limit}");
        }
        // Seven users have no user events (i % 37 == 0, and no second
        // partition's events): they are not ranked.
        assert_eq!(expected.len(), 293);
    }

    #[test]
    fn tombstones_remove_one_partitions_entry() {
        let rm = ReadModel::new();
        let p0 = SourcePartition::new(InputTopic::PageViews, 0);
        let p1 = SourcePartition::new(InputTopic::PageViews, 1);
        let page = |source, views| StateUpdate::Page {
            source,
            url: "/a/b".into(),
            entry: PageStats {
                views,
                total_duration_milli: 0,
                as_of: 7,
            },
        };
        let user = |source| StateUpdate::User {
            source,
            user_id: "u1".into(),
            entry: UserActivity::default(),
        };
        for update in [page(p0, 3), page(p1, 4), user(p0)] {
            rm.apply(update);
        }
        rm.delete(&crate::state::changelog::key(&page(p0, 0)));
        assert_eq!(rm.total_page_views(), 4);
        assert_eq!(rm.unique_users(), 1);
        rm.delete(&crate::state::changelog::key(&user(p0)));
        assert_eq!(rm.unique_users(), 0, "the user's only partition is gone");
        // A later entry of the same partition starts again from nothing.
        rm.apply(page(p0, 1));
        assert_eq!(rm.total_page_views(), 5);
        rm.delete("not a changelog key");
        rm.delete("seen/page-views/0/12");
        assert_eq!(rm.total_page_views(), 5);
    }

    #[test]
    fn top_pages_orders_by_views_then_url() {
        let rm = ReadModel::new();
        let p = SourcePartition::new(InputTopic::PageViews, 0);
        for (url, views) in [("/b", 2), ("/a", 2), ("/c", 5), ("/d", 1)] {
            rm.apply(StateUpdate::Page {
                source: p,
                url: url.into(),
                entry: PageStats {
                    views,
                    total_duration_milli: 10_000 * views,
                    as_of: 1,
                },
            });
        }
        let top: Vec<(String, u64)> = rm
            .top_pages(3)
            .into_iter()
            .map(|r| (r.url, r.views))
            .collect();
        assert_eq!(
            top,
            vec![("/c".into(), 5), ("/a".into(), 2), ("/b".into(), 2)]
        );
        assert_eq!(rm.total_page_views(), 10);
    }

    /// The old per-query walks, as the reference the running aggregates
    /// must agree with.
    fn walked(rm: &ReadModel, since_ms: i64) -> (u64, u64, SessionTotals) {
        let active = rm
            .users
            .iter()
            .filter(|item| item.value().iter().any(|(_, u)| u.last_seen_ms >= since_ms))
            .count() as u64;
        let views = rm.pages.iter().map(|item| views(item.value())).sum();
        let mut sessions = SessionTotals::default();
        for item in rm.sessions.iter() {
            let t = SessionTotals::of(item.value());
            sessions.moved(SessionTotals::default(), t);
        }
        (active, views, sessions)
    }

    #[test]
    fn running_aggregates_agree_with_walking_every_entry() {
        let rm = ReadModel::new();
        let sources = [
            SourcePartition::new(InputTopic::UserEvents, 0),
            SourcePartition::new(InputTopic::UserEvents, 1),
            SourcePartition::new(InputTopic::PageViews, 0),
        ];
        // A fixed pseudo-random sequence (xorshift): updates in and out of
        // order, repeated, and tombstones, over few keys so that they collide.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for step in 0..20_000 {
            let source = sources[next(3) as usize];
            let key = format!("k{}", next(40));
            let as_of = next(50) as i64;
            let update = match next(3) {
                0 => StateUpdate::User {
                    source,
                    user_id: key,
                    entry: UserActivity {
                        events: next(9),
                        page_views: next(9),
                        last_seen_ms: next(10_000) as i64 - 2_000,
                        as_of,
                    },
                },
                1 => StateUpdate::Page {
                    source,
                    url: key,
                    entry: PageStats {
                        views: next(100),
                        total_duration_milli: 1_000,
                        as_of,
                    },
                },
                _ => StateUpdate::Session {
                    source,
                    user_id: key,
                    entry: SessionState {
                        open_since_ms: (next(2) == 0).then_some(5),
                        completed: next(7),
                        total_duration_ms: next(1_000) as i64,
                        as_of,
                    },
                },
            };
            if next(5) == 0 {
                rm.delete(&crate::state::changelog::key(&update));
            } else {
                rm.apply(update);
            }
            if step % 97 == 0 {
                for since in [-5_000, -2_000, -1, 0, 999, 1_000, 4_321, 8_000, 9_000] {
                    let (active, views, sessions) = walked(&rm, since);
                    assert_eq!(rm.active_users(since), active, "step {step} since {since}");
                    assert_eq!(rm.total_page_views(), views, "step {step}");
                    assert_eq!(*locked(&rm.session_totals), sessions, "step {step}");
                }
                // The top-users index against a ranking of every user.
                let mut walked_users: Vec<(String, u64)> = rm
                    .users
                    .iter()
                    .map(|u| {
                        (
                            u.key().clone(),
                            u.value().iter().map(|(_, a)| a.events).sum(),
                        )
                    })
                    .filter(|(_, events)| *events > 0)
                    .collect();
                walked_users.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                assert_eq!(rm.top_users(usize::MAX), walked_users, "step {step}");
            }
        }
        let summary = rm.sessions();
        let (_, _, sessions) = walked(&rm, 0);
        assert_eq!(summary.active_sessions, sessions.active);
        assert_eq!(summary.completed_sessions, sessions.completed);
        assert!(sessions.completed > 0 && rm.unique_users() > 0);
    }
}
