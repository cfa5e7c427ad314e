//! Where a record came from: input topic and partition, and the raw record
//! as the Kafka driver hands it over (so this crate needs no Kafka client).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The topics consumed, by role (their names carry the configured prefix):
/// the two input topics, and the retry topic, whose records are events of
/// either input topic waiting for another try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputTopic {
    UserEvents,
    PageViews,
    RetryEvents,
}

impl InputTopic {
    pub const ALL: [InputTopic; 3] = [
        InputTopic::UserEvents,
        InputTopic::PageViews,
        InputTopic::RetryEvents,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InputTopic::UserEvents => "user-events",
            InputTopic::PageViews => "page-views",
            InputTopic::RetryEvents => "retry-events",
        }
    }

    pub fn parse(role: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == role)
    }
}

/// One partition of an input topic: the unit of assignment, of ordering, and
/// of the `as_of` offsets that make state idempotent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourcePartition {
    pub topic: InputTopic,
    pub partition: i32,
}

impl SourcePartition {
    pub fn new(topic: InputTopic, partition: i32) -> Self {
        Self { topic, partition }
    }
}

impl fmt::Display for SourcePartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic.as_str(), self.partition)
    }
}

/// A record as polled, owned, before decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// The record's Kafka timestamp in milliseconds, if it has one.
    pub timestamp_ms: Option<i64>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl RawRecord {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// The schema version header (see [`crate::model::headers`]).
pub use crate::model::headers::SCHEMA_VERSION as SCHEMA_VERSION_HEADER;
