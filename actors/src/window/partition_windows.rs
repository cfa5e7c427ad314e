//! One source partition's event-time buckets and watermark, kept by its
//! partition consumer.
//!
//! Everything here is decided from the partition's own records, in offset
//! order: the watermark (the latest event time seen, minus the grace),
//! whether an event is late (its minute ended at or before the watermark),
//! which buckets are closed and which have expired. No wall clock, no other
//! partition or topic: so every entry written is a function of the
//! partition's records up to its `as_of`, however batches are cut and
//! however the two input topics interleave (the changelog's readers read
//! uncommitted because of this).
//!
//! Only open buckets are held (a few minutes, an hour, a day): a closed
//! one can no longer change, and is remembered by its start alone, until
//! it expires and is deleted from the changelog.

use std::collections::{BTreeMap, BTreeSet};

use arus_config::WindowSettings;

use super::bucket::{Bucket, WatermarkMark};
use super::resolution::Resolution;
use crate::model::event::Event;
use crate::model::event_time::TimeBounds;
use crate::model::source::SourcePartition;
use crate::state::StateUpdate;

/// The windows' settings, as the partition uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    /// How far an event's time may be from its record's.
    pub bounds: TimeBounds,
    pub grace_ms: i64,
    /// By [`Resolution::index`].
    pub retention_ms: [i64; 3],
    pub lg_k: u8,
    pub late_copies: bool,
}

impl From<&WindowSettings> for WindowConfig {
    fn from(w: &WindowSettings) -> Self {
        let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Self {
            bounds: w.into(),
            grace_ms: ms(w.grace_ms),
            retention_ms: [
                ms(w.minutes_retention_ms),
                ms(w.hours_retention_ms),
                ms(w.days_retention_ms),
            ],
            lg_k: w.visitors_lg_k,
            late_copies: w.late_copies,
        }
    }
}

/// What became of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// In its minute, hour and day buckets.
    Counted,
    /// Its minute had closed: in no bucket (the all-time totals count it).
    Late,
    /// Decided before (a replay): nothing changed.
    Replayed,
}

/// A bucket of this partition: its resolution and start.
type BucketId = (Resolution, i64);

/// What a commit writes of the windows.
#[derive(Debug, Default)]
pub struct WindowFlush {
    /// Changed buckets and, when it moved, the watermark.
    pub updates: Vec<StateUpdate>,
    /// Expired buckets, to delete.
    pub expired: Vec<StateUpdate>,
}

pub struct PartitionWindows {
    source: SourcePartition,
    config: WindowConfig,
    mark: WatermarkMark,
    mark_changed: bool,
    open: BTreeMap<BucketId, Bucket>,
    dirty: BTreeSet<BucketId>,
    /// Buckets in the changelog that can no longer change, until they expire.
    closed: BTreeSet<BucketId>,
}

impl PartitionWindows {
    /// `restored`: the partition's bucket and watermark entries from the
    /// changelog (anything else is ignored).
    pub fn new(source: SourcePartition, config: WindowConfig, restored: Vec<StateUpdate>) -> Self {
        let mut windows = Self {
            source,
            config,
            mark: WatermarkMark::default(),
            mark_changed: false,
            open: BTreeMap::new(),
            dirty: BTreeSet::new(),
            closed: BTreeSet::new(),
        };
        let mut buckets = Vec::new();
        for update in restored {
            match update {
                StateUpdate::Watermark { source: s, entry } if s == source => windows.mark = entry,
                StateUpdate::Bucket {
                    source: s,
                    resolution,
                    start_ms,
                    entry,
                } if s == source => buckets.push(((resolution, start_ms), entry)),
                _ => {}
            }
        }
        let watermark = windows.watermark();
        for (id, bucket) in buckets {
            if watermark.is_some_and(|w| end(id) <= w) {
                windows.closed.insert(id);
            } else {
                windows.open.insert(id, bucket);
            }
        }
        windows
    }

    /// The latest event time seen minus the grace; `None` before any event.
    pub fn watermark(&self) -> Option<i64> {
        (self.mark.max_event_ms != i64::MIN)
            .then(|| self.mark.max_event_ms.saturating_sub(self.config.grace_ms))
    }

    pub fn config(&self) -> WindowConfig {
        self.config
    }

    /// Late events so far.
    pub fn late(&self) -> u64 {
        self.mark.late
    }

    /// Places `event`, read at `offset`, in its buckets, unless it is late
    /// or was placed before.
    pub fn apply(&mut self, offset: i64, event: &Event) -> Placed {
        if offset <= self.mark.as_of {
            return Placed::Replayed;
        }
        self.mark.as_of = offset;
        self.mark_changed = true;
        let t = event.timestamp_ms();
        let minute_end = Resolution::Minute.start_of(t) + Resolution::Minute.ms();
        if self.watermark().is_some_and(|w| minute_end <= w) {
            self.mark.late += 1;
            return Placed::Late;
        }
        for resolution in Resolution::ALL {
            let id = (resolution, resolution.start_of(t));
            let lg_k = self.config.lg_k;
            self.open
                .entry(id)
                .or_insert_with(|| Bucket::new(lg_k))
                .add(offset, event);
            self.dirty.insert(id);
        }
        self.mark.max_event_ms = self.mark.max_event_ms.max(t);
        Placed::Counted
    }

    /// The changed entries since the last flush; closes the buckets the
    /// watermark has passed and deletes those past their retention.
    pub fn flush(&mut self) -> WindowFlush {
        let source = self.source;
        let mut out = WindowFlush::default();
        for id in std::mem::take(&mut self.dirty) {
            if let Some(bucket) = self.open.get(&id) {
                out.updates.push(StateUpdate::Bucket {
                    source,
                    resolution: id.0,
                    start_ms: id.1,
                    entry: bucket.clone(),
                });
            }
        }
        if std::mem::take(&mut self.mark_changed) {
            out.updates.push(StateUpdate::Watermark {
                source,
                entry: self.mark,
            });
        }
        let Some(watermark) = self.watermark() else {
            return out;
        };
        let closing: Vec<BucketId> = self
            .open
            .keys()
            .filter(|id| end(**id) <= watermark)
            .copied()
            .collect();
        for id in closing {
            self.open.remove(&id);
            self.closed.insert(id);
        }
        let latest = self.mark.max_event_ms;
        let expired: Vec<BucketId> = self
            .closed
            .iter()
            .filter(|id| {
                end(**id).saturating_add(self.config.retention_ms[id.0.index()]) <= latest
            })
            .copied()
            .collect();
        for id in expired {
            self.closed.remove(&id);
            out.expired.push(StateUpdate::Bucket {
                source,
                resolution: id.0,
                start_ms: id.1,
                // A tombstone: only its key is written.
                entry: Bucket::new(4),
            });
        }
        out
    }

    /// Buckets held open (for tests and memory accounting).
    pub fn open_buckets(&self) -> usize {
        self.open.len()
    }
}

fn end((resolution, start): BucketId) -> i64 {
    start.saturating_add(resolution.ms())
}
