//! The changelog's record format (`analytics-events`, compacted).
//!
//! One record per state entry change: the key names the entry (metric,
//! source topic and partition, entry key), so compaction keeps each entry's
//! latest state; the value is the entry itself as JSON, `asOf` included
//! (for a bucket of seen eventIds, the list of ids). Partition *p* of the
//! changelog holds the state of partition *p* of both input topics, so
//! restoring a partition reads one changelog partition.
//!
//! Values written before this format repeated the key's parts (metric,
//! source, entry key) around the entry, `{"metric":"user","source":…,
//! "user_id":…,"entry":{…}}`: more than half of every record, encoded by the
//! committer, compressed and sent, and parsed again by every reader. They are
//! still read: a compacted changelog keeps an entry's last record however
//! old, and such a value is told by its first field (an entry has no
//! `metric`).

use serde::de::{self, value::MapAccessDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt::Write as _;

use crate::model::event::EventType;
use crate::model::metric_kind::{EntryKind, MetricKind};
use crate::model::source::{InputTopic, SourcePartition};
use crate::state::{
    Counter, DeadLetterMark, PageStats, SeenEntry, SessionState, StateUpdate, UserActivity,
};
use crate::window::Resolution;

/// A changelog record ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangelogRecord {
    pub partition: i32,
    pub key: String,
    pub value: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChangelogError {
    #[error("changelog record is not a state entry: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("changelog record's key names no state entry: {0:?}")]
    Key(String),
}

/// The record key of an entry; unique per entry, stable across versions.
pub fn key(update: &StateUpdate) -> String {
    let mut key = String::new();
    write_key(update, &mut key);
    key
}

fn write_key(update: &StateUpdate, out: &mut String) {
    let (metric, key) = update.route();
    let source = update.source();
    out.push_str(metric.as_str());
    out.push('/');
    out.push_str(source.topic.as_str());
    out.push('/');
    // Writing to a String cannot fail.
    let _ = write!(out, "{}", source.partition);
    out.push('/');
    out.push_str(&key);
}

pub fn encode(update: &StateUpdate) -> Result<ChangelogRecord, serde_json::Error> {
    let (mut key, mut value) = (String::new(), Vec::new());
    let partition = encode_into(update, &mut key, &mut value)?;
    Ok(ChangelogRecord {
        partition,
        key,
        value,
    })
}

/// [`encode`] into buffers the caller reuses from one entry to the next
/// (cleared first): a commit writes tens of thousands of entries, and the
/// producer copies each. Returns the changelog partition.
pub fn encode_into(
    update: &StateUpdate,
    key: &mut String,
    value: &mut Vec<u8>,
) -> Result<i32, serde_json::Error> {
    key.clear();
    value.clear();
    write_key(update, key);
    let value = &mut *value;
    match update {
        StateUpdate::EventCount { entry, .. } => serde_json::to_writer(value, entry)?,
        StateUpdate::User { entry, .. } => serde_json::to_writer(value, entry)?,
        StateUpdate::Page { entry, .. } => serde_json::to_writer(value, entry)?,
        StateUpdate::Session { entry, .. } => serde_json::to_writer(value, entry)?,
        StateUpdate::DeadLetters { entry, .. } => serde_json::to_writer(value, entry)?,
        StateUpdate::SeenIds { ids, .. } => serde_json::to_writer(value, ids)?,
        StateUpdate::Bucket { entry, .. } => serde_json::to_writer(value, entry)?,
        StateUpdate::Watermark { entry, .. } => serde_json::to_writer(value, entry)?,
        StateUpdate::UserVisits { visits, .. } => serde_json::to_writer(value, visits)?,
        StateUpdate::VisitBucket { entry, .. } => serde_json::to_writer(value, entry)?,
        StateUpdate::VisitMark { entry, .. } => serde_json::to_writer(value, entry)?,
    }
    Ok(update.source().partition)
}

/// A record's entry, or `None` for a tombstone (the entry was deleted). The
/// key names the entry; the value holds it (or, written before the compact
/// format, names it again itself).
pub fn decode(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Result<Option<StateUpdate>, ChangelogError> {
    let Some(value) = value else {
        return Ok(None);
    };
    if value.starts_with(br#"{"metric":"#) {
        return Ok(Some(serde_json::from_slice(value)?));
    }
    let key = key.unwrap_or_default();
    let unnamed = || ChangelogError::Key(String::from_utf8_lossy(key).into_owned());
    let EntryKey {
        metric,
        source,
        key: entry_key,
    } = std::str::from_utf8(key)
        .ok()
        .and_then(parse_key)
        .ok_or_else(unnamed)?;
    Ok(Some(match metric {
        EntryKind::Metric(MetricKind::EventCounts) => StateUpdate::EventCount {
            source,
            event_type: EventType::parse(entry_key).ok_or_else(unnamed)?,
            entry: serde_json::from_slice(value)?,
        },
        EntryKind::Metric(MetricKind::Users) => StateUpdate::User {
            source,
            user_id: entry_key.to_owned(),
            entry: serde_json::from_slice(value)?,
        },
        EntryKind::Metric(MetricKind::TopPages) => StateUpdate::Page {
            source,
            url: entry_key.to_owned(),
            entry: serde_json::from_slice(value)?,
        },
        EntryKind::Metric(MetricKind::Sessions) => StateUpdate::Session {
            source,
            user_id: entry_key.to_owned(),
            entry: serde_json::from_slice(value)?,
        },
        EntryKind::DeadLetters if entry_key.is_empty() => StateUpdate::DeadLetters {
            source,
            entry: serde_json::from_slice(value)?,
        },
        EntryKind::SeenIds => StateUpdate::SeenIds {
            source,
            bucket: entry_key.parse().map_err(|_| unnamed())?,
            ids: serde_json::from_slice(value)?,
        },
        EntryKind::Windows => {
            let (resolution, start) = entry_key.split_once('/').ok_or_else(unnamed)?;
            StateUpdate::Bucket {
                source,
                resolution: Resolution::parse(resolution).ok_or_else(unnamed)?,
                start_ms: start.parse().map_err(|_| unnamed())?,
                entry: serde_json::from_slice(value)?,
            }
        }
        EntryKind::Watermark if entry_key.is_empty() => StateUpdate::Watermark {
            source,
            entry: serde_json::from_slice(value)?,
        },
        EntryKind::Visit => StateUpdate::UserVisits {
            source,
            user_id: entry_key.to_owned(),
            visits: serde_json::from_slice(value)?,
        },
        EntryKind::Visits => {
            let (resolution, start) = entry_key.split_once('/').ok_or_else(unnamed)?;
            StateUpdate::VisitBucket {
                source,
                resolution: Resolution::parse(resolution).ok_or_else(unnamed)?,
                start_ms: start.parse().map_err(|_| unnamed())?,
                entry: serde_json::from_slice(value)?,
            }
        }
        EntryKind::VisitMark if entry_key.is_empty() => StateUpdate::VisitMark {
            source,
            entry: serde_json::from_slice(value)?,
        },
        _ => return Err(unnamed()),
    }))
}

/// Whether the record under `key` holds state only a partition's own
/// restore needs, never a query: its seen eventIds, or a user's open
/// visits. Told from the key alone, so a reader that serves queries passes
/// such records by without decoding them (a bucket of seen ids holds up to
/// 2,000 ids: most of the changelog's bytes when clients send eventIds).
pub fn only_for_restore(key: &[u8]) -> bool {
    [EntryKind::SeenIds, EntryKind::Visit].iter().any(|kind| {
        key.strip_prefix(kind.as_str().as_bytes())
            .is_some_and(|rest| rest.first() == Some(&b'/'))
    })
}

/// Reads an entry as written before the compact format (as
/// [`StateUpdate`]'s `Serialize` writes it): a map whose first key is
/// `metric`, then the variant's fields. The derived reader of
/// an internally tagged enum cannot know where the tag is, so it buffers
/// every entry whole (serde's `Content` tree: an allocation per string and
/// map) before reading it again; this one reads the tag, then the rest of
/// the same map straight into the variant's fields. Every reader of the
/// changelog (the read model, each restore) decodes every entry it reads.
impl<'de> Deserialize<'de> for StateUpdate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EntryVisitor)
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Tag {
    Metric,
}

#[derive(Deserialize)]
#[serde(variant_identifier, rename_all = "kebab-case")]
enum Metric {
    EventCount,
    User,
    Page,
    Session,
    DeadLetters,
    SeenIds,
}

#[derive(Deserialize)]
struct EventCountFields {
    source: SourcePartition,
    event_type: EventType,
    entry: Counter,
}

#[derive(Deserialize)]
struct UserFields {
    source: SourcePartition,
    user_id: String,
    entry: UserActivity,
}

#[derive(Deserialize)]
struct PageFields {
    source: SourcePartition,
    url: String,
    entry: PageStats,
}

#[derive(Deserialize)]
struct SessionFields {
    source: SourcePartition,
    user_id: String,
    entry: SessionState,
}

#[derive(Deserialize)]
struct DeadLetterFields {
    source: SourcePartition,
    entry: DeadLetterMark,
}

#[derive(Deserialize)]
struct SeenIdsFields {
    source: SourcePartition,
    bucket: i64,
    ids: Vec<(String, SeenEntry)>,
}

struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = StateUpdate;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a state entry: a map beginning with its \"metric\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StateUpdate, A::Error> {
        match map.next_key::<Tag>()? {
            Some(Tag::Metric) => {}
            None => return Err(de::Error::missing_field("metric")),
        }
        let metric: Metric = map.next_value()?;
        let rest = MapAccessDeserializer::new(map);
        Ok(match metric {
            Metric::EventCount => {
                let f = EventCountFields::deserialize(rest)?;
                StateUpdate::EventCount {
                    source: f.source,
                    event_type: f.event_type,
                    entry: f.entry,
                }
            }
            Metric::User => {
                let f = UserFields::deserialize(rest)?;
                StateUpdate::User {
                    source: f.source,
                    user_id: f.user_id,
                    entry: f.entry,
                }
            }
            Metric::Page => {
                let f = PageFields::deserialize(rest)?;
                StateUpdate::Page {
                    source: f.source,
                    url: f.url,
                    entry: f.entry,
                }
            }
            Metric::Session => {
                let f = SessionFields::deserialize(rest)?;
                StateUpdate::Session {
                    source: f.source,
                    user_id: f.user_id,
                    entry: f.entry,
                }
            }
            Metric::DeadLetters => {
                let f = DeadLetterFields::deserialize(rest)?;
                StateUpdate::DeadLetters {
                    source: f.source,
                    entry: f.entry,
                }
            }
            Metric::SeenIds => {
                let f = SeenIdsFields::deserialize(rest)?;
                StateUpdate::SeenIds {
                    source: f.source,
                    bucket: f.bucket,
                    ids: f.ids,
                }
            }
        })
    }
}

/// What a changelog key names: the metric, the source partition and the
/// entry's own key (which may itself hold `/`, as URLs do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryKey<'a> {
    pub metric: EntryKind,
    pub source: SourcePartition,
    pub key: &'a str,
}

/// Reads a key written by [`key`]; `None` for anything else.
pub fn parse_key(key: &str) -> Option<EntryKey<'_>> {
    let mut parts = key.splitn(4, '/');
    let metric = EntryKind::parse(parts.next()?)?;
    let topic = InputTopic::parse(parts.next()?)?;
    let partition = parts.next()?.parse().ok()?;
    let key = parts.next()?;
    Some(EntryKey {
        metric,
        source: SourcePartition::new(topic, partition),
        key,
    })
}

/// The key and partition of a deleted entry's tombstone.
pub fn tombstone(update: &StateUpdate) -> (i32, String) {
    (update.source().partition, key(update))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(record: &ChangelogRecord) -> Option<StateUpdate> {
        decode(Some(record.key.as_bytes()), Some(&record.value)).expect("decodes")
    }

    #[test]
    fn entries_round_trip_with_stable_keys() {
        let updates = [
            StateUpdate::EventCount {
                source: SourcePartition::new(InputTopic::UserEvents, 4),
                event_type: EventType::Purchase,
                entry: Counter {
                    count: 7,
                    as_of: 99,
                },
            },
            StateUpdate::Session {
                source: SourcePartition::new(InputTopic::UserEvents, 1),
                user_id: "u/1".into(),
                entry: SessionState {
                    open_since_ms: Some(5),
                    completed: 2,
                    total_duration_ms: 100,
                    as_of: 12,
                },
            },
        ];
        let records: Vec<_> = updates
            .iter()
            .map(|u| encode(u).expect("encodes"))
            .collect();
        assert_eq!(records[0].key, "event-counts/user-events/4/purchase");
        assert_eq!(records[0].partition, 4);
        assert_eq!(records[1].key, "sessions/user-events/1/u/1");
        // The value is the entry alone: the key names it.
        assert_eq!(
            String::from_utf8(records[0].value.clone()).expect("utf8"),
            r#"{"count":7,"asOf":99}"#
        );
        assert_eq!(
            String::from_utf8(records[1].value.clone()).expect("utf8"),
            r#"{"openSinceMs":5,"completed":2,"totalDurationMs":100,"asOf":12}"#
        );
        for (record, update) in records.iter().zip(&updates) {
            assert_eq!(decoded(record).as_ref(), Some(update));
        }
        assert_eq!(
            decode(Some(b"users/user-events/0/u"), None).expect("a tombstone"),
            None
        );
        // A user id that JSON would escape (quote, backslash, non-ASCII):
        // it is in the key, as it is.
        let tricky = StateUpdate::User {
            source: SourcePartition::new(InputTopic::PageViews, 0),
            user_id: "u \"ä\"\\x".into(),
            entry: UserActivity {
                events: 1,
                page_views: 2,
                last_seen_ms: -3,
                as_of: 4,
            },
        };
        let encoded = encode(&tricky).expect("encodes");
        assert_eq!(encoded.key, "users/page-views/0/u \"ä\"\\x");
        assert_eq!(decoded(&encoded), Some(tricky));
        for (record, update) in records.iter().zip(&updates) {
            let parsed = parse_key(&record.key).expect("parses");
            assert_eq!(parsed.metric, update.route().0);
            assert_eq!(parsed.key, update.route().1);
            assert_eq!(parsed.source, update.source());
        }
        assert!(!only_for_restore(records[0].key.as_bytes()));
        assert!(!only_for_restore(records[1].key.as_bytes()));
        let seen = encode(&StateUpdate::SeenIds {
            source: SourcePartition::new(InputTopic::PageViews, 2),
            bucket: 40,
            ids: Vec::new(),
        })
        .expect("encodes");
        assert_eq!(seen.key, "seen/page-views/2/40");
        assert_eq!(seen.value, b"[]");
        assert!(only_for_restore(seen.key.as_bytes()));
        // A user whose id begins with "seen" is not one.
        assert!(!only_for_restore(b"users/user-events/0/seen/1"));
        assert!(only_for_restore(b"visit/user-events/0/u1"));
        assert!(!only_for_restore(b"visits/user-events/0/minute/0"));
        assert!(!only_for_restore(b"visit-mark/user-events/0/"));
        assert!(!only_for_restore(b"seenx/user-events/0/1"));
        assert_eq!(parse_key("users/nowhere/1/u"), None);
        assert_eq!(parse_key("users/user-events/x/u"), None);
        assert_eq!(parse_key("users/user-events/1"), None);
    }

    fn every_kind(source: SourcePartition) -> [StateUpdate; 6] {
        [
            StateUpdate::EventCount {
                source,
                event_type: EventType::Logout,
                entry: Counter { count: 1, as_of: 2 },
            },
            StateUpdate::User {
                source,
                user_id: "user-1".into(),
                entry: UserActivity {
                    events: 3,
                    page_views: 4,
                    last_seen_ms: 5,
                    as_of: 6,
                },
            },
            StateUpdate::Page {
                source,
                url: "/a/b?c=d".into(),
                entry: PageStats {
                    views: 7,
                    total_duration_milli: 8_500,
                    as_of: 9,
                },
            },
            StateUpdate::Session {
                source,
                user_id: "user-2".into(),
                entry: SessionState {
                    open_since_ms: None,
                    completed: 10,
                    total_duration_ms: 11,
                    as_of: 12,
                },
            },
            StateUpdate::DeadLetters {
                source,
                entry: DeadLetterMark {
                    count: 13,
                    as_of: 14,
                },
            },
            StateUpdate::SeenIds {
                source,
                bucket: 15,
                ids: vec![
                    (
                        "id-a".into(),
                        SeenEntry {
                            offset: 15,
                            at_ms: 16,
                        },
                    ),
                    (
                        "id-b".into(),
                        SeenEntry {
                            offset: 17,
                            at_ms: 18,
                        },
                    ),
                ],
            },
        ]
    }

    #[test]
    fn every_kind_of_entry_round_trips_and_malformed_ones_are_refused() {
        let source = SourcePartition::new(InputTopic::UserEvents, 3);
        for update in &every_kind(source) {
            let record = encode(update).expect("encodes");
            assert_eq!(
                decoded(&record).as_ref(),
                Some(update),
                "{}",
                String::from_utf8_lossy(&record.value)
            );
        }
        let refused = |key: Option<&str>, value: &str| {
            decode(key.map(str::as_bytes), Some(value.as_bytes()))
                .map(|_| ())
                .expect_err("refused")
                .to_string()
        };
        let counter = r#"{"count":1,"asOf":2}"#;
        for key in [
            None,
            Some("users/nowhere/1/u"),
            Some("temperature/user-events/0/x"),
            Some("event-counts/user-events/0/jump"),
            Some("seen/user-events/0/x"),
            Some("dead-letters/user-events/0/x"),
        ] {
            assert!(
                refused(key, counter).contains("key names no state entry"),
                "{key:?}"
            );
        }
        let key = Some("event-counts/user-events/3/login");
        assert!(refused(key, "{}").contains("missing field `count`"));
        assert!(refused(key, "7").contains("invalid type"));
        assert!(refused(key, r#"{"count":-1,"asOf":2}"#).contains("invalid value"));
    }

    #[test]
    fn values_written_before_the_compact_format_still_decode() {
        // As arus wrote them then: the metric first, the key's parts again,
        // the entry inside. A compacted changelog keeps such a record for
        // as long as its entry does not change.
        let source = r#""source":{"topic":"user-events","partition":3}"#;
        let legacy = [
            format!(
                r#"{{"metric":"event-count",{source},"event_type":"logout","entry":{{"count":1,"asOf":2}}}}"#
            ),
            format!(
                r#"{{"metric":"user",{source},"user_id":"user-1","entry":{{"events":3,"pageViews":4,"lastSeenMs":5,"asOf":6}}}}"#
            ),
            format!(
                r#"{{"metric":"page",{source},"url":"/a/b?c=d","entry":{{"views":7,"totalDuration":8.5,"asOf":9}}}}"#
            ),
            format!(
                r#"{{"metric":"session",{source},"user_id":"user-2","entry":{{"openSinceMs":null,"completed":10,"totalDurationMs":11,"asOf":12}}}}"#
            ),
            format!(r#"{{"metric":"dead-letters",{source},"entry":{{"count":13,"asOf":14}}}}"#),
            format!(
                r#"{{"metric":"seen-ids",{source},"bucket":15,"ids":[["id-a",{{"offset":15,"atMs":16}}],["id-b",{{"offset":17,"atMs":18}}]]}}"#
            ),
        ];
        for (value, update) in legacy
            .iter()
            .zip(every_kind(SourcePartition::new(InputTopic::UserEvents, 3)))
        {
            let key = key(&update);
            assert_eq!(
                decode(Some(key.as_bytes()), Some(value.as_bytes())).expect("decodes"),
                Some(update),
                "{value}"
            );
        }
        let refused = |json: &str| {
            decode(None, Some(json.as_bytes()))
                .map(|_| ())
                .expect_err("refused")
                .to_string()
        };
        let source = r#""source":{"topic":"user-events","partition":3}"#;
        let entry = r#""entry":{"count":1,"asOf":2}"#;
        assert!(
            refused(&format!(r#"{{"metric":"temperature",{source},{entry}}}"#))
                .contains("unknown variant `temperature`")
        );
        assert!(refused(&format!(r#"{{"metric":"event-count",{source}}}"#))
            .contains("missing field `event_type`"));
    }
}
