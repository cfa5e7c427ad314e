//! The read model's event-time buckets: every partition's buckets and
//! watermarks from the changelog, and the merging a query does over them.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::model::source::SourcePartition;
use crate::window::{Bucket, Resolution, TopKUnion, VisitBucket, VisitorUnion, WatermarkMark};

type Buckets = BTreeMap<(Resolution, i64), Vec<(SourcePartition, Bucket)>>;
type VisitBuckets = BTreeMap<(Resolution, i64), Vec<(SourcePartition, VisitBucket)>>;

/// Buckets by resolution and start, each with every partition's part.
#[derive(Default)]
pub struct WindowStore {
    buckets: RwLock<Buckets>,
    watermarks: RwLock<BTreeMap<SourcePartition, WatermarkMark>>,
    /// Visits by the bucket they started in, each partition number's part.
    visits: RwLock<VisitBuckets>,
}

/// A bucket's parts merged over partitions (or several buckets merged).
#[derive(Debug, Default, Clone)]
pub struct Merged {
    pub events: u64,
    pub pageviews: u64,
    pub types: BTreeMap<String, u64>,
    pub visitors: VisitorUnion,
    /// Visitors by event type.
    pub type_visitors: BTreeMap<String, VisitorUnion>,
    /// Page views by page, the most read of each part.
    pub pages: TopKUnion,
    /// The visits that started in it.
    pub visits: VisitBucket,
    /// Whether it may still change: some partition's watermark has not
    /// passed the bucket's end, or a visit that started in it is open.
    pub open: bool,
}

impl Merged {
    fn add(&mut self, bucket: &Bucket) {
        self.events += bucket.events;
        self.pageviews += bucket.pageviews;
        for (name, count) in &bucket.types {
            *self.types.entry(name.clone()).or_default() += count;
        }
        self.visitors.add(&bucket.visitors);
        for (name, visitors) in &bucket.type_visitors {
            self.type_visitors
                .entry(name.clone())
                .or_default()
                .add(visitors);
        }
        if !bucket.pages.is_empty() {
            self.pages.add(&bucket.pages);
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

impl WindowStore {
    pub fn apply_bucket(
        &self,
        source: SourcePartition,
        resolution: Resolution,
        start_ms: i64,
        entry: Bucket,
    ) {
        let mut buckets = write(&self.buckets);
        let parts = buckets.entry((resolution, start_ms)).or_default();
        match parts.iter_mut().find(|(s, _)| *s == source) {
            Some((_, held)) if held.as_of >= entry.as_of => {}
            Some((_, held)) => *held = entry,
            None => parts.push((source, entry)),
        }
    }

    pub fn apply_visits(
        &self,
        source: SourcePartition,
        resolution: Resolution,
        start_ms: i64,
        entry: VisitBucket,
    ) {
        let mut buckets = write(&self.visits);
        let parts = buckets.entry((resolution, start_ms)).or_default();
        // The last record of the key, as compaction keeps it (a visit
        // bucket has no `asOf`, see `VisitBucket`).
        match parts.iter_mut().find(|(s, _)| *s == source) {
            Some((_, held)) => *held = entry,
            None => parts.push((source, entry)),
        }
    }

    pub fn delete_visits(&self, source: SourcePartition, resolution: Resolution, start_ms: i64) {
        let mut buckets = write(&self.visits);
        if let Some(parts) = buckets.get_mut(&(resolution, start_ms)) {
            parts.retain(|(s, _)| *s != source);
            if parts.is_empty() {
                buckets.remove(&(resolution, start_ms));
            }
        }
    }

    pub fn delete_bucket(&self, source: SourcePartition, resolution: Resolution, start_ms: i64) {
        let mut buckets = write(&self.buckets);
        if let Some(parts) = buckets.get_mut(&(resolution, start_ms)) {
            parts.retain(|(s, _)| *s != source);
            if parts.is_empty() {
                buckets.remove(&(resolution, start_ms));
            }
        }
    }

    pub fn apply_watermark(&self, source: SourcePartition, entry: WatermarkMark) {
        let mut marks = write(&self.watermarks);
        let held = marks.entry(source).or_default();
        if held.as_of <= entry.as_of {
            *held = entry;
        }
    }

    pub fn delete_watermark(&self, source: SourcePartition) {
        write(&self.watermarks).remove(&source);
    }

    /// Late events of every input partition.
    pub fn late_total(&self) -> u64 {
        read(&self.watermarks).values().map(|m| m.late).sum()
    }

    /// Late events per input partition.
    pub fn late_events(&self) -> Vec<(SourcePartition, u64)> {
        read(&self.watermarks)
            .iter()
            .map(|(s, m)| (*s, m.late))
            .collect()
    }

    /// Adds every bucket of `resolution` starting in `starts` to the group
    /// `group(start)` names, merging partitions. A group is open when any
    /// of its buckets is: some partition's watermark (latest event time
    /// minus `grace_ms`) has not passed the bucket's end, so that partition
    /// may still add to it.
    /// Merges the `resolution` buckets starting in `starts` into `groups`
    /// (each into the group `group` names for its start), and returns the
    /// starts of those that may still change (see [`Merged::open`]),
    /// ascending.
    pub fn fold_into(
        &self,
        resolution: Resolution,
        starts: Range<i64>,
        grace_ms: i64,
        groups: &mut BTreeMap<i64, Merged>,
        group: impl Fn(i64) -> i64,
    ) -> Vec<i64> {
        let mut open = Vec::new();
        if starts.start >= starts.end {
            return open;
        }
        let marks = read(&self.watermarks);
        let buckets = read(&self.buckets);
        for ((_, start), parts) in
            buckets.range((resolution, starts.start)..(resolution, starts.end))
        {
            let merged = groups.entry(group(*start)).or_default();
            for (_, bucket) in parts {
                merged.add(bucket);
            }
            let end = start.saturating_add(resolution.ms());
            if marks
                .values()
                .any(|m| m.max_event_ms.saturating_sub(grace_ms) < end)
            {
                merged.open = true;
                open.push(*start);
            }
        }
        let visits = read(&self.visits);
        for ((_, start), parts) in
            visits.range((resolution, starts.start)..(resolution, starts.end))
        {
            let merged = groups.entry(group(*start)).or_default();
            for (_, bucket) in parts {
                merged.visits.merge(bucket);
            }
            if parts.iter().any(|(_, b)| b.open > 0) {
                merged.open = true;
                open.push(*start);
            }
        }
        open.sort_unstable();
        open.dedup();
        open
    }
}
