//! A time bucket of one source partition, and the partition's watermark:
//! the two changelog entries event-time windows keep.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::top_k::TopK;
use super::visitors::Visitors;
use crate::model::event::Event;
use crate::state::NOTHING_APPLIED;

/// What one source partition saw in one bucket (a minute, an hour or a
/// day) of event time. A partition of `user-events` fills `events` and
/// `types`, one of `page-views` `pageviews`; both fill `visitors`, and a
/// query merges them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    #[serde(default)]
    pub events: u64,
    #[serde(default)]
    pub pageviews: u64,
    /// User events by `eventType`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub types: BTreeMap<String, u64>,
    pub visitors: Visitors,
    /// Visitors by `eventType` (at most one sketch per type: the types are
    /// a closed list).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub type_visitors: BTreeMap<String, Visitors>,
    /// Page views by `url`, the most read (a page-views partition's).
    #[serde(default, skip_serializing_if = "TopK::is_empty")]
    pub pages: TopK,
    pub as_of: i64,
}

impl Bucket {
    pub fn new(lg_k: u8) -> Self {
        Self {
            events: 0,
            pageviews: 0,
            types: BTreeMap::new(),
            visitors: Visitors::new(lg_k),
            type_visitors: BTreeMap::new(),
            pages: TopK::default(),
            as_of: NOTHING_APPLIED,
        }
    }

    /// Counts `event`, read at `offset`; at most `pages` pages are counted
    /// by name (see [`TopK`]).
    pub fn add(&mut self, offset: i64, event: &Event, pages: usize) {
        match event {
            Event::User(e) => {
                self.events += 1;
                let name = e.event_type.as_str();
                match self.types.get_mut(name) {
                    Some(count) => *count += 1,
                    None => {
                        self.types.insert(name.to_owned(), 1);
                    }
                }
                let lg_k = self.visitors.lg_k();
                self.type_visitors
                    .entry(name.to_owned())
                    .or_insert_with(|| Visitors::new(lg_k))
                    .insert(&e.user_id);
            }
            Event::Page(p) => {
                self.pageviews += 1;
                self.pages.add(&p.url, pages);
            }
        }
        self.visitors.insert(event.user_id());
        self.as_of = offset;
    }
}

/// A source partition's event-time progress: the latest event time it has
/// seen (the watermark is that minus the grace), the late events it
/// refused to its buckets, and the last offset it decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatermarkMark {
    pub max_event_ms: i64,
    pub late: u64,
    pub as_of: i64,
}

impl Default for WatermarkMark {
    fn default() -> Self {
        Self {
            max_event_ms: i64::MIN,
            late: 0,
            as_of: NOTHING_APPLIED,
        }
    }
}
