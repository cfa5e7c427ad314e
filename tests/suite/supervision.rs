//! Supervision: an aggregator shard that stops is restarted by its
//! supervisor on the same address; what it held in memory is dropped, the
//! partitions roll back to the last commit (state from the changelog, input
//! re-read), and every event is still counted exactly once.

use crate::helpers;

use helpers::spawn_app;
use helpers::workload::{assert_counted_exactly, send, WAIT};
use serde_json::json;

const ADMIN: (&str, &str) = ("x-admin-token", "supervision-admin-0123");

#[actix_web::test]
async fn stopped_shards_are_restarted_and_nothing_is_lost_or_counted_twice() {
    let app = spawn_app(&[
        ("ARUS__SECURITY__ADMIN_TOKEN", ADMIN.1),
        ("ARUS__CHAOS__ENABLED", "true"),
        ("ARUS__AGGREGATOR__SHARDS", "2"),
    ])
    .await;
    send(&app, 0, 1_000, 250).await;
    assert_counted_exactly(&app, 1_000).await;

    let (status, body) = app
        .post_with(
            "/v1/chaos/shard-stop",
            &json!({"metric": "users", "shard": 2}),
            ADMIN,
        )
        .await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (400, &json!("shard")),
        "{body}"
    );

    // Two shards stop while events keep coming: one between batches, one
    // with events of its own in flight.
    for (round, target) in [("event-counts", 0), ("users", 1)].into_iter().enumerate() {
        let from = 1_000 + round * 1_000;
        send(&app, from, from + 500, 250).await;
        let (status, body) = app
            .post_with(
                "/v1/chaos/shard-stop",
                &json!({"metric": target.0, "shard": target.1}),
                ADMIN,
            )
            .await;
        assert_eq!(status, 202, "{body}");
        send(&app, from + 500, from + 1_000, 250).await;
    }
    let stats = app
        .wait_for("/events/stats", WAIT, |s| {
            s["consumer"]["actorRestarts"] == json!(2)
                && s["consumer"]["rollbacks"].as_u64() >= Some(1)
        })
        .await;
    assert_eq!(stats["consumer"]["actorRestarts"], json!(2), "{stats}");
    assert_counted_exactly(&app, 3_000).await;
    // The restarted shards take new events as before.
    send(&app, 3_000, 3_500, 250).await;
    assert_counted_exactly(&app, 3_500).await;
    // The users metric, whose shard 1 restarted: events 0..3,500 over 1,000
    // users, so users 0..499 have 4 events and the others 3.
    for user in (0..1_000).step_by(37) {
        let (_, body) = app
            .get(&format!("/events/analytics/users/user-{user}"))
            .await;
        let expected = if user < 500 { 4 } else { 3 };
        assert_eq!(body["events"], json!(expected), "user-{user}: {body}");
    }
    let (_, scrape) = app.get_text("/metrics").await;
    assert_eq!(
        helpers::scrape_samples(&scrape).get("arus_actor_restarts_total"),
        Some(&2.0),
        "{scrape}"
    );
    app.stop().await;
}
