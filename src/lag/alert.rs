//! Which lag notification a webhook receiver still has to get. What counts
//! is what was delivered: a firing that could not be delivered before the
//! lag fell back is never sent (and so needs no resolve), and a resolve is
//! sent only for a firing the receiver got.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

#[derive(Debug)]
pub struct Alerting {
    delivered: AlertStatus,
}

impl Default for Alerting {
    fn default() -> Self {
        Self {
            delivered: AlertStatus::Resolved,
        }
    }
}

impl Alerting {
    /// The notification to send now that some partition is (or none is)
    /// over the threshold; `None` when the receiver already knows.
    pub fn due(&self, over: bool) -> Option<AlertStatus> {
        let wanted = if over {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        };
        (wanted != self.delivered).then_some(wanted)
    }

    pub fn delivered(&mut self, status: AlertStatus) {
        self.delivered = status;
    }

    /// Whether the receiver was told the lag is high and not yet told it
    /// is resolved.
    pub fn firing(&self) -> bool {
        self.delivered == AlertStatus::Firing
    }

    /// This instance stopped being the one that alerts: the one that took
    /// over starts from scratch, and so does this one if it takes over again.
    pub fn forget(&mut self) {
        self.delivered = AlertStatus::Resolved;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_firing_then_one_resolve() {
        let mut a = Alerting::default();
        assert_eq!(a.due(false), None);
        assert_eq!(a.due(true), Some(AlertStatus::Firing));
        a.delivered(AlertStatus::Firing);
        assert!(a.firing());
        // Still over: nothing more to send.
        assert_eq!(a.due(true), None);
        assert_eq!(a.due(false), Some(AlertStatus::Resolved));
        a.delivered(AlertStatus::Resolved);
        assert_eq!(a.due(false), None);
        assert!(!a.firing());
    }

    #[test]
    fn an_undelivered_firing_needs_no_resolve() {
        let a = Alerting::default();
        // The firing failed to go out; then the lag fell back.
        assert_eq!(a.due(true), Some(AlertStatus::Firing));
        assert_eq!(a.due(false), None);
    }

    #[test]
    fn a_firing_keeps_being_due_until_delivered() {
        let mut a = Alerting::default();
        assert_eq!(a.due(true), Some(AlertStatus::Firing));
        assert_eq!(a.due(true), Some(AlertStatus::Firing));
        a.delivered(AlertStatus::Firing);
        a.forget();
        assert_eq!(a.due(false), None);
    }
}
