//! The live dashboard in a real browser (Debian's Chromium, driven by
//! playwright-core from npm): the page loads without console errors,
//! events posted through the API show on it with the numbers `POST
//! /v1/query` gives, within 2 s of the query giving them; a screenshot is
//! written under `target/`. And its stream, read as a client would.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{run_node_script, spawn_app};

#[actix_web::test]
async fn the_dashboard_shows_posted_events_with_the_query_apis_numbers() {
    let app = spawn_app(&[]).await;
    let shot = format!("{}/target/dashboard.png", env!("CARGO_MANIFEST_DIR"));
    let _ = std::fs::remove_file(&shot);
    let (views, events) = (7, 5);
    let args = vec![
        app.url(""),
        shot.clone(),
        views.to_string(),
        events.to_string(),
    ];
    let out = run_node_script("dashboard.mjs", args).await;
    assert_eq!(out["errors"], json!([]), "{out}");
    assert_eq!(out["timedOut"], Value::Null, "{out}");
    // What the page showed is what the query answered, and what was posted.
    assert_eq!(
        out["query"],
        json!({"visitors": 5, "visits": 5, "pageviews": views, "events": events}),
        "{out}"
    );
    assert_eq!(
        out["shown"],
        json!({"visitors": "5", "visits": "5", "pageviews": "7", "events": "5"})
    );
    let lag = out["msFromQueryToShown"].as_u64().expect("a time");
    assert!(lag <= 2_000, "shown {lag} ms after the query had it: {out}");
    let mut types: Vec<String> = serde_json::from_value(out["eventTypes"].clone()).expect("types");
    types.sort();
    assert_eq!(types, ["login", "purchase", "view"]);
    // Events and visitors by type, as the query API answers them.
    let (status, by_type) = app
        .post(
            "/v1/query",
            &json!({"metrics": ["events", "visitors"], "date_range": "24h", "dimensions": ["event:type"]}),
        )
        .await;
    assert_eq!(status, 200, "{by_type}");
    let mut want: Vec<Vec<String>> = by_type["results"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            vec![
                r["dimensions"][0].as_str().expect("a type").to_string(),
                r["metrics"][0].to_string(),
                r["metrics"][1].to_string(),
            ]
        })
        .collect();
    want.sort();
    let mut shown: Vec<Vec<String>> =
        serde_json::from_value(out["typeRows"].clone()).expect("type rows");
    shown.sort();
    assert_eq!(shown, want, "{out}");
    // The page views came with no referrer: one source; four pages.
    assert_eq!(out["sources"], json!(["Direct / None"]));
    let mut pages: Vec<String> = serde_json::from_value(out["pages"].clone()).expect("pages");
    pages.sort();
    assert_eq!(pages, ["/b/0", "/b/1", "/b/2", "/b/3"]);
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    app.stop().await;
}

/// Reads `GET /v1/stream` until `count` messages came (at most 20 s).
async fn read_stream(
    app: &crate::helpers::TestApp,
    last_id: Option<&str>,
    count: usize,
) -> Vec<Value> {
    use futures::StreamExt as _;
    let mut request = app.client.get(app.url("/v1/stream"));
    if let Some(id) = last_id {
        request = request.insert_header(("Last-Event-ID", id));
    }
    let mut response = request.send().await.expect("stream opened");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let mut text = String::new();
    let mut messages = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while messages.len() < count && std::time::Instant::now() < deadline {
        let Some(chunk) = response.next().await else {
            break;
        };
        text.push_str(&String::from_utf8_lossy(&chunk.expect("a chunk")));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let id = block.lines().find_map(|l| l.strip_prefix("id: "));
            let data = block.lines().find_map(|l| l.strip_prefix("data: "));
            if let (Some(id), Some(data)) = (id, data) {
                let mut message: Value = serde_json::from_str(data).expect("JSON data");
                assert_eq!(message["id"].to_string(), id);
                message["idLine"] = json!(id);
                messages.push(message);
            }
        }
    }
    messages
}

#[actix_web::test]
async fn the_stream_sends_a_snapshot_a_second_with_the_query_apis_answers() {
    let app = spawn_app(&[]).await;
    let (status, answer) = app
        .post("/events/page-view", &json!({"userId": "s-1", "url": "/s"}))
        .await;
    assert_eq!(status, 201, "{answer}");
    app.wait_for("/events/stats", crate::helpers::workload::WAIT, |s| {
        s["totalPageViews"] == json!(1)
    })
    .await;
    let started = std::time::Instant::now();
    let messages = read_stream(&app, None, 3).await;
    assert_eq!(messages.len(), 3);
    // One a second, ids in order from 1.
    let ids: Vec<u64> = messages
        .iter()
        .map(|m| m["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, [1, 2, 3]);
    assert!(started.elapsed() >= Duration::from_millis(1_900));
    // Each panel's answer is what POST /v1/query answers for its body
    // (asked now; nothing changed since).
    let last = &messages[2];
    for (name, body) in last["queries"].as_object().expect("queries") {
        let (status, answer) = app.post("/v1/query", body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            last["answers"][name]["results"], answer["results"],
            "{name}"
        );
    }
    assert_eq!(last["topPages"], json!([["/s", 1]]));
    // visitors, visits, pageviews, events, bounce_rate, visit_duration,
    // views_per_visit: one page view, a bounce.
    assert_eq!(
        last["answers"]["day"]["results"][0]["metrics"],
        json!([1, 1, 1, 0, 100, 0, 1.0])
    );
    // A reconnect with Last-Event-ID goes on after it.
    let again = read_stream(&app, Some("41"), 1).await;
    assert_eq!(again[0]["id"], json!(42));
    app.stop().await;
}
