//! Invariant 4 and 1 through a broker outage: the broker is stopped for 10 s
//! during ingestion. While it is down, ingestion answers 503 with
//! `Retry-After` within a bounded time and never 2xx; when it is back,
//! everything recovers without a restart, and a client that retries its
//! refused batches (same eventIds) ends with every event counted exactly once.
//!
//! The test runs its own broker ([`OwnBroker`]), with file-backed storage so
//! that a restart keeps the topics, records, transactions and group offsets.

use crate::helpers;

use std::time::{Duration, Instant};

use helpers::broker::OwnBroker;
use helpers::workload::{assert_counted_exactly, WAIT};
use helpers::{random_prefix, spawn_app_on};
use serde_json::{json, Value};
use uuid::Uuid;

fn batch(from: usize, ids: &[Uuid]) -> Value {
    json!(ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let n = from + i;
            let kind = ["login", "view", "purchase", "logout"][n % 4];
            json!({
                "userId": format!("user-{}", n % 1000),
                "eventType": kind,
                "eventId": id.to_string(),
            })
        })
        .collect::<Vec<_>>())
}

#[actix_web::test]
async fn ingestion_answers_503_while_the_broker_is_down_and_counts_exactly_after() {
    let mut broker = OwnBroker::start("outage");
    let app = spawn_app_on(
        &broker.address(),
        &random_prefix(),
        &[("ARUS__KAFKA__PRODUCE_TIMEOUT_MS", "2000")],
    )
    .await;

    const SIZE: usize = 50;
    let mut next = 0;
    let mut pending: Vec<(usize, Vec<Uuid>)> = Vec::new();
    let mut slowest_down = Duration::ZERO;
    // Up, down for 10 s, up again; a batch of 50 at a time.
    for phase in ["up", "down", "up again"] {
        match phase {
            "down" => broker.stop(),
            "up again" => broker.restart(),
            _ => {}
        }
        let began = Instant::now();
        let mut sent_in_phase = 0;
        while began.elapsed() < Duration::from_secs(10) || sent_in_phase < 10 {
            let ids: Vec<Uuid> = (0..SIZE).map(|_| Uuid::new_v4()).collect();
            let sent = Instant::now();
            let (status, body) = app.post("/events/batch-events", &batch(next, &ids)).await;
            match (phase, status) {
                ("down", 503) => {
                    slowest_down = slowest_down.max(sent.elapsed());
                    assert_eq!(body["error"]["code"], json!("kafka_unavailable"), "{body}");
                    pending.push((next, ids));
                }
                ("down", other) => panic!("{other} while the broker is down: {body}"),
                (_, 201) => {}
                // Right after the restart, the producer may still be
                // reconnecting: refused, and retried below like the rest.
                ("up again", 503) => pending.push((next, ids)),
                (_, other) => panic!("{other} while the broker is up: {body}"),
            }
            next += SIZE;
            sent_in_phase += 1;
            if phase != "down" {
                actix_web::rt::time::sleep(Duration::from_millis(200)).await;
            }
            if phase == "down" && began.elapsed() >= Duration::from_secs(10) {
                break;
            }
        }
    }
    assert!(pending.len() >= 3, "only {} batches refused", pending.len());
    // Bounded: the produce timeout (2 s) and a little, never a hang.
    assert!(
        slowest_down < Duration::from_secs(4),
        "a refusal took {slowest_down:?}"
    );

    // The client retries what was refused, with the same eventIds, until
    // it is accepted; events written but not acknowledged count once.
    let deadline = Instant::now() + WAIT;
    while let Some((from, ids)) = pending.pop() {
        let (status, body) = app.post("/events/batch-events", &batch(from, &ids)).await;
        if status != 201 {
            assert!(Instant::now() < deadline, "still refused: {status} {body}");
            pending.push((from, ids));
            actix_web::rt::time::sleep(Duration::from_millis(500)).await;
        }
    }
    assert_counted_exactly(&app, next).await;
    app.stop().await;
    drop(broker);
}
