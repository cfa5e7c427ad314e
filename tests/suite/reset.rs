//! Offset admin and replay: resetting arus's own group to earliest replays
//! every record and counts nothing twice; with `rebuild` the state is
//! deleted and recomputed, to exactly the entries it had; timestamps and
//! explicit offsets land where they should; another member in the group,
//! or a bad request, is refused; an empty foreign group is reset by a plain
//! commit.

use crate::helpers;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::partitioner::java_partition;
use helpers::broker::OwnBroker;
use helpers::workload::{assert_counted_exactly, send, WAIT};
use helpers::{random_prefix, spawn_app_on, TestApp};
use rdkafka::message::Message as _;
use serde_json::{json, Value};

const ADMIN: (&str, &str) = ("x-admin-token", "reset-admin-token-0123");
const PARTITIONS: i32 = 3;
const USER_EVENTS: usize = 4_000;
const PAGE_VIEWS: usize = 60;
/// Event hops of the workload: every user event goes to event-counts and
/// users, logins and logouts (half of them) to sessions too; every page
/// view to users and top-pages.
const HOPS: u64 = (USER_EVENTS * 2 + USER_EVENTS / 2 + PAGE_VIEWS * 2) as u64;

async fn consumer_stats(app: &TestApp) -> (u64, u64) {
    let (_, stats) = app.get("/events/stats").await;
    let c = &stats["consumer"];
    (
        c["recordsConsumed"].as_u64().expect("recordsConsumed"),
        c["replayedHopsSkipped"]
            .as_u64()
            .expect("replayedHopsSkipped"),
    )
}

/// Waits until the instance has consumed exactly `records` and skipped
/// `skipped` replayed hops, and its group has nothing left to read.
async fn wait_replayed(app: &TestApp, group: &str, records: u64, skipped: u64) {
    let start = Instant::now();
    loop {
        let now = consumer_stats(app).await;
        if now.0 >= records && now.1 >= skipped {
            assert_eq!(
                now,
                (records, skipped),
                "more consumed or skipped than expected"
            );
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "replay stuck at {now:?}, expected ({records}, {skipped})"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let path = format!("/v1/consumer-groups/{group}/offsets");
    let start = Instant::now();
    loop {
        let (_, offsets) = app.get_with(&path, ADMIN).await;
        let caught_up = offsets["partitions"]
            .as_array()
            .expect("partitions")
            .iter()
            .filter(|p| !p["topic"].as_str().unwrap_or("").ends_with("retry-events"))
            // A partition nothing was written to has nothing to commit
            // (which partitions the users hash to is the partitioner's).
            .all(|p| p["committed"] == p["end"] || p["end"] == p["start"]);
        if caught_up {
            break;
        }
        assert!(start.elapsed() < WAIT, "not committed: {offsets}");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The changelog's state entries now (latest value per key, tombstones
/// applied); without the eventId buckets (whose grouping depends on commit
/// timing) unless `with_seen`.
fn state_entries(app: &TestApp, with_seen: bool) -> BTreeMap<String, String> {
    let mut entries = BTreeMap::new();
    for m in app.read_all(&app.topic("analytics-events"), PARTITIONS) {
        let key = String::from_utf8_lossy(m.key().expect("changelog key")).to_string();
        match m.payload() {
            Some(value) => entries.insert(key, String::from_utf8_lossy(value).to_string()),
            None => entries.remove(&key),
        };
    }
    // Ownership records are no partition's state (a rebuild keeps them).
    entries.retain(|key, _| (with_seen || !key.starts_with("seen/")) && !key.starts_with("owner/"));
    entries
}

fn moves(answer: &Value) -> Vec<(String, i64, i64)> {
    answer["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| {
            (
                p["topic"].as_str().expect("topic").to_string(),
                p["partition"].as_i64().expect("partition"),
                p["to"].as_i64().expect("to"),
            )
        })
        .collect()
}

#[actix_web::test]
async fn reset_replays_without_double_counting_and_rebuild_recomputes_the_same_state() {
    // End offsets and offsets by time must be exact: a broker of the test's
    // own (see OwnBroker).
    let broker = OwnBroker::start("reset");
    let prefix = random_prefix();
    let app = spawn_app_on(
        &broker.address(),
        &prefix,
        &[("ARUS__SECURITY__ADMIN_TOKEN", ADMIN.1)],
    )
    .await;
    let group = format!("{prefix}group");
    let reset_path = format!("/v1/consumer-groups/{group}/reset");
    let (user_events, page_views) = (app.topic("user-events"), app.topic("page-views"));

    // Half the user events, a moment, the other half: a reset to that
    // moment lands exactly between them.
    send(&app, 0, USER_EVENTS / 2, 1000).await;
    actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    let middle = chrono::Utc::now().timestamp_millis();
    actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    send(&app, USER_EVENTS / 2, USER_EVENTS, 1000).await;
    for i in 0..PAGE_VIEWS {
        let view = json!({"userId": format!("user-{}", i % 7), "url": format!("/docs/{}", i % 5), "duration": 10});
        let (status, body) = app.post("/events/page-view", &view).await;
        assert_eq!(status, 201, "{body}");
    }
    let counted = assert_counted_exactly(&app, USER_EVENTS).await;
    let pages = app
        .wait_for("/v1/top-pages", WAIT, |p| {
            p["topPages"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x["views"].as_u64()).sum::<u64>())
                == Some(PAGE_VIEWS as u64)
        })
        .await;
    let records = (USER_EVENTS + PAGE_VIEWS) as u64;
    wait_replayed(&app, &group, records, 0).await;
    let before = state_entries(&app, false);
    assert!(before.len() > 1_000, "{} entries", before.len());

    // Refused: no token, a target that does not exist, the retry topic, an
    // offset outside the partition, a rebuild of part of the state.
    let (status, _) = app.post(&reset_path, &json!({"to": "earliest"})).await;
    assert_eq!(status, 401);
    for (body, code) in [
        (json!({"to": "yesterday"}), "malformed_json"),
        (
            json!({"to": "earliest", "topics": [app.topic("retry-events")]}),
            "bad_request",
        ),
        (
            json!({"to": "offsets", "offsets": [{"topic": user_events, "partition": 0, "offset": 1_000_000}]}),
            "bad_request",
        ),
        (
            json!({"to": "earliest", "topics": [user_events], "rebuild": true}),
            "bad_request",
        ),
    ] {
        let (status, answer) = app.post_with(&reset_path, &body, ADMIN).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], json!(code), "{answer}");
    }

    // To earliest: every record read again, every hop skipped, counts unchanged.
    let (status, answer) = app
        .post_with(&reset_path, &json!({"to": "earliest"}), ADMIN)
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["entriesDeleted"], json!(0));
    assert_eq!(moves(&answer).len(), 6, "{answer}");
    assert!(moves(&answer).iter().all(|(_, _, to)| *to == 0), "{answer}");
    wait_replayed(&app, &group, 2 * records, HOPS).await;
    let (_, analytics) = app.get("/events/analytics").await;
    assert_eq!(analytics["eventCounts"], counted["eventCounts"]);
    assert_eq!(analytics["sessions"], counted["sessions"]);
    assert_eq!(analytics["uniqueUsers"], counted["uniqueUsers"]);
    assert_eq!(analytics["totalEvents"], json!(USER_EVENTS));
    assert_eq!(
        state_entries(&app, false),
        before,
        "a replay changed the state"
    );

    // Rebuild: every entry deleted in the reset's transaction (eventId
    // buckets included; there are no dead letters in this workload), then
    // recomputed from the records, none skipped, to exactly the same state.
    let live = state_entries(&app, true).len();
    let (status, answer) = app
        .post_with(
            &reset_path,
            &json!({"to": "earliest", "rebuild": true}),
            ADMIN,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["entriesDeleted"], json!(live), "{answer}");
    wait_replayed(&app, &group, 3 * records, HOPS).await;
    let rebuilt = assert_counted_exactly(&app, USER_EVENTS).await;
    assert_eq!(rebuilt["eventCounts"], counted["eventCounts"]);
    assert_eq!(rebuilt["sessions"], counted["sessions"]);
    let (_, pages_again) = app.get("/v1/top-pages").await;
    assert_eq!(pages_again["topPages"], pages["topPages"]);
    assert_eq!(
        state_entries(&app, false),
        before,
        "the rebuild computed another state"
    );

    // To a timestamp, on user-events: exactly the second half of them is
    // after it.
    let (status, answer) = app
        .post_with(
            &reset_path,
            &json!({"to": "timestamp", "timestamp": middle, "topics": [user_events]}),
            ADMIN,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let ends = app.end_offsets(&user_events, PARTITIONS);
    let replayed: i64 = moves(&answer)
        .iter()
        .map(|(_, p, to)| ends[*p as usize] - to)
        .sum();
    assert_eq!(replayed, (USER_EVENTS / 2) as i64, "{answer}");
    // A user event is two hops, a login or logout three.
    let half_hops = (USER_EVENTS / 2 * 2 + USER_EVENTS / 4) as u64;
    let mut consumed = 3 * records + USER_EVENTS as u64 / 2;
    let mut skipped = HOPS + half_hops;
    wait_replayed(&app, &group, consumed, skipped).await;
    // To latest: nothing to read.
    let (status, answer) = app
        .post_with(&reset_path, &json!({"to": "latest"}), ADMIN)
        .await;
    assert_eq!(status, 200, "{answer}");
    let page_ends = app.end_offsets(&page_views, PARTITIONS);
    for (topic, p, to) in moves(&answer) {
        let end = if topic == user_events {
            ends[p as usize]
        } else {
            page_ends[p as usize]
        };
        assert_eq!(to, end, "{topic}/{p}");
    }
    // Explicit: ten records back on one partition.
    let (status, answer) = app
        .post_with(
            &reset_path,
            &json!({"to": "offsets", "offsets": [{"topic": user_events, "partition": 1, "offset": ends[1] - 10}]}),
            ADMIN,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(moves(&answer), vec![(user_events.clone(), 1, ends[1] - 10)]);
    let last_ten = app
        .read_all(&user_events, PARTITIONS)
        .into_iter()
        .filter(|m| m.partition() == 1 && m.offset() >= ends[1] - 10)
        .map(|m| {
            let event: Value = serde_json::from_slice(m.payload().expect("value")).expect("json");
            match event["eventType"].as_str() {
                Some("login" | "logout") => 3,
                _ => 2,
            }
        })
        .collect::<Vec<u64>>();
    assert_eq!(last_ten.len(), 10);
    consumed += 10;
    skipped += last_ten.iter().sum::<u64>();
    wait_replayed(&app, &group, consumed, skipped).await;
    let (_, analytics) = app.get("/events/analytics").await;
    assert_eq!(analytics["eventCounts"], counted["eventCounts"]);

    // After a reset of user-events/1 alone, page views of partition 1
    // still make visits: its page-views partner was restored with it (the
    // two share the partition number's visits). One page view each for
    // users of every partition, 1 among them: a visit (a bounce) each.
    let newcomers: Vec<String> = (0..)
        .map(|i| format!("after-reset-{i}"))
        .filter(|u| java_partition(u.as_bytes(), PARTITIONS as u32) == 1)
        .take(3)
        .chain(
            (0..)
                .map(|i| format!("elsewhere-{i}"))
                .filter(|u| java_partition(u.as_bytes(), PARTITIONS as u32) != 1)
                .take(3),
        )
        .collect();
    let visits_query =
        json!({"metrics": ["visits", "bounce_rate", "pageviews"], "date_range": "all"});
    let (status, totals) = app.post("/v1/query", &visits_query).await;
    assert_eq!(status, 200, "{totals}");
    let metric =
        |answer: &Value, i: usize| answer["results"][0]["metrics"][i].as_f64().expect("metric");
    let visits_before = metric(&totals, 0);
    assert_eq!(metric(&totals, 2), PAGE_VIEWS as f64, "{totals}");
    for user in &newcomers {
        let view = json!({"userId": user, "url": "/after-reset", "duration": 5});
        let (status, body) = app.post("/events/page-view", &view).await;
        assert_eq!(status, 201, "{body}");
    }
    let expected = visits_before + newcomers.len() as f64;
    let start = Instant::now();
    loop {
        let (_, now) = app.post("/v1/query", &visits_query).await;
        if metric(&now, 2) == (PAGE_VIEWS + newcomers.len()) as f64 && metric(&now, 0) >= expected {
            assert_eq!(metric(&now, 0), expected, "{now}");
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "the newcomers' visits are not counted: {now}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }

    // Another group, with nobody in it: a plain commit.
    let other = format!("{prefix}other");
    let (status, answer) = app
        .post_with(
            &format!("/v1/consumer-groups/{other}/reset"),
            &json!({"to": "latest", "rebuild": true}),
            ADMIN,
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = app
        .post_with(
            &format!("/v1/consumer-groups/{other}/reset"),
            &json!({"to": "latest"}),
            ADMIN,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (_, offsets) = app
        .get_with(&format!("/v1/consumer-groups/{other}/offsets"), ADMIN)
        .await;
    let committed: Vec<(String, i64, i64)> = offsets["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .filter(|p| p["topic"] == json!(user_events))
        .map(|p| {
            (
                user_events.clone(),
                p["partition"].as_i64().expect("partition"),
                p["committed"].as_i64().expect("committed"),
            )
        })
        .collect();
    assert_eq!(
        committed,
        (0..PARTITIONS as i64)
            .map(|p| (user_events.clone(), p, ends[p as usize]))
            .collect::<Vec<_>>()
    );

    // A second instance in the group: refused, naming it.
    let second = spawn_app_on(
        &broker.address(),
        &prefix,
        &[
            ("ARUS__SECURITY__ADMIN_TOKEN", ADMIN.1),
            ("ARUS__INSTANCE_ID", "second"),
        ],
    )
    .await;
    second
        .wait_for("/events/stats", WAIT, |s| {
            s["consumer"]["assignedPartitions"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        })
        .await;
    let (status, answer) = app
        .post_with(&reset_path, &json!({"to": "earliest"}), ADMIN)
        .await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], json!("conflict"));
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("arus-second-consumer"), "{message}");
    second.stop().await;
    app.stop().await;
    drop(broker);
}
