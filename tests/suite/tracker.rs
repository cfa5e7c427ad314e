//! The browser tracker and CORS: `arus.js` on a page of another origin
//! (served by a second local server, in Debian's Chromium) sends a page
//! view on load and on each single-page navigation, counted as one
//! visitor's visit with no cookie; a page of an origin not allowed is
//! refused. Preflights, and the headers an allowed origin gets.

use serde_json::{json, Value};

use crate::helpers::process::free_port;
use crate::helpers::{run_node_script, spawn_app, workload::WAIT};

#[actix_web::test]
async fn a_page_on_an_allowed_origin_is_counted_and_another_is_refused() {
    let (allowed, refused) = (free_port(), free_port());
    let origin = format!("http://127.0.0.1:{allowed}");
    let app = spawn_app(&[("ARUS__HTTP__CORS_ALLOWED_ORIGINS", origin.as_str())]).await;
    let args = vec![app.url(""), allowed.to_string(), refused.to_string()];
    let out = run_node_script("tracker.mjs", args).await;
    assert_eq!(out["errors"], json!([]), "{out}");
    // Three beacons each: load and two navigations; the allowed page's
    // accepted, the other's refused.
    let statuses = |name: &str| -> Vec<u64> {
        out["beacons"][name]
            .as_array()
            .expect("beacons")
            .iter()
            .map(|b| b["status"].as_u64().expect("status"))
            .collect()
    };
    assert_eq!(statuses("allowed"), [201, 201, 201], "{out}");
    assert_eq!(statuses("refused"), [403, 403, 403], "{out}");
    let sent: Vec<Value> = out["beacons"]["allowed"]
        .as_array()
        .expect("beacons")
        .iter()
        .map(|b| serde_json::from_str(b["body"].as_str().expect("a body")).expect("JSON"))
        .collect();
    assert_eq!(
        sent,
        [
            json!({"url": "/shop?from=ad"}),
            json!({"url": "/pricing", "referrer": format!("{origin}/shop?from=ad")}),
            json!({"url": "/docs", "referrer": format!("{origin}/pricing")}),
        ]
    );
    // Counted: three page views of one visitor, one visit, no cookie.
    app.wait_for("/events/stats", WAIT, |s| s["totalPageViews"] == json!(3))
        .await;
    let (status, answer) = app
        .post(
            "/v1/query",
            &json!({"metrics": ["visitors", "visits", "pageviews", "bounce_rate"], "date_range": "realtime"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["results"][0]["metrics"],
        json!([1, 1, 3, 0]),
        "{answer}"
    );
    let (_, pages) = app.get("/events/analytics/top-pages").await;
    let mut urls: Vec<String> = pages
        .as_array()
        .expect("pairs")
        .iter()
        .map(|p| p[0].as_str().expect("url").to_string())
        .collect();
    urls.sort();
    assert_eq!(urls, ["/docs", "/pricing", "/shop?from=ad"]);
    let (_, stats) = app.get("/events/stats").await;
    let user = stats["eventsByUser"].as_object().map(|m| m.len());
    assert_eq!(user, Some(0), "page views are not user events: {stats}");
    let (_, users) = app.get("/events/analytics/active-users").await;
    assert_eq!(users["activeUsers"], json!(1), "{users}");
    app.stop().await;
}

#[actix_web::test]
async fn preflights_and_origins_are_answered_as_configured() {
    let app = spawn_app(&[
        ("ARUS__HTTP__CORS_ALLOWED_ORIGINS", "https://shop.example"),
        ("ARUS__SECURITY__INGEST_API_KEYS", "ingest-key-0123456789"),
    ])
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(
                actix_web::http::Method::OPTIONS,
                app.url("/events/page-view"),
            )
            .insert_header(("Origin", origin))
            .insert_header(("Access-Control-Request-Method", "POST"))
            .insert_header(("Access-Control-Request-Headers", "content-type, x-api-key"))
            .send()
    };
    let allowed = preflight("https://shop.example").await.expect("answered");
    assert_eq!(allowed.status().as_u16(), 204);
    let header = |r: &awc::ClientResponse<_>, name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        header(&allowed, "access-control-allow-origin").as_deref(),
        Some("https://shop.example")
    );
    assert!(header(&allowed, "access-control-allow-headers")
        .is_some_and(|h| h.contains("x-api-key") && h.contains("content-type")));
    let other = preflight("https://elsewhere.example")
        .await
        .expect("answered");
    assert_eq!(other.status().as_u16(), 403);
    assert_eq!(header(&other, "access-control-allow-origin"), None);

    // A POST from another site's page is refused before anything is read;
    // the allowed site's, with the key, is answered with its origin.
    let view = json!({"userId": "c-1", "url": "/c"});
    let (status, answer) = app
        .post_with(
            "/events/page-view",
            &view,
            ("Origin", "https://elsewhere.example"),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (403, json!("forbidden"))
    );
    let response = app
        .client
        .post(app.url("/events/page-view"))
        .insert_header(("Origin", "https://shop.example"))
        .insert_header(("x-api-key", "ingest-key-0123456789"))
        .send_json(&view)
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(
        header(&response, "access-control-allow-origin").as_deref(),
        Some("https://shop.example")
    );
    // The tracker's endpoint: a browser's beacon from the allowed site needs
    // no key (a page cannot keep one secret); a request with no Origin is a
    // server's, and needs the ingest key like every ingest route.
    let beacon = r#"{"url":"/t","userId":"c-2"}"#;
    let sent = |origin: Option<&'static str>| {
        let mut request = app
            .client
            .post(app.url("/v1/track"))
            .insert_header(("content-type", "text/plain;charset=UTF-8"));
        if let Some(origin) = origin {
            request = request.insert_header(("Origin", origin));
        }
        request.send_body(beacon)
    };
    assert_eq!(
        sent(Some("https://shop.example"))
            .await
            .expect("answered")
            .status()
            .as_u16(),
        201
    );
    assert_eq!(sent(None).await.expect("answered").status().as_u16(), 401);
    // A beacon of another shape: 400 naming what a beacon is.
    let mut bad = app
        .client
        .post(app.url("/v1/track"))
        .insert_header(("Origin", "https://shop.example"))
        .insert_header(("content-type", "text/plain"))
        .send_body(r#"{"page": "/x"}"#)
        .await
        .expect("answered");
    assert_eq!(bad.status().as_u16(), 400);
    let answer: Value = bad.json().await.expect("JSON");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("a beacon is")),
        "{answer}"
    );
    let (_, script) = app.get_text("/arus.js").await;
    assert!(script.contains("sendBeacon") && script.contains("pushState"));
    app.wait_for("/events/stats", WAIT, |s| s["totalPageViews"] == json!(2))
        .await;
    app.stop().await;
}
