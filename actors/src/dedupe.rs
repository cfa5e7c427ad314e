//! Dropping client retries: an `eventId` seen again at a later offset of the
//! same partition, within the window, is a duplicate.
//!
//! Retries of one event land in one partition, since the record key is the
//! userId. Time is the records' own (Kafka timestamps), never the clock, so a
//! replay of the same records decides exactly as the first pass did. The
//! seen-set is state like any other: written to the changelog at each commit,
//! expired entries as tombstones, restored with its partition.

use std::collections::{HashMap, VecDeque};

use crate::source::SourcePartition;
use crate::state::{SeenEntry, StateUpdate};

pub struct Dedupe {
    source: SourcePartition,
    window_ms: i64,
    seen: HashMap<String, SeenEntry>,
    /// Ids by the time they were first seen, oldest first, for expiry.
    order: VecDeque<(i64, String)>,
    newest_ms: i64,
    added: Vec<String>,
    expired: Vec<String>,
}

/// What changed since the last flush: entries to write and to delete.
#[derive(Debug, Default, PartialEq)]
pub struct SeenChanges {
    pub puts: Vec<StateUpdate>,
    pub deletes: Vec<StateUpdate>,
}

impl Dedupe {
    /// `restored`: the partition's entries from the changelog.
    pub fn new(
        source: SourcePartition,
        window_ms: i64,
        restored: Vec<(String, SeenEntry)>,
    ) -> Self {
        let mut order: Vec<(i64, String)> = restored
            .iter()
            .map(|(id, e)| (e.at_ms, id.clone()))
            .collect();
        order.sort();
        Self {
            source,
            window_ms,
            newest_ms: order.last().map_or(i64::MIN, |(t, _)| *t),
            seen: restored.into_iter().collect(),
            order: order.into(),
            added: Vec::new(),
            expired: Vec::new(),
        }
    }

    /// Whether the record at `offset` carrying `id` is to be counted: its
    /// first occurrence, or that same record again (a replay, which the
    /// state's `as_of` takes care of). A later record with the id is a retry.
    pub fn is_first(&mut self, id: &str, offset: i64, at_ms: i64) -> bool {
        self.expire(at_ms);
        match self.seen.get_mut(id) {
            Some(entry) if offset == entry.offset => true,
            Some(entry) if offset > entry.offset => false,
            Some(entry) => {
                // Only after a restore that ran ahead: keep the earliest.
                *entry = SeenEntry { offset, at_ms };
                self.added.push(id.to_string());
                true
            }
            None => {
                self.seen
                    .insert(id.to_string(), SeenEntry { offset, at_ms });
                self.order.push_back((at_ms, id.to_string()));
                self.added.push(id.to_string());
                true
            }
        }
    }

    fn expire(&mut self, now_ms: i64) {
        self.newest_ms = self.newest_ms.max(now_ms);
        let horizon = self.newest_ms.saturating_sub(self.window_ms);
        while let Some((at, _)) = self.order.front() {
            if *at >= horizon {
                break;
            }
            let Some((at, id)) = self.order.pop_front() else {
                break;
            };
            if self.seen.get(&id).is_some_and(|e| e.at_ms == at) {
                self.seen.remove(&id);
                self.expired.push(id);
            }
        }
    }

    fn update(&self, event_id: String, entry: SeenEntry) -> StateUpdate {
        StateUpdate::Seen {
            source: self.source,
            event_id,
            entry,
        }
    }

    /// The changes since the last call, for the changelog.
    pub fn flush(&mut self) -> SeenChanges {
        let mut changes = SeenChanges::default();
        for id in std::mem::take(&mut self.expired) {
            if !self.seen.contains_key(&id) {
                let gone = SeenEntry {
                    offset: -1,
                    at_ms: 0,
                };
                changes.deletes.push(self.update(id, gone));
            }
        }
        let mut added = std::mem::take(&mut self.added);
        added.sort();
        added.dedup();
        for id in added {
            if let Some(entry) = self.seen.get(&id).copied() {
                changes.puts.push(self.update(id, entry));
            }
        }
        changes
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::InputTopic;

    const MIN: i64 = 60_000;

    fn ids(updates: &[StateUpdate]) -> Vec<String> {
        updates
            .iter()
            .map(|u| match u {
                StateUpdate::Seen { event_id, .. } => event_id.clone(),
                other => panic!("not a seen entry: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn retries_within_the_window_are_dropped_and_replays_kept() {
        let src = SourcePartition::new(InputTopic::UserEvents, 0);
        let mut d = Dedupe::new(src, 10 * MIN, Vec::new());
        assert!(d.is_first("a", 0, 0));
        assert!(d.is_first("b", 1, MIN));
        // The client retried "a": a later record, same id.
        assert!(!d.is_first("a", 2, 2 * MIN));
        // A replay of the record at offset 0 itself is not a retry.
        assert!(d.is_first("a", 0, 0));
        let changes = d.flush();
        assert_eq!(ids(&changes.puts), vec!["a", "b"]);
        assert!(changes.deletes.is_empty());
        // Eleven minutes on, "a" has expired: the same id counts again.
        assert!(d.is_first("c", 3, 11 * MIN));
        assert!(d.is_first("a", 4, 11 * MIN));
        let changes = d.flush();
        assert_eq!(ids(&changes.puts), vec!["a", "c"]);
        assert!(
            changes.deletes.is_empty(),
            "a was seen again before the flush"
        );
        assert!(d.is_first("d", 5, 12 * MIN));
        let changes = d.flush();
        // "b" (seen at 1 min) is past the 10-minute window at 12 min.
        assert_eq!(ids(&changes.deletes), vec!["b"]);
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn restored_entries_keep_deciding() {
        let src = SourcePartition::new(InputTopic::PageViews, 3);
        let restored = vec![(
            "x".to_string(),
            SeenEntry {
                offset: 7,
                at_ms: 5 * MIN,
            },
        )];
        let mut d = Dedupe::new(src, 10 * MIN, restored);
        assert!(!d.is_first("x", 9, 6 * MIN), "a retry after the restart");
        assert!(d.is_first("x", 7, 5 * MIN), "the restored record replayed");
        assert!(d.flush().puts.is_empty());
    }
}
