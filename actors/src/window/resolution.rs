//! The sizes of event-time buckets: a minute, an hour and a day, on UTC
//! boundaries.

use serde::{Deserialize, Serialize};

/// A bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    Minute,
    Hour,
    Day,
}

impl Resolution {
    /// Finest first.
    pub const ALL: [Resolution; 3] = [Resolution::Minute, Resolution::Hour, Resolution::Day];

    /// Its length in milliseconds.
    pub const fn ms(self) -> i64 {
        match self {
            Resolution::Minute => 60_000,
            Resolution::Hour => 3_600_000,
            Resolution::Day => 86_400_000,
        }
    }

    /// The start of the bucket holding `t` (ms since the epoch, UTC).
    pub const fn start_of(self, t: i64) -> i64 {
        t.div_euclid(self.ms()) * self.ms()
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Resolution::Minute => "minute",
            Resolution::Hour => "hour",
            Resolution::Day => "day",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// Its place in [`Self::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_start_on_utc_boundaries_also_before_1970() {
        // 2026-12-01T15:04:23.5Z
        let t = 1_796_137_463_500;
        assert_eq!(Resolution::Minute.start_of(t), 1_796_137_440_000);
        assert_eq!(Resolution::Hour.start_of(t), 1_796_137_200_000);
        assert_eq!(Resolution::Day.start_of(t), 1_796_083_200_000);
        assert_eq!(Resolution::Minute.start_of(-1), -60_000);
        for r in Resolution::ALL {
            assert_eq!(Resolution::parse(r.as_str()), Some(r));
            assert_eq!(Resolution::ALL[r.index()], r);
        }
    }
}
