//! How far an event's own time may be from the time it was written.
//!
//! An event's time is its `timestamp`; when it was written is its record's
//! timestamp (arus's ingest sets it to the time it checked the event, so
//! the check at consume is the same check). An event too far ahead would
//! keep its user active for ever (and, with windows, close every window
//! early); one too far behind would open a session decades long. Both are
//! refused at ingest and dead-lettered at consume, never counted.

use arus_config::WindowSettings;

/// The bounds, in milliseconds either side of the time written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBounds {
    pub max_future_ms: i64,
    pub max_past_ms: i64,
}

impl From<&WindowSettings> for TimeBounds {
    fn from(w: &WindowSettings) -> Self {
        Self {
            max_future_ms: i64::try_from(w.max_future_ms).unwrap_or(i64::MAX),
            max_past_ms: i64::try_from(w.max_past_ms).unwrap_or(i64::MAX),
        }
    }
}

/// Why an event's time is out of bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EventTimeError {
    #[error("timestamp is {ahead_ms} ms ahead of the time it was written; at most {max_ms} ms are accepted (windows.max_future_ms)")]
    Future { ahead_ms: i64, max_ms: i64 },
    #[error("timestamp is {behind_ms} ms behind the time it was written; at most {max_ms} ms are accepted (windows.max_past_ms)")]
    TooOld { behind_ms: i64, max_ms: i64 },
}

impl EventTimeError {
    /// The dead letter's `x-error-class`.
    pub fn label(&self) -> &'static str {
        match self {
            EventTimeError::Future { .. } => "future",
            EventTimeError::TooOld { .. } => "too_old",
        }
    }
}

impl TimeBounds {
    /// Whether an event at `event_ms`, written at `written_ms`, is within
    /// the bounds (both ends included).
    pub fn check(&self, event_ms: i64, written_ms: i64) -> Result<(), EventTimeError> {
        let ahead = event_ms.saturating_sub(written_ms);
        if ahead > self.max_future_ms {
            return Err(EventTimeError::Future {
                ahead_ms: ahead,
                max_ms: self.max_future_ms,
            });
        }
        let behind = written_ms.saturating_sub(event_ms);
        if behind > self.max_past_ms {
            return Err(EventTimeError::TooOld {
                behind_ms: behind,
                max_ms: self.max_past_ms,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: TimeBounds = TimeBounds {
        max_future_ms: 300_000,
        max_past_ms: 604_800_000,
    };

    #[test]
    fn the_bounds_are_inclusive() {
        let written = 1_764_000_000_000;
        assert_eq!(BOUNDS.check(written, written), Ok(()));
        assert_eq!(BOUNDS.check(written + 300_000, written), Ok(()));
        assert_eq!(BOUNDS.check(written - 604_800_000, written), Ok(()));
        assert_eq!(
            BOUNDS.check(written + 300_001, written),
            Err(EventTimeError::Future {
                ahead_ms: 300_001,
                max_ms: 300_000
            })
        );
        assert_eq!(
            BOUNDS.check(written - 604_800_001, written),
            Err(EventTimeError::TooOld {
                behind_ms: 604_800_001,
                max_ms: 604_800_000
            })
        );
    }

    #[test]
    fn the_extremes_of_the_calendar_do_not_overflow() {
        let written = 1_764_000_000_000;
        // 0001-01-01 and 9999-12-31, as the probe sent them.
        let year_1 = -62_135_596_800_000;
        let year_9999 = 253_402_300_799_000;
        assert_eq!(
            BOUNDS.check(year_1, written).map_err(|e| e.label()),
            Err("too_old")
        );
        assert_eq!(
            BOUNDS.check(year_9999, written).map_err(|e| e.label()),
            Err("future")
        );
        assert!(BOUNDS.check(i64::MIN, i64::MAX).is_err());
        assert!(BOUNDS.check(i64::MAX, i64::MIN).is_err());
    }
}
