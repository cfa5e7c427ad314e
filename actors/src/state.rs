//! Aggregate state entries and the table that keeps them per source partition.
//!
//! Every entry carries `as_of`: the offset of the last input record of its
//! source partition that it includes. An event at or below `as_of` is already
//! in the entry and is skipped, which makes applying a replayed record a no-op.
//! Entries are kept per source partition so that each has exactly one offset
//! sequence to be compared against.

use std::borrow::{Borrow, Cow};
use std::collections::HashMap;
use std::hash::Hash;

use crate::metric_kind::{EntryKind, MetricKind};
use serde::{Deserialize, Serialize};

use crate::event::EventType;
use crate::source::SourcePartition;

/// No record applied yet: every real offset (0 and up) is above it.
pub const NOTHING_APPLIED: i64 = -1;

/// What every state entry has.
pub trait Entry: Clone + Default {
    fn as_of(&self) -> i64;
    fn set_as_of(&mut self, offset: i64);
}

macro_rules! entry {
    ($ty:ty) => {
        impl Entry for $ty {
            fn as_of(&self) -> i64 {
                self.as_of
            }
            fn set_as_of(&mut self, offset: i64) {
                self.as_of = offset;
            }
        }
    };
}

/// Events of one type seen in one source partition.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counter {
    pub count: u64,
    pub as_of: i64,
}

impl Default for Counter {
    fn default() -> Self {
        Self {
            count: 0,
            as_of: NOTHING_APPLIED,
        }
    }
}
entry!(Counter);

/// One user's activity in one source partition.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserActivity {
    pub events: u64,
    pub page_views: u64,
    pub last_seen_ms: i64,
    pub as_of: i64,
}

impl Default for UserActivity {
    fn default() -> Self {
        Self {
            events: 0,
            page_views: 0,
            last_seen_ms: i64::MIN,
            as_of: NOTHING_APPLIED,
        }
    }
}
entry!(UserActivity);

/// One page's views in one source partition.
///
/// Durations are summed as an integer, in thousandths of the client's unit,
/// saturating: a sum can never overflow to infinity (which JSON cannot
/// write, so the entry became unreadable and its page vanished).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "PageStatsFields")]
pub struct PageStats {
    pub views: u64,
    pub total_duration_milli: u64,
    pub as_of: i64,
}

impl PageStats {
    /// Adds one view of `duration` (in the client's unit).
    pub fn add_view(&mut self, duration: f64) {
        self.views += 1;
        self.total_duration_milli = self
            .total_duration_milli
            .saturating_add(thousandths(duration));
    }

    /// The summed durations, in the client's unit.
    pub fn total_duration(&self) -> f64 {
        self.total_duration_milli as f64 / 1000.0
    }
}

/// `value` in thousandths, rounded; negative and NaN give 0, anything past
/// `u64::MAX` thousandths gives `u64::MAX` (Rust's float-to-integer casts
/// saturate).
fn thousandths(value: f64) -> u64 {
    (value * 1000.0).round() as u64
}

/// A page entry as any version wrote it: `totalDurationMilli` now;
/// `totalDuration` (a float sum) before, `null` once it had overflowed.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageStatsFields {
    views: u64,
    #[serde(default)]
    total_duration_milli: Option<u64>,
    #[serde(default, deserialize_with = "legacy_sum")]
    total_duration: Option<u64>,
    as_of: i64,
}

/// A float sum in thousandths; `null` (a sum that had overflowed to
/// infinity) as the saturated sum it stands for.
fn legacy_sum<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let sum: Option<f64> = Deserialize::deserialize(d)?;
    Ok(Some(sum.map_or(u64::MAX, thousandths)))
}

impl From<PageStatsFields> for PageStats {
    fn from(f: PageStatsFields) -> Self {
        Self {
            views: f.views,
            total_duration_milli: f.total_duration_milli.or(f.total_duration).unwrap_or(0),
            as_of: f.as_of,
        }
    }
}

impl Default for PageStats {
    fn default() -> Self {
        Self {
            views: 0,
            total_duration_milli: 0,
            as_of: NOTHING_APPLIED,
        }
    }
}
entry!(PageStats);

/// One user's sessions (login to logout) in one source partition.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionState {
    /// When the open session started, if one is open.
    pub open_since_ms: Option<i64>,
    pub completed: u64,
    pub total_duration_ms: i64,
    pub as_of: i64,
}

impl Default for SessionState {
    fn default() -> Self {
        Self {
            open_since_ms: None,
            completed: 0,
            total_duration_ms: 0,
            as_of: NOTHING_APPLIED,
        }
    }
}
entry!(SessionState);

/// An eventId a partition has seen: where it first appeared, and when (by
/// record time), so that a client's retry of the same event counts once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeenEntry {
    pub offset: i64,
    pub at_ms: i64,
}

/// How many records of a partition were dead-lettered, and the offset of the
/// last one: a replay does not dead-letter a record at or below it again.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterMark {
    pub count: u64,
    pub as_of: i64,
}

impl Default for DeadLetterMark {
    fn default() -> Self {
        Self {
            count: 0,
            as_of: NOTHING_APPLIED,
        }
    }
}

/// A changed state entry, as the aggregators and partition consumers hand it
/// to the commit: one changelog record (`changelog.rs` writes and reads it).
#[derive(Debug, Clone, PartialEq)]
pub enum StateUpdate {
    EventCount {
        source: SourcePartition,
        event_type: EventType,
        entry: Counter,
    },
    User {
        source: SourcePartition,
        user_id: String,
        entry: UserActivity,
    },
    Page {
        source: SourcePartition,
        url: String,
        entry: PageStats,
    },
    Session {
        source: SourcePartition,
        user_id: String,
        entry: SessionState,
    },
    /// Kept by the partition consumer, not an aggregator.
    DeadLetters {
        source: SourcePartition,
        entry: DeadLetterMark,
    },
    /// Kept by the partition consumer, not an aggregator; not in queries.
    /// The eventIds first seen in one commit, in one record: the changelog
    /// carries one such record per partition per commit, not one per event.
    /// `bucket` is the offset of the first of them and names the record.
    SeenIds {
        source: SourcePartition,
        bucket: i64,
        ids: Vec<(String, SeenEntry)>,
    },
}

impl StateUpdate {
    /// The metric this entry belongs to and the key it is routed by: the
    /// same key the metric routes events by, so a restored entry lands on
    /// the shard its events go to.
    pub fn route(&self) -> (EntryKind, Cow<'_, str>) {
        use MetricKind::*;
        match self {
            StateUpdate::EventCount { event_type, .. } => (
                EntryKind::Metric(EventCounts),
                Cow::Borrowed(event_type.as_str()),
            ),
            StateUpdate::User { user_id, .. } => (EntryKind::Metric(Users), Cow::Borrowed(user_id)),
            StateUpdate::Page { url, .. } => (EntryKind::Metric(TopPages), Cow::Borrowed(url)),
            StateUpdate::Session { user_id, .. } => {
                (EntryKind::Metric(Sessions), Cow::Borrowed(user_id))
            }
            StateUpdate::SeenIds { bucket, .. } => {
                (EntryKind::SeenIds, Cow::Owned(bucket.to_string()))
            }
            StateUpdate::DeadLetters { .. } => (EntryKind::DeadLetters, Cow::Borrowed("")),
        }
    }

    pub fn source(&self) -> SourcePartition {
        match self {
            StateUpdate::EventCount { source, .. }
            | StateUpdate::User { source, .. }
            | StateUpdate::Page { source, .. }
            | StateUpdate::Session { source, .. }
            | StateUpdate::SeenIds { source, .. }
            | StateUpdate::DeadLetters { source, .. } => *source,
        }
    }

    pub fn as_of(&self) -> i64 {
        match self {
            StateUpdate::EventCount { entry, .. } => entry.as_of,
            StateUpdate::User { entry, .. } => entry.as_of,
            StateUpdate::Page { entry, .. } => entry.as_of,
            StateUpdate::Session { entry, .. } => entry.as_of,
            StateUpdate::SeenIds { ids, bucket, .. } => {
                ids.iter().map(|(_, e)| e.offset).max().unwrap_or(*bucket)
            }
            StateUpdate::DeadLetters { entry, .. } => entry.as_of,
        }
    }
}

struct Slot<E> {
    entry: E,
    dirty: bool,
}

/// Entries by source partition and key, remembering which changed since the
/// last [`Table::drain_dirty`].
pub struct Table<K, E> {
    partitions: HashMap<SourcePartition, HashMap<K, Slot<E>>>,
    dirty: Vec<(SourcePartition, K)>,
}

impl<K, E> Default for Table<K, E> {
    fn default() -> Self {
        Self {
            partitions: HashMap::new(),
            dirty: Vec::new(),
        }
    }
}

impl<K: Hash + Eq + Clone, E: Entry> Table<K, E> {
    /// Applies `change` to the entry of `key` unless the entry already
    /// includes `offset`. Returns whether it was applied.
    pub fn apply<Q>(
        &mut self,
        source: SourcePartition,
        key: &Q,
        offset: i64,
        change: impl FnOnce(&mut E),
    ) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let entries = self.partitions.entry(source).or_default();
        // Look up by reference first: the common case (a known key) then
        // allocates nothing.
        let slot = match entries.get_mut(key) {
            Some(slot) => slot,
            None => entries.entry(key.to_owned()).or_insert(Slot {
                entry: E::default(),
                dirty: false,
            }),
        };
        if offset <= slot.entry.as_of() {
            return false;
        }
        change(&mut slot.entry);
        slot.entry.set_as_of(offset);
        if !slot.dirty {
            slot.dirty = true;
            self.dirty.push((source, key.to_owned()));
        }
        true
    }

    /// Loads an entry restored from the changelog, unless the table already
    /// holds a newer one. Restored entries are not dirty: they are already
    /// in the changelog.
    pub fn restore(&mut self, source: SourcePartition, key: K, entry: E) {
        let entries = self.partitions.entry(source).or_default();
        match entries.get_mut(&key) {
            Some(slot) if slot.entry.as_of() >= entry.as_of() => {}
            Some(slot) => slot.entry = entry,
            None => {
                entries.insert(
                    key,
                    Slot {
                        entry,
                        dirty: false,
                    },
                );
            }
        }
    }

    /// The entries changed since the last call, each once, in its latest state.
    pub fn drain_dirty(&mut self) -> impl Iterator<Item = (SourcePartition, K, E)> + '_ {
        let partitions = &mut self.partitions;
        self.dirty.drain(..).filter_map(move |(source, key)| {
            let slot = partitions.get_mut(&source)?.get_mut(&key)?;
            slot.dirty = false;
            Some((source, key, slot.entry.clone()))
        })
    }

    /// Drops a source partition's entries (its partition was revoked).
    pub fn forget(&mut self, source: SourcePartition) {
        self.partitions.remove(&source);
        self.dirty.retain(|(s, _)| *s != source);
    }

    pub fn get<Q>(&self, source: SourcePartition, key: &Q) -> Option<&E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.partitions
            .get(&source)?
            .get(key)
            .map(|slot| &slot.entry)
    }

    pub fn len(&self) -> usize {
        self.partitions.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::InputTopic;

    #[test]
    fn replayed_offsets_are_skipped_per_entry() {
        let p0 = SourcePartition::new(InputTopic::UserEvents, 0);
        let p1 = SourcePartition::new(InputTopic::UserEvents, 1);
        let mut t: Table<String, Counter> = Table::default();
        assert!(t.apply(p0, "login", 0, |c| c.count += 1));
        assert!(t.apply(p0, "login", 5, |c| c.count += 1));
        // Offset 5 again (a replay) and an older offset: already included.
        assert!(!t.apply(p0, "login", 5, |c| c.count += 1));
        assert!(!t.apply(p0, "login", 3, |c| c.count += 1));
        // Another key's entry of the same partition has its own as_of.
        assert!(t.apply(p0, "view", 3, |c| c.count += 1));
        // Another partition has its own offsets.
        assert!(t.apply(p1, "login", 1, |c| c.count += 1));
        assert_eq!(t.get(p0, "login").map(|c| (c.count, c.as_of)), Some((2, 5)));
        assert_eq!(t.get(p0, "view").map(|c| (c.count, c.as_of)), Some((1, 3)));
        assert_eq!(t.get(p1, "login").map(|c| (c.count, c.as_of)), Some((1, 1)));
    }

    #[test]
    fn drain_yields_each_changed_entry_once_in_its_latest_state() {
        let p0 = SourcePartition::new(InputTopic::PageViews, 0);
        let mut t: Table<String, Counter> = Table::default();
        for offset in 0..10 {
            t.apply(p0, if offset % 2 == 0 { "a" } else { "b" }, offset, |c| {
                c.count += 1
            });
        }
        let mut drained: Vec<_> = t
            .drain_dirty()
            .map(|(_, k, c)| (k, c.count, c.as_of))
            .collect();
        drained.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(drained, vec![("a".into(), 5, 8), ("b".into(), 5, 9)]);
        assert_eq!(t.drain_dirty().count(), 0);
        t.forget(p0);
        assert!(t.is_empty());
    }

    #[test]
    fn page_duration_sums_saturate_and_stay_writable() {
        let mut page = PageStats::default();
        // What the probe sent: twice 1e308, then 1.
        page.add_view(1e308);
        page.add_view(1e308);
        page.add_view(1.0);
        assert_eq!(page.views, 3);
        assert_eq!(page.total_duration_milli, u64::MAX);
        let text = serde_json::to_string(&page).expect("encodes");
        assert_eq!(
            text,
            format!(
                r#"{{"views":3,"totalDurationMilli":{},"asOf":{NOTHING_APPLIED}}}"#,
                u64::MAX
            )
        );
        assert_eq!(
            serde_json::from_str::<PageStats>(&text).expect("decodes"),
            page
        );
        let mut small = PageStats::default();
        small.add_view(12.5);
        small.add_view(0.0004);
        assert_eq!(small.total_duration_milli, 12_500);
        assert_eq!(small.total_duration(), 12.5);
    }

    #[test]
    fn page_entries_of_the_float_format_still_read() {
        let old: PageStats =
            serde_json::from_str(r#"{"views":2,"totalDuration":12.25,"asOf":4}"#).expect("reads");
        assert_eq!(
            old,
            PageStats {
                views: 2,
                total_duration_milli: 12_250,
                as_of: 4
            }
        );
        // A sum that had overflowed was written as null: saturated now.
        let overflowed: PageStats =
            serde_json::from_str(r#"{"views":3,"totalDuration":null,"asOf":5}"#).expect("reads");
        assert_eq!(overflowed.total_duration_milli, u64::MAX);
        assert_eq!(overflowed.views, 3);
    }
}
