//! One partitioner for everyone: a user's records land in the same
//! partition whether arus's ingest or another Kafka client wrote them, so
//! one user's page views and user events meet on one partition number.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::spawn_app;

const WAIT: Duration = Duration::from_secs(30);

/// The Java client's partition for a key: murmur2 made positive, modulo
/// the partition count (arus's own computation of it, held to Kafka's
/// published murmur2 vectors in its unit test).
pub fn java_partition(key: &[u8], partitions: u32) -> u32 {
    let key = std::str::from_utf8(key).expect("a UTF-8 key");
    let partitions = i32::try_from(partitions).expect("a partition count");
    arus::kafka::partitioner::partition_of(key, partitions, "murmur2_random")
        .and_then(|p| u32::try_from(p).ok())
        .expect("murmur2 is computed")
}

/// arus's ingest puts 300 users where the Java partitioner does, and
/// kafkajs (the seed's client, a different implementation) puts the same
/// users in the same partitions; arus counts kafkajs's records too.
#[actix_web::test]
async fn a_user_lands_where_the_java_client_and_kafkajs_put_it() {
    let tools = std::env::var("ARUS_TEST_NODE_TOOLS").unwrap_or_else(|_| {
        panic!(
            "ARUS_TEST_NODE_TOOLS is not set: run the tests with scripts/test.sh, \
             which installs kafkajs"
        )
    });
    let app = spawn_app(&[]).await;
    let users: Vec<String> = (0..300).map(|i| format!("visitor-{i}")).collect();
    let batch: Vec<Value> = users
        .iter()
        .map(|u| json!({"userId": u, "eventType": "view"}))
        .collect();
    let (status, answer) = app.post("/events/batch-events", &json!(batch)).await;
    assert_eq!(status, 201, "{answer}");
    let arus: Vec<u32> = answer["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["partition"].as_u64().expect("partition") as u32)
        .collect();
    let reference: Vec<u32> = users
        .iter()
        .map(|u| java_partition(u.as_bytes(), 3))
        .collect();
    assert_eq!(arus, reference, "arus's ingest is not the Java partitioner");
    assert!(
        (0..3).all(|p| reference.contains(&p)),
        "the users spread over every partition"
    );

    // kafkajs writes a login for every tenth user to the same topic.
    let sample: Vec<&str> = users.iter().step_by(10).map(String::as_str).collect();
    let output = std::process::Command::new("node")
        .arg(format!("{tools}/kafkajs-produce.mjs"))
        .arg(&app.brokers)
        .arg(app.topic("user-events"))
        .args(&sample)
        .output()
        .expect("node runs");
    assert!(
        output.status.success(),
        "kafkajs: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let placed: Vec<(String, u32)> = serde_json::from_slice(&output.stdout).expect("placements");
    assert_eq!(placed.len(), sample.len());
    for (user, partition) in &placed {
        let i: usize = user["visitor-".len()..].parse().expect("index");
        assert_eq!(*partition, arus[i], "{user}: kafkajs and arus disagree");
    }

    let total = (users.len() + sample.len()) as u64;
    let stats = app
        .wait_for("/events/stats", WAIT, |b| {
            b["totalEvents"].as_u64() == Some(total)
        })
        .await;
    assert_eq!(stats["eventsByType"]["login"], json!(sample.len()));
    assert_eq!(stats["eventsByType"]["view"], json!(users.len()));
    let (_, user) = app.get("/events/analytics/users/visitor-0").await;
    assert_eq!(user["events"], json!(2), "{user}");
    app.stop().await;
}
