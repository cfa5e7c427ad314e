//! A circuit breaker: one per downstream hop (an aggregator shard of a
//! metric). Closed, it lets everything through and counts failures in a row;
//! at the threshold it opens. Open, it lets nothing through, so callers send
//! the work to the retry topic at once instead of waiting on a hop that is
//! down. After `open_for` it is half open: one trial call goes through; its
//! success closes the breaker, its failure opens it again.
//!
//! The clock is injected, so the state machine is tested with paused time.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

/// Where the breaker reads the time.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// Tokio's clock: the real one, or the paused one of a test runtime.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// As a gauge: 0 closed, 1 open, 2 half open.
    pub fn as_u8(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    /// Failures in a row that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before a trial.
    pub open_for: Duration,
}

impl From<&arus_config::BreakerSettings> for BreakerConfig {
    fn from(s: &arus_config::BreakerSettings) -> Self {
        Self {
            failure_threshold: s.failure_threshold,
            open_for: Duration::from_millis(s.open_ms),
        }
    }
}

enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { trial_in_flight: bool },
}

/// Whether a call may go through, and if so, whether it is the half-open trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    Call,
    Trial,
    Refused,
}

pub struct Breaker<C: Clock = TokioClock> {
    name: String,
    config: BreakerConfig,
    clock: C,
    inner: Inner,
    /// The current state for readers outside (metrics), as [`BreakerState::as_u8`].
    gauge: Arc<AtomicU8>,
    opened: u64,
}

impl<C: Clock> Breaker<C> {
    pub fn new(name: impl Into<String>, config: BreakerConfig, clock: C) -> Self {
        Self {
            name: name.into(),
            config,
            clock,
            inner: Inner::Closed { failures: 0 },
            gauge: Arc::new(AtomicU8::new(BreakerState::Closed.as_u8())),
            opened: 0,
        }
    }

    pub fn state(&self) -> BreakerState {
        match self.inner {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// A shared view of the state, for metrics.
    pub fn gauge(&self) -> Arc<AtomicU8> {
        Arc::clone(&self.gauge)
    }

    /// How many times the breaker has opened.
    pub fn times_opened(&self) -> u64 {
        self.opened
    }

    /// Asks to make a call. A refused call is not made, and is reported
    /// neither as a success nor as a failure.
    pub fn permit(&mut self) -> Permit {
        match self.inner {
            Inner::Closed { .. } => Permit::Call,
            Inner::Open { until } => {
                if self.clock.now() >= until {
                    self.set(Inner::HalfOpen {
                        trial_in_flight: true,
                    });
                    Permit::Trial
                } else {
                    Permit::Refused
                }
            }
            Inner::HalfOpen { trial_in_flight } => {
                if trial_in_flight {
                    Permit::Refused
                } else {
                    self.inner = Inner::HalfOpen {
                        trial_in_flight: true,
                    };
                    Permit::Trial
                }
            }
        }
    }

    /// The permitted call succeeded.
    pub fn success(&mut self) {
        match self.inner {
            Inner::Closed { .. } => self.inner = Inner::Closed { failures: 0 },
            // A call permitted while closed may finish after the breaker
            // opened; only the trial decides a half-open breaker.
            Inner::HalfOpen { .. } => self.set(Inner::Closed { failures: 0 }),
            Inner::Open { .. } => {}
        }
    }

    /// The permitted call failed.
    pub fn failure(&mut self) {
        match self.inner {
            Inner::Closed { failures } => {
                let failures = failures + 1;
                if failures >= self.config.failure_threshold {
                    self.open();
                } else {
                    self.inner = Inner::Closed { failures };
                }
            }
            Inner::HalfOpen { .. } => self.open(),
            Inner::Open { .. } => {}
        }
    }

    fn open(&mut self) {
        self.opened += 1;
        let until = self.clock.now() + self.config.open_for;
        self.set(Inner::Open { until });
    }

    fn set(&mut self, inner: Inner) {
        let before = self.state();
        self.inner = inner;
        let after = self.state();
        if before != after {
            self.gauge.store(after.as_u8(), Ordering::Relaxed);
            match after {
                BreakerState::Open => {
                    warn!(hop = %self.name, from = before.as_str(), "circuit breaker opened")
                }
                _ => {
                    info!(hop = %self.name, from = before.as_str(), to = after.as_str(), "circuit breaker changed state")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(
            "users/0",
            BreakerConfig {
                failure_threshold: 3,
                open_for: Duration::from_secs(2),
            },
            TokioClock,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_the_threshold_and_closes_after_a_good_trial() {
        let mut b = breaker();
        let gauge = b.gauge();
        // Failures in a row below the threshold, broken by a success, do not open it.
        for _ in 0..2 {
            assert_eq!(b.permit(), Permit::Call);
            b.failure();
        }
        assert_eq!(b.permit(), Permit::Call);
        b.success();
        for _ in 0..2 {
            assert_eq!(b.permit(), Permit::Call);
            b.failure();
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.permit(), Permit::Call);
        b.failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(gauge.load(Ordering::Relaxed), 1);
        assert_eq!(b.times_opened(), 1);

        // Open: everything refused until open_for has passed.
        assert_eq!(b.permit(), Permit::Refused);
        tokio::time::advance(Duration::from_millis(1_999)).await;
        assert_eq!(b.permit(), Permit::Refused);
        tokio::time::advance(Duration::from_millis(1)).await;

        // Half open: one trial at a time.
        assert_eq!(b.permit(), Permit::Trial);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(gauge.load(Ordering::Relaxed), 2);
        assert_eq!(b.permit(), Permit::Refused);
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(gauge.load(Ordering::Relaxed), 0);
        assert_eq!(b.permit(), Permit::Call);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_trial_opens_it_again_for_the_whole_period() {
        let mut b = breaker();
        for _ in 0..3 {
            assert_eq!(b.permit(), Permit::Call);
            b.failure();
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(b.permit(), Permit::Trial);
        b.failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.times_opened(), 2);
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(b.permit(), Permit::Refused);
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(b.permit(), Permit::Trial);
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn late_answers_of_calls_made_while_closed_do_not_decide_an_open_breaker() {
        let mut b = breaker();
        // Four calls go out while closed; three fail and open it.
        let permits: Vec<Permit> = (0..4).map(|_| b.permit()).collect();
        assert_eq!(permits, vec![Permit::Call; 4]);
        b.failure();
        b.failure();
        b.failure();
        assert_eq!(b.state(), BreakerState::Open);
        // The fourth succeeds late: still open.
        b.success();
        assert_eq!(b.state(), BreakerState::Open);
        b.failure();
        assert_eq!(b.times_opened(), 1);
    }
}
