//! Visits of one partition number: session windows over both input topics.
//!
//! A visit is one user's run of events, page views and user events
//! together, with no gap of `sessions.inactivity_ms` or more. Both topics
//! are keyed by `userId` with the same partition count and the group assigns
//! partition *p* of both to one member, so a user's visits are built here,
//! by the two partition consumers of *p* together.
//!
//! A visit belongs to the minute, hour and day where it starts, and counts
//! from its first event: its bounce (one page view and nothing else), its
//! duration (first to last event) and its page views are what it holds so
//! far, and change as it grows. An event within `inactivity_ms` of two
//! visits merges them, as session windows do; so a visit's contribution to
//! its buckets is taken back and added again whenever it changes, which
//! counts, sums and the duration sketch ([`Durations`]) all allow.
//!
//! **Determinism.** Only events their own partition placed in its buckets
//! come here (late ones do not), and the visits of a set of events are the
//! same whatever order they come in; so a bucket is a function of the
//! events before the mark's offsets, however the two topics interleave and
//! batches are cut. A visit is dropped from the state (it can no longer
//! change) at a flush, once no event its topics can still place could reach
//! it: its end plus the inactivity is at or before the earlier of the two
//! watermarks, less a minute (lateness is decided by whole minutes). One
//! exception, said in README: a partition where one topic has had no event
//! yet is pruned by the other topic alone, and that topic's first events,
//! if older than the visits already pruned, start visits of their own.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::durations::Durations;
use super::resolution::Resolution;
use crate::model::event::Event;
use crate::model::source::InputTopic;
use crate::state::NOTHING_APPLIED;

const MINUTE_MS: i64 = 60_000;

/// One visit while it may still change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visit {
    /// Its first and last event's time.
    pub start: i64,
    pub end: i64,
    /// Page views and user events in it.
    pub pv: u32,
    pub ev: u32,
    /// Its first page view (none: user events only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<Entry>,
}

/// A visit's first page view: where it entered, and from where.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entry {
    pub at: i64,
    pub url: String,
    /// The referrer's host (`www.` dropped), empty for none or one of the
    /// same site (a relative referrer).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
}

/// A referrer's host, as web analytics name a visit's source:
/// `https://www.google.com/search?q=x` → `google.com`; empty for none, and
/// for a relative referrer (the same site).
pub fn source_of(referrer: Option<&str>) -> String {
    let Some(rest) = referrer.and_then(|r| {
        r.strip_prefix("https://")
            .or_else(|| r.strip_prefix("http://"))
    }) else {
        return String::new();
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = host.strip_prefix("www.").unwrap_or(host);
    host.to_ascii_lowercase()
}

impl Visit {
    fn of(t: i64, event: &Event) -> Self {
        let entry = match event {
            Event::Page(p) => Some(Entry {
                at: t,
                url: p.url.clone(),
                source: source_of(p.referrer.as_deref()),
            }),
            Event::User(_) => None,
        };
        Self {
            start: t,
            end: t,
            pv: u32::from(entry.is_some()),
            ev: u32::from(entry.is_none()),
            entry,
        }
    }

    fn absorb(&mut self, other: &Visit) {
        self.start = self.start.min(other.start);
        self.end = self.end.max(other.end);
        self.pv = self.pv.saturating_add(other.pv);
        self.ev = self.ev.saturating_add(other.ev);
        // The earliest page view (then the least by URL and source, so two
        // at the same instant give the same entry in any order).
        if let Some(theirs) = &other.entry {
            if self.entry.as_ref().is_none_or(|mine| theirs < mine) {
                self.entry = Some(theirs.clone());
            }
        }
    }

    fn entry_url(&self) -> Option<&str> {
        self.entry.as_ref().map(|e| e.url.as_str())
    }

    fn source(&self) -> &str {
        self.entry.as_ref().map_or("", |e| e.source.as_str())
    }

    fn duration_ms(&self) -> u64 {
        u64::try_from(self.end - self.start).unwrap_or(0)
    }

    fn bounce(&self) -> bool {
        self.pv == 1 && self.ev == 0
    }
}

/// The visits that started in one bucket of one partition number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VisitBucket {
    pub visits: u64,
    /// Visits of exactly one page view and nothing else.
    pub bounces: u64,
    /// Page views in these visits.
    pub pageviews: u64,
    /// Sum of their durations.
    pub duration_ms: u64,
    pub durations: Durations,
    /// Visits by entry page (those with a page view).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub entries: BTreeMap<String, u64>,
    /// Visits by source (the entry's referrer host; `""` for none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, u64>,
    /// Of these visits, the ones still held (that may still change).
    /// No `asOf`: a bucket is changed by the events of two partitions, and
    /// the offsets it was written at depend on where commits fell; a reader
    /// keeps the last record of its key, as compaction does.
    pub open: u64,
}

impl VisitBucket {
    fn add(&mut self, v: &Visit) {
        self.visits += 1;
        self.bounces += u64::from(v.bounce());
        self.pageviews += u64::from(v.pv);
        self.duration_ms = self.duration_ms.saturating_add(v.duration_ms());
        self.durations.add(v.duration_ms());
        if let Some(entry) = &v.entry {
            bump(&mut self.entries, &entry.url, true);
        }
        bump(&mut self.sources, v.source(), true);
    }

    fn take_back(&mut self, v: &Visit) {
        self.visits = self.visits.saturating_sub(1);
        self.bounces = self.bounces.saturating_sub(u64::from(v.bounce()));
        self.pageviews = self.pageviews.saturating_sub(u64::from(v.pv));
        self.duration_ms = self.duration_ms.saturating_sub(v.duration_ms());
        self.durations.remove(v.duration_ms());
        if let Some(entry) = &v.entry {
            bump(&mut self.entries, &entry.url, false);
        }
        bump(&mut self.sources, v.source(), false);
    }

    fn is_empty(&self) -> bool {
        self.visits == 0 && self.open == 0
    }

    /// `old` grew into `new` (one visit, the same start): the difference.
    fn replace(&mut self, old: &Visit, new: &Visit) {
        self.bounces =
            (self.bounces + u64::from(new.bounce())).saturating_sub(u64::from(old.bounce()));
        self.pageviews = (self.pageviews + u64::from(new.pv)).saturating_sub(u64::from(old.pv));
        self.duration_ms = self
            .duration_ms
            .saturating_add(new.duration_ms())
            .saturating_sub(old.duration_ms());
        self.durations.remove(old.duration_ms());
        self.durations.add(new.duration_ms());
        if old.entry_url() != new.entry_url() {
            if let Some(u) = old.entry_url() {
                bump(&mut self.entries, u, false);
            }
            if let Some(u) = new.entry_url() {
                bump(&mut self.entries, u, true);
            }
        }
        if old.source() != new.source() {
            bump(&mut self.sources, old.source(), false);
            bump(&mut self.sources, new.source(), true);
        }
    }

    /// Adds another partition's part (a query's merge).
    pub fn merge(&mut self, other: &VisitBucket) {
        self.visits += other.visits;
        self.bounces += other.bounces;
        self.pageviews += other.pageviews;
        self.duration_ms = self.duration_ms.saturating_add(other.duration_ms);
        self.durations.merge(&other.durations);
        for (url, n) in &other.entries {
            *self.entries.entry(url.clone()).or_default() += n;
        }
        for (source, n) in &other.sources {
            *self.sources.entry(source.clone()).or_default() += n;
        }
        self.open += other.open;
    }
}

/// Adds one to `key`'s count, or takes one back (and the key with its
/// last count, so an emptied map is the same bytes as one never filled).
fn bump(map: &mut BTreeMap<String, u64>, key: &str, add: bool) {
    if add {
        match map.get_mut(key) {
            Some(n) => *n += 1,
            None => {
                map.insert(key.to_owned(), 1);
            }
        }
    } else if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

/// A partition number's progress in visits: the last offset applied and
/// the latest event time, of each input topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VisitMark {
    /// `[user-events, page-views]`.
    pub as_of: [i64; 2],
    pub max_event_ms: [i64; 2],
}

impl Default for VisitMark {
    fn default() -> Self {
        Self {
            as_of: [NOTHING_APPLIED; 2],
            max_event_ms: [i64::MIN; 2],
        }
    }
}

fn side(topic: InputTopic) -> Option<usize> {
    match topic {
        InputTopic::UserEvents => Some(0),
        InputTopic::PageViews => Some(1),
        InputTopic::RetryEvents => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisitConfig {
    pub inactivity_ms: i64,
    pub grace_ms: i64,
    /// By [`Resolution::index`].
    pub retention_ms: [i64; 3],
}

impl VisitConfig {
    pub fn new(
        windows: &arus_config::WindowSettings,
        sessions: &arus_config::SessionSettings,
    ) -> Self {
        let ms = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Self {
            inactivity_ms: ms(sessions.inactivity_ms),
            grace_ms: ms(windows.grace_ms),
            retention_ms: [
                ms(windows.minutes_retention_ms),
                ms(windows.hours_retention_ms),
                ms(windows.days_retention_ms),
            ],
        }
    }
}

type BucketId = (Resolution, i64);

/// The changelog entries of visits, as a flush hands them over.
#[derive(Debug, Clone, PartialEq)]
pub enum VisitEntry {
    /// A user's open visits, by start (none: delete the entry).
    User(String, Vec<Visit>),
    /// A bucket (`None`: delete it).
    Bucket(Resolution, i64, Option<VisitBucket>),
    Mark(VisitMark),
}

/// One user's open visits, and where the prune index has them.
#[derive(Default)]
struct UserVisits {
    visits: Vec<Visit>,
    /// The end under which `by_first_end` holds this user: at most the
    /// first visit's end (ends only grow, but for an earlier visit arriving
    /// out of order, which lowers it). Other entries of the user in the
    /// index are stale and skipped.
    indexed: i64,
}

/// Visits of one partition number, fed by both its partition consumers.
pub struct PartitionVisits {
    config: VisitConfig,
    mark: VisitMark,
    mark_changed: bool,
    /// Each user's open visits, by start, gaps of at least the inactivity.
    users: HashMap<String, UserVisits>,
    /// (an end, user): when to look at a user's visits again for pruning.
    /// Updated lazily (see [`UserVisits::indexed`]), so an event that only
    /// extends a visit touches no index.
    by_first_end: BTreeSet<(i64, String)>,
    /// Users changed since the last flush (a hash set: looked up at every
    /// event; sorted when flushed, so the entries come in one order).
    dirty_users: HashSet<String>,
    /// Buckets that may still change.
    buckets: BTreeMap<BucketId, VisitBucket>,
    dirty: BTreeSet<BucketId>,
    /// Buckets in the changelog that can no longer change, until they expire.
    settled: BTreeSet<BucketId>,
}

impl PartitionVisits {
    /// From the partition number's visit entries restored from the changelog.
    pub fn new(config: VisitConfig, restored: Vec<VisitEntry>) -> Self {
        let mut visits = Self {
            config,
            mark: VisitMark::default(),
            mark_changed: false,
            users: HashMap::new(),
            by_first_end: BTreeSet::new(),
            dirty_users: HashSet::new(),
            buckets: BTreeMap::new(),
            dirty: BTreeSet::new(),
            settled: BTreeSet::new(),
        };
        let mut buckets = Vec::new();
        for entry in restored {
            match entry {
                VisitEntry::Mark(mark) => visits.mark = mark,
                VisitEntry::User(user, list) if !list.is_empty() => {
                    let indexed = list[0].end;
                    visits.by_first_end.insert((indexed, user.clone()));
                    visits.users.insert(
                        user,
                        UserVisits {
                            visits: list,
                            indexed,
                        },
                    );
                }
                VisitEntry::Bucket(resolution, start, Some(bucket)) => {
                    buckets.push(((resolution, start), bucket));
                }
                _ => {}
            }
        }
        let horizon = visits.horizon();
        for (id, bucket) in buckets {
            if bucket.open == 0 && horizon.is_some_and(|h| end(id) <= h) {
                visits.settled.insert(id);
            } else {
                visits.buckets.insert(id, bucket);
            }
        }
        visits
    }

    /// Counts `event`, read at `offset` of `topic`, in its user's visits.
    /// Only events their partition placed in its buckets come here. Returns
    /// false for a replay (applied before) or a record of no input topic.
    pub fn apply(&mut self, topic: InputTopic, offset: i64, event: &Event) -> bool {
        let Some(i) = side(topic) else { return false };
        if offset <= self.mark.as_of[i] {
            return false;
        }
        self.mark.as_of[i] = offset;
        let t = event.timestamp_ms();
        self.mark.max_event_ms[i] = self.mark.max_event_ms[i].max(t);
        self.mark_changed = true;
        let mut merged = Visit::of(t, event);
        let user = event.user_id();
        let gap = self.config.inactivity_ms;
        let reaches = |v: &Visit| t - v.end < gap && v.start - t < gap;
        if let Some(state) = self.users.get(user) {
            for v in state.visits.iter().filter(|v| reaches(v)) {
                merged.absorb(v);
            }
        }
        // A settled bucket is no longer held: only where one topic of the
        // partition had no events yet (see the module's note) could an
        // event still reach it, and then it stays out of the visits.
        if Resolution::ALL
            .iter()
            .any(|r| self.settled.contains(&(*r, r.start_of(merged.start))))
        {
            return true;
        }
        let state = match self.users.get_mut(user) {
            Some(state) => state,
            None => self.users.entry(user.to_owned()).or_insert(UserVisits {
                visits: Vec::new(),
                indexed: i64::MAX,
            }),
        };
        // The visits the event reaches (at most two: it may bridge them).
        let mut taken = Vec::new();
        state.visits.retain(|v| {
            if reaches(v) {
                taken.push(v.clone());
                return false;
            }
            true
        });
        let at = state.visits.partition_point(|v| v.start < merged.start);
        state.visits.insert(at, merged.clone());
        let first_end = state.visits[0].end;
        if first_end < state.indexed {
            state.indexed = first_end;
            self.by_first_end.insert((first_end, user.to_owned()));
        }
        if !self.dirty_users.contains(user) {
            self.dirty_users.insert(user.to_owned());
        }
        match taken.as_slice() {
            // The common case: the event extends one visit, which starts
            // where it did: its buckets change by the difference.
            [old] if old.start == merged.start => self.recount(old, &merged),
            _ => {
                for v in &taken {
                    self.count(v, false);
                }
                self.count(&merged, true);
            }
        }
        true
    }

    /// Replaces `old`'s part in its buckets with `new`'s (the same start).
    fn recount(&mut self, old: &Visit, new: &Visit) {
        for resolution in Resolution::ALL {
            let id = (resolution, resolution.start_of(new.start));
            self.buckets.entry(id).or_default().replace(old, new);
            self.dirty.insert(id);
        }
    }

    /// Adds `v` to (or takes it back from) the buckets it starts in.
    fn count(&mut self, v: &Visit, add: bool) {
        for resolution in Resolution::ALL {
            let id = (resolution, resolution.start_of(v.start));
            let bucket = self.buckets.entry(id).or_default();
            if add {
                bucket.add(v);
                bucket.open += 1;
            } else {
                bucket.take_back(v);
                bucket.open = bucket.open.saturating_sub(1);
            }
            self.dirty.insert(id);
        }
    }

    /// No event either topic can still place can reach a visit that ended
    /// `inactivity_ms` before this; `None` before any event.
    fn horizon(&self) -> Option<i64> {
        self.mark
            .max_event_ms
            .iter()
            .filter(|m| **m != i64::MIN)
            .map(|m| m.saturating_sub(self.config.grace_ms) - MINUTE_MS)
            .min()
    }

    /// The entries changed since the last flush. Drops the visits that can
    /// no longer change, settles the buckets they leave and deletes those
    /// past their retention or left empty.
    pub fn flush(&mut self) -> Vec<VisitEntry> {
        let mut out = Vec::new();
        if let Some(h) = self.horizon() {
            self.prune(h);
        }
        let mut dirty: Vec<String> = std::mem::take(&mut self.dirty_users).into_iter().collect();
        dirty.sort_unstable();
        for user in dirty {
            let list = match self.users.get(&user) {
                Some(state) if !state.visits.is_empty() => state.visits.clone(),
                _ => {
                    self.users.remove(&user);
                    Vec::new()
                }
            };
            out.push(VisitEntry::User(user, list));
        }
        for id in std::mem::take(&mut self.dirty) {
            let Some(bucket) = self.buckets.get_mut(&id) else {
                continue;
            };
            if bucket.is_empty() {
                self.buckets.remove(&id);
                out.push(VisitEntry::Bucket(id.0, id.1, None));
            } else {
                out.push(VisitEntry::Bucket(id.0, id.1, Some(bucket.clone())));
            }
        }
        if std::mem::take(&mut self.mark_changed) {
            out.push(VisitEntry::Mark(self.mark));
        }
        let Some(h) = self.horizon() else {
            return out;
        };
        let settling: Vec<BucketId> = self
            .buckets
            .iter()
            .filter(|(id, b)| b.open == 0 && end(**id) <= h)
            .map(|(id, _)| *id)
            .collect();
        for id in settling {
            self.buckets.remove(&id);
            self.settled.insert(id);
        }
        let latest = self
            .mark
            .max_event_ms
            .iter()
            .copied()
            .max()
            .unwrap_or(i64::MIN);
        let expired: Vec<BucketId> = self
            .settled
            .iter()
            .filter(|id| end(**id).saturating_add(self.config.retention_ms[id.0.index()]) <= latest)
            .copied()
            .collect();
        for id in expired {
            self.settled.remove(&id);
            out.push(VisitEntry::Bucket(id.0, id.1, None));
        }
        out
    }

    /// Drops every visit that ended `inactivity_ms` or more before `h`.
    fn prune(&mut self, h: i64) {
        let gap = self.config.inactivity_ms;
        while let Some((first_end, user)) = self.by_first_end.first().cloned() {
            if first_end.saturating_add(gap) > h {
                break;
            }
            self.by_first_end.pop_first();
            let Some(state) = self.users.get_mut(&user) else {
                continue;
            };
            if state.indexed != first_end {
                // A stale entry: the user is in the index under another end.
                continue;
            }
            let done = state
                .visits
                .partition_point(|v| v.end.saturating_add(gap) <= h);
            let closed: Vec<Visit> = state.visits.drain(..done).collect();
            match state.visits.first() {
                Some(first) => {
                    state.indexed = first.end;
                    self.by_first_end.insert((first.end, user.clone()));
                }
                None => state.indexed = i64::MAX,
            }
            for v in closed {
                for resolution in Resolution::ALL {
                    let id = (resolution, resolution.start_of(v.start));
                    if let Some(bucket) = self.buckets.get_mut(&id) {
                        bucket.open = bucket.open.saturating_sub(1);
                        self.dirty.insert(id);
                    }
                }
            }
            self.dirty_users.insert(user);
        }
    }

    /// Users with open visits (for tests and memory accounting).
    pub fn open_users(&self) -> usize {
        self.users.len()
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

    const T0: i64 = 1_796_083_200_000; // 2026-12-01T00:00:00Z

    fn config() -> VisitConfig {
        VisitConfig {
            inactivity_ms: 10 * MINUTE_MS,
            grace_ms: 5 * MINUTE_MS,
            retention_ms: [30 * MINUTE_MS, 6 * 3_600_000, 2 * 86_400_000],
        }
    }

    fn at(ms: i64) -> String {
        DateTime::<Utc>::from_timestamp_millis(ms)
            .expect("in range")
            .to_rfc3339()
    }

    fn event(page: bool, user: &str, ms: i64) -> Event {
        let now = Utc::now();
        if page {
            Event::Page(
                PageView::from_json(
                    Json::of(&json!({"userId": user, "url": "/p", "timestamp": at(ms)})),
                    Defaults { now },
                )
                .expect("valid"),
            )
        } else {
            Event::User(
                UserEvent::from_json(
                    Json::of(&json!({"userId": user, "eventType": "view", "timestamp": at(ms)})),
                    Defaults { now },
                )
                .expect("valid"),
            )
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

    /// Two topics' events, each in its own offset order: about 100 minutes,
    /// 30 users, some a minute or two out of order (none late).
    fn streams(seed: u64) -> [Vec<Event>; 2] {
        let mut rng = Rng(seed);
        let mut out = [Vec::new(), Vec::new()];
        for i in 0..1_200i64 {
            let base = T0 + i * 5_000;
            let ms = base - (rng.next(8) / 6) as i64 * rng.next(3) as i64 * MINUTE_MS;
            let wave = (i / 300) as u64 % 3;
            let user = loop {
                let u = rng.next(30);
                if u % 3 != wave {
                    break u;
                }
            };
            let page = rng.next(3) != 0;
            out[usize::from(page)].push(event(page, &format!("u{user}"), ms));
        }
        out
    }

    /// The visits of the events, computed directly: per user by time,
    /// split at gaps of the inactivity; by the minute they start.
    fn reference(streams: &[Vec<Event>; 2]) -> BTreeMap<i64, (u64, u64, u64, u64)> {
        let mut users: BTreeMap<String, Vec<(i64, bool)>> = BTreeMap::new();
        for (i, stream) in streams.iter().enumerate() {
            for e in stream {
                users
                    .entry(e.user_id().to_owned())
                    .or_default()
                    .push((e.timestamp_ms(), i == 1));
            }
        }
        let mut out: BTreeMap<i64, (u64, u64, u64, u64)> = BTreeMap::new();
        for list in users.values_mut() {
            list.sort_unstable();
            let mut visits: Vec<Vec<(i64, bool)>> = Vec::new();
            for e in list.iter() {
                match visits.last_mut() {
                    Some(v) if e.0 - v.last().expect("not empty").0 < config().inactivity_ms => {
                        v.push(*e)
                    }
                    _ => visits.push(vec![*e]),
                }
            }
            for v in visits {
                let pv = v.iter().filter(|e| e.1).count() as u64;
                let t = out.entry(Resolution::Minute.start_of(v[0].0)).or_default();
                t.0 += 1;
                t.1 += u64::from(pv == 1 && v.len() == 1);
                t.2 += pv;
                t.3 += (v[v.len() - 1].0 - v[0].0) as u64;
            }
        }
        out
    }

    /// Feeds both topics, interleaved and flushed as `seed` decides; the
    /// changelog state after compaction.
    fn run(streams: &[Vec<Event>; 2], seed: u64) -> BTreeMap<String, String> {
        let mut visits = PartitionVisits::new(config(), Vec::new());
        let mut state = BTreeMap::new();
        let write = |entries: Vec<VisitEntry>, state: &mut BTreeMap<String, String>| {
            for entry in entries {
                let (key, value) = match entry {
                    VisitEntry::User(u, list) => (
                        format!("visit/{u}"),
                        (!list.is_empty()).then(|| serde_json::to_string(&list).expect("json")),
                    ),
                    VisitEntry::Bucket(r, s, b) => (
                        format!("visits/{}/{s}", r.as_str()),
                        b.map(|b| serde_json::to_string(&b).expect("json")),
                    ),
                    VisitEntry::Mark(m) => (
                        "mark".to_string(),
                        Some(serde_json::to_string(&m).expect("json")),
                    ),
                };
                match value {
                    Some(v) => state.insert(key, v),
                    None => state.remove(&key),
                };
            }
        };
        let mut rng = Rng(seed);
        let mut next = [0usize, 0usize];
        let topics = [InputTopic::UserEvents, InputTopic::PageViews];
        while next[0] < streams[0].len() || next[1] < streams[1].len() {
            let side = match (next[0] < streams[0].len(), next[1] < streams[1].len()) {
                (true, true) => rng.next(2) as usize,
                (true, false) => 0,
                _ => 1,
            };
            let offset = next[side];
            visits.apply(topics[side], offset as i64, &streams[side][offset]);
            next[side] += 1;
            if rng.next(1 + seed % 97) == 0 {
                write(visits.flush(), &mut state);
            }
        }
        write(visits.flush(), &mut state);
        state
    }

    #[test]
    fn visits_equal_a_direct_computation_and_the_same_bytes_however_fed() {
        let streams = streams(17);
        let reference_state = run(&streams, 1);
        let minutes: BTreeMap<i64, (u64, u64, u64, u64)> = reference_state
            .iter()
            .filter(|(k, _)| k.starts_with("visits/minute/"))
            .map(|(k, v)| {
                let b: VisitBucket = serde_json::from_str(v).expect("a bucket");
                let start = k["visits/minute/".len()..].parse().expect("a start");
                (start, (b.visits, b.bounces, b.pageviews, b.duration_ms))
            })
            .collect();
        let want = reference(&streams);
        // Minute buckets expire 30 minutes after the latest event; those
        // held equal the direct computation.
        assert!(minutes.len() >= 5, "{} minutes", minutes.len());
        for (start, got) in &minutes {
            assert_eq!(Some(got), want.get(start), "minute {start}");
        }
        // Hours are all held: each the sum of its minutes.
        let mut hours: BTreeMap<i64, (u64, u64, u64, u64)> = BTreeMap::new();
        for (m, t) in &want {
            let h = hours.entry(Resolution::Hour.start_of(*m)).or_default();
            h.0 += t.0;
            h.1 += t.1;
            h.2 += t.2;
            h.3 += t.3;
        }
        let got_hours: BTreeMap<i64, (u64, u64, u64, u64)> = reference_state
            .iter()
            .filter(|(k, _)| k.starts_with("visits/hour/"))
            .map(|(k, v)| {
                let b: VisitBucket = serde_json::from_str(v).expect("a bucket");
                let start = k["visits/hour/".len()..].parse().expect("a start");
                (start, (b.visits, b.bounces, b.pageviews, b.duration_ms))
            })
            .collect();
        assert_eq!(got_hours, hours);
        // Days hold every visit.
        let days: u64 = reference_state
            .iter()
            .filter(|(k, _)| k.starts_with("visits/day/"))
            .map(|(_, v)| {
                serde_json::from_str::<VisitBucket>(v)
                    .expect("a day")
                    .visits
            })
            .sum();
        assert_eq!(days, want.values().map(|t| t.0).sum::<u64>());
        for seed in [2, 3, 50, 96, 12_345] {
            assert_eq!(run(&streams, seed), reference_state, "seed {seed}");
        }
    }

    #[test]
    fn an_event_between_two_visits_merges_them_and_the_buckets_follow() {
        let mut v = PartitionVisits::new(config(), Vec::new());
        let t = T0 + 30 * MINUTE_MS;
        assert!(v.apply(InputTopic::PageViews, 0, &event(true, "a", t)));
        assert!(v.apply(
            InputTopic::UserEvents,
            0,
            &event(false, "a", t + 12 * MINUTE_MS)
        ));
        assert!(!v.apply(InputTopic::PageViews, 0, &event(true, "a", t)));
        let flushed = v.flush();
        let minute = |entries: &[VisitEntry], start: i64| {
            entries.iter().find_map(|e| match e {
                VisitEntry::Bucket(Resolution::Minute, s, b) if *s == start => Some(b.clone()),
                _ => None,
            })
        };
        let first = minute(&flushed, t).expect("written").expect("held");
        assert_eq!((first.visits, first.bounces, first.open), (1, 1, 1));
        // Six minutes after the first: within the inactivity of both.
        assert!(v.apply(
            InputTopic::PageViews,
            1,
            &event(true, "a", t + 6 * MINUTE_MS)
        ));
        let flushed = v.flush();
        let merged = minute(&flushed, t).expect("written").expect("held");
        assert_eq!(
            (
                merged.visits,
                merged.bounces,
                merged.pageviews,
                merged.duration_ms
            ),
            (1, 0, 2, 12 * MINUTE_MS as u64)
        );
        // The second visit's minute is left empty: deleted.
        assert_eq!(minute(&flushed, t + 12 * MINUTE_MS), Some(None));
        assert_eq!(v.open_users(), 1);
    }

    #[test]
    fn a_visit_enters_at_its_earliest_page_view_from_its_referrer_host() {
        assert_eq!(
            source_of(Some("https://www.Google.com/search?q=x")),
            "google.com"
        );
        assert_eq!(
            source_of(Some("http://user@news.example:8080/a")),
            "news.example:8080"
        );
        assert_eq!(source_of(Some("/pricing")), "");
        assert_eq!(source_of(None), "");
        let view = |url: &str, referrer: &str, ms: i64| {
            Event::Page(
                PageView::from_json(
                    Json::of(&json!({"userId": "a", "url": url, "referrer": referrer, "timestamp": at(ms)})),
                    Defaults { now: Utc::now() },
                )
                .expect("valid"),
            )
        };
        let t = T0 + 30 * MINUTE_MS;
        let events = [
            (
                InputTopic::PageViews,
                view("/later", "https://twitter.com/x", t),
            ),
            (InputTopic::UserEvents, event(false, "a", t - MINUTE_MS)),
            // Out of order: the earliest page view, so the entry.
            (
                InputTopic::PageViews,
                view("/first", "https://www.google.com/", t - 2 * MINUTE_MS),
            ),
        ];
        let mut v = PartitionVisits::new(config(), Vec::new());
        let mut offsets = [0i64, 0];
        for (topic, e) in &events {
            let side = usize::from(*topic == InputTopic::PageViews);
            assert!(v.apply(*topic, offsets[side], e));
            offsets[side] += 1;
        }
        let bucket = v
            .flush()
            .into_iter()
            .find_map(|e| match e {
                VisitEntry::Bucket(Resolution::Hour, _, Some(b)) => Some(b),
                _ => None,
            })
            .expect("an hour");
        assert_eq!(bucket.visits, 1);
        assert_eq!(bucket.entries, BTreeMap::from([("/first".to_string(), 1)]));
        assert_eq!(
            bucket.sources,
            BTreeMap::from([("google.com".to_string(), 1)])
        );
    }
}
