//! A deterministic workload and its exact expected counts.

use std::time::Duration;

use serde_json::{json, Value};

use super::TestApp;

pub const WAIT: Duration = Duration::from_secs(60);

/// The `i`-th event of a workload: 1,000 users, the four types in turn.
pub fn event(i: usize) -> Value {
    let kind = ["login", "view", "purchase", "logout"][i % 4];
    json!({"userId": format!("user-{}", i % 1000), "eventType": kind, "metadata": {"i": i}})
}

/// Sends events `from..to` as batches of `batch` to `app`.
pub async fn send(app: &TestApp, from: usize, to: usize, batch: usize) {
    let mut start = from;
    while start < to {
        let end = (start + batch).min(to);
        let events: Vec<Value> = (start..end).map(event).collect();
        let (status, body) = app.post("/events/batch-events", &json!(events)).await;
        assert_eq!(status, 201, "batch {start}..{end}: {body}");
        start = end;
    }
}

pub fn expected_counts(total: usize) -> Value {
    let of = |r: usize| (0..total).filter(|i| i % 4 == r).count();
    json!({"login": of(0), "view": of(1), "purchase": of(2), "logout": of(3)})
}

/// Waits until `app` shows exactly `total` events, then checks the breakdown
/// and that nothing more arrives.
pub async fn assert_counted_exactly(app: &TestApp, total: usize) -> Value {
    // The read model applies a transaction's records one by one, and `lag`
    // is sampled: wait for the whole expected state (or more, which fails
    // below), not for one figure of it.
    let analytics = app
        .wait_for("/events/analytics", WAIT, |b| {
            let total_reached = b["totalEvents"].as_u64() >= Some(total as u64);
            let users_reached = b["uniqueUsers"].as_u64() >= Some(total.min(1000) as u64);
            total_reached && users_reached && b["lag"] == json!(0)
        })
        .await;
    assert_eq!(analytics["totalEvents"], json!(total), "{analytics}");
    assert_eq!(analytics["eventCounts"], expected_counts(total));
    assert_eq!(analytics["uniqueUsers"], json!(total.min(1000)));
    actix_web::rt::time::sleep(Duration::from_millis(700)).await;
    let (_, again) = app.get("/events/analytics").await;
    assert_eq!(
        again["totalEvents"],
        json!(total),
        "counted more later: {again}"
    );
    analytics
}
