//! Dropping client retries: an `eventId` seen again at a later offset of the
//! same partition, within the window, is a duplicate.
//!
//! Retries of one event land in one partition, since the record key is the
//! userId. Time is the records' own (Kafka timestamps), never the clock, so a
//! replay of the same records decides exactly as the first pass did. The
//! seen-set is state like any other: at each commit the ids first seen since
//! the last one go to the changelog as one record (a bucket); a bucket whose
//! ids have all expired is deleted (a tombstone); buckets are restored with
//! their partition.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use crate::model::metric_kind::MetricKind;
use crate::model::source::SourcePartition;
use crate::state::{SeenEntry, StateUpdate};

/// The start of every hand-off id in a seen-set.
pub const HANDOFF_PREFIX: &str = "handoff/";

/// The seen-set id marking that the record at `offset` was handed to the
/// retry topic for `metric`.
pub fn handoff_id(offset: i64, metric: MetricKind) -> String {
    format!("{HANDOFF_PREFIX}{offset}/{metric}")
}

/// Most ids in one bucket record: about 150 KB of JSON, well under the
/// broker's default message size limit (1 MB), however many ids one commit
/// saw.
pub const MAX_IDS_PER_BUCKET: usize = 2_000;

/// Each id is held once (`Arc<str>`) by the set, the expiry order and the
/// next bucket alike: one allocation per new id instead of three.
pub struct Dedupe {
    source: SourcePartition,
    window_ms: i64,
    seen: HashMap<Arc<str>, SeenEntry>,
    /// Ids by the time they were first seen, oldest first, for expiry.
    order: VecDeque<(i64, Arc<str>)>,
    newest_ms: i64,
    /// Ids first seen since the last flush: the next bucket.
    added: Vec<Arc<str>>,
    /// Written buckets: first offset → the newest time of their ids.
    buckets: BTreeMap<i64, i64>,
    /// How many ids in the set are retry hand-offs (see [`crate::consume::retry`]):
    /// while there are none, records need no hand-off lookup.
    handoffs: usize,
    /// How many are bare eventIds, as written before an event's identity
    /// took in its content (see [`event_identity`]): while there are none,
    /// records need no second lookup.
    bare: usize,
}

fn is_handoff(id: &str) -> bool {
    id.starts_with(HANDOFF_PREFIX)
}

/// The length of a hyphenated UUID, which a bare eventId is.
const UUID_LEN: usize = 36;

fn is_bare_event_id(id: &str) -> bool {
    id.len() == UUID_LEN && !id.contains('.') && !id.contains('/')
}

/// An event's seen-set id: its eventId and its content's hash
/// (`<uuid>.<16 hex digits>`), so that only the same event again (a
/// client's retry) matches it. The eventId is its first 36 characters.
pub fn event_identity(event_id: uuid::Uuid, content_hash: u64) -> String {
    use std::fmt::Write as _;
    let mut id = String::with_capacity(UUID_LEN + 17);
    // Writing to a String cannot fail.
    let _ = write!(id, "{}.{content_hash:016x}", event_id.hyphenated());
    id
}

/// What changed since the last flush: buckets to write and to delete.
#[derive(Debug, Default, PartialEq)]
pub struct SeenChanges {
    pub puts: Vec<StateUpdate>,
    pub deletes: Vec<StateUpdate>,
}

impl Dedupe {
    /// `restored`: the partition's buckets from the changelog, by first offset.
    pub fn new(
        source: SourcePartition,
        window_ms: i64,
        restored: Vec<(i64, Vec<(String, SeenEntry)>)>,
    ) -> Self {
        let mut seen: HashMap<Arc<str>, SeenEntry> = HashMap::new();
        let mut buckets = BTreeMap::new();
        for (bucket, ids) in restored {
            let newest = ids.iter().map(|(_, e)| e.at_ms).max().unwrap_or(i64::MIN);
            buckets.insert(bucket, newest);
            for (id, entry) in ids {
                // A later bucket may repeat an id (a restore that ran
                // ahead); the earliest sighting counts.
                let slot = seen.entry(Arc::from(id)).or_insert(entry);
                if entry.offset < slot.offset {
                    *slot = entry;
                }
            }
        }
        let mut order: Vec<(i64, Arc<str>)> = seen
            .iter()
            .map(|(id, e)| (e.at_ms, Arc::clone(id)))
            .collect();
        order.sort();
        Self {
            source,
            window_ms,
            handoffs: seen.keys().filter(|id| is_handoff(id)).count(),
            bare: seen.keys().filter(|id| is_bare_event_id(id)).count(),
            newest_ms: order.last().map_or(i64::MIN, |(t, _)| *t),
            seen,
            order: order.into(),
            added: Vec::new(),
            buckets,
        }
    }

    /// Whether the record at `offset` carrying `id` is to be counted: its
    /// first occurrence, or that same record again (a replay, which the
    /// state's `as_of` takes care of). A later record with the id is a retry.
    pub fn is_first(&mut self, id: &str, offset: i64, at_ms: i64) -> bool {
        self.expire(at_ms);
        // New ids are the common case: the key is made once, and the set
        // hashed once, for both the lookup and the insertion.
        match self.seen.entry(Arc::from(id)) {
            Entry::Occupied(held) if offset == held.get().offset => true,
            Entry::Occupied(held) if offset > held.get().offset => false,
            Entry::Occupied(mut held) => {
                // Only after a restore that ran ahead: keep the earliest.
                held.insert(SeenEntry { offset, at_ms });
                self.added.push(Arc::clone(held.key()));
                true
            }
            Entry::Vacant(new) => {
                self.handoffs += usize::from(is_handoff(id));
                self.bare += usize::from(is_bare_event_id(id));
                let id = Arc::clone(new.key());
                new.insert(SeenEntry { offset, at_ms });
                self.order.push_back((at_ms, Arc::clone(&id)));
                self.added.push(id);
                true
            }
        }
    }

    /// Whether any retry hand-off is in the set.
    /// Whether any bare eventId (an entry of an earlier version) is in the set.
    pub fn has_bare_ids(&self) -> bool {
        self.bare > 0
    }

    pub fn has_handoffs(&self) -> bool {
        self.handoffs > 0
    }

    /// Whether `id` is in the set (first seen at any offset).
    pub fn contains(&self, id: &str) -> bool {
        self.seen.contains_key(id)
    }

    /// Whether `id` was first seen at an offset before `offset`: the record
    /// at `offset` carrying it is a repeat. Changes nothing.
    pub fn seen_before(&self, id: &str, offset: i64) -> bool {
        self.seen.get(id).is_some_and(|e| e.offset < offset)
    }

    fn horizon(&self) -> i64 {
        self.newest_ms.saturating_sub(self.window_ms)
    }

    fn expire(&mut self, now_ms: i64) {
        self.newest_ms = self.newest_ms.max(now_ms);
        let horizon = self.horizon();
        while let Some((at, _)) = self.order.front() {
            if *at >= horizon {
                break;
            }
            let Some((at, id)) = self.order.pop_front() else {
                break;
            };
            if self.seen.get(&id).is_some_and(|e| e.at_ms == at) {
                self.seen.remove(&id);
                self.handoffs -= usize::from(is_handoff(&id));
                self.bare -= usize::from(is_bare_event_id(&id));
            }
        }
    }

    /// The changes since the last call, for the changelog: a bucket of the
    /// ids first seen since, and the buckets that have expired whole.
    pub fn flush(&mut self) -> SeenChanges {
        let mut changes = SeenChanges::default();
        let horizon = self.horizon();
        let expired: Vec<i64> = self
            .buckets
            .iter()
            .filter(|(_, newest)| **newest < horizon)
            .map(|(bucket, _)| *bucket)
            .collect();
        for bucket in expired {
            self.buckets.remove(&bucket);
            changes.deletes.push(StateUpdate::SeenIds {
                source: self.source,
                bucket,
                ids: Vec::new(),
            });
        }
        let added = std::mem::take(&mut self.added);
        let mut ids: Vec<(Arc<str>, SeenEntry)> = added
            .into_iter()
            .filter_map(|id| self.seen.get(&id).map(|e| (id, *e)))
            .collect();
        // By offset, then id; an id added twice (a restore that ran ahead)
        // has one entry, so its copies sit side by side and go as one.
        ids.sort_unstable_by(|(a, ea), (b, eb)| (ea.offset, a).cmp(&(eb.offset, b)));
        ids.dedup_by(|(a, _), (b, _)| a == b);
        // In offset order, a bucket per MAX_IDS_PER_BUCKET ids, each named
        // by its first offset.
        for chunk in ids.chunks(MAX_IDS_PER_BUCKET) {
            let bucket = chunk[0].1.offset;
            let newest = chunk.iter().map(|(_, e)| e.at_ms).max().unwrap_or(i64::MIN);
            self.buckets.insert(bucket, newest);
            changes.puts.push(StateUpdate::SeenIds {
                source: self.source,
                bucket,
                ids: chunk.iter().map(|(id, e)| (id.to_string(), *e)).collect(),
            });
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
    use crate::model::source::InputTopic;

    const MIN: i64 = 60_000;

    /// (bucket, ids) of each update.
    fn buckets(updates: &[StateUpdate]) -> Vec<(i64, Vec<String>)> {
        updates
            .iter()
            .map(|u| match u {
                StateUpdate::SeenIds { bucket, ids, .. } => {
                    (*bucket, ids.iter().map(|(id, _)| id.clone()).collect())
                }
                other => panic!("not a bucket: {other:?}"),
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
        assert_eq!(
            buckets(&changes.puts),
            vec![(0, vec!["a".into(), "b".into()])]
        );
        assert!(changes.deletes.is_empty());
        // Eleven minutes on, "a" has expired: the same id counts again.
        assert!(d.is_first("c", 3, 11 * MIN));
        assert!(d.is_first("a", 4, 11 * MIN));
        let changes = d.flush();
        assert_eq!(
            buckets(&changes.puts),
            vec![(3, vec!["c".into(), "a".into()])]
        );
        assert!(
            changes.deletes.is_empty(),
            "b (1 min) of bucket 0 is still in the window"
        );
        assert!(d.is_first("d", 5, 12 * MIN));
        let changes = d.flush();
        // At 12 min, bucket 0 (newest id at 1 min) has expired whole.
        assert_eq!(buckets(&changes.deletes), vec![(0, vec![])]);
        assert_eq!(buckets(&changes.puts), vec![(5, vec!["d".into()])]);
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn a_busy_commit_is_split_into_bounded_buckets() {
        let src = SourcePartition::new(InputTopic::UserEvents, 1);
        let mut d = Dedupe::new(src, 10 * MIN, Vec::new());
        let n = 2 * MAX_IDS_PER_BUCKET + 1;
        for offset in 0..n as i64 {
            assert!(d.is_first(&format!("id-{offset}"), offset, 0));
        }
        let sizes: Vec<(i64, usize)> = buckets(&d.flush().puts)
            .into_iter()
            .map(|(bucket, ids)| (bucket, ids.len()))
            .collect();
        let max = MAX_IDS_PER_BUCKET as i64;
        assert_eq!(
            sizes,
            vec![
                (0, MAX_IDS_PER_BUCKET),
                (max, MAX_IDS_PER_BUCKET),
                (2 * max, 1)
            ]
        );
    }

    #[test]
    fn restored_buckets_keep_deciding() {
        let src = SourcePartition::new(InputTopic::PageViews, 3);
        let restored = vec![(
            7,
            vec![(
                "x".to_string(),
                SeenEntry {
                    offset: 7,
                    at_ms: 5 * MIN,
                },
            )],
        )];
        let mut d = Dedupe::new(src, 10 * MIN, restored);
        assert!(!d.is_first("x", 9, 6 * MIN), "a retry after the restart");
        assert!(d.is_first("x", 7, 5 * MIN), "the restored record replayed");
        assert!(d.flush().puts.is_empty());
        // The restored bucket expires like any other.
        assert!(d.is_first("y", 10, 16 * MIN));
        assert_eq!(buckets(&d.flush().deletes), vec![(7, vec![])]);
    }

    #[test]
    fn event_identities_and_the_bare_ids_of_earlier_versions() {
        let id = uuid::Uuid::parse_str("6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b").expect("a uuid");
        let identity = event_identity(id, 0xab);
        assert_eq!(
            identity,
            "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b.00000000000000ab"
        );
        assert_eq!(&identity[..UUID_LEN], id.to_string());
        let source = SourcePartition::new(InputTopic::UserEvents, 0);
        let entry = SeenEntry {
            offset: 3,
            at_ms: 0,
        };
        let earlier = Dedupe::new(source, 10 * MIN, vec![(3, vec![(id.to_string(), entry)])]);
        assert!(earlier.has_bare_ids());
        assert!(earlier.seen_before(&identity[..UUID_LEN], 4));
        let now = Dedupe::new(source, 10 * MIN, vec![(3, vec![(identity.clone(), entry)])]);
        assert!(!now.has_bare_ids());
        let mut handoffs = Dedupe::new(source, 10 * MIN, Vec::new());
        assert!(handoffs.is_first(&handoff_id(5, MetricKind::Users), 5, 0));
        assert!(!handoffs.has_bare_ids());
    }
}
