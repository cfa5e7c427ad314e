//! Property: whatever body a client sends to an ingest endpoint, the answer
//! is 201 (written), 400 or 413 (refused, with the JSON error shape), never
//! a 5xx and never a dropped connection. Bodies come from a seeded generator
//! (reproducible: the failing seed is printed), from pure noise to valid
//! events with one field broken.

use crate::helpers;

use helpers::spawn_app;
use serde_json::{json, Map, Value};

/// xorshift64*: small, seeded, good enough to spread test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const FIELDS: [&str; 12] = [
    "userId",
    "eventType",
    "timestamp",
    "metadata",
    "eventId",
    "url",
    "referrer",
    "duration",
    "sessionId",
    "events",
    "",
    "\u{0}",
];

fn string(rng: &mut Rng) -> String {
    let pool = [
        "login",
        "logout",
        "purchase",
        "view",
        "/home",
        "u1",
        "",
        " ",
        "2024-01-01T00:00:00Z",
        "not a date",
        "4b0c3d1e-8f4a-4e5b-9c6d-7e8f9a0b1c2d",
        "\u{1F600}",
        "\u{0}\u{1}",
        "\\\"",
    ];
    if rng.below(8) == 0 {
        // Long strings, up to 20 KB.
        "x".repeat(rng.below(20_000))
    } else {
        rng.pick(&pool).to_string()
    }
}

fn value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 3 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 0),
        2 => json!(rng.next() as i64),
        3 => json!((rng.next() as f64) / 1e9 - 9e9),
        4 => json!(string(rng)),
        5 => Value::Array((0..rng.below(5)).map(|_| value(rng, depth + 1)).collect()),
        _ => {
            let mut obj = Map::new();
            for _ in 0..rng.below(6) {
                obj.insert(rng.pick(&FIELDS).to_string(), value(rng, depth + 1));
            }
            Value::Object(obj)
        }
    }
}

/// A valid user event or page view with one field replaced by noise, or not.
fn near_valid(rng: &mut Rng) -> Value {
    let mut event = if rng.below(2) == 0 {
        json!({"userId": "u", "eventType": "view", "metadata": {"k": 1}})
    } else {
        json!({"userId": "u", "url": "/p", "duration": 3.5})
    };
    if rng.below(4) != 0 {
        let field = rng.pick(&FIELDS).to_string();
        event[field] = value(rng, 2);
    }
    event
}

fn body(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => {
            // Noise: random bytes as (lossy) text.
            let bytes: Vec<u8> = (0..rng.below(300)).map(|_| rng.next() as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        1 => value(rng, 0).to_string(),
        2 => near_valid(rng).to_string(),
        3 => json!((0..rng.below(4))
            .map(|_| near_valid(rng))
            .collect::<Vec<_>>())
        .to_string(),
        4 => json!({"events": (0..rng.below(3)).map(|_| near_valid(rng)).collect::<Vec<_>>()})
            .to_string(),
        _ => {
            // Valid JSON cut short.
            let text = near_valid(rng).to_string();
            let keep = rng.below(text.chars().count());
            text.chars().take(keep).collect()
        }
    }
}

#[actix_web::test]
async fn random_bodies_never_get_a_5xx() {
    let app = spawn_app(&[]).await;
    let paths = [
        "/events/user-event",
        "/events/page-view",
        "/events/batch-events",
    ];
    let mut seen = std::collections::BTreeMap::new();
    for seed in 1..=600u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let path = *rng.pick(&paths);
        let sent = body(&mut rng);
        let (status, answer) = app.post_raw(path, sent.clone()).await;
        let shown: String = sent.chars().take(200).collect();
        assert!(
            matches!(status, 201 | 400 | 413),
            "seed {seed}: {path} answered {status} {answer} to {shown:?}"
        );
        if status == 201 {
            assert_eq!(answer["success"], json!(true), "seed {seed}: {answer}");
        } else {
            assert!(
                answer["error"]["code"].is_string() && answer["error"]["message"].is_string(),
                "seed {seed}: error shape {answer} for {shown:?}"
            );
        }
        *seen.entry(status).or_insert(0) += 1;
    }
    // The generator reaches both sides of validation.
    assert!(seen.get(&201).copied().unwrap_or(0) > 20, "{seen:?}");
    assert!(seen.get(&400).copied().unwrap_or(0) > 200, "{seen:?}");
    app.stop().await;
}

/// A number as a client might send it: ordinary, at the bounds, far past
/// them, or not one a float holds.
fn number(rng: &mut Rng) -> String {
    let pool = [
        "0",
        "-0",
        "1",
        "30",
        "2.50",
        "1e9",
        "1000000000",
        "1000000000.5",
        "1e308",
        "-1",
        "1e-300",
        "123456789012345678901234567890",
        "18446744073709551616",
        "0.1",
    ];
    rng.pick(&pool).to_string()
}

/// Property: every event answered 201 is counted, whatever numbers and
/// sizes it carries (the page views with overflowing durations vanished:
/// the sum of a page's durations became infinite and its state unreadable).
/// Page views and user events with random durations, metadata numbers and
/// metadata sizes (up to past Kafka's record limit), singly and in batches;
/// afterwards the counts equal the 201s exactly.
#[actix_web::test]
async fn every_accepted_event_is_counted_whatever_its_numbers_and_size() {
    let app = spawn_app(&[]).await;
    let (mut users_accepted, mut views_accepted) = (0u64, 0u64);
    let mut statuses = std::collections::BTreeMap::new();
    for seed in 1..=240u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let size = match rng.below(10) {
            0 => 900_000 + rng.below(200_000),
            1 => rng.below(50_000),
            _ => rng.below(100),
        };
        let blob = "x".repeat(size);
        let n = number(&mut rng);
        let (path, body, events) = match rng.below(3) {
            0 => (
                "/events/page-view",
                format!(
                    r#"{{"userId":"p{}","url":"/n/{}","duration":{n}}}"#,
                    rng.below(20),
                    rng.below(5)
                ),
                (0, 1),
            ),
            1 => (
                "/events/user-event",
                format!(
                    r#"{{"userId":"u{}","eventType":"view","metadata":{{"n":{n},"b":"{blob}"}}}}"#,
                    rng.below(20)
                ),
                (1, 0),
            ),
            _ => {
                let k = 1 + rng.below(4);
                let items: Vec<String> = (0..k)
                    .map(|i| {
                        let b = if i == 0 { blob.as_str() } else { "" };
                        format!(
                            r#"{{"userId":"b{}","eventType":"login","metadata":{{"n":{},"b":"{b}"}}}}"#,
                            rng.below(20),
                            number(&mut rng)
                        )
                    })
                    .collect();
                (
                    "/events/batch-events",
                    format!("[{}]", items.join(",")),
                    (k as u64, 0),
                )
            }
        };
        let (status, answer) = app.post_raw(path, body).await;
        assert!(
            matches!(status, 201 | 400 | 413),
            "seed {seed}: {path} answered {status} {answer}"
        );
        if status == 201 {
            users_accepted += events.0;
            views_accepted += events.1;
        }
        *statuses.entry(status).or_insert(0) += 1;
    }
    // Each side of every check was reached.
    for status in [201, 400, 413] {
        assert!(
            statuses.get(&status).copied().unwrap_or(0) > 5,
            "{statuses:?}"
        );
    }
    let counted = app
        .wait_for("/events/analytics", helpers::workload::WAIT, |b| {
            b["totalEvents"].as_u64() == Some(users_accepted) && b["lag"] == serde_json::json!(0)
        })
        .await;
    let pages = app
        .wait_for("/v1/top-pages?limit=100", helpers::workload::WAIT, |b| {
            b["topPages"].as_array().is_some_and(|p| {
                p.iter().filter_map(|p| p["views"].as_u64()).sum::<u64>() == views_accepted
            })
        })
        .await;
    assert_eq!(counted["totalEvents"], json!(users_accepted));
    assert!(pages["topPages"].as_array().is_some_and(|p| !p.is_empty()));
    let (status, _) = app.get("/health/ready").await;
    assert_eq!(status, 200, "nothing in the changelog failed to read");
    app.stop().await;
}

/// Property: whatever request line and headers a client sends, the answer
/// is never a 5xx and never a hang, and `/metrics` grows by a bounded
/// number of series (no method, path or header becomes a label).
#[actix_web::test]
async fn random_request_lines_and_headers_never_get_a_5xx_nor_grow_metrics() {
    let app = spawn_app(&[]).await;
    let (_, before) = app.get_text("/metrics").await;
    let methods = [
        "GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "get", "BREW",
        "M-SEARCH", "QWERTYUI",
    ];
    let paths = [
        "/events/stats",
        "/events/user-event",
        "/events/batch-events",
        "/events/analytics/users/%00",
        "/health/ready",
        "/metrics",
        "/v1/lag",
        "/v1/schemas/page-view/2",
        "/nowhere",
        "/events/analytics/active-users?windowSeconds=99999999999999999999",
        "*",
    ];
    let names = [
        "x-a",
        "content-type",
        "content-length",
        "authorization",
        "x-forwarded-for",
        "cookie",
    ];
    let values = [
        "1",
        "",
        "bearer x",
        "text/plain",
        "999999999",
        "\u{7f}",
        "a,b,c",
    ];
    let mut statuses = std::collections::BTreeMap::new();
    for seed in 1..=150u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let method = if rng.below(4) == 0 {
            (0..1 + rng.below(40))
                .map(|_| (b'A' + rng.below(26) as u8) as char)
                .collect()
        } else {
            rng.pick(&methods).to_string()
        };
        let mut request = format!("{method} {} HTTP/1.1\r\nhost: x\r\n", rng.pick(&paths));
        for _ in 0..rng.below(4) {
            let value = if rng.below(6) == 0 {
                "v".repeat(rng.below(9_000))
            } else {
                rng.pick(&values).to_string()
            };
            request.push_str(&format!("{}: {value}\r\n", rng.pick(&names)));
        }
        request.push_str("connection: close\r\n\r\n");
        let answer = crate::hardening::raw_http(
            &app.address,
            request.as_bytes(),
            std::time::Duration::from_secs(5),
        );
        let status = crate::hardening::status_of(&answer);
        assert!(
            status < 500,
            "seed {seed}: {status} for {:?}",
            request.chars().take(200).collect::<String>()
        );
        *statuses.entry(status).or_insert(0) += 1;
    }
    assert!(
        statuses.keys().filter(|s| **s >= 200).count() >= 4,
        "{statuses:?}"
    );
    let (_, after) = app.get_text("/metrics").await;
    let grown = after.lines().count().saturating_sub(before.lines().count());
    // Each (route, folded method, status) series is 17 lines; the routes,
    // ten methods and a few statuses bound it well under this.
    assert!(grown < 2_500, "{grown} lines more, {statuses:?}");
    for method in ["BREW", "QWERTYUI", "M-SEARCH", "get"] {
        assert!(!after.contains(&format!("method=\"{method}\"")), "{method}");
    }
    app.stop().await;
}
