//! The metrics arus aggregates. Each is a small state machine over events that
//! an [`AggregatorShard`](crate::AggregatorShard) runs for the keys routed to it.

use crate::model::event::{Event, EventType};
use crate::model::metric_kind::MetricKind;
use crate::model::source::SourcePartition;
use crate::state::{Counter, PageStats, SessionState, StateUpdate, Table, UserActivity};

/// One metric's state for the keys of one shard.
pub trait Metric: Default + Unpin + Send + 'static {
    /// Which metric it is (its name in logs, metrics and changelog keys).
    const KIND: MetricKind;

    /// The key this metric routes an event by, or `None` when it ignores the event.
    fn shard_key(event: &Event) -> Option<&str>;

    /// Applies an event at `offset` of `source`. Returns false when the state
    /// already included it (a replay).
    fn apply(&mut self, source: SourcePartition, offset: i64, event: &Event) -> bool;

    /// Appends the entries changed since the last call.
    fn drain_updates(&mut self, out: &mut Vec<StateUpdate>);

    /// Loads an entry of this metric restored from the changelog; entries of
    /// other metrics are ignored.
    fn restore(&mut self, update: StateUpdate);

    /// Drops the state of a source partition (revoked, or to be restored again).
    fn forget(&mut self, source: SourcePartition);
}

/// User events by type.
#[derive(Default)]
pub struct EventCounts(Table<EventType, Counter>);

impl Metric for EventCounts {
    const KIND: MetricKind = MetricKind::EventCounts;

    fn shard_key(event: &Event) -> Option<&str> {
        match event {
            Event::User(e) => Some(e.event_type.as_str()),
            Event::Page(_) => None,
        }
    }

    fn apply(&mut self, source: SourcePartition, offset: i64, event: &Event) -> bool {
        let Event::User(e) = event else { return false };
        self.0
            .apply(source, &e.event_type, offset, |c| c.count += 1)
    }

    fn drain_updates(&mut self, out: &mut Vec<StateUpdate>) {
        out.extend(self.0.drain_dirty().map(|(source, event_type, entry)| {
            StateUpdate::EventCount {
                source,
                event_type,
                entry,
            }
        }));
    }

    fn restore(&mut self, update: StateUpdate) {
        if let StateUpdate::EventCount {
            source,
            event_type,
            entry,
        } = update
        {
            self.0.restore(source, event_type, entry);
        }
    }

    fn forget(&mut self, source: SourcePartition) {
        self.0.forget(source);
    }
}

/// Events and page views by user, and when each user was last seen (which
/// answers "active users").
#[derive(Default)]
pub struct Users(Table<String, UserActivity>);

impl Metric for Users {
    const KIND: MetricKind = MetricKind::Users;

    fn shard_key(event: &Event) -> Option<&str> {
        Some(event.user_id())
    }

    fn apply(&mut self, source: SourcePartition, offset: i64, event: &Event) -> bool {
        let seen = event.timestamp_ms();
        let is_page = matches!(event, Event::Page(_));
        self.0.apply(source, event.user_id(), offset, |u| {
            if is_page {
                u.page_views += 1;
            } else {
                u.events += 1;
            }
            u.last_seen_ms = u.last_seen_ms.max(seen);
        })
    }

    fn drain_updates(&mut self, out: &mut Vec<StateUpdate>) {
        out.extend(
            self.0
                .drain_dirty()
                .map(|(source, user_id, entry)| StateUpdate::User {
                    source,
                    user_id,
                    entry,
                }),
        );
    }

    fn restore(&mut self, update: StateUpdate) {
        if let StateUpdate::User {
            source,
            user_id,
            entry,
        } = update
        {
            self.0.restore(source, user_id, entry);
        }
    }

    fn forget(&mut self, source: SourcePartition) {
        self.0.forget(source);
    }
}

/// Page views by URL.
#[derive(Default)]
pub struct TopPages(Table<String, PageStats>);

impl Metric for TopPages {
    const KIND: MetricKind = MetricKind::TopPages;

    fn shard_key(event: &Event) -> Option<&str> {
        match event {
            Event::Page(p) => Some(&p.url),
            Event::User(_) => None,
        }
    }

    fn apply(&mut self, source: SourcePartition, offset: i64, event: &Event) -> bool {
        let Event::Page(p) = event else { return false };
        let duration = p.duration.unwrap_or(0.0);
        self.0
            .apply(source, p.url.as_str(), offset, |s| s.add_view(duration))
    }

    fn drain_updates(&mut self, out: &mut Vec<StateUpdate>) {
        out.extend(
            self.0
                .drain_dirty()
                .map(|(source, url, entry)| StateUpdate::Page { source, url, entry }),
        );
    }

    fn restore(&mut self, update: StateUpdate) {
        if let StateUpdate::Page { source, url, entry } = update {
            self.0.restore(source, url, entry);
        }
    }

    fn forget(&mut self, source: SourcePartition) {
        self.0.forget(source);
    }
}

/// Sessions from login to logout, per user.
#[derive(Default)]
pub struct Sessions(Table<String, SessionState>);

impl Metric for Sessions {
    const KIND: MetricKind = MetricKind::Sessions;

    fn shard_key(event: &Event) -> Option<&str> {
        match event {
            Event::User(e) if matches!(e.event_type, EventType::Login | EventType::Logout) => {
                Some(&e.user_id)
            }
            _ => None,
        }
    }

    fn apply(&mut self, source: SourcePartition, offset: i64, event: &Event) -> bool {
        let Event::User(e) = event else { return false };
        let at = e.timestamp.timestamp_millis();
        let kind = e.event_type;
        self.0
            .apply(source, e.user_id.as_str(), offset, |s| match kind {
                // A second login while a session is open restarts it: the
                // first one never saw its logout.
                EventType::Login => s.open_since_ms = Some(at),
                EventType::Logout => {
                    if let Some(since) = s.open_since_ms.take() {
                        s.completed += 1;
                        s.total_duration_ms += (at - since).max(0);
                    }
                }
                EventType::Purchase | EventType::View => {}
            })
    }

    fn drain_updates(&mut self, out: &mut Vec<StateUpdate>) {
        out.extend(
            self.0
                .drain_dirty()
                .map(|(source, user_id, entry)| StateUpdate::Session {
                    source,
                    user_id,
                    entry,
                }),
        );
    }

    fn restore(&mut self, update: StateUpdate) {
        if let StateUpdate::Session {
            source,
            user_id,
            entry,
        } = update
        {
            self.0.restore(source, user_id, entry);
        }
    }

    fn forget(&mut self, source: SourcePartition) {
        self.0.forget(source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::{Defaults, PageView, UserEvent};
    use crate::model::source::InputTopic;
    use chrono::{DateTime, Utc};
    use serde_json::json;

    fn user(user: &str, kind: &str, at: &str) -> Event {
        let now = DateTime::parse_from_rfc3339(at)
            .expect("time")
            .with_timezone(&Utc);
        Event::User(
            UserEvent::from_json(
                crate::model::json::Json::of(
                    &json!({"userId": user, "eventType": kind, "timestamp": at}),
                ),
                Defaults { now },
            )
            .expect("valid"),
        )
    }

    #[test]
    fn sessions_pair_login_with_logout() {
        let src = SourcePartition::new(InputTopic::UserEvents, 0);
        let mut m = Sessions::default();
        assert!(m.apply(src, 0, &user("a", "login", "2024-01-01T00:00:00Z")));
        assert!(m.apply(src, 1, &user("a", "logout", "2024-01-01T00:01:30Z")));
        // A logout without a login closes nothing.
        assert!(m.apply(src, 2, &user("a", "logout", "2024-01-01T00:02:00Z")));
        assert!(m.apply(src, 3, &user("b", "login", "2024-01-01T00:00:00Z")));
        // A replay of offset 1 changes nothing.
        assert!(!m.apply(src, 1, &user("a", "logout", "2024-01-01T00:01:30Z")));
        let mut out = Vec::new();
        m.drain_updates(&mut out);
        out.sort_by_key(|u| format!("{u:?}"));
        assert_eq!(
            out,
            vec![
                StateUpdate::Session {
                    source: src,
                    user_id: "a".into(),
                    entry: SessionState {
                        open_since_ms: None,
                        completed: 1,
                        total_duration_ms: 90_000,
                        as_of: 2
                    }
                },
                StateUpdate::Session {
                    source: src,
                    user_id: "b".into(),
                    entry: SessionState {
                        open_since_ms: Some(1_704_067_200_000),
                        completed: 0,
                        total_duration_ms: 0,
                        as_of: 3
                    }
                },
            ]
        );
    }

    #[test]
    fn routing_keys() {
        let login = user("u1", "login", "2024-01-01T00:00:00Z");
        let purchase = user("u1", "purchase", "2024-01-01T00:00:00Z");
        let page = Event::Page(
            PageView::from_json(
                crate::model::json::Json::of(&json!({"userId": "u2", "url": "/p"})),
                Defaults { now: Utc::now() },
            )
            .expect("valid"),
        );
        assert_eq!(EventCounts::shard_key(&login), Some("login"));
        assert_eq!(EventCounts::shard_key(&page), None);
        assert_eq!(Users::shard_key(&page), Some("u2"));
        assert_eq!(TopPages::shard_key(&page), Some("/p"));
        assert_eq!(TopPages::shard_key(&login), None);
        assert_eq!(Sessions::shard_key(&login), Some("u1"));
        assert_eq!(Sessions::shard_key(&purchase), None);
    }
}
