//! `arus serve --demo`: realistic traffic into the instance itself, through
//! its own HTTP API, so a first run's dashboard shows life.
//!
//! Visitors come back (a few are regulars), arrive from a referrer (search,
//! social, news, or none), read pages of a skewed popularity (a Zipf law:
//! the home page far ahead of the long tail), a few seconds apart, some
//! log in and buy; about a third leave after one page (bounces). Events are
//! sent at `--demo-rate` a second on average, as page views one by one and
//! user events in small batches, with the ingest key when keys are set.

use std::time::Duration;

use serde_json::{json, Value};
use tracing::{info, warn};

const PAGES: [&str; 24] = [
    "/",
    "/pricing",
    "/blog",
    "/docs",
    "/docs/getting-started",
    "/features",
    "/blog/kafka-exactly-once",
    "/signup",
    "/docs/api",
    "/about",
    "/blog/event-time-windows",
    "/customers",
    "/docs/kubernetes",
    "/careers",
    "/blog/sketches",
    "/contact",
    "/changelog",
    "/docs/configuration",
    "/security",
    "/blog/visits-and-bounces",
    "/legal/privacy",
    "/integrations",
    "/status",
    "/legal/terms",
];

const REFERRERS: [&str; 6] = [
    "",
    "https://www.google.com/",
    "https://news.ycombinator.com/",
    "https://www.reddit.com/r/rust/",
    "https://twitter.com/",
    "",
];

/// A small, seedable generator (xorshift64*): the demo needs variety, not
/// quality, and no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    /// An index in `0..n`, index `i` about `1 / (i + 1)` times as likely
    /// as the first (Zipf with exponent 1).
    fn zipf(&mut self, n: usize) -> usize {
        let harmonic: f64 = (1..=n).map(|i| 1.0 / i as f64).sum();
        let mut x = (self.next() % 1_000_000) as f64 / 1_000_000.0 * harmonic;
        for i in 0..n {
            x -= 1.0 / (i + 1) as f64;
            if x <= 0.0 {
                return i;
            }
        }
        n - 1
    }
}

/// A visit in progress: who, which page next, how many left.
struct Visit {
    user: String,
    pages_left: u32,
    referrer: &'static str,
    first: bool,
    logged_in: bool,
}

/// What the demo sends next.
enum Next {
    View(Value),
    Events(Vec<Value>),
}

struct Traffic {
    rng: Rng,
    visits: Vec<Visit>,
    /// A user who logs out next, at the end of their visit.
    leaving: Option<String>,
}

impl Traffic {
    fn new(seed: u64) -> Self {
        Self {
            rng: Rng(seed | 1),
            visits: Vec::new(),
            leaving: None,
        }
    }

    fn next(&mut self) -> Next {
        if let Some(user) = self.leaving.take() {
            return Next::Events(vec![json!({"userId": user, "eventType": "logout"})]);
        }
        // Keep a few dozen visits going at once; start one now and then.
        if self.visits.len() < 8 || self.rng.chance(25) {
            let regular = self.rng.chance(30);
            let user = if regular {
                format!("regular-{}", self.rng.zipf(40))
            } else {
                format!("visitor-{:06}", self.rng.below(1_000_000))
            };
            // A third bounce: one page and gone.
            let pages_left = if self.rng.chance(35) {
                1
            } else {
                2 + self.rng.below(7) as u32
            };
            let referrer = REFERRERS[self.rng.below(REFERRERS.len())];
            self.visits.push(Visit {
                user,
                pages_left,
                referrer,
                first: true,
                logged_in: false,
            });
        }
        let i = self.rng.below(self.visits.len());
        let visit = &mut self.visits[i];
        let page = PAGES[self.rng.zipf(PAGES.len())];
        let next = if !visit.first && visit.pages_left > 1 && self.rng.chance(20) {
            // A user event inside the visit: log in once, then views and purchases.
            let kind = if !visit.logged_in {
                visit.logged_in = true;
                "login"
            } else if self.rng.chance(30) {
                "purchase"
            } else {
                "view"
            };
            let mut event =
                json!({"userId": visit.user, "eventType": kind, "metadata": {"page": page}});
            if kind == "purchase" {
                event["metadata"]["amount"] = json!(5 + self.rng.below(200));
            }
            Next::Events(vec![event])
        } else {
            let mut view =
                json!({"userId": visit.user, "url": page, "duration": 3 + self.rng.below(120)});
            if visit.first && !visit.referrer.is_empty() {
                view["referrer"] = json!(visit.referrer);
            }
            visit.first = false;
            visit.pages_left = visit.pages_left.saturating_sub(1);
            Next::View(view)
        };
        if self.visits[i].pages_left == 0 {
            let done = self.visits.swap_remove(i);
            if done.logged_in && self.rng.chance(50) {
                self.leaving = Some(done.user);
            }
        }
        next
    }
}

/// Sends demo traffic to `base` (this instance's address) at `rate` events
/// a second on average, until the process ends.
pub async fn run(base: String, rate: f64, ingest_key: Option<String>) {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let seed = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(7) as u64;
    let mut traffic = Traffic::new(seed);
    let pause = Duration::from_secs_f64(1.0 / rate.max(0.1));
    info!(%base, rate, "demo traffic: sending events through the HTTP API; open the dashboard at /");
    let mut failures = 0u32;
    loop {
        actix_web::rt::time::sleep(pause).await;
        let (path, body) = match traffic.next() {
            Next::View(view) => ("/events/page-view", view),
            Next::Events(events) => ("/events/batch-events", json!(events)),
        };
        let mut request = client.post(format!("{base}{path}"));
        if let Some(key) = &ingest_key {
            request = request.insert_header(("x-api-key", key.as_str()));
        }
        match request.send_json(&body).await {
            Ok(response) if response.status().is_success() => failures = 0,
            Ok(response) if response.status().as_u16() == 429 => {}
            outcome => {
                failures += 1;
                // Once, then every 100th: the instance may be starting or
                // stopping; the demo never stops it.
                if failures == 1 || failures.is_multiple_of(100) {
                    let why = match outcome {
                        Ok(r) => format!("answered {}", r.status()),
                        Err(e) => e.to_string(),
                    };
                    warn!(%why, failures, "demo traffic: an event was not accepted");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn the_traffic_is_skewed_has_bounces_and_user_events() {
        let mut traffic = Traffic::new(42);
        let mut pages: HashMap<String, u32> = HashMap::new();
        let mut views_by_user: HashMap<String, u32> = HashMap::new();
        let (mut views, mut events, mut referred) = (0u32, 0u32, 0u32);
        for _ in 0..20_000 {
            match traffic.next() {
                Next::View(v) => {
                    views += 1;
                    *pages
                        .entry(v["url"].as_str().unwrap_or_default().into())
                        .or_default() += 1;
                    *views_by_user
                        .entry(v["userId"].as_str().unwrap_or_default().into())
                        .or_default() += 1;
                    referred += u32::from(v.get("referrer").is_some());
                }
                Next::Events(list) => events += list.len() as u32,
            }
        }
        assert!(
            views > 10_000 && events > 1_000,
            "{views} views, {events} events"
        );
        // The home page is the most read, far ahead of the last page.
        let home = pages["/"];
        assert!(pages.values().all(|n| *n <= home));
        assert!(home > 10 * pages["/legal/terms"], "{pages:?}");
        // Some visitors read one page only; regulars read many.
        assert!(views_by_user.values().filter(|n| **n == 1).count() > 1_000);
        assert!(views_by_user.values().any(|n| *n > 100));
        assert!(referred > 1_000);
    }
}
