//! The kinds of state, as a type: the four metrics events are aggregated
//! into, and the two kinds of bookkeeping a partition keeps beside them.
//! Their names are the changelog key's first part, the retry header's
//! `x-retry-metric`, the `metric` label in `/metrics` and the chaos API's
//! `metric`, so they never change.

use std::fmt;

/// A metric events are aggregated into, one route of shards each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricKind {
    EventCounts,
    Users,
    TopPages,
    Sessions,
}

impl MetricKind {
    /// In routing order: a [`crate::MetricSet`] bit is an index here.
    pub const ALL: [MetricKind; 4] = [
        MetricKind::EventCounts,
        MetricKind::Users,
        MetricKind::TopPages,
        MetricKind::Sessions,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            MetricKind::EventCounts => "event-counts",
            MetricKind::Users => "users",
            MetricKind::TopPages => "top-pages",
            MetricKind::Sessions => "sessions",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// Its place in [`Self::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Every name, for an error message.
    pub fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a changelog entry is: a metric's, or a partition's bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    Metric(MetricKind),
    /// A bucket of the eventIds a partition has seen.
    SeenIds,
    /// A partition's dead-letter mark.
    DeadLetters,
    /// An event-time bucket of a partition.
    Windows,
    /// A partition's event-time watermark.
    Watermark,
    /// A user's open visits (only a restore reads them).
    Visit,
    /// A bucket of visits of a partition number.
    Visits,
    /// A partition number's progress in visits.
    VisitMark,
}

impl EntryKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            EntryKind::Metric(m) => m.as_str(),
            EntryKind::SeenIds => "seen",
            EntryKind::DeadLetters => "dead-letters",
            EntryKind::Windows => "windows",
            EntryKind::Watermark => "watermark",
            EntryKind::Visit => "visit",
            EntryKind::Visits => "visits",
            EntryKind::VisitMark => "visit-mark",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "seen" => Some(EntryKind::SeenIds),
            "dead-letters" => Some(EntryKind::DeadLetters),
            "windows" => Some(EntryKind::Windows),
            "watermark" => Some(EntryKind::Watermark),
            "visit" => Some(EntryKind::Visit),
            "visits" => Some(EntryKind::Visits),
            "visit-mark" => Some(EntryKind::VisitMark),
            _ => MetricKind::parse(name).map(EntryKind::Metric),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_ones_served_and_written_since_the_start() {
        assert_eq!(
            MetricKind::ALL.map(MetricKind::as_str),
            ["event-counts", "users", "top-pages", "sessions"]
        );
        for (i, m) in MetricKind::ALL.into_iter().enumerate() {
            assert_eq!(m.index(), i);
            assert_eq!(MetricKind::parse(m.as_str()), Some(m));
            assert_eq!(EntryKind::parse(m.as_str()), Some(EntryKind::Metric(m)));
        }
        assert_eq!(EntryKind::parse("seen"), Some(EntryKind::SeenIds));
        assert_eq!(
            EntryKind::parse("dead-letters"),
            Some(EntryKind::DeadLetters)
        );
        assert_eq!(EntryKind::parse("user"), None);
        assert_eq!(MetricKind::parse("seen"), None);
    }
}
