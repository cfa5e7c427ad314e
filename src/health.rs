//! Liveness and readiness state.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub struct Health {
    topics_ready: AtomicBool,
    joined: AtomicBool,
    restoring: AtomicUsize,
    read_model_ready: AtomicBool,
    shutting_down: AtomicBool,
    /// Changelog records the read model met and could not decode: its
    /// answers are missing whatever they held.
    unreadable_changelog: AtomicU64,
}

impl Health {
    pub fn set_topics_ready(&self, ready: bool) {
        self.topics_ready.store(ready, Ordering::SeqCst);
    }

    /// The consumer received its first assignment (possibly empty) from the group.
    pub fn set_joined(&self, joined: bool) {
        self.joined.store(joined, Ordering::SeqCst);
    }

    /// A restore of assigned partitions from the changelog starts or ends.
    pub fn restore_started(&self) {
        self.restoring.fetch_add(1, Ordering::SeqCst);
    }

    pub fn restore_ended(&self) {
        self.restoring.fetch_sub(1, Ordering::SeqCst);
    }

    /// The read model has read the changelog up to its end once.
    pub fn set_read_model_ready(&self, ready: bool) {
        self.read_model_ready.store(ready, Ordering::SeqCst);
    }

    /// The read model met a changelog record it cannot decode. Never a
    /// silent skip: the answers would lack what it held, so the instance
    /// stops being ready (an operator must look) and the count shows in
    /// `/metrics`.
    pub fn unreadable_changelog_record(&self) {
        self.unreadable_changelog.fetch_add(1, Ordering::SeqCst);
    }

    pub fn unreadable_changelog_records(&self) -> u64 {
        self.unreadable_changelog.load(Ordering::SeqCst)
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

    pub fn restoring(&self) -> bool {
        self.restoring.load(Ordering::SeqCst) > 0
    }

    pub fn read_model_ready(&self) -> bool {
        self.read_model_ready.load(Ordering::SeqCst)
    }

    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Ready for traffic: topics exist, the group was joined, assigned state
    /// is restored, the read model caught up once and met no record it
    /// cannot read, and not stopping.
    pub fn ready(&self) -> bool {
        self.topics_ready()
            && self.joined()
            && !self.restoring()
            && self.read_model_ready()
            && self.unreadable_changelog_records() == 0
            && !self.shutting_down()
    }
}
