//! A consumer group's offsets: for every partition of arus's input topics,
//! what the group committed, where the partition starts and ends, and the
//! lag between them. Read by a client that carries the group's id but never
//! joins the group (it never subscribes), so reading changes nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use arus_config::Settings;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use super::client_config;

/// One partition's offsets. `end` is the last stable offset (the reader is
/// read_committed): an open transaction's records are not lag yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionOffsets {
    pub topic: String,
    pub partition: i32,
    /// `None`: the group never committed here, and starts at `start`.
    pub committed: Option<i64>,
    pub start: i64,
    pub end: i64,
    pub lag: i64,
}

impl PartitionOffsets {
    fn new(topic: &str, partition: i32, committed: Option<i64>, (start, end): (i64, i64)) -> Self {
        // A committed offset below the start was deleted by retention: the
        // group resumes at the start, so that is what it still has to read.
        let from = committed.map_or(start, |c| c.max(start));
        Self {
            topic: topic.to_string(),
            partition,
            committed,
            start,
            end,
            lag: (end - from).max(0),
        }
    }
}

/// A member of the group, as the group coordinator lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
}

impl Member {
    /// Whether this member is the client `client_id`. Coordinators name a
    /// member `<client id>-<uuid>`; some list no client id.
    pub fn is_client(&self, client_id: &str) -> bool {
        self.client_id == client_id
            || self
                .member_id
                .strip_prefix(client_id)
                .is_some_and(|rest| rest.starts_with('-'))
    }
}

/// Reads one group's offsets. Blocking: call it off the async threads.
pub struct OffsetReader {
    consumer: BaseConsumer,
    group: String,
    topics: Vec<String>,
    timeout: Duration,
}

impl OffsetReader {
    pub fn new(settings: &Settings, brokers: &str, group: &str) -> anyhow::Result<Self> {
        let k = &settings.kafka;
        let consumer = client_config::offsets_reader(settings, brokers, group)
            .create()
            .context("creating the offsets reader")?;
        Ok(Self {
            consumer,
            group: group.to_string(),
            topics: vec![
                k.topic_name(&k.topics.user_events),
                k.topic_name(&k.topics.page_views),
                k.topic_name(&k.topics.retry_events),
            ],
            timeout: Duration::from_millis(k.admin_timeout_ms),
        })
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// Every partition of the input topics, in topic then partition order.
    pub fn read(&self) -> anyhow::Result<Vec<PartitionOffsets>> {
        let mut wanted = TopicPartitionList::new();
        for topic in &self.topics {
            let metadata = self
                .consumer
                .fetch_metadata(Some(topic), self.timeout)
                .with_context(|| format!("reading the metadata of {topic}"))?;
            for t in metadata.topics() {
                for p in t.partitions() {
                    wanted.add_partition(topic, p.id());
                }
            }
        }
        let committed = self
            .consumer
            .committed_offsets(wanted.clone(), self.timeout)
            .with_context(|| format!("reading the offsets group {} committed", self.group))?;
        let mut out = Vec::with_capacity(wanted.count());
        for element in wanted.elements() {
            let (topic, partition) = (element.topic(), element.partition());
            let committed = match committed
                .find_partition(topic, partition)
                .map(|e| e.offset())
            {
                Some(Offset::Offset(o)) => Some(o),
                _ => None,
            };
            let marks = self
                .consumer
                .fetch_watermarks(topic, partition, self.timeout)
                .with_context(|| format!("reading the offsets of {topic}/{partition}"))?;
            out.push(PartitionOffsets::new(topic, partition, committed, marks));
        }
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(out)
    }

    /// Per partition, the offset of the first record at or after
    /// `timestamp_ms`; partitions with none after it are left out.
    pub fn offsets_at(
        &self,
        partitions: &[PartitionOffsets],
        timestamp_ms: i64,
    ) -> anyhow::Result<HashMap<(String, i32), i64>> {
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(timestamp_ms))?;
        }
        let found = self
            .consumer
            .offsets_for_times(tpl, self.timeout)
            .context("looking up offsets by time")?;
        Ok(found
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
                _ => None,
            })
            .collect())
    }

    /// How many committed records `partitions` hold past the group's
    /// offsets: read, not computed from offsets, since transaction markers
    /// take offsets too.
    pub fn unread(&self, partitions: &[PartitionOffsets]) -> anyhow::Result<usize> {
        let mut tpl = TopicPartitionList::new();
        for p in partitions.iter().filter(|p| p.lag > 0) {
            let from = p.committed.map_or(p.start, |c| c.max(p.start));
            tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(from))?;
        }
        let wanted = tpl.count();
        if wanted == 0 {
            return Ok(0);
        }
        self.consumer.assign(&tpl)?;
        let (mut records, mut at_end) = (0, std::collections::HashSet::new());
        let deadline = Instant::now() + self.timeout;
        while at_end.len() < wanted {
            anyhow::ensure!(
                Instant::now() < deadline,
                "reading what the group has not read took longer than {:?}",
                self.timeout
            );
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(_)) => records += 1,
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    at_end.insert(p);
                }
                Some(Err(e)) => return Err(e.into()),
                None => {}
            }
        }
        self.consumer.unassign()?;
        Ok(records)
    }

    /// Commits these offsets for the group. Only for a group with no
    /// members: the coordinator refuses a commit from outside an active group.
    pub fn commit(&self, offsets: &[(String, i32, i64)]) -> anyhow::Result<()> {
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, offset) in offsets {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
        }
        self.consumer
            .commit(&tpl, CommitMode::Sync)
            .with_context(|| format!("committing offsets for group {}", self.group))
    }

    /// The group's state (Stable, Empty, PreparingRebalance, Dead, ...) and
    /// its members.
    pub fn members(&self) -> anyhow::Result<(String, Vec<Member>)> {
        let list = self
            .consumer
            .fetch_group_list(Some(&self.group), self.timeout)
            .with_context(|| format!("describing group {}", self.group))?;
        let Some(group) = list.groups().iter().find(|g| g.name() == self.group) else {
            return Ok(("Dead".into(), Vec::new()));
        };
        let members = group
            .members()
            .iter()
            .map(|m| Member {
                member_id: m.id().to_string(),
                client_id: m.client_id().to_string(),
                client_host: m.client_host().to_string(),
            })
            .collect();
        Ok((group.state().to_string(), members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_known_by_client_id_or_member_id() {
        let member = |member_id: &str, client_id: &str| Member {
            member_id: member_id.into(),
            client_id: client_id.into(),
            client_host: String::new(),
        };
        assert!(member("x", "arus-a-consumer").is_client("arus-a-consumer"));
        assert!(member("arus-a-consumer-6f1c", "").is_client("arus-a-consumer"));
        assert!(!member("arus-a-consumer2-6f1c", "").is_client("arus-a-consumer"));
        assert!(!member("arus-b-consumer-6f1c", "").is_client("arus-a-consumer"));
    }

    #[test]
    fn lag_counts_from_the_commit_or_the_start() {
        let p = PartitionOffsets::new("t", 0, Some(40), (10, 100));
        assert_eq!(p.lag, 60);
        // Never committed: everything still in the partition is lag.
        assert_eq!(PartitionOffsets::new("t", 0, None, (10, 100)).lag, 90);
        // Committed below what retention kept: the rest of the partition.
        assert_eq!(PartitionOffsets::new("t", 0, Some(3), (10, 100)).lag, 90);
        // A watermark read a moment before the commit: no negative lag.
        assert_eq!(PartitionOffsets::new("t", 0, Some(101), (10, 100)).lag, 0);
    }
}
