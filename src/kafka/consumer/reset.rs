//! Resetting a group's offsets on arus's input topics (the seed's
//! resetConsumerGroupOffset) and replaying from there.
//!
//! For arus's own group the reset runs inside this instance's consumer
//! driver, between batches, refused while any other instance is in the
//! group. One transaction carries the new offsets and, for a rebuild, a
//! tombstone for every state entry of the reset partitions; then the
//! partitions restore from the changelog (as after a rollback) and resume at
//! the new offsets. Without a rebuild the state stays as it is: every entry
//! knows the last offset it includes (`as_of`), so replayed records are read
//! and skipped, and nothing is counted twice. With a rebuild the state starts
//! from nothing and is recomputed from the new offsets (dead-letter marks
//! stay, so a replay does not dead-letter a record twice).
//!
//! Another group (nobody in it) is reset with a plain offset commit.

use std::collections::{HashMap, HashSet};

use arus_actors::model::source::SourcePartition;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::kafka::offsets::PartitionOffsets;

/// Where to move each partition.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "to", rename_all = "lowercase")]
pub enum Target {
    /// The first offset retention kept.
    Earliest,
    /// The end: skip everything not yet read.
    Latest,
    /// The first record at or after `timestamp` (ms since the epoch), or the
    /// end when there is none.
    Timestamp { timestamp: i64 },
    /// These partitions to these offsets; the others stay.
    Offsets { offsets: Vec<ExplicitOffset> },
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplicitOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// One partition's move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Planned {
    pub topic: String,
    pub partition: i32,
    /// What the group had committed (`None`: nothing).
    pub from: Option<i64>,
    pub to: i64,
}

/// The moves `target` makes on the partitions of `topics`, from the group's
/// current `partitions`. `at_time`: for a timestamp target, the first offset
/// at or after it per partition (missing: none, the end). An error names
/// what is wrong with the request.
pub fn plan(
    target: &Target,
    partitions: &[PartitionOffsets],
    topics: &[String],
    at_time: &HashMap<(String, i32), i64>,
) -> Result<Vec<Planned>, String> {
    let planned = |p: &PartitionOffsets, to: i64| Planned {
        topic: p.topic.clone(),
        partition: p.partition,
        from: p.committed,
        to,
    };
    let chosen = partitions.iter().filter(|p| topics.contains(&p.topic));
    match target {
        Target::Earliest => Ok(chosen.map(|p| planned(p, p.start)).collect()),
        Target::Latest => Ok(chosen.map(|p| planned(p, p.end)).collect()),
        Target::Timestamp { timestamp } => {
            if *timestamp < 0 {
                return Err(format!(
                    "timestamp must be milliseconds since the epoch, not {timestamp}"
                ));
            }
            Ok(chosen
                .map(|p| {
                    let found = at_time.get(&(p.topic.clone(), p.partition)).copied();
                    planned(p, found.unwrap_or(p.end).clamp(p.start, p.end))
                })
                .collect())
        }
        Target::Offsets { offsets } => {
            if offsets.is_empty() {
                return Err("offsets must name at least one partition".into());
            }
            let mut seen = HashSet::new();
            offsets
                .iter()
                .map(|wanted| {
                    let name = format!("{}/{}", wanted.topic, wanted.partition);
                    if !topics.contains(&wanted.topic) {
                        return Err(format!(
                            "{name}: offsets can be reset on {} only",
                            topics.join(", ")
                        ));
                    }
                    if !seen.insert((wanted.topic.as_str(), wanted.partition)) {
                        return Err(format!("{name} is named twice"));
                    }
                    let p = partitions
                        .iter()
                        .find(|p| p.topic == wanted.topic && p.partition == wanted.partition)
                        .ok_or_else(|| format!("{name}: no such partition"))?;
                    if !(p.start..=p.end).contains(&wanted.offset) {
                        return Err(format!(
                            "{name}: offset {} is outside what the partition holds ({} to {})",
                            wanted.offset, p.start, p.end
                        ));
                    }
                    Ok(planned(p, wanted.offset))
                })
                .collect()
        }
    }
}

/// A reset of this instance's own partitions, handed to the consumer driver.
pub struct ResetRequest {
    pub offsets: Vec<(SourcePartition, i64)>,
    pub rebuild: bool,
    pub reply: oneshot::Sender<Result<ResetDone, ResetRefused>>,
}

/// A reset that took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetDone {
    /// State entries a rebuild deleted (0 without one).
    pub entries_deleted: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResetRefused {
    /// Not now: the partitions are moving or restoring; nothing was changed.
    #[error("{0}")]
    Busy(String),
    /// The transaction failed; nothing was changed.
    #[error("{0}")]
    Failed(String),
}

impl ResetRequest {
    pub fn sources(&self) -> Vec<SourcePartition> {
        self.offsets.iter().map(|(s, _)| *s).collect()
    }

    pub fn refuse(self, why: ResetRefused) {
        // The caller may have given up waiting; then nobody needs the answer.
        let _ = self.reply.send(Err(why));
    }

    pub fn done(self, done: ResetDone) {
        let _ = self.reply.send(Ok(done));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(
        topic: &str,
        partition: i32,
        committed: Option<i64>,
        start: i64,
        end: i64,
    ) -> PartitionOffsets {
        PartitionOffsets {
            topic: topic.into(),
            partition,
            committed,
            start,
            end,
            lag: 0,
        }
    }

    fn group() -> Vec<PartitionOffsets> {
        vec![
            partition("u", 0, Some(50), 10, 100),
            partition("u", 1, None, 0, 0),
            partition("p", 0, Some(7), 0, 7),
            partition("r", 0, Some(3), 0, 4),
        ]
    }

    fn moves(planned: &[Planned]) -> Vec<(&str, i32, Option<i64>, i64)> {
        planned
            .iter()
            .map(|p| (p.topic.as_str(), p.partition, p.from, p.to))
            .collect()
    }

    #[test]
    fn earliest_latest_and_timestamps_cover_the_chosen_topics() {
        let topics = vec!["u".to_string(), "p".to_string()];
        let none = HashMap::new();
        let earliest = plan(&Target::Earliest, &group(), &topics, &none).expect("plans");
        assert_eq!(
            moves(&earliest),
            vec![
                ("u", 0, Some(50), 10),
                ("u", 1, None, 0),
                ("p", 0, Some(7), 0)
            ]
        );
        let latest = plan(&Target::Latest, &group(), &topics[..1], &none).expect("plans");
        assert_eq!(
            moves(&latest),
            vec![("u", 0, Some(50), 100), ("u", 1, None, 0)]
        );
        // A timestamp found in u/0; none after it in the others: their end.
        let at = HashMap::from([(("u".to_string(), 0), 42)]);
        let by_time =
            plan(&Target::Timestamp { timestamp: 5 }, &group(), &topics, &at).expect("plans");
        assert_eq!(
            moves(&by_time),
            vec![
                ("u", 0, Some(50), 42),
                ("u", 1, None, 0),
                ("p", 0, Some(7), 7)
            ]
        );
        assert!(plan(
            &Target::Timestamp { timestamp: -1 },
            &group(),
            &topics,
            &none
        )
        .is_err());
    }

    #[test]
    fn explicit_offsets_are_checked_against_the_partitions() {
        let topics = vec!["u".to_string(), "p".to_string()];
        let none = HashMap::new();
        let explicit = |list: &[(&str, i32, i64)]| Target::Offsets {
            offsets: list
                .iter()
                .map(|&(topic, partition, offset)| ExplicitOffset {
                    topic: topic.into(),
                    partition,
                    offset,
                })
                .collect(),
        };
        let ok = plan(
            &explicit(&[("u", 0, 60), ("p", 0, 7)]),
            &group(),
            &topics,
            &none,
        );
        assert_eq!(
            moves(&ok.expect("plans")),
            vec![("u", 0, Some(50), 60), ("p", 0, Some(7), 7)]
        );
        let refused = |list: &[(&str, i32, i64)]| {
            plan(&explicit(list), &group(), &topics, &none).expect_err("refused")
        };
        assert_eq!(
            refused(&[("u", 0, 9)]),
            "u/0: offset 9 is outside what the partition holds (10 to 100)"
        );
        assert_eq!(
            refused(&[("u", 0, 101)]),
            "u/0: offset 101 is outside what the partition holds (10 to 100)"
        );
        assert_eq!(refused(&[("u", 2, 0)]), "u/2: no such partition");
        assert_eq!(
            refused(&[("r", 0, 0)]),
            "r/0: offsets can be reset on u, p only"
        );
        assert_eq!(refused(&[("u", 0, 20), ("u", 0, 30)]), "u/0 is named twice");
        assert_eq!(refused(&[]), "offsets must name at least one partition");
    }

    #[test]
    fn targets_parse_from_json() {
        let parse = |s: &str| serde_json::from_str::<Target>(s);
        assert_eq!(
            parse(r#"{"to":"earliest"}"#).expect("parses"),
            Target::Earliest
        );
        assert_eq!(
            parse(r#"{"to":"timestamp","timestamp":17}"#).expect("parses"),
            Target::Timestamp { timestamp: 17 }
        );
        assert!(parse(r#"{"to":"timestamp"}"#).is_err());
        assert!(parse(r#"{"to":"yesterday"}"#).is_err());
    }
}
