//! What the consumer driver and a partition consumer say to each other:
//! a batch to process and its outcome, and the flush at each commit.

use actix::Message;

use crate::consume::dead_letter::DeadLetter;
use crate::consume::dedupe::SeenChanges;
use crate::consume::retry::RetryRecord;
use crate::model::source::RawRecord;
use crate::state::StateUpdate;
use crate::window::WindowFlush;

/// A poll's worth of records of this partition, in offset order.
#[derive(Message)]
#[rtype(result = "BatchOutcome")]
pub struct ProcessBatch {
    pub records: Vec<RawRecord>,
    /// The spans of the traced records among them (those whose producer
    /// sent a trace context), by offset, in offset order: each event's
    /// `apply` spans are their children. Empty when tracing is off.
    pub traces: Vec<(i64, tracing::Span)>,
}

impl ProcessBatch {
    /// A batch with no traced records.
    pub fn of(records: Vec<RawRecord>) -> Self {
        Self {
            records,
            traces: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    /// The offset to commit: one past the last record of the batch.
    pub next_offset: i64,
    /// Events applied to every metric they were routed to.
    pub applied: usize,
    /// Records that could not be decoded or failed validation: dead letters.
    pub invalid: usize,
    /// Client retries of an event already counted (same eventId), and
    /// repeated retry records; skipped.
    pub duplicates: usize,
    /// Metric updates skipped because the state already included the event
    /// (a replay); an event feeds one to three metrics.
    pub replayed_updates: usize,
    /// Event hops handed to the retry topic (one per event and metric).
    pub retried: usize,
}

/// Hands over what the partition produced since the last flush, for the
/// commit transaction.
#[derive(Message)]
#[rtype(result = "PartitionFlush")]
pub struct FlushPartition;

/// A partition consumer's part of a commit.
#[derive(Debug, Default)]
pub struct PartitionFlush {
    pub seen: SeenChanges,
    pub dead_letters: Vec<DeadLetter>,
    /// The partition's dead-letter mark, when it moved.
    pub mark: Option<StateUpdate>,
    pub retries: Vec<RetryRecord>,
    /// Changed time buckets and watermark, and expired buckets.
    pub windows: WindowFlush,
}
