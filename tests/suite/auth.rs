//! Security: with keys configured, every ingest and admin route refuses a
//! missing (401) or wrong (403) credential, and takes the right one.

use crate::helpers;

use helpers::spawn_app;
use serde_json::{json, Value};

const KEY: &str = "ingest-key-0123456789";
const ADMIN: &str = "admin-token-0123456789";

#[actix_web::test]
async fn ingest_and_admin_routes_need_their_credentials() {
    let app = spawn_app(&[
        ("ARUS__SECURITY__INGEST_API_KEYS", KEY),
        ("ARUS__SECURITY__ADMIN_TOKEN", ADMIN),
    ])
    .await;
    let ingest: [(&str, Value); 3] = [
        (
            "/events/user-event",
            json!({"userId": "u", "eventType": "login"}),
        ),
        ("/events/page-view", json!({"userId": "u", "url": "/"})),
        (
            "/events/batch-events",
            json!([{"userId": "u", "eventType": "view"}]),
        ),
    ];
    for (path, body) in &ingest {
        let (status, answer) = app.post(path, body).await;
        assert_eq!(
            (status, answer["error"]["code"].clone()),
            (401, json!("unauthorized")),
            "{path}"
        );
        let (status, answer) = app
            .post_with(path, body, ("x-api-key", "wrong-key-0123456789"))
            .await;
        assert_eq!(
            (status, answer["error"]["code"].clone()),
            (403, json!("forbidden")),
            "{path}"
        );
        // The admin token is not an ingest key.
        let (status, _) = app.post_with(path, body, ("x-api-key", ADMIN)).await;
        assert_eq!(status, 403, "{path}");
        let (status, answer) = app.post_with(path, body, ("x-api-key", KEY)).await;
        assert_eq!(status, 201, "{path}: {answer}");
        let bearer = format!("Bearer {KEY}");
        let (status, _) = app.post_with(path, body, ("authorization", &bearer)).await;
        assert_eq!(status, 201, "{path} with a bearer token");
    }

    let other_group = format!("/v1/consumer-groups/{}other", app.prefix);
    for admin in [
        "/v1/dead-letters?limit=1".to_string(),
        format!("{other_group}/offsets"),
    ] {
        let (status, _) = app.get(&admin).await;
        assert_eq!(status, 401);
        let (status, _) = app.get_with(&admin, ("x-admin-token", KEY)).await;
        assert_eq!(status, 403, "an ingest key is not the admin token");
        let (status, answer) = app.get_with(&admin, ("x-admin-token", ADMIN)).await;
        assert_eq!(status, 200, "{answer}");
    }
    let (_, answer) = app
        .get_with("/v1/dead-letters?limit=1", ("x-admin-token", ADMIN))
        .await;
    assert_eq!(answer["count"], json!(0));
    // The admin POST routes, likewise (chaos is off here: 404 once admitted).
    let reset = format!("{other_group}/reset");
    let posts = [
        ("/v1/consumer/pause", json!({}), 200),
        ("/v1/consumer/resume", json!({}), 200),
        (reset.as_str(), json!({"to": "latest"}), 200),
        (
            "/v1/dead-letters/replay",
            json!({"letters": [{"partition": 0, "offset": 0}]}),
            200,
        ),
        (
            "/v1/chaos/shard-outage",
            json!({"metric": "users", "shard": 0, "durationMs": 10}),
            404,
        ),
        (
            "/v1/chaos/panic",
            json!({"metric": "users", "shard": 0}),
            404,
        ),
        (
            "/v1/chaos/shard-stop",
            json!({"metric": "users", "shard": 0}),
            404,
        ),
    ];
    for (path, body, admitted) in &posts {
        let (status, _) = app.post(path, body).await;
        assert_eq!(status, 401, "{path} without a token");
        let (status, _) = app.post_with(path, body, ("x-admin-token", KEY)).await;
        assert_eq!(status, 403, "{path} with an ingest key");
        let (status, answer) = app.post_with(path, body, ("x-admin-token", ADMIN)).await;
        assert_eq!(status, *admitted, "{path}: {answer}");
    }
    // Nothing at offset 0 of an empty dead-letter topic: reported, not an error.
    let (_, answer) = app
        .post_with(
            "/v1/dead-letters/replay",
            &json!({"letters": [{"partition": 0, "offset": 0}]}),
            ("x-admin-token", ADMIN),
        )
        .await;
    assert_eq!(answer["replayed"], json!([]));
    assert_eq!(
        answer["failed"][0]["error"],
        json!("no dead letter at partition 0 offset 0")
    );

    // Queries stay open, as in the seed.
    let (status, _) = app.get("/events/analytics").await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[actix_web::test]
async fn admin_routes_are_disabled_without_a_token() {
    let app = spawn_app(&[]).await;
    let (status, answer) = app
        .get_with("/v1/dead-letters", ("x-admin-token", ADMIN))
        .await;
    assert_eq!(status, 403);
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("ARUS__SECURITY__ADMIN_TOKEN")),
        "{answer}"
    );
    // Ingestion is open when no keys are configured.
    let (status, _) = app
        .post(
            "/events/user-event",
            &json!({"userId": "u", "eventType": "login"}),
        )
        .await;
    assert_eq!(status, 201);
    app.stop().await;
}

/// Per-key rate limit: a key over its events per second gets 429 with
/// `Retry-After` and nothing is written; another key is not held back.
#[actix_web::test]
async fn a_key_over_its_rate_gets_429_with_retry_after_and_nothing_written() {
    const OTHER: &str = "other-key-0123456789";
    let keys = format!("{KEY},{OTHER}");
    let app = spawn_app(&[
        ("ARUS__SECURITY__INGEST_API_KEYS", keys.as_str()),
        ("ARUS__SECURITY__RATE_LIMIT_EVENTS_PER_SECOND", "100"),
        ("ARUS__SECURITY__RATE_LIMIT_BURST", "1000"),
    ])
    .await;
    let batch = |n: usize| {
        json!((0..n)
            .map(|i| json!({"userId": format!("u{i}"), "eventType": "view"}))
            .collect::<Vec<_>>())
    };
    let (status, body) = app
        .post_with("/events/batch-events", &batch(1000), ("x-api-key", KEY))
        .await;
    assert_eq!(status, 201, "{body}");

    // The bucket is empty: 500 more need about 5 s.
    let resp = app
        .client
        .post(app.url("/events/batch-events"))
        .insert_header(("content-type", "application/json"))
        .insert_header(("x-api-key", KEY))
        .send_body(batch(500).to_string())
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 429);
    let retry_after: u64 = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After header");
    assert!((4..=5).contains(&retry_after), "Retry-After {retry_after}");
    let mut resp = resp;
    let body: Value = serde_json::from_slice(&resp.body().await.expect("body")).expect("JSON");
    assert_eq!(body["error"]["code"], json!("rate_limited"), "{body}");

    // Another key has its own bucket.
    let (status, body) = app
        .post_with("/events/batch-events", &batch(1000), ("x-api-key", OTHER))
        .await;
    assert_eq!(status, 201, "{body}");
    // Written: the two accepted batches, nothing of the refused requests.
    assert_eq!(app.read_all(&app.topic("user-events"), 3).len(), 2000);
    app.stop().await;
}

const READ: &str = "read-key-0123456789abc";

/// With read keys set, every query route (GET and HEAD) needs one: 401
/// without, 403 with any other credential (an ingest key is not a read
/// key), the answer with it. Ingest, health, metrics and the schemas are
/// not queries and stay as they were.
#[actix_web::test]
async fn query_routes_need_a_read_key_when_read_keys_are_set() {
    let app = spawn_app(&[
        ("ARUS__SECURITY__QUERY_API_KEYS", READ),
        ("ARUS__SECURITY__INGEST_API_KEYS", KEY),
    ])
    .await;
    let (status, body) = app
        .post_with(
            "/events/user-event",
            &json!({"userId": "reader-1", "eventType": "login"}),
            ("x-api-key", KEY),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    app.wait_for_with(
        "/events/stats",
        Some(("x-api-key", READ)),
        std::time::Duration::from_secs(30),
        |b| b["totalEvents"] == json!(1),
    )
    .await;
    let queries = [
        "/events/stats",
        "/events/analytics",
        "/events/analytics/event-counts",
        "/events/analytics/active-users",
        "/events/analytics/top-pages",
        "/events/analytics/sessions",
        "/events/analytics/users/reader-1",
        "/v1/top-pages",
    ];
    for path in queries {
        let (status, answer) = app.get(path).await;
        assert_eq!(
            (status, answer["error"]["code"].clone()),
            (401, json!("unauthorized")),
            "{path}"
        );
        let (status, _) = app.get_with(path, ("x-api-key", KEY)).await;
        assert_eq!(status, 403, "{path}: an ingest key is not a read key");
        let (status, answer) = app.get_with(path, ("x-api-key", READ)).await;
        assert_eq!(status, 200, "{path}: {answer}");
        let bearer = format!("Bearer {READ}");
        let (status, _) = app.get_with(path, ("authorization", &bearer)).await;
        assert_eq!(status, 200, "{path} with a bearer token");
        let resp = app
            .client
            .head(app.url(path))
            .send()
            .await
            .expect("HEAD answered");
        assert_eq!(resp.status().as_u16(), 401, "HEAD {path}");
    }
    let (_, user) = app
        .get_with("/events/analytics/users/reader-1", ("x-api-key", READ))
        .await;
    assert_eq!(user["events"], json!(1));
    for open in ["/health/live", "/metrics", "/v1/schemas"] {
        let (status, _) = app.get_text(open).await;
        assert_eq!(status, 200, "{open}");
    }
    // The dashboard and its stream: a browser cannot send the header from
    // an EventSource, so the key may come in the URL too.
    for path in ["/", "/v1/stream"] {
        let status = |path: String, header: Option<(&'static str, &'static str)>| {
            let mut request = app.client.head(app.url(&path));
            if let Some(h) = header {
                request = request.insert_header(h);
            }
            async move { request.send().await.expect("answered").status().as_u16() }
        };
        assert_eq!(status(path.to_string(), None).await, 401, "{path}");
        assert_eq!(
            status(format!("{path}?key=wrong-key"), None).await,
            403,
            "{path}"
        );
        assert_eq!(
            status(format!("{path}?key={READ}"), None).await,
            200,
            "{path}"
        );
        assert_eq!(
            status(path.to_string(), Some(("x-api-key", READ))).await,
            200,
            "{path}"
        );
    }
    app.stop().await;
}
