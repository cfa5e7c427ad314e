//! `GET /metrics` after a known workload: the counters equal the exact
//! numbers sent and consumed.

use crate::helpers;

use helpers::spawn_app;
use helpers::workload::{assert_counted_exactly, send, WAIT};
use serde_json::json;

#[actix_web::test]
async fn metrics_count_exactly_what_was_sent_and_consumed() {
    let app = spawn_app(&[]).await;
    // 1,000 events in batches, 4 one by one.
    send(&app, 0, 1_000, 250).await;
    for i in 0..4 {
        let (status, _) = app
            .post("/events/user-event", &helpers::workload::event(1_000 + i))
            .await;
        assert_eq!(status, 201);
    }
    assert_counted_exactly(&app, 1_004).await;
    // The counters of this instance's committer trail the read model by at
    // most one transaction.
    app.wait_for("/events/stats", WAIT, |s| {
        s["consumer"]["eventsApplied"] == json!(1_004)
    })
    .await;

    let (status, _) = app.get("/no-such-route").await;
    assert_eq!(status, 404);
    let (status, text) = app.get_text("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        text.contains("# TYPE arus_records_consumed_total counter"),
        "{text}"
    );
    let m = helpers::scrape_samples(&text);
    let value = |name: &str| *m.get(name).unwrap_or_else(|| panic!("no {name} in {text}"));
    assert_eq!(value("arus_events_ingested_total"), 1_004.0);
    assert_eq!(value("arus_records_consumed_total"), 1_004.0);
    assert_eq!(value("arus_events_applied_total"), 1_004.0);
    assert_eq!(value("arus_records_invalid_total"), 0.0);
    assert_eq!(value("arus_dead_letters_total"), 0.0);
    assert_eq!(value("arus_duplicates_dropped_total"), 0.0);
    assert_eq!(value("arus_rollbacks_total"), 0.0);
    // 3 partitions each of user-events, page-views and retry-events.
    assert_eq!(value("arus_assigned_partitions"), 9.0);
    assert_eq!(value("arus_ready"), 1.0);
    assert!(value("arus_transactions_committed_total") >= 1.0);
    assert_eq!(value("arus_produce_failures_total"), 0.0);
    // Idle: nothing queued at any shard.
    let depths: Vec<f64> = m
        .iter()
        .filter(|(k, _)| k.starts_with("arus_shard_mailbox_depth{"))
        .map(|(_, v)| *v)
        .collect();
    // 4 metrics × 2 shards.
    assert_eq!(depths, vec![0.0; 8], "{text}");

    // Latency histograms: one observation per acknowledged record, per
    // commit, per request of each route and status.
    assert_eq!(value("arus_produce_acknowledged_seconds_count"), 1_004.0);
    assert_eq!(
        value(r#"arus_produce_acknowledged_seconds_bucket{le="+Inf"}"#),
        1_004.0
    );
    // The commit counter and histogram are read a moment apart.
    let commits = value("arus_commit_seconds_count");
    assert!(
        (commits - value("arus_transactions_committed_total")).abs() <= 1.0,
        "{text}"
    );
    let request = |route: &str, method: &str, status: u16| {
        m.get(&format!(
            r#"arus_http_request_duration_seconds_count{{route="{route}",method="{method}",status="{status}"}}"#
        ))
        .copied()
        .unwrap_or(0.0)
    };
    assert_eq!(request("/events/batch-events", "POST", 201), 4.0, "{text}");
    assert_eq!(request("/events/user-event", "POST", 201), 4.0);
    assert_eq!(request("unmatched", "GET", 404), 1.0);
    assert_eq!(request("/events/user-event", "POST", 400), 0.0);

    // Every series the Grafana dashboard plots is one this scrape has.
    let dashboard = include_str!("../../k8s/grafana/arus-dashboard.json");
    let plotted: std::collections::BTreeSet<&str> = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("arus_"))
        .collect();
    assert!(plotted.len() >= 20, "{plotted:?}");
    for name in plotted {
        assert!(
            m.keys()
                .any(|k| k == name || k.starts_with(&format!("{name}{{"))),
            "the dashboard plots {name}, which /metrics does not have"
        );
    }
    app.stop().await;
}
