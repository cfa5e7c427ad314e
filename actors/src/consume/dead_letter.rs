//! Dead letters: input records that can never be counted (not decodable, not
//! valid, an unknown schema version). They go to the dead-letter topic with
//! their key, value and headers unchanged plus headers saying why, in the
//! same transaction as the offsets that move past them, so the partition
//! keeps moving and no record is lost or dead-lettered twice.

use crate::model::error_class::ErrorClass;
use crate::model::source::{RawRecord, SourcePartition};
use crate::state::{DeadLetterMark, StateUpdate};

/// Headers added to a dead letter; the original headers come first.
pub use crate::model::headers::dead_letter as headers;

/// A record on its way to the dead-letter topic.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub source: SourcePartition,
    pub record: RawRecord,
    pub class: ErrorClass,
    /// Its `x-error-class`: the class's name, or a more precise one.
    pub label: &'static str,
    pub message: String,
    pub attempt: u32,
    /// For an event whose retries ran out: the one metric it still lacks
    /// (a replay sends it back through the retry topic for that metric only).
    pub metric: Option<crate::model::metric_kind::MetricKind>,
}

impl DeadLetter {
    /// The error headers, for a source topic named `topic`.
    pub fn error_headers(&self, topic: &str) -> Vec<(&'static str, String)> {
        vec![
            (headers::ERROR_CLASS, self.label.to_string()),
            (headers::ERROR_MESSAGE, self.message.clone()),
            (headers::SOURCE_TOPIC, topic.to_string()),
            (headers::SOURCE_PARTITION, self.source.partition.to_string()),
            (headers::SOURCE_OFFSET, self.record.offset.to_string()),
            (
                headers::SOURCE_TIMESTAMP,
                self.record
                    .timestamp_ms
                    .map_or_else(String::new, |t| t.to_string()),
            ),
            (headers::ATTEMPT, self.attempt.to_string()),
        ]
        .into_iter()
        .chain(
            self.metric
                .map(|m| (crate::model::headers::retry::METRIC, m.to_string())),
        )
        .collect()
    }
}

/// A partition's dead letters: those to write, and how far it has gone, so
/// that a replayed record is not dead-lettered a second time.
pub struct DeadLetters {
    source: SourcePartition,
    mark: DeadLetterMark,
    changed: bool,
    pending: Vec<DeadLetter>,
}

impl DeadLetters {
    /// `restored`: the partition's mark from the changelog.
    pub fn new(source: SourcePartition, restored: Option<DeadLetterMark>) -> Self {
        Self {
            source,
            mark: restored.unwrap_or_default(),
            changed: false,
            pending: Vec::new(),
        }
    }

    /// Dead-letters `record` unless an earlier pass already did.
    pub fn add(&mut self, record: &RawRecord, class: ErrorClass, message: String) -> bool {
        let label = class.label();
        self.add_labelled(record, class, label, message)
    }

    /// [`Self::add`] with an `x-error-class` more precise than the class's
    /// name (`future`, `too_old`).
    pub fn add_labelled(
        &mut self,
        record: &RawRecord,
        class: ErrorClass,
        label: &'static str,
        message: String,
    ) -> bool {
        if record.offset <= self.mark.as_of {
            return false;
        }
        self.mark.count += 1;
        self.mark.as_of = record.offset;
        self.changed = true;
        self.pending.push(DeadLetter {
            source: self.source,
            record: record.clone(),
            class,
            label,
            message,
            attempt: 1,
            metric: None,
        });
        true
    }

    /// Dead-letters an event whose retries ran out, read at `offset` of this
    /// partition, unless an earlier pass already did.
    pub fn add_exhausted(&mut self, offset: i64, letter: DeadLetter) -> bool {
        if offset <= self.mark.as_of {
            return false;
        }
        self.mark.count += 1;
        self.mark.as_of = offset;
        self.changed = true;
        self.pending.push(letter);
        true
    }

    /// The dead letters to write and the mark to commit with them.
    pub fn flush(&mut self) -> (Vec<DeadLetter>, Option<StateUpdate>) {
        let mark = std::mem::take(&mut self.changed).then_some(StateUpdate::DeadLetters {
            source: self.source,
            entry: self.mark,
        });
        (std::mem::take(&mut self.pending), mark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::source::InputTopic;

    fn record(offset: i64) -> RawRecord {
        RawRecord {
            offset,
            key: Some(b"k".to_vec()),
            payload: Some(b"{oops".to_vec()),
            timestamp_ms: Some(1_700_000_000_000),
            headers: vec![("correlation-id".into(), Some(b"c-1".to_vec()))],
        }
    }

    #[test]
    fn a_record_is_dead_lettered_once_with_headers_naming_why() {
        let src = SourcePartition::new(InputTopic::UserEvents, 2);
        let mut d = DeadLetters::new(src, None);
        assert!(d.add(&record(5), ErrorClass::Permanent, "not JSON".into()));
        let (letters, mark) = d.flush();
        assert_eq!(letters.len(), 1);
        assert_eq!(
            letters[0].error_headers("t-user-events"),
            vec![
                ("x-error-class", "permanent".to_string()),
                ("x-error-message", "not JSON".to_string()),
                ("x-source-topic", "t-user-events".to_string()),
                ("x-source-partition", "2".to_string()),
                ("x-source-offset", "5".to_string()),
                ("x-source-timestamp", "1700000000000".to_string()),
                ("x-attempt", "1".to_string()),
            ]
        );
        assert_eq!(
            mark,
            Some(StateUpdate::DeadLetters {
                source: src,
                entry: DeadLetterMark { count: 1, as_of: 5 }
            })
        );
        // Replayed after a restore of that mark: not again.
        let mut again = DeadLetters::new(src, Some(DeadLetterMark { count: 1, as_of: 5 }));
        assert!(!again.add(&record(5), ErrorClass::Permanent, "not JSON".into()));
        assert!(again.add(&record(9), ErrorClass::Permanent, "not JSON".into()));
        assert_eq!(again.flush().0.len(), 1);
    }
}
