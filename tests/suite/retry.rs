//! Invariant 3, transient failures: a shard that fails for 5 s opens its
//! breaker, its events pass through the retry topic, and the final counts are
//! exact.

use crate::helpers;

use std::time::Duration;

use helpers::spawn_app;
use helpers::workload::{assert_counted_exactly, send, WAIT};
use rdkafka::message::{Headers, Message};
use serde_json::json;

const ADMIN: &str = "admin-token-0123456789";
const TOTAL: usize = 10_000;

/// The value of an unlabelled or labelled sample in a Prometheus scrape.
fn sample(scrape: &str, name: &str) -> u64 {
    helpers::scrape_samples(scrape)
        .get(&helpers::canonical(name))
        .map(|v| *v as u64)
        .unwrap_or_else(|| panic!("no sample {name} in:\n{scrape}"))
}

#[actix_web::test]
async fn a_failing_shard_opens_its_breaker_and_its_events_pass_through_the_retry_topic() {
    let app = spawn_app(&[
        ("ARUS__SECURITY__ADMIN_TOKEN", ADMIN),
        ("ARUS__CHAOS__ENABLED", "true"),
        ("ARUS__AGGREGATOR__SHARDS", "2"),
        ("ARUS__RETRY__BACKOFF_BASE_MS", "300"),
        ("ARUS__RETRY__BACKOFF_MAX_MS", "2000"),
        ("ARUS__RETRY__MAX_ATTEMPTS", "20"),
        ("ARUS__BREAKER__FAILURE_THRESHOLD", "3"),
        ("ARUS__BREAKER__OPEN_MS", "1000"),
    ])
    .await;
    send(&app, 0, 2_000, 500).await;

    // Fault injection is admin-only and checked.
    let outage = json!({"metric": "users", "shard": 0, "durationMs": 5000});
    let (status, _) = app.post("/v1/chaos/shard-outage", &outage).await;
    assert_eq!(status, 401, "no admin token");
    let (status, body) = app
        .post_with(
            "/v1/chaos/shard-outage",
            &json!({"metric": "users", "shard": 9, "durationMs": 5000}),
            ("x-admin-token", ADMIN),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (400, &json!("shard")),
        "{body}"
    );
    let (status, body) = app
        .post_with("/v1/chaos/shard-outage", &outage, ("x-admin-token", ADMIN))
        .await;
    assert_eq!(status, 202, "{body}");

    // Ingest goes on through the outage, 8,000 events over about 5 s.
    for step in 0..8 {
        let from = 2_000 + step * 1_000;
        send(&app, from, from + 1_000, 250).await;
        actix_web::rt::time::sleep(Duration::from_millis(600)).await;
    }

    assert_counted_exactly(&app, TOTAL).await;
    // The failed metric itself converges to exact for every user: 10
    // events each, once the retries are through.
    for user in (0..1_000).step_by(37) {
        let body = app
            .wait_for(&format!("/events/analytics/users/user-{user}"), WAIT, |b| {
                b["events"].as_u64() >= Some(10)
            })
            .await;
        assert_eq!(body["events"], json!(10), "user-{user}: {body}");
    }

    let (status, scrape) = app.get_text("/metrics").await;
    assert_eq!(status, 200);
    let scheduled = sample(&scrape, "arus_retries_scheduled_total");
    let applied = sample(&scrape, "arus_retries_applied_total");
    assert!(scheduled > 0, "nothing went to the retry topic:\n{scrape}");
    assert!(
        applied > 0 && applied <= scheduled,
        "{applied} of {scheduled}"
    );
    assert_eq!(sample(&scrape, "arus_retries_exhausted_total"), 0);
    assert_eq!(sample(&scrape, "arus_dead_letters_total"), 0);
    assert_eq!(sample(&scrape, "arus_rollbacks_total"), 0);
    assert!(
        sample(
            &scrape,
            r#"arus_breaker_opened_total{metric="users",shard="0"}"#
        ) >= 1,
        "{scrape}"
    );
    assert_eq!(
        sample(
            &scrape,
            r#"arus_breaker_opened_total{metric="users",shard="1"}"#
        ),
        0
    );
    assert_eq!(
        sample(&scrape, r#"arus_breaker_state{metric="users",shard="0"}"#),
        0,
        "closed again"
    );
    // Every retry scheduled is one record in the retry topic, written in
    // the transaction with the offsets that moved past it: no more, no less;
    // each in the retry partition numbered as its source partition.
    let retries = app.read_all(&app.topic("retry-events"), 3);
    assert_eq!(retries.len() as u64, scheduled);
    let source_topic = app.topic("user-events");
    for record in &retries {
        let header = |name: &str| {
            record
                .headers()
                .and_then(|hs| hs.iter().find(|h| h.key == name))
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(header("x-retry-metric").as_deref(), Some("users"));
        assert_eq!(
            header("x-source-topic").as_deref(),
            Some(source_topic.as_str())
        );
        assert_eq!(header("x-input").as_deref(), Some("user-events"));
        assert_eq!(header("x-error-class").as_deref(), Some("transient"));
        assert_eq!(header("schema-version").as_deref(), Some("1"));
        assert_eq!(
            header("x-source-partition"),
            Some(record.partition().to_string())
        );
        let attempt: u32 = header("x-attempt")
            .and_then(|a| a.parse().ok())
            .unwrap_or(0);
        assert!((2..=20).contains(&attempt), "attempt {attempt}");
    }
    app.stop().await;
}

/// Retries that run out while a shard is down end as dead letters naming
/// the metric they lack; replayed once the shard is back, they make the
/// counts exact, and replaying them again changes nothing.
#[actix_web::test]
async fn exhausted_retries_are_dead_letters_whose_replay_counts_once() {
    const EVENTS: usize = 300;
    let app = spawn_app(&[
        ("ARUS__SECURITY__ADMIN_TOKEN", ADMIN),
        ("ARUS__CHAOS__ENABLED", "true"),
        ("ARUS__AGGREGATOR__SHARDS", "1"),
        ("ARUS__RETRY__BACKOFF_BASE_MS", "100"),
        ("ARUS__RETRY__BACKOFF_MAX_MS", "200"),
        ("ARUS__RETRY__MAX_ATTEMPTS", "2"),
        // The breaker is the other test's subject: here it never opens, so
        // every retry is tried (and fails) while the shard is down.
        ("ARUS__BREAKER__FAILURE_THRESHOLD", "100000"),
    ])
    .await;
    let admin = ("x-admin-token", ADMIN);
    let started = std::time::Instant::now();
    let (status, body) = app
        .post_with(
            "/v1/chaos/shard-outage",
            &json!({"metric": "users", "shard": 0, "durationMs": 4000}),
            admin,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    // 300 users, one event each: every users hop fails twice, then is a
    // dead letter; the other metrics count them at once.
    let events: Vec<serde_json::Value> = (0..EVENTS)
        .map(|i| json!({"userId": format!("user-{i}"), "eventType": "purchase"}))
        .collect();
    let (status, body) = app.post("/events/batch-events", &json!(events)).await;
    assert_eq!(status, 201, "{body}");
    let stats = app
        .wait_for("/events/stats", WAIT, |s| {
            s["deadLetters"].as_u64() >= Some(EVENTS as u64) && s["totalEvents"] == json!(EVENTS)
        })
        .await;
    assert_eq!(stats["deadLetters"], json!(EVENTS), "{stats}");
    assert_eq!(stats["uniqueUsers"], json!(0), "{stats}");

    let (status, listing) = app.get_with("/v1/dead-letters?limit=5", admin).await;
    assert_eq!(status, 200, "{listing}");
    for letter in listing["deadLetters"].as_array().expect("letters") {
        assert_eq!(letter["error"]["retry-metric"], json!("users"), "{letter}");
        assert_eq!(letter["error"]["error-class"], json!("transient"));
        assert_eq!(letter["error"]["attempt"], json!("2"));
    }
    let letters: Vec<serde_json::Value> = app
        .read_all(&app.topic("error-events"), 3)
        .iter()
        .map(|m| json!({"partition": m.partition(), "offset": m.offset()}))
        .collect();
    assert_eq!(letters.len(), EVENTS);
    // Once the shard is back, replay them all, 100 per request.
    let back = Duration::from_millis(4_300).saturating_sub(started.elapsed());
    actix_web::rt::time::sleep(back).await;
    let replay_all = || async {
        let mut replayed = 0;
        for chunk in letters.chunks(100) {
            let (status, answer) = app
                .post_with("/v1/dead-letters/replay", &json!({"letters": chunk}), admin)
                .await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["failed"], json!([]), "{answer}");
            replayed += answer["replayed"].as_array().map_or(0, Vec::len);
        }
        replayed
    };
    assert_eq!(replay_all().await, EVENTS);
    let analytics = app
        .wait_for("/events/analytics", WAIT, |a| {
            a["uniqueUsers"].as_u64() >= Some(EVENTS as u64)
        })
        .await;
    assert_eq!(analytics["uniqueUsers"], json!(EVENTS), "{analytics}");
    assert_eq!(analytics["totalEvents"], json!(EVENTS));

    // Again: every copy is dropped as a repeat of a retry already applied.
    assert_eq!(replay_all().await, EVENTS);
    let stats = app
        .wait_for("/events/stats", WAIT, |s| {
            s["consumer"]["duplicatesDropped"].as_u64() >= Some(EVENTS as u64)
        })
        .await;
    assert_eq!(
        stats["consumer"]["duplicatesDropped"],
        json!(EVENTS),
        "{stats}"
    );
    let (_, analytics) = app.get("/events/analytics").await;
    assert_eq!(analytics["uniqueUsers"], json!(EVENTS), "{analytics}");
    let (_, user) = app.get("/events/analytics/users/user-7").await;
    assert_eq!(user["events"], json!(1), "{user}");
    app.stop().await;
}
