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
use std::sync::{Arc, Mutex};

use arus_config::WindowSettings;

use super::bucket::{Bucket, WatermarkMark};
use super::resolution::Resolution;
use super::visits::{PartitionVisits, VisitEntry};
use crate::model::event::Event;
use crate::model::event_time::TimeBounds;
use crate::model::source::{InputTopic, SourcePartition};
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
    /// Pages counted by name per bucket (see `TopK`).
    pub top_pages: usize,
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
            top_pages: w.top_pages,
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
    /// Changed buckets and, when it moved, the watermark; and (from the
    /// `user-events` partition) the changed visits.
    pub updates: Vec<StateUpdate>,
    /// Expired buckets and visit entries left empty, to delete.
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
    /// The visits of this partition number, shared with the partition of
    /// the other input topic; the `user-events` partition flushes them.
    visits: Option<SharedVisits>,
}

/// One partition number's visits, fed by its two partition consumers.
pub type SharedVisits = Arc<Mutex<PartitionVisits>>;

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
            visits: None,
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

    /// Counts this partition's placed events in the partition number's
    /// visits too.
    pub fn with_visits(mut self, visits: SharedVisits) -> Self {
        self.visits = Some(visits);
        self
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
            let (lg_k, pages) = (self.config.lg_k, self.config.top_pages);
            self.open
                .entry(id)
                .or_insert_with(|| Bucket::new(lg_k))
                .add(offset, event, pages);
            self.dirty.insert(id);
        }
        self.mark.max_event_ms = self.mark.max_event_ms.max(t);
        if let Some(visits) = &self.visits {
            locked(visits).apply(self.source.topic, offset, event);
        }
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
        if let Some(visits) = self
            .visits
            .as_ref()
            .filter(|_| self.source.topic == InputTopic::UserEvents)
        {
            for entry in locked(visits).flush() {
                visit_update(source, entry, &mut out);
            }
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
            .filter(|id| end(**id).saturating_add(self.config.retention_ms[id.0.index()]) <= latest)
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

fn locked(visits: &SharedVisits) -> std::sync::MutexGuard<'_, PartitionVisits> {
    // Each call changes the visits in one step: a panic elsewhere cannot
    // leave them half-written.
    visits.lock().unwrap_or_else(|p| p.into_inner())
}

/// A visit entry as the changelog's update or deletion.
fn visit_update(source: SourcePartition, entry: VisitEntry, out: &mut WindowFlush) {
    match entry {
        VisitEntry::User(user_id, visits) => {
            let deleted = visits.is_empty();
            let update = StateUpdate::UserVisits {
                source,
                user_id,
                visits,
            };
            if deleted {
                out.expired.push(update);
            } else {
                out.updates.push(update);
            }
        }
        VisitEntry::Bucket(resolution, start_ms, bucket) => {
            let deleted = bucket.is_none();
            let update = StateUpdate::VisitBucket {
                source,
                resolution,
                start_ms,
                entry: bucket.unwrap_or_default(),
            };
            if deleted {
                out.expired.push(update);
            } else {
                out.updates.push(update);
            }
        }
        VisitEntry::Mark(entry) => out.updates.push(StateUpdate::VisitMark { source, entry }),
    }
}

fn end((resolution, start): BucketId) -> i64 {
    start.saturating_add(resolution.ms())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{DateTime, Utc};
    use serde_json::json;

    use super::*;
    use crate::model::event::{Defaults, PageView, UserEvent};
    use crate::model::json::Json;
    use crate::model::source::InputTopic;
    use crate::state::changelog;

    const MINUTE: i64 = 60_000;
    const T0: i64 = 1_796_083_200_000; // 2026-12-01T00:00:00Z

    fn config() -> WindowConfig {
        WindowConfig {
            bounds: TimeBounds {
                max_future_ms: 300_000,
                max_past_ms: 604_800_000,
            },
            grace_ms: 5 * MINUTE,
            // Short, so that minute buckets expire within the stream.
            retention_ms: [30 * MINUTE, 6 * 3_600_000, 2 * 86_400_000],
            lg_k: 12,
            late_copies: true,
            top_pages: 50,
        }
    }

    fn at(ms: i64) -> String {
        DateTime::<Utc>::from_timestamp_millis(ms)
            .expect("in range")
            .to_rfc3339()
    }

    fn event(topic: InputTopic, user: &str, ms: i64) -> Event {
        let now = Utc::now();
        match topic {
            InputTopic::PageViews => Event::Page(
                PageView::from_json(
                    Json::of(&json!({"userId": user, "url": "/p", "timestamp": at(ms)})),
                    Defaults { now },
                )
                .expect("valid"),
            ),
            _ => Event::User(
                UserEvent::from_json(
                    Json::of(
                        &json!({"userId": user, "eventType": "purchase", "timestamp": at(ms)}),
                    ),
                    Defaults { now },
                )
                .expect("valid"),
            ),
        }
    }

    struct Rng(u64);

    impl Rng {
        fn next(&mut self, below: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % below
        }
    }

    /// One partition's records: about an hour and a half of event time,
    /// some out of order within the grace, some late, so that buckets
    /// close and minute buckets expire.
    fn records(topic: InputTopic, seed: u64) -> Vec<Event> {
        let mut rng = Rng(seed);
        (0..1_500i64)
            .map(|i| {
                let base = T0 + i * 4_000;
                let ms = match rng.next(20) {
                    0 => base - 20 * MINUTE,                     // late
                    1..=3 => base - rng.next(4) as i64 * MINUTE, // out of order, within grace
                    _ => base,
                };
                event(topic, &format!("u{}", rng.next(300)), ms)
            })
            .collect()
    }

    /// The changelog's state after compaction (latest value per key,
    /// deleted keys gone) from feeding both partitions, interleaved and
    /// flushed as `seed` decides.
    fn run(
        user_events: &[Event],
        page_views: &[Event],
        seed: u64,
    ) -> (BTreeMap<String, Vec<u8>>, u64) {
        let ue = SourcePartition::new(InputTopic::UserEvents, 3);
        let pv = SourcePartition::new(InputTopic::PageViews, 3);
        let mut windows = [
            PartitionWindows::new(ue, config(), Vec::new()),
            PartitionWindows::new(pv, config(), Vec::new()),
        ];
        let inputs = [user_events, page_views];
        let mut next = [0usize, 0usize];
        let mut rng = Rng(seed);
        let mut state = BTreeMap::new();
        let mut deleted = 0;
        let mut write = |flush: WindowFlush, state: &mut BTreeMap<String, Vec<u8>>| {
            for update in flush.updates {
                let record = changelog::encode(&update).expect("encodes");
                state.insert(record.key, record.value);
            }
            for gone in flush.expired {
                if state.remove(&changelog::key(&gone)).is_some() {
                    deleted += 1;
                }
            }
        };
        while next[0] < inputs[0].len() || next[1] < inputs[1].len() {
            // Either topic may come next; each in its own offset order.
            let side = match (next[0] < inputs[0].len(), next[1] < inputs[1].len()) {
                (true, true) => rng.next(2) as usize,
                (true, false) => 0,
                _ => 1,
            };
            let offset = next[side];
            windows[side].apply(offset as i64, &inputs[side][offset]);
            next[side] += 1;
            // Batches of every size: a commit now and then, of both.
            if rng.next(1 + seed % 97) == 0 {
                for w in &mut windows {
                    write(w.flush(), &mut state);
                }
            }
        }
        for w in &mut windows {
            write(w.flush(), &mut state);
        }
        (state, deleted)
    }

    #[test]
    fn the_changelog_state_is_the_same_bytes_however_batches_are_cut_and_topics_interleave() {
        let user_events = records(InputTopic::UserEvents, 7);
        let page_views = records(InputTopic::PageViews, 11);
        let (reference, _) = run(&user_events, &page_views, 1);
        assert!(reference.len() > 20, "{} entries", reference.len());
        for seed in [2, 3, 50, 96, 12_345] {
            let (state, deleted) = run(&user_events, &page_views, seed);
            assert_eq!(state, reference, "seed {seed}");
            assert!(deleted > 0, "seed {seed}: no bucket expired");
        }
        // Minute buckets expire 30 minutes (of event time) after they end:
        // the latest event is at 99:56, so minutes from 69:00 on are kept,
        // 31 of each topic; the 69 before them were written and deleted.
        let minutes = reference.keys().filter(|k| k.contains("/minute/")).count();
        assert_eq!(minutes, 2 * 31);
        // Late events: counted in the watermark, in no bucket.
        let mark: WatermarkMark =
            serde_json::from_slice(&reference["watermark/user-events/3/"]).expect("a watermark");
        assert!(mark.late > 0);
        // Every event is in its day (the first ones, out of order, in the
        // day before) or late.
        let in_days: u64 = reference
            .iter()
            .filter(|(k, _)| k.starts_with("windows/user-events/3/day/"))
            .map(|(_, v)| serde_json::from_slice::<Bucket>(v).expect("a day").events)
            .sum();
        assert_eq!(in_days + mark.late, user_events.len() as u64);
    }

    #[test]
    fn late_means_the_minute_ended_before_the_watermark() {
        let source = SourcePartition::new(InputTopic::UserEvents, 0);
        let mut w = PartitionWindows::new(source, config(), Vec::new());
        let t = T0 + 30 * MINUTE;
        assert_eq!(
            w.apply(0, &event(InputTopic::UserEvents, "a", t)),
            Placed::Counted
        );
        assert_eq!(w.watermark(), Some(t - 5 * MINUTE));
        // The minute [t-5m, t-4m) ends after the watermark: on time.
        assert_eq!(
            w.apply(1, &event(InputTopic::UserEvents, "a", t - 5 * MINUTE)),
            Placed::Counted
        );
        // The minute before it ended at the watermark: late.
        assert_eq!(
            w.apply(2, &event(InputTopic::UserEvents, "a", t - 5 * MINUTE - 1)),
            Placed::Late
        );
        assert_eq!(
            w.apply(2, &event(InputTopic::UserEvents, "a", t)),
            Placed::Replayed
        );
        assert_eq!(w.late(), 1);
        let flush = w.flush();
        // Two minutes, one hour, one day, and the watermark.
        assert_eq!(flush.updates.len(), 5);
        // Restored, the closed minute is not held; the open one is.
        let mut restored = PartitionWindows::new(source, config(), flush.updates);
        assert_eq!(restored.late(), 1);
        assert_eq!(restored.open_buckets(), 4);
        assert_eq!(
            restored.apply(2, &event(InputTopic::UserEvents, "a", t)),
            Placed::Replayed
        );
        assert_eq!(
            restored.apply(3, &event(InputTopic::UserEvents, "b", t + 60 * MINUTE)),
            Placed::Counted
        );
        // Its watermark moved past them: the two minutes and the hour
        // close; 35 minutes later of event time nothing has expired yet.
        restored.flush();
        assert_eq!(restored.open_buckets(), 3);
    }
}
