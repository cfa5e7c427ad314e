//! Liveness and readiness state.

use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub struct Health {
    topics_ready: AtomicBool,
    joined: AtomicBool,
    shutting_down: AtomicBool,
}

impl Health {
    pub fn set_topics_ready(&self, ready: bool) {
        self.topics_ready.store(ready, Ordering::SeqCst);
    }

    /// The consumer received its first assignment (possibly empty) from the group.
    pub fn set_joined(&self, joined: bool) {
        self.joined.store(joined, Ordering::SeqCst);
    }

    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn topics_ready(&self) -> bool {
        self.topics_ready.load(Ordering::SeqCst)
    }

    pub fn joined(&self) -> bool {
        self.joined.load(Ordering::SeqCst)
    }

    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Ready for traffic: topics exist, the group was joined, not stopping.
    pub fn ready(&self) -> bool {
        self.topics_ready() && self.joined() && !self.shutting_down()
    }
}
