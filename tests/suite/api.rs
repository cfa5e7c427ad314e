//! The HTTP API against the real test broker: the seed's curl session, key
//! partitioning and ordering, and bad input.

use crate::helpers;

use std::collections::HashMap;
use std::time::Duration;

use helpers::spawn_app;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

#[actix_web::test]
async fn seed_curl_session_is_counted_exactly() {
    let app = spawn_app(&[]).await;
    helpers::seed::session_counts_exactly(&app).await;
    app.stop().await;
}

#[actix_web::test]
async fn one_users_events_stay_in_one_partition_in_order() {
    let app = spawn_app(&[]).await;
    let users = ["alice", "bob", "carol", "dave", "erin", "frank"];
    let per_user = 8;
    for seq in 0..per_user {
        for user in users {
            let kind = ["login", "view", "purchase", "logout"][seq % 4];
            let (status, body) = app
                .post(
                    "/events/user-event",
                    &json!({"userId": user, "eventType": kind, "metadata": {"seq": seq}}),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
    }
    // Read the topic back with a plain consumer, from the beginning.
    let topic = app.topic("user-events");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &app.brokers)
        .set("group.id", format!("{}reader", app.prefix))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset(&topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let total = users.len() * per_user;
    let mut seen: HashMap<String, Vec<(i32, u64)>> = HashMap::new();
    let mut read = 0;
    let deadline = std::time::Instant::now() + WAIT;
    while read < total {
        assert!(
            std::time::Instant::now() < deadline,
            "read {read} of {total} records"
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.expect("record");
        let value: Value = serde_json::from_slice(message.payload().expect("value")).expect("json");
        let key = std::str::from_utf8(message.key().expect("key")).expect("utf8");
        assert_eq!(value["userId"], json!(key), "the record key is the userId");
        seen.entry(key.to_string()).or_default().push((
            message.partition(),
            value["metadata"]["seq"].as_u64().expect("seq"),
        ));
        read += 1;
    }
    assert_eq!(seen.len(), users.len());
    let mut partitions_used = std::collections::HashSet::new();
    for (user, records) in &seen {
        let partitions: std::collections::HashSet<i32> = records.iter().map(|(p, _)| *p).collect();
        assert_eq!(
            partitions.len(),
            1,
            "{user} spans partitions {partitions:?}"
        );
        partitions_used.extend(partitions);
        let order: Vec<u64> = records.iter().map(|(_, s)| *s).collect();
        assert_eq!(
            order,
            (0..per_user as u64).collect::<Vec<_>>(),
            "{user} out of order"
        );
    }
    // Six users over three partitions: keys really are spread.
    assert!(
        partitions_used.len() > 1,
        "all users hashed to one partition"
    );
    let counts = app
        .wait_for("/events/analytics/event-counts", WAIT, |b| {
            b["total"] == json!(total)
        })
        .await;
    assert_eq!(
        counts["eventCounts"],
        json!({"login": 12, "logout": 12, "purchase": 12, "view": 12})
    );
    let (_, sessions) = app.get("/events/analytics/sessions").await;
    assert_eq!(sessions["completedSessions"], json!(12));
    assert_eq!(sessions["activeSessions"], json!(0));
    app.stop().await;
}

#[actix_web::test]
async fn bad_input_is_refused_and_nothing_reaches_kafka() {
    let app = spawn_app(&[
        ("ARUS__HTTP__MAX_BATCH_SIZE", "5"),
        ("ARUS__HTTP__MAX_BODY_BYTES", "2048"),
    ])
    .await;
    let valid = json!({"userId": "u", "eventType": "login"});
    let cases: Vec<(&str, String, u16, &str, Option<&str>)> = vec![
        (
            "/events/user-event",
            "{not json".into(),
            400,
            "malformed_json",
            None,
        ),
        (
            "/events/user-event",
            String::new(),
            400,
            "malformed_json",
            None,
        ),
        (
            "/events/user-event",
            json!({"eventType": "login"}).to_string(),
            400,
            "validation_failed",
            Some("userId"),
        ),
        (
            "/events/user-event",
            json!({"userId": "", "eventType": "login"}).to_string(),
            400,
            "validation_failed",
            Some("userId"),
        ),
        (
            "/events/user-event",
            json!({"userId": "u", "eventType": "signup"}).to_string(),
            400,
            "validation_failed",
            Some("eventType"),
        ),
        (
            "/events/page-view",
            json!({"userId": "u", "referrer": "/"}).to_string(),
            400,
            "validation_failed",
            Some("url"),
        ),
        (
            "/events/page-view",
            json!({"userId": "u", "url": "/", "duration": -1}).to_string(),
            400,
            "validation_failed",
            Some("duration"),
        ),
        (
            "/events/user-event",
            json!({"userId": "u", "eventType": "login", "timestamp": 1_700_000_000}).to_string(),
            400,
            "validation_failed",
            Some("timestamp"),
        ),
        (
            "/events/batch-events",
            json!({"userId": "u", "eventType": "login"}).to_string(),
            400,
            "bad_request",
            None,
        ),
        (
            "/events/batch-events",
            "[]".into(),
            400,
            "bad_request",
            None,
        ),
        (
            "/events/batch-events",
            json!([valid, valid, {"userId": "u", "eventType": "nap"}, valid]).to_string(),
            400,
            "validation_failed",
            Some("[2].eventType"),
        ),
        (
            "/events/batch-events",
            json!([valid, valid, valid, valid, valid, valid]).to_string(),
            413,
            "payload_too_large",
            None,
        ),
        (
            "/events/user-event",
            json!({"userId": "u", "eventType": "login", "metadata": {"pad": "x".repeat(4096)}})
                .to_string(),
            413,
            "payload_too_large",
            None,
        ),
    ];
    for (path, body, status, code, field) in cases {
        let (got, answer) = app.post_raw(path, body.clone()).await;
        assert_eq!(got, status, "{path} {body}: {answer}");
        assert_eq!(
            answer["error"]["code"],
            json!(code),
            "{path} {body}: {answer}"
        );
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
        if let Some(field) = field {
            assert_eq!(answer["error"]["field"], json!(field), "{answer}");
        }
    }
    let (status, answer) = app.get("/events/analytics/top-pages?limit=0").await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = app.get("/no/such/route").await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (404, json!("not_found"))
    );

    // Nothing of the above was written.
    assert_eq!(app.end_offsets(&app.topic("user-events"), 3), vec![0, 0, 0]);
    assert_eq!(app.end_offsets(&app.topic("page-views"), 3), vec![0, 0, 0]);
    app.stop().await;
}

/// The schemas events are checked against are served as their files hold
/// them, so a client can check an event before sending it.
#[actix_web::test]
async fn the_event_schemas_are_served_as_in_their_files() {
    let app = spawn_app(&[]).await;
    let (status, listed) = app.get("/v1/schemas").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed,
        json!({
            "header": "schema-version",
            "currentVersions": {"user-event": "1", "page-view": "2"},
            "schemas": [
                {"kind": "user-event", "version": "1", "current": true, "path": "/v1/schemas/user-event/1"},
                {"kind": "page-view", "version": "1", "current": false, "path": "/v1/schemas/page-view/1"},
                {"kind": "page-view", "version": "2", "current": true, "path": "/v1/schemas/page-view/2"},
            ]
        })
    );
    for (kind, version, file) in [
        (
            "user-event",
            1,
            include_str!("../../config/schemas/user-event.v1.json"),
        ),
        (
            "page-view",
            1,
            include_str!("../../config/schemas/page-view.v1.json"),
        ),
        (
            "page-view",
            2,
            include_str!("../../config/schemas/page-view.v2.json"),
        ),
    ] {
        let (status, document) = app.get(&format!("/v1/schemas/{kind}/{version}")).await;
        assert_eq!(status, 200, "{document}");
        let expected: Value = serde_json::from_str(file).expect("the file is JSON");
        assert_eq!(document, expected);
    }
    let (status, answer) = app.get("/v1/schemas/user-event/2").await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (404, json!("not_found"))
    );
    let (status, answer) = app.get("/v1/schemas/click/1").await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (404, json!("not_found"))
    );
    app.stop().await;
}
