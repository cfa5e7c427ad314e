//! The changelog's record format (`analytics-events`, compacted).
//!
//! One record per state entry change: the key names the entry (metric,
//! source topic and partition, entry key), so compaction keeps each entry's
//! latest state; the value is the entry as JSON, `as_of` included. Partition
//! *p* of the changelog holds the state of partition *p* of both input topics,
//! so restoring a partition reads one changelog partition.

use crate::source::{InputTopic, SourcePartition};
use crate::state::{StateUpdate, SEEN_IDS};

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
}

/// The record key of an entry; unique per entry, stable across versions.
pub fn key(update: &StateUpdate) -> String {
    let (metric, key) = update.route();
    let source = update.source();
    format!(
        "{metric}/{}/{}/{key}",
        source.topic.as_str(),
        source.partition
    )
}

pub fn encode(update: &StateUpdate) -> Result<ChangelogRecord, serde_json::Error> {
    Ok(ChangelogRecord {
        partition: update.source().partition,
        key: key(update),
        value: serde_json::to_vec(update)?,
    })
}

/// A record's entry, or `None` for a tombstone (the entry was deleted).
pub fn decode(value: Option<&[u8]>) -> Result<Option<StateUpdate>, ChangelogError> {
    match value {
        None => Ok(None),
        Some(value) => Ok(Some(serde_json::from_slice(value)?)),
    }
}

/// Whether the record under `key` holds a partition's seen eventIds: state
/// only a partition's own restore needs, never a query. Told from the key
/// alone, so a reader that serves queries passes such records by without
/// decoding them (a bucket holds up to 2,000 ids: most of the changelog's
/// bytes when clients send eventIds).
pub fn holds_seen_ids(key: &[u8]) -> bool {
    key.strip_prefix(SEEN_IDS.as_bytes())
        .is_some_and(|rest| rest.first() == Some(&b'/'))
}

/// What a changelog key names: the metric, the source partition and the
/// entry's own key (which may itself hold `/`, as URLs do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryKey<'a> {
    pub metric: &'a str,
    pub source: SourcePartition,
    pub key: &'a str,
}

/// Reads a key written by [`key`]; `None` for anything else.
pub fn parse_key(key: &str) -> Option<EntryKey<'_>> {
    let mut parts = key.splitn(4, '/');
    let metric = parts.next()?;
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
    use crate::event::EventType;
    use crate::state::{Counter, SessionState};

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
        assert_eq!(
            String::from_utf8(records[0].value.clone()).expect("utf8"),
            r#"{"metric":"event-count","source":{"topic":"user-events","partition":4},"event_type":"purchase","entry":{"count":7,"asOf":99}}"#
        );
        for (record, update) in records.iter().zip(&updates) {
            assert_eq!(
                decode(Some(&record.value)).expect("decodes").as_ref(),
                Some(update)
            );
        }
        assert_eq!(decode(None).expect("a tombstone"), None);
        for (record, update) in records.iter().zip(&updates) {
            let parsed = parse_key(&record.key).expect("parses");
            assert_eq!(parsed.metric, update.route().0);
            assert_eq!(parsed.key, update.route().1);
            assert_eq!(parsed.source, update.source());
        }
        assert!(!holds_seen_ids(records[0].key.as_bytes()));
        assert!(!holds_seen_ids(records[1].key.as_bytes()));
        let seen = encode(&StateUpdate::SeenIds {
            source: SourcePartition::new(InputTopic::PageViews, 2),
            bucket: 40,
            ids: Vec::new(),
        })
        .expect("encodes");
        assert_eq!(seen.key, "seen/page-views/2/40");
        assert!(holds_seen_ids(seen.key.as_bytes()));
        // A user whose id begins with "seen" is not one.
        assert!(!holds_seen_ids(b"users/user-events/0/seen/1"));
        assert!(!holds_seen_ids(b"seenx/user-events/0/1"));
        assert_eq!(parse_key("users/nowhere/1/u"), None);
        assert_eq!(parse_key("users/user-events/x/u"), None);
        assert_eq!(parse_key("users/user-events/1"), None);
    }
}
