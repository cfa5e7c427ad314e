//! Consuming: the partition consumer actor (decode, validate, dedupe,
//! route, settle), the seen-eventId set, dead letters and the retry topic.

pub mod dead_letter;
mod decode;
pub mod dedupe;
mod hop;
mod messages;
pub mod partition_consumer;
pub mod retry;
