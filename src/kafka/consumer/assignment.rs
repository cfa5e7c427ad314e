//! The partitions this instance holds, as the HTTP handlers and the lag
//! monitor see them (the driver sets them once it has its partitions).

use std::sync::{Arc, Mutex};

use arus_actors::model::source::{InputTopic, SourcePartition};

use super::exactly_once::{Partitions, Slot};

/// The partitions this instance holds right now.
#[derive(Clone, Default)]
pub struct Assignment(pub(super) Arc<Mutex<Option<Arc<Partitions>>>>);

impl Assignment {
    /// As `topic/partition`, sorted.
    pub fn partitions(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|p| p.assigned())
            .unwrap_or_default()
    }

    /// Whether this instance holds `partition` of `topic` with its state
    /// restored (its records are being counted).
    pub fn ready(&self, topic: InputTopic, partition: i32) -> bool {
        self.slot_is(topic, partition, |slot| slot.actor.is_some())
    }

    /// Whether this instance holds `partition` of `topic` now.
    pub fn holds(&self, topic: InputTopic, partition: i32) -> bool {
        self.slot_is(topic, partition, |_| true)
    }

    fn slot_is(&self, topic: InputTopic, partition: i32, test: impl Fn(&Slot) -> bool) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|p| {
                p.slots()
                    .get(&SourcePartition::new(topic, partition))
                    .is_some_and(&test)
            })
    }
}
