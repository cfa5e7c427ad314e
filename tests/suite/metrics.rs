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
        value(&helpers::canonical(
            r#"arus_produce_acknowledged_seconds_bucket{le="+Inf"}"#
        )),
        1_004.0
    );
    // The commit counter and histogram are read a moment apart.
    let commits = value("arus_commit_seconds_count");
    assert!(
        (commits - value("arus_transactions_committed_total")).abs() <= 1.0,
        "{text}"
    );
    let request = |route: &str, method: &str, status: u16| {
        m.get(&helpers::canonical(&format!(
            r#"arus_http_request_duration_seconds_count{{route="{route}",method="{method}",status="{status}"}}"#
        )))
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

/// Every family `/metrics` served before it moved onto the registry crate,
/// with its type and label names, so dashboards and alerts keep working.
const FAMILIES: [(&str, &str, &str); 38] = [
    ("arus_actor_restarts_total", "counter", ""),
    ("arus_assigned_partitions", "gauge", ""),
    ("arus_batch_process_seconds", "histogram", ""),
    ("arus_breaker_opened_total", "counter", "metric,shard"),
    ("arus_breaker_state", "gauge", "metric,shard"),
    ("arus_changelog_unreadable_records_total", "counter", ""),
    ("arus_commit_seconds", "histogram", ""),
    (
        "arus_consumer_group_lag_records",
        "gauge",
        "group,partition,topic",
    ),
    (
        "arus_consumer_group_lag_seconds",
        "gauge",
        "group,partition,topic",
    ),
    ("arus_consumer_paused", "gauge", ""),
    ("arus_dead_letters_total", "counter", ""),
    ("arus_duplicates_dropped_total", "counter", ""),
    ("arus_events_applied_total", "counter", ""),
    ("arus_events_ingested_total", "counter", ""),
    (
        "arus_http_request_duration_seconds",
        "histogram",
        "method,route,status",
    ),
    ("arus_http_stream_errors_unlogged_total", "counter", ""),
    ("arus_lag_alerts_sent_total", "counter", ""),
    ("arus_lag_read_failures_total", "counter", ""),
    ("arus_lag_resolves_sent_total", "counter", ""),
    ("arus_input_holes_filled_total", "counter", ""),
    ("arus_lag_webhook_failures_total", "counter", ""),
    ("arus_late_events_total", "counter", "partition,topic"),
    ("arus_produce_acknowledged_seconds", "histogram", ""),
    ("arus_produce_failures_total", "counter", ""),
    ("arus_producer_recreated_total", "counter", ""),
    ("arus_read_model_lag_records", "gauge", ""),
    ("arus_read_model_updates_total", "counter", ""),
    ("arus_ready", "gauge", ""),
    ("arus_rebalances_total", "counter", ""),
    ("arus_records_consumed_total", "counter", ""),
    ("arus_records_invalid_total", "counter", ""),
    ("arus_replayed_hops_skipped_total", "counter", ""),
    ("arus_retries_applied_total", "counter", ""),
    ("arus_retries_exhausted_total", "counter", ""),
    ("arus_retries_scheduled_total", "counter", ""),
    ("arus_rollbacks_total", "counter", ""),
    ("arus_shard_mailbox_depth", "gauge", "metric,shard"),
    ("arus_transactions_committed_total", "counter", ""),
];

/// The families of a scrape: name → (type, label names of its samples;
/// a histogram's own `le` left out).
fn families(text: &str) -> std::collections::BTreeMap<String, (String, String)> {
    let mut out = std::collections::BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("name and type");
            out.insert(name.to_string(), (kind.to_string(), String::new()));
        }
    }
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let key = line.split(' ').next().unwrap_or_default();
        let (sample, labels) = key.split_once('{').unwrap_or((key, ""));
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                sample
                    .strip_suffix(s)
                    .filter(|f| out.get(*f).is_some_and(|(k, _)| k == "histogram"))
            })
            .unwrap_or(sample);
        let mut names: Vec<&str> = labels
            .split("\",")
            .filter_map(|l| l.split_once('=').map(|(n, _)| n.trim_start_matches(',')))
            .filter(|n| !n.is_empty() && *n != "le")
            .collect();
        names.sort_unstable();
        if let Some((_, seen)) = out.get_mut(family) {
            *seen = names.join(",");
        }
    }
    out
}

#[actix_web::test]
async fn every_family_served_before_is_served_with_its_type_and_labels() {
    let app = spawn_app(&[("ARUS__LAG__INTERVAL_MS", "500")]).await;
    send(&app, 0, 100, 100).await;
    assert_counted_exactly(&app, 100).await;
    let (_, _) = app.get("/events/stats").await;
    // The lag monitor's per-partition gauges appear with its first reading.
    let start = std::time::Instant::now();
    let text = loop {
        let (_, text) = app.get_text("/metrics").await;
        if text.contains("arus_consumer_group_lag_records{") || start.elapsed() > WAIT {
            break text;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let served = families(&text);
    for (name, kind, labels) in FAMILIES {
        assert_eq!(
            served.get(name),
            Some(&(kind.to_string(), labels.to_string())),
            "{name}\n{text}"
        );
    }
    assert_eq!(served.len(), FAMILIES.len(), "new families: {served:?}");
    app.stop().await;
}
