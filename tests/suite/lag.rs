//! Consumer-lag monitoring: with consumption paused and events produced
//! past the threshold, the alert reaches a local webhook receiver (through
//! the webhook's circuit breaker); resumed, the resolve arrives. The group's
//! offsets, read live, add up to exactly what was produced and consumed.

use crate::helpers;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use helpers::broker::OwnBroker;
use helpers::workload::{assert_counted_exactly, send, WAIT};
use helpers::{random_prefix, spawn_app_on};
use serde_json::{json, Value};

const ADMIN: (&str, &str) = ("x-admin-token", "lag-admin-token-0123");

type Calls = Arc<Mutex<Vec<(Instant, Value)>>>;

/// A webhook receiver on loopback that answers 503 to its first `failing`
/// calls and 200 after; returns its URL and the calls it got.
fn webhook_receiver(failing: usize) -> (String, Calls) {
    let calls: Calls = Arc::default();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
    let url = format!(
        "http://127.0.0.1:{}/alerts",
        listener.local_addr().expect("address").port()
    );
    let shared = Arc::clone(&calls);
    let server = HttpServer::new(move || {
        let calls = Arc::clone(&shared);
        App::new().route(
            "/alerts",
            web::post().to(move |body: web::Json<Value>| {
                let calls = Arc::clone(&calls);
                async move {
                    let mut calls = calls.lock().expect("calls");
                    calls.push((Instant::now(), body.into_inner()));
                    if calls.len() <= failing {
                        HttpResponse::ServiceUnavailable().finish()
                    } else {
                        HttpResponse::Ok().finish()
                    }
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .expect("listen")
    .run();
    actix_web::rt::spawn(server);
    (url, calls)
}

async fn wait_calls(calls: &Calls, n: usize, limit: Duration) -> Vec<(Instant, Value)> {
    let start = Instant::now();
    loop {
        let now = calls.lock().expect("calls").clone();
        if now.len() >= n {
            return now;
        }
        assert!(
            start.elapsed() < limit,
            "the webhook got {} calls, not {n}, within {limit:?}: {now:?}",
            now.len()
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sum_of(partitions: &Value, topic: &str, field: &str) -> i64 {
    partitions
        .as_array()
        .expect("partitions")
        .iter()
        .filter(|p| p["topic"] == json!(topic))
        .map(|p| p[field].as_i64().unwrap_or(0))
        .sum()
}

#[actix_web::test]
async fn lag_past_the_threshold_alerts_once_and_resolves_once() {
    // End offsets must be exact: a broker of the test's own (see OwnBroker).
    let broker = OwnBroker::start("lag");
    let (webhook, calls) = webhook_receiver(2);
    let app = spawn_app_on(
        &broker.address(),
        &random_prefix(),
        &[
            ("ARUS__SECURITY__ADMIN_TOKEN", ADMIN.1),
            ("ARUS__LAG__INTERVAL_MS", "300"),
            ("ARUS__LAG__ALERT_THRESHOLD", "300"),
            ("ARUS__LAG__WEBHOOK_URL", webhook.as_str()),
            ("ARUS__LAG__WEBHOOK_FAILURE_THRESHOLD", "2"),
            ("ARUS__LAG__WEBHOOK_OPEN_MS", "1500"),
        ],
    )
    .await;
    let user_events = app.topic("user-events");
    let group = format!("{}group", app.prefix);

    send(&app, 0, 400, 200).await;
    assert_counted_exactly(&app, 400).await;
    app.wait_for_with("/v1/lag", Some(ADMIN), WAIT, |l| {
        l["totalLag"] == json!(0) && sum_of(&l["partitions"], &user_events, "end") == 400
    })
    .await;

    let (status, paused) = app.post_with("/v1/consumer/pause", &json!({}), ADMIN).await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["paused"], json!(true));
    // The pause takes hold on the driver's next cycle.
    let start = Instant::now();
    loop {
        let (_, p) = app.post_with("/v1/consumer/pause", &json!({}), ADMIN).await;
        if p["pausedPartitions"] == json!(9) {
            break;
        }
        assert!(start.elapsed() < WAIT, "pause did not take hold: {p}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }

    let produced = Instant::now();
    send(&app, 400, 3_400, 500).await;
    let lag = app
        .wait_for_with("/v1/lag", Some(ADMIN), WAIT, |l| {
            l["totalLag"] == json!(3_000)
        })
        .await;
    assert_eq!(
        sum_of(&lag["partitions"], &user_events, "lag"),
        3_000,
        "{lag}"
    );
    assert_eq!(sum_of(&lag["partitions"], &user_events, "committed"), 400);
    assert_eq!(lag["group"], json!(group));
    assert_eq!(lag["threshold"], json!(300));
    assert!(lag["overThreshold"].as_u64() >= Some(1), "{lag}");

    // Two failed calls open the webhook's breaker; the trial after
    // webhook_open_ms delivers the firing.
    let got = wait_calls(&calls, 3, WAIT).await;
    assert_eq!(got.len(), 3, "{got:?}");
    for (_, call) in &got {
        assert_eq!(call["status"], json!("firing"), "{call}");
        assert_eq!(call["group"], json!(group));
        assert_eq!(call["threshold"], json!(300));
        let over = call["partitions"].as_array().expect("partitions");
        assert!(!over.is_empty(), "{call}");
        assert!(over.iter().all(|p| p["lag"].as_i64() > Some(300)), "{call}");
    }
    assert!(
        got[2].0 - got[1].0 >= Duration::from_millis(1_500),
        "the breaker let a call through before webhook_open_ms"
    );
    let lag = app
        .wait_for_with("/v1/lag", Some(ADMIN), WAIT, |l| {
            l["alertFiring"] == json!(true)
        })
        .await;
    let oldest = lag["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .filter_map(|p| p["lagSeconds"].as_f64())
        .fold(0.0, f64::max);
    assert!(
        oldest > 0.0 && oldest <= produced.elapsed().as_secs_f64() + 1.0,
        "lag in seconds {oldest} is not within the time since the events were produced"
    );

    // The group's offsets, read live: 400 consumed, 3,400 produced.
    let path = format!("/v1/consumer-groups/{group}/offsets");
    let (status, _) = app.get(&path).await;
    assert_eq!(status, 401);
    let (status, offsets) = app.get_with(&path, ADMIN).await;
    assert_eq!(status, 200, "{offsets}");
    assert_eq!(
        offsets["members"].as_array().map(Vec::len),
        Some(1),
        "{offsets}"
    );
    assert_eq!(offsets["partitions"].as_array().map(Vec::len), Some(9));
    assert_eq!(
        sum_of(&offsets["partitions"], &user_events, "committed"),
        400
    );
    assert_eq!(sum_of(&offsets["partitions"], &user_events, "end"), 3_400);
    assert_eq!(offsets["totalLag"], json!(3_000));

    let (status, resumed) = app
        .post_with("/v1/consumer/resume", &json!({}), ADMIN)
        .await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["paused"], json!(false));
    assert_counted_exactly(&app, 3_400).await;
    let got = wait_calls(&calls, 4, WAIT).await;
    assert_eq!(got[3].1["status"], json!("resolved"), "{:?}", got[3]);
    app.wait_for_with("/v1/lag", Some(ADMIN), WAIT, |l| {
        l["totalLag"] == json!(0) && l["alertFiring"] == json!(false)
    })
    .await;
    // Nothing more: one firing, one resolve.
    actix_web::rt::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(calls.lock().expect("calls").len(), 4);

    let (_, text) = app.get_text("/metrics").await;
    let m = helpers::scrape_samples(&text);
    assert_eq!(m.get("arus_lag_alerts_sent_total"), Some(&1.0), "{text}");
    assert_eq!(m.get("arus_lag_resolves_sent_total"), Some(&1.0));
    assert_eq!(m.get("arus_lag_webhook_failures_total"), Some(&2.0));
    assert_eq!(m.get("arus_consumer_paused"), Some(&0.0));
    let lag_series: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("arus_consumer_group_lag_records{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(lag_series, 0.0, "{text}");
    app.stop().await;
    drop(broker);
}
