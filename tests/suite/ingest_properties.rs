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
