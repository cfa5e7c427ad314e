//! The seed's curl session as a reusable scenario.

use std::time::Duration;

use serde_json::json;

use super::TestApp;

const WAIT: Duration = Duration::from_secs(30);

/// The seed's curl session: one login, one page view, a batch of
/// purchase/login/view. Every query endpoint then shows exactly these.
pub async fn session_counts_exactly(app: &TestApp) {
    let (status, body) = app
        .post(
            "/events/user-event",
            &json!({"userId": "user-123", "eventType": "login", "metadata": {"device": "mobile"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["success"], json!(true));
    assert_eq!(body["topic"], json!(app.topic("user-events")));
    assert!(
        body["eventId"].as_str().is_some_and(|id| id.len() == 36),
        "{body}"
    );
    // The seed's shape beside arus's: its message and the event as written.
    assert_eq!(body["message"], json!("Event tracked successfully"));
    assert_eq!(body["event"]["eventId"], body["eventId"]);
    assert_eq!(body["event"]["userId"], json!("user-123"));
    assert_eq!(body["event"]["eventType"], json!("login"));
    assert_eq!(body["event"]["metadata"], json!({"device": "mobile"}));
    assert!(body["event"]["timestamp"].is_string(), "{body}");

    let (status, body) = app
        .post(
            "/events/page-view",
            &json!({"userId": "user-123", "url": "/products/42", "referrer": "/home", "duration": 30}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["topic"], json!(app.topic("page-views")));
    assert_eq!(body["message"], json!("Page view tracked successfully"));
    assert_eq!(body["pageView"]["eventId"], body["eventId"]);
    assert_eq!(body["pageView"]["url"], json!("/products/42"));
    assert_eq!(body["pageView"]["referrer"], json!("/home"));
    assert_eq!(body["pageView"]["duration"], json!(30.0));

    let (status, body) = app
        .post(
            "/events/batch-events",
            &json!([
                {"userId": "user-123", "eventType": "purchase", "metadata": {"amount": 99.99}},
                {"userId": "user-456", "eventType": "login"},
                {"userId": "user-789", "eventType": "view"}
            ]),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["count"], json!(3));
    assert_eq!(body["message"], json!("Batch events tracked successfully"));
    assert_eq!(body["events"].as_array().map(Vec::len), Some(3));

    let analytics = app
        .wait_for("/events/analytics", WAIT, |b| {
            b["totalEvents"] == json!(4) && b["totalPageViews"] == json!(1)
        })
        .await;
    assert_eq!(
        analytics["eventCounts"],
        json!({"login": 2, "logout": 0, "purchase": 1, "view": 1})
    );
    assert_eq!(analytics["uniqueUsers"], json!(3));
    assert_eq!(analytics["activeUsers"], json!(3));
    // The seed's shape: [url, views] pairs, active sessions, a timestamp.
    assert_eq!(analytics["topPages"], json!([["/products/42", 1]]));
    assert_eq!(analytics["activeSessions"], json!(2));
    assert!(analytics["timestamp"].is_string(), "{analytics}");
    assert_eq!(
        analytics["topPagesDetail"],
        json!([{"url": "/products/42", "views": 1, "averageDuration": 30.0}])
    );
    assert_eq!(
        analytics["sessions"],
        json!({"activeSessions": 2, "completedSessions": 0, "averageSessionMs": 0.0})
    );
    assert!(analytics["asOf"].is_string(), "{analytics}");

    let (_, counts) = app.get("/events/analytics/event-counts").await;
    assert_eq!(
        counts["eventCounts"],
        json!({"login": 2, "logout": 0, "purchase": 1, "view": 1})
    );
    assert_eq!(counts["total"], json!(4));

    let (_, active) = app.get("/events/analytics/active-users").await;
    assert_eq!(active["activeUsers"], json!(3));
    assert_eq!(active["uniqueUsers"], json!(3));
    assert_eq!(active["windowSeconds"], json!(300));

    let (_, top) = app.get("/events/analytics/top-pages?limit=5").await;
    assert_eq!(top, json!([["/products/42", 1]]));
    let (_, top) = app.get("/v1/top-pages?limit=5").await;
    assert_eq!(
        top["topPages"],
        json!([{"url": "/products/42", "views": 1, "averageDuration": 30.0}])
    );
    assert_eq!(top["limit"], json!(5));

    let (_, user) = app.get("/events/analytics/users/user-123").await;
    assert_eq!(user["events"], json!(2));
    assert_eq!(user["pageViews"], json!(1));
    assert_eq!(user["inSession"], json!(true));
    let (status, _) = app.get("/events/analytics/users/nobody").await;
    assert_eq!(status, 404);

    let stats = app
        .wait_for("/events/stats", WAIT, |b| {
            b["consumer"]["commits"].as_u64() > Some(0)
        })
        .await;
    assert_eq!(stats["totalEvents"], json!(4));
    assert_eq!(
        stats["eventsByType"],
        json!({"login": 2, "logout": 0, "purchase": 1, "view": 1})
    );
    assert_eq!(
        stats["eventsByUser"],
        json!({"user-123": 2, "user-456": 1, "user-789": 1})
    );
    assert_eq!(stats["totalPageViews"], json!(1));
    assert_eq!(stats["uniqueUsers"], json!(3));
    assert_eq!(stats["consumer"]["recordsConsumed"], json!(5));
    assert_eq!(stats["consumer"]["recordsInvalid"], json!(0));
    assert_eq!(stats["consumer"]["eventsApplied"], json!(5));
    assert_eq!(
        stats["consumer"]["assignedPartitions"]
            .as_array()
            .map(Vec::len),
        // 3 partitions each of user-events, page-views and retry-events.
        Some(9)
    );

    // Nothing more arrives later: the counts stay exact.
    actix_web::rt::time::sleep(Duration::from_millis(1000)).await;
    let (_, again) = app.get("/events/analytics/event-counts").await;
    assert_eq!(again["total"], json!(4));
}
