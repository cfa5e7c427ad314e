//! Per-client ingest rate limit: a token bucket of events per client (the
//! API key presented when keys are configured, else the client address).
//! Over the limit: 429 with `Retry-After`, nothing written.

use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::error::ApiError;

struct Bucket {
    tokens: f64,
    last: Instant,
}

pub struct RateLimiter {
    /// Events per second; refill rate.
    rate: f64,
    /// Bucket size.
    burst: f64,
    buckets: DashMap<String, Bucket>,
}

/// Buckets kept before idle full ones are dropped.
const MAX_BUCKETS: usize = 10_000;

impl RateLimiter {
    /// `None` when the limit is off (`rate` 0). `burst` 0 means
    /// max(rate, `max_batch`).
    pub fn new(rate: u64, burst: u64, max_batch: usize) -> Option<Self> {
        if rate == 0 {
            return None;
        }
        let burst = if burst == 0 {
            rate.max(max_batch as u64)
        } else {
            burst
        };
        Some(Self {
            rate: rate as f64,
            burst: burst as f64,
            buckets: DashMap::new(),
        })
    }

    /// Takes `cost` events from `client`'s bucket, or says how long until
    /// there are enough.
    pub fn take(&self, client: &str, cost: usize, now: Instant) -> Result<(), Duration> {
        let cost = cost as f64;
        if self.buckets.len() > MAX_BUCKETS {
            let full = self.burst;
            let rate = self.rate;
            self.buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < full
            });
        }
        let mut bucket = self.buckets.entry(client.to_string()).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.last = now;
        if bucket.tokens >= cost {
            bucket.tokens -= cost;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((cost - bucket.tokens) / self.rate))
        }
    }

    /// [`RateLimiter::take`] as an API error.
    pub fn check(&self, client: &str, cost: usize) -> Result<(), ApiError> {
        self.take(client, cost, Instant::now()).map_err(|wait| {
            let retry_after_secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            ApiError::RateLimited {
                message: format!(
                    "rate limit of {} events per second exceeded; {cost} more fit in {retry_after_secs} s",
                    self.rate
                ),
                retry_after_secs,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refills_at_the_rate_up_to_the_burst() {
        let limiter = RateLimiter::new(100, 1_000, 1_000).expect("on");
        let t0 = Instant::now();
        assert_eq!(limiter.take("a", 1_000, t0), Ok(()));
        // Empty: 500 more need 5 s.
        assert_eq!(limiter.take("a", 500, t0), Err(Duration::from_secs(5)));
        // Another client has its own bucket.
        assert_eq!(limiter.take("b", 1_000, t0), Ok(()));
        let t1 = t0 + Duration::from_secs(3);
        assert_eq!(limiter.take("a", 300, t1), Ok(()));
        assert_eq!(limiter.take("a", 1, t1), Err(Duration::from_millis(10)));
        // Never above the burst, however long idle.
        let t2 = t1 + Duration::from_secs(3_600);
        assert_eq!(limiter.take("a", 1_000, t2), Ok(()));
        assert!(limiter.take("a", 1, t2).is_err());
        assert!(RateLimiter::new(0, 10, 10).is_none());
        let default_burst = RateLimiter::new(10, 0, 1_000).expect("on");
        assert_eq!(default_burst.take("c", 1_000, t0), Ok(()));
    }
}
