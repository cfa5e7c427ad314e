//! Aggregate state entries, and the change of one entry the commit writes.
//!
//! Every entry carries `as_of`: the offset of the last input record of its
//! source partition that it includes. An event at or below `as_of` is already
//! in the entry and is skipped, which makes applying a replayed record a no-op.
//! Entries are kept per source partition so that each has exactly one offset
//! sequence to be compared against.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::model::event::EventType;
use crate::model::metric_kind::{EntryKind, MetricKind};
use crate::model::source::SourcePartition;
use crate::window::{Bucket, Resolution, Visit, VisitBucket, VisitMark, WatermarkMark};

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
    /// Kept by the partition consumer: one event-time bucket.
    Bucket {
        source: SourcePartition,
        resolution: Resolution,
        start_ms: i64,
        entry: Bucket,
    },
    /// Kept by the partition consumer: its event-time progress.
    Watermark {
        source: SourcePartition,
        entry: WatermarkMark,
    },
    /// A user's open visits, kept by the partition consumers of partition
    /// number `source.partition` together (`source` names `user-events`);
    /// only a restore reads it, never a query.
    UserVisits {
        source: SourcePartition,
        user_id: String,
        visits: Vec<Visit>,
    },
    /// The visits that started in one event-time bucket of a partition number.
    VisitBucket {
        source: SourcePartition,
        resolution: Resolution,
        start_ms: i64,
        entry: VisitBucket,
    },
    /// A partition number's progress in visits.
    VisitMark {
        source: SourcePartition,
        entry: VisitMark,
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
            StateUpdate::Bucket {
                resolution,
                start_ms,
                ..
            } => (
                EntryKind::Windows,
                Cow::Owned(format!("{}/{start_ms}", resolution.as_str())),
            ),
            StateUpdate::Watermark { .. } => (EntryKind::Watermark, Cow::Borrowed("")),
            StateUpdate::UserVisits { user_id, .. } => (EntryKind::Visit, Cow::Borrowed(user_id)),
            StateUpdate::VisitBucket {
                resolution,
                start_ms,
                ..
            } => (
                EntryKind::Visits,
                Cow::Owned(format!("{}/{start_ms}", resolution.as_str())),
            ),
            StateUpdate::VisitMark { .. } => (EntryKind::VisitMark, Cow::Borrowed("")),
        }
    }

    pub fn source(&self) -> SourcePartition {
        match self {
            StateUpdate::EventCount { source, .. }
            | StateUpdate::User { source, .. }
            | StateUpdate::Page { source, .. }
            | StateUpdate::Session { source, .. }
            | StateUpdate::SeenIds { source, .. }
            | StateUpdate::DeadLetters { source, .. }
            | StateUpdate::Bucket { source, .. }
            | StateUpdate::Watermark { source, .. }
            | StateUpdate::UserVisits { source, .. }
            | StateUpdate::VisitBucket { source, .. }
            | StateUpdate::VisitMark { source, .. } => *source,
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
            StateUpdate::Bucket { entry, .. } => entry.as_of,
            StateUpdate::Watermark { entry, .. } => entry.as_of,
            // Changed by two partitions' events: their readers keep the
            // last record of a key, as compaction does.
            StateUpdate::UserVisits { .. } => NOTHING_APPLIED,
            StateUpdate::VisitBucket { .. } => NOTHING_APPLIED,
            StateUpdate::VisitMark { entry, .. } => {
                entry.as_of.into_iter().max().unwrap_or(NOTHING_APPLIED)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
