//! The read model the query endpoints answer from.
//!
//! It holds the latest [`StateUpdate`] of every entry, per source partition,
//! in concurrent maps keyed the way queries look things up. Queries merge the
//! partitions' entries. An update never replaces a newer one (`as_of` only
//! moves forward), so applying updates again or out of order is harmless.

use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use dashmap::DashMap;
use serde::Serialize;

use crate::event::EventType;
use crate::source::SourcePartition;
use crate::state::{
    Counter, DeadLetterMark, Entry, PageStats, SessionState, StateUpdate, UserActivity,
};

type PerSource<E> = Vec<(SourcePartition, E)>;

#[derive(Default)]
pub struct ReadModel {
    event_counts: DashMap<EventType, PerSource<Counter>>,
    users: DashMap<String, PerSource<UserActivity>>,
    pages: DashMap<String, PerSource<PageStats>>,
    sessions: DashMap<String, PerSource<SessionState>>,
    dead_letters: DashMap<SourcePartition, DeadLetterMark>,
    updates_applied: AtomicU64,
    updated_at_ms: AtomicI64,
    lag: AtomicI64,
}

fn upsert<K: Hash + Eq, E: Entry>(
    map: &DashMap<K, PerSource<E>>,
    key: K,
    source: SourcePartition,
    entry: E,
) {
    let mut slot = map.entry(key).or_default();
    match slot.iter_mut().find(|(s, _)| *s == source) {
        Some((_, current)) if current.as_of() <= entry.as_of() => *current = entry,
        Some(_) => {}
        None => slot.push((source, entry)),
    }
}

/// Removes `source`'s entry under `key`, and the key once no partition has one.
fn remove<K, Q, E>(map: &DashMap<K, PerSource<E>>, key: &Q, source: SourcePartition)
where
    K: Hash + Eq + std::borrow::Borrow<Q>,
    Q: Hash + Eq + ?Sized,
{
    map.remove_if_mut(key, |_, slot| {
        slot.retain(|(s, _)| *s != source);
        slot.is_empty()
    });
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

    pub fn apply(&self, update: StateUpdate) {
        match update {
            StateUpdate::EventCount {
                source,
                event_type,
                entry,
            } => upsert(&self.event_counts, event_type, source, entry),
            StateUpdate::User {
                source,
                user_id,
                entry,
            } => upsert(&self.users, user_id, source, entry),
            StateUpdate::Page { source, url, entry } => upsert(&self.pages, url, source, entry),
            StateUpdate::Session {
                source,
                user_id,
                entry,
            } => upsert(&self.sessions, user_id, source, entry),
            StateUpdate::DeadLetters { source, entry } => {
                let mut slot = self.dead_letters.entry(source).or_default();
                if slot.as_of <= entry.as_of {
                    *slot = entry;
                }
            }
            StateUpdate::SeenIds { .. } => return,
        }
        self.updates_applied.fetch_add(1, Ordering::Relaxed);
        self.updated_at_ms
            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
    }

    /// Applies a changelog tombstone: the entry its key names is gone (a
    /// rebuild deleted it; expired eventId buckets are not held here).
    pub fn delete(&self, key: &str) {
        let Some(entry) = crate::changelog::parse_key(key) else {
            return;
        };
        let source = entry.source;
        match entry.metric {
            "event-counts" => {
                if let Some(event_type) = EventType::parse(entry.key) {
                    remove(&self.event_counts, &event_type, source);
                }
            }
            "users" => remove(&self.users, entry.key, source),
            "top-pages" => remove(&self.pages, entry.key, source),
            "sessions" => remove(&self.sessions, entry.key, source),
            "dead-letters" => {
                self.dead_letters.remove(&source);
            }
            _ => return,
        }
        self.updated_at_ms
            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
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
        self.pages
            .iter()
            .map(|item| item.value().iter().map(|(_, p)| p.views).sum::<u64>())
            .sum()
    }

    pub fn unique_users(&self) -> usize {
        self.users.len()
    }

    /// Users whose last event is at or after `since_ms`.
    pub fn active_users(&self, since_ms: i64) -> usize {
        self.users
            .iter()
            .filter(|item| item.value().iter().any(|(_, u)| u.last_seen_ms >= since_ms))
            .count()
    }

    /// The most viewed pages, most views first, ties by URL.
    pub fn top_pages(&self, limit: usize) -> Vec<PageRank> {
        let mut pages: Vec<PageRank> = self
            .pages
            .iter()
            .map(|item| {
                let views: u64 = item.value().iter().map(|(_, p)| p.views).sum();
                let duration: f64 = item.value().iter().map(|(_, p)| p.total_duration).sum();
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
        let (mut active, mut completed, mut total_ms) = (0u64, 0u64, 0i64);
        for item in self.sessions.iter() {
            for (_, s) in item.value() {
                active += u64::from(s.open_since_ms.is_some());
                completed += s.completed;
                total_ms += s.total_duration_ms;
            }
        }
        SessionSummary {
            active_sessions: active,
            completed_sessions: completed,
            average_session_ms: if completed == 0 {
                0.0
            } else {
                total_ms as f64 / completed as f64
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
    use crate::source::InputTopic;

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
    fn tombstones_remove_one_partitions_entry() {
        let rm = ReadModel::new();
        let p0 = SourcePartition::new(InputTopic::PageViews, 0);
        let p1 = SourcePartition::new(InputTopic::PageViews, 1);
        let page = |source, views| StateUpdate::Page {
            source,
            url: "/a/b".into(),
            entry: PageStats {
                views,
                total_duration: 0.0,
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
        rm.delete(&crate::changelog::key(&page(p0, 0)));
        assert_eq!(rm.total_page_views(), 4);
        assert_eq!(rm.unique_users(), 1);
        rm.delete(&crate::changelog::key(&user(p0)));
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
                    total_duration: 10.0 * views as f64,
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
}
