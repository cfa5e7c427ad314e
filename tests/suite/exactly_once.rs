//! Invariants 1 and 2 against the real test broker, with exact counts:
//! several instances in one group, rebalances under load, restore from the
//! changelog, and every instance answering for all partitions.

use crate::helpers;

use helpers::workload::{assert_counted_exactly, send, WAIT};
use helpers::{random_prefix, spawn_app_on, test_brokers};
use serde_json::{json, Value};

const GROUP_OF_6: [(&str, &str); 1] = [("ARUS__KAFKA__PARTITIONS", "6")];

#[actix_web::test]
async fn three_instances_count_30000_events_exactly_and_agree() {
    let brokers = test_brokers();
    let prefix = random_prefix();
    let mut apps = Vec::new();
    for n in 0..3 {
        let id = format!("{prefix}i{n}");
        let extra = [GROUP_OF_6[0], ("ARUS__INSTANCE_ID", id.as_str())];
        apps.push(spawn_app_on(&brokers, &prefix, &extra).await);
    }
    // 30 batches of 1,000, ten through each instance.
    let sends = apps
        .iter()
        .enumerate()
        .map(|(n, app)| send(app, n * 10_000, (n + 1) * 10_000, 1000));
    futures::future::join_all(sends).await;

    let mut answers = Vec::new();
    for app in &apps {
        answers.push(assert_counted_exactly(app, 30_000).await);
    }
    for answer in &answers[1..] {
        assert_eq!(answer["eventCounts"], answers[0]["eventCounts"]);
        assert_eq!(answer["sessions"], answers[0]["sessions"]);
        assert_eq!(answer["topPages"], answers[0]["topPages"]);
    }
    // Each instance consumed only its own partitions, all of them together
    // exactly every record once.
    let mut consumed = 0;
    let mut assigned = Vec::new();
    for app in &apps {
        let (_, stats) = app.get("/events/stats").await;
        assert_eq!(stats["totalEvents"], json!(30_000));
        consumed += stats["consumer"]["recordsConsumed"].as_u64().unwrap_or(0);
        for p in stats["consumer"]["assignedPartitions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assigned.push(p.as_str().unwrap_or_default().to_string());
        }
    }
    assert_eq!(consumed, 30_000);
    assigned.sort();
    assert_eq!(
        assigned.len(),
        18,
        "6 partitions of 2 input topics and the retry topic: {assigned:?}"
    );
    assigned.dedup();
    assert_eq!(
        assigned.len(),
        18,
        "a partition assigned twice: {assigned:?}"
    );
    for app in apps {
        app.stop().await;
    }
}

#[actix_web::test]
async fn scaling_one_to_three_to_one_under_load_counts_exactly() {
    let brokers = test_brokers();
    let prefix = random_prefix();
    let spawn = |n: usize| {
        let brokers = brokers.clone();
        let prefix = prefix.clone();
        async move {
            let id = format!("{prefix}s{n}");
            let extra = [GROUP_OF_6[0], ("ARUS__INSTANCE_ID", id.as_str())];
            spawn_app_on(&brokers, &prefix, &extra).await
        }
    };
    let first = spawn(0).await;
    send(&first, 0, 4_000, 500).await;
    // Two more join while events keep coming.
    let (second, third, ()) = futures::join!(spawn(1), spawn(2), send(&first, 4_000, 8_000, 250));
    for joined in [&second, &third] {
        let stats = joined
            .wait_for("/events/stats", WAIT, |b| {
                b["consumer"]["assignedPartitions"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
            })
            .await;
        assert_eq!(
            stats["totalEvents"].as_u64().map(|t| t <= 8_000),
            Some(true)
        );
    }
    send(&second, 8_000, 10_000, 500).await;
    // And leave again, while events keep coming.
    let leaving = async {
        second.stop().await;
        third.stop().await;
    };
    futures::join!(leaving, send(&first, 10_000, 14_000, 250));
    let analytics = assert_counted_exactly(&first, 14_000).await;
    assert_eq!(analytics["totalEvents"], json!(14_000));
    // Once the group settles, the last instance holds every partition again.
    first
        .wait_for("/events/stats", WAIT, |s| {
            s["consumer"]["assignedPartitions"].as_array().map(Vec::len) == Some(18)
        })
        .await;
    first.stop().await;
}

#[actix_web::test]
async fn a_new_instance_restores_from_the_changelog_without_rereading_input() {
    let brokers = test_brokers();
    let prefix = random_prefix();
    let first_id = format!("{prefix}a");
    let first = spawn_app_on(
        &brokers,
        &prefix,
        &[("ARUS__INSTANCE_ID", first_id.as_str())],
    )
    .await;
    send(&first, 0, 3_000, 1000).await;
    assert_counted_exactly(&first, 3_000).await;
    first.stop().await;

    let second_id = format!("{prefix}b");
    let second = spawn_app_on(
        &brokers,
        &prefix,
        &[("ARUS__INSTANCE_ID", second_id.as_str())],
    )
    .await;
    assert_counted_exactly(&second, 3_000).await;
    let (_, stats) = second.get("/events/stats").await;
    assert_eq!(
        stats["consumer"]["recordsConsumed"],
        json!(0),
        "the input was read again: {stats}"
    );
    // New events continue from the restored state.
    send(&second, 3_000, 4_000, 1000).await;
    assert_counted_exactly(&second, 4_000).await;
    let (_, user) = second.get("/events/analytics/users/user-7").await;
    // user-7 has events 7, 1007 and 2007 from before the restart, 3007 after.
    assert_eq!(user["events"], json!(4), "{user}");
    second.stop().await;
}

#[actix_web::test]
async fn a_retried_event_id_counts_once_even_across_a_restart() {
    let brokers = test_brokers();
    let prefix = random_prefix();
    let first_id = format!("{prefix}r1");
    let first = spawn_app_on(
        &brokers,
        &prefix,
        &[("ARUS__INSTANCE_ID", first_id.as_str())],
    )
    .await;
    let login = json!({
        "eventId": "6f1c3f0e-9d0b-4a8e-9b64-3c0a4a7e5d01",
        "userId": "retry-user", "eventType": "login"
    });
    for _ in 0..2 {
        let (status, body) = first.post("/events/user-event", &login).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["eventId"], login["eventId"]);
    }
    // A whole batch retried: each of its events counts once.
    let batch = json!([
        {"eventId": "0b8e2d52-2f43-4c5e-9a3c-7e51d1a0c001", "userId": "retry-user", "eventType": "view"},
        {"eventId": "0b8e2d52-2f43-4c5e-9a3c-7e51d1a0c002", "userId": "other-user", "eventType": "purchase"}
    ]);
    for _ in 0..2 {
        let (status, body) = first.post("/events/batch-events", &batch).await;
        assert_eq!(status, 201, "{body}");
    }
    // Read and dropped at least once each: a rollback under load (an
    // aborted transaction) reads its records again and drops the retries
    // again, so the consumer's counters may be higher; the counts may not.
    let consumed = |s: &Value, records: u64, dropped: u64| {
        s["consumer"]["recordsConsumed"].as_u64() >= Some(records)
            && s["consumer"]["duplicatesDropped"].as_u64() >= Some(dropped)
    };
    let stats = first
        .wait_for("/events/stats", WAIT, |s| {
            consumed(s, 6, 3) && s["totalEvents"].as_u64() >= Some(3)
        })
        .await;
    assert_eq!(stats["totalEvents"], json!(3), "{stats}");
    assert_eq!(
        stats["eventCounts"],
        json!({"login": 1, "logout": 0, "purchase": 1, "view": 1})
    );
    first.stop().await;

    // After a restart, the seen eventIds come back from the changelog: a
    // client retrying now is still not counted twice.
    let second_id = format!("{prefix}r2");
    let second = spawn_app_on(
        &brokers,
        &prefix,
        &[("ARUS__INSTANCE_ID", second_id.as_str())],
    )
    .await;
    let (status, _) = second.post("/events/user-event", &login).await;
    assert_eq!(status, 201);
    let stats = second
        .wait_for("/events/stats", WAIT, |s| consumed(s, 1, 1))
        .await;
    assert_eq!(stats["totalEvents"], json!(3), "{stats}");
    let (_, user) = second.get("/events/analytics/users/retry-user").await;
    assert_eq!(user["events"], json!(2), "{user}");
    second.stop().await;
}
