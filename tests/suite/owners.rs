//! Per-user queries are answered by the owner of the user's partition,
//! from any instance: the owners name themselves in the changelog, the
//! others forward, and the answer says who answered.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::message::Message as _;
use serde_json::{json, Value};

use crate::helpers::workload::WAIT;
use crate::helpers::{random_prefix, spawn_app_on, test_brokers, TestApp};
use crate::partitioner::java_partition;

const PARTITIONS: u32 = 3;

/// Which instance holds each `user-events` partition, once both hold some
/// and every partition is held.
async fn owners(apps: &[(&str, &TestApp)]) -> BTreeMap<u32, String> {
    let start = Instant::now();
    loop {
        let mut held = BTreeMap::new();
        let mut everyone = true;
        for (id, app) in apps {
            let (_, stats) = app.get("/events/stats").await;
            let mine: Vec<u32> = stats["consumer"]["assignedPartitions"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .filter_map(|p| p.as_str()?.strip_prefix("user-events/")?.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            everyone &= !mine.is_empty();
            for p in mine {
                held.insert(p, id.to_string());
            }
        }
        if everyone && held.len() == PARTITIONS as usize {
            return held;
        }
        assert!(start.elapsed() < WAIT, "partitions not spread: {held:?}");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn a_users_answer_comes_from_its_owner_through_any_instance() {
    let brokers = test_brokers();
    let prefix = random_prefix();
    let ids = [format!("{prefix}o0"), format!("{prefix}o1")];
    let mut apps = Vec::new();
    for id in &ids {
        // The range assignor splits each topic's partitions between the
        // members (a sticky one may leave a member the retry topic only).
        let extra = [
            ("ARUS__KAFKA__PARTITIONS", "3"),
            ("ARUS__KAFKA__ASSIGNMENT_STRATEGY", "range"),
            ("ARUS__INSTANCE_ID", id.as_str()),
        ];
        apps.push(spawn_app_on(&brokers, &prefix, &extra).await);
    }
    let named: Vec<(&str, &TestApp)> = ids.iter().map(String::as_str).zip(&apps).collect();
    let held = owners(&named).await;

    // Two users of every partition, each with as many events as its number.
    let users: Vec<(String, u32)> = (0..)
        .map(|i| format!("owned-{i}"))
        .map(|u| {
            let p = java_partition(u.as_bytes(), PARTITIONS);
            (u, p)
        })
        .scan(BTreeMap::<u32, usize>::new(), |seen, (u, p)| {
            let n = seen.entry(p).or_default();
            *n += 1;
            Some((*n <= 2).then_some((u, p)))
        })
        .flatten()
        .take(2 * PARTITIONS as usize)
        .collect();
    let mut events = Vec::new();
    for (i, (user, _)) in users.iter().enumerate() {
        for _ in 0..=i {
            events.push(json!({"userId": user, "eventType": "view"}));
        }
    }
    let (status, answer) = apps[0].post("/events/batch-events", &json!(events)).await;
    assert_eq!(status, 201, "{answer}");
    let total = events.len();
    for app in &apps {
        app.wait_for("/events/stats", WAIT, |s| {
            s["totalEvents"].as_u64() == Some(total as u64) && s["lag"] == json!(0)
        })
        .await;
    }

    // Each owner named itself in the changelog, with the address it is at.
    let mut named_owners = BTreeMap::new();
    for m in apps[0].read_all(&apps[0].topic("analytics-events"), PARTITIONS as i32) {
        let key = String::from_utf8_lossy(m.key().unwrap_or_default()).to_string();
        if let Some(p) = key.strip_prefix("owner/") {
            let record: Value =
                serde_json::from_slice(m.payload().expect("a record")).expect("json");
            named_owners.insert(p.parse::<u32>().expect("partition"), record);
        }
    }
    for (p, id) in &held {
        let at = named
            .iter()
            .position(|(name, _)| name == id)
            .expect("an instance");
        assert_eq!(
            named_owners.get(p),
            Some(&json!({"instance": id, "url": apps[at].address})),
            "{named_owners:?}"
        );
    }

    // Every instance gives each user's answer, from its owner.
    for (i, (user, p)) in users.iter().enumerate() {
        let path = format!("/events/analytics/users/{user}");
        let mut answers = Vec::new();
        for app in &apps {
            let (status, answer) = app.get(&path).await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(
                answer["answeredBy"],
                json!(held[p]),
                "{user} on {p}: {answer}"
            );
            assert_eq!(answer["partition"], json!(p), "{answer}");
            assert_eq!(answer["events"], json!(i + 1), "{answer}");
            answers.push(answer);
        }
        let strip = |a: &Value| {
            let mut a = a.clone();
            a["lag"] = Value::Null;
            a["asOf"] = Value::Null;
            a
        };
        assert_eq!(strip(&answers[0]), strip(&answers[1]));
    }

    // A request another instance forwarded is never forwarded again: the
    // instance that does not own the partition says so, 503 with a retry.
    let (user, p) = &users[0];
    let stranger = named
        .iter()
        .find(|(id, _)| *id != held[p])
        .map(|(_, app)| *app)
        .expect("a non-owner");
    let resp = awc::Client::default()
        .get(stranger.url(&format!("/events/analytics/users/{user}")))
        .insert_header(("x-arus-forwarded-by", "elsewhere"))
        .send()
        .await
        .expect("answered");
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );

    // The second instance leaves: the first takes its partitions, names
    // itself their owner, and answers for their users.
    let first_id = ids[0].clone();
    let second = apps.pop().expect("two instances");
    second.stop().await;
    let first = apps.pop().expect("the first");
    let moved: Vec<&(String, u32)> = users.iter().filter(|(_, p)| held[p] != first_id).collect();
    assert!(!moved.is_empty(), "{held:?}");
    for (user, _) in moved {
        let path = format!("/events/analytics/users/{user}");
        let start = Instant::now();
        loop {
            let (status, answer) = first.get(&path).await;
            if status == 200 && answer["answeredBy"] == json!(first_id) {
                let i = users.iter().position(|(u, _)| u == user).expect("a user");
                assert_eq!(answer["events"], json!(i + 1), "{answer}");
                break;
            }
            // Meanwhile: the former owner is gone (no answer) or the
            // partition is restoring here: 503, never another number.
            assert_eq!(status, 503, "{answer}");
            assert!(
                start.elapsed() < WAIT,
                "{user} still not answered here: {answer}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut last_owner = BTreeMap::new();
    for m in first.read_all(&first.topic("analytics-events"), PARTITIONS as i32) {
        let key = String::from_utf8_lossy(m.key().unwrap_or_default()).to_string();
        if let Some(p) = key.strip_prefix("owner/") {
            let record: Value =
                serde_json::from_slice(m.payload().expect("a record")).expect("json");
            last_owner.insert(p.to_string(), record["instance"].clone());
        }
    }
    assert_eq!(
        last_owner.values().collect::<Vec<_>>(),
        vec![&json!(first_id); PARTITIONS as usize]
    );
    first.stop().await;
}
