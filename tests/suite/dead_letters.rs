//! Invariant 3: nothing blocks a partition. Poison records produced straight
//! into the input go to the dead-letter topic, with their key, value and
//! headers and headers naming the error; every good record is counted.

use crate::helpers;

use std::collections::HashMap;
use std::time::Duration;

use futures::future::join_all;
use helpers::spawn_app;
use helpers::workload::WAIT;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::json;

const GOOD: usize = 10_000;
const POISON: usize = 1_000;
const ADMIN: &str = "admin-token-0123456789";

/// The `j`-th poison record: (key, value, schema version header).
fn poison(j: usize) -> (String, Option<Vec<u8>>, Option<&'static str>) {
    let key = format!("poison-{j}");
    match j % 6 {
        0 => (key, Some(b"{not json".to_vec()), None),
        1 => (
            key,
            Some(br#"{"userId": 5, "eventType": "login"}"#.to_vec()),
            None,
        ),
        2 => (
            key,
            Some(br#"{"userId": "u", "eventType": "dance"}"#.to_vec()),
            None,
        ),
        // A few 900 KB values; the other records of this kind lack userId.
        3 if j % 200 == 3 => (key, Some(vec![b'x'; 900 * 1024]), None),
        3 => (key, Some(br#"{"eventType": "login"}"#.to_vec()), None),
        // A good value under a schema version this build does not know.
        4 => (
            key,
            Some(br#"{"userId": "u", "eventType": "login"}"#.to_vec()),
            Some("2"),
        ),
        _ => (key, None, None),
    }
}

/// The start of the `x-error-message` header of the `j`-th poison record:
/// what its schema (or the decoder, before any schema) found.
fn poison_message(j: usize) -> &'static str {
    match j % 6 {
        0 => "value is not JSON: ",
        3 if j % 200 == 3 => "value is not JSON: ",
        1 => "userId: must be a string",
        2 => "eventType: must be one of login, logout, purchase, view (got \"dance\")",
        3 => "userId: is required",
        4 => "unknown schema version \"2\"",
        _ => "record has no value",
    }
}

#[actix_web::test]
async fn poison_records_go_to_the_dead_letter_topic_and_the_partition_keeps_moving() {
    let app = spawn_app(&[("ARUS__SECURITY__ADMIN_TOKEN", ADMIN)]).await;
    let topic = app.topic("user-events");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &app.brokers)
        .set("message.max.bytes", "2000000")
        .create()
        .expect("producer");

    // Every 11th record is poison: 10,000 good, 1,000 poison, interleaved.
    let mut poison_at: HashMap<(i32, i64), usize> = HashMap::new();
    let total = GOOD + POISON;
    for chunk in (0..total).collect::<Vec<_>>().chunks(500) {
        let sends = chunk.iter().map(|&i| {
            let producer = &producer;
            let topic = &topic;
            async move {
                let (key, value, version, poison_index) = if i % 11 == 10 {
                    let j = i / 11;
                    let (key, value, version) = poison(j);
                    (key, value, version, Some(j))
                } else {
                    let g = i - i / 11;
                    let kind = ["login", "view", "purchase", "logout"][g % 4];
                    let user = format!("user-{}", g % 500);
                    let value = json!({"userId": user, "eventType": kind})
                        .to_string()
                        .into_bytes();
                    (user, Some(value), None, None)
                };
                let mut headers = OwnedHeaders::new().insert(Header {
                    key: "origin",
                    value: Some("test"),
                });
                if let Some(version) = version {
                    headers = headers.insert(Header {
                        key: "schema-version",
                        value: Some(version),
                    });
                }
                let mut record = FutureRecord::<String, Vec<u8>>::to(topic)
                    .key(&key)
                    .headers(headers);
                if let Some(value) = &value {
                    record = record.payload(value);
                }
                let (partition, offset) = producer
                    .send(record, Duration::from_secs(10))
                    .await
                    .map(|d| (d.partition, d.offset))
                    .expect("written");
                ((partition, offset), poison_index)
            }
        });
        for (at, j) in join_all(sends).await {
            if let Some(j) = j {
                poison_at.insert(at, j);
            }
        }
    }
    assert_eq!(poison_at.len(), POISON);

    let analytics = app
        .wait_for("/events/analytics", WAIT, |b| {
            b["totalEvents"].as_u64() >= Some(GOOD as u64) && b["lag"] == json!(0)
        })
        .await;
    assert_eq!(analytics["totalEvents"], json!(GOOD));
    assert_eq!(
        analytics["eventCounts"],
        json!({"login": 2500, "logout": 2500, "purchase": 2500, "view": 2500})
    );
    let stats = app
        // The read model (all partitions) and this instance's committer.
        .wait_for("/events/stats", WAIT, |s| {
            s["deadLetters"] == json!(POISON) && s["consumer"]["deadLetters"] == json!(POISON)
        })
        .await;
    assert_eq!(stats["consumer"]["deadLetters"], json!(POISON));
    assert_eq!(stats["consumer"]["recordsInvalid"], json!(POISON));

    // Every dead letter: the original record and headers naming the error,
    // and nothing beyond the thousand.
    let letters = app.read_all(&app.topic("error-events"), 3);
    assert_eq!(letters.len(), POISON);
    let mut found: HashMap<(i32, i64), usize> = HashMap::new();
    for m in &letters {
        let header = |name: &str| {
            m.headers()
                .and_then(|hs| hs.iter().find(|h| h.key == name))
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(header("x-error-class").as_deref(), Some("permanent"));
        assert_eq!(header("x-source-topic").as_deref(), Some(topic.as_str()));
        assert_eq!(header("x-attempt").as_deref(), Some("1"));
        assert_eq!(
            header("origin").as_deref(),
            Some("test"),
            "original headers kept"
        );
        assert!(header("x-error-message").is_some_and(|e| !e.is_empty()));
        assert!(header("x-source-timestamp").is_some_and(|t| t.parse::<i64>().is_ok()));
        let at = (
            header("x-source-partition")
                .and_then(|p| p.parse().ok())
                .expect("partition"),
            header("x-source-offset")
                .and_then(|o| o.parse().ok())
                .expect("offset"),
        );
        let j = *poison_at
            .get(&at)
            .unwrap_or_else(|| panic!("{at:?} was not poison"));
        let (key, value, version) = poison(j);
        assert_eq!(m.key(), Some(key.as_bytes()), "key kept");
        assert_eq!(m.payload().map(<[u8]>::to_vec), value, "value kept");
        assert_eq!(header("schema-version").as_deref(), version);
        let message = header("x-error-message").unwrap_or_default();
        assert!(
            message.starts_with(poison_message(j)),
            "poison {j}: {message:?}"
        );
        assert!(found.insert(at, j).is_none(), "{at:?} dead-lettered twice");
    }
    assert_eq!(found.len(), POISON);

    let (status, listed) = app
        .get_with("/v1/dead-letters?limit=5", ("x-admin-token", ADMIN))
        .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["count"], json!(5));
    assert_eq!(listed["total"], json!(POISON));
    for letter in listed["deadLetters"].as_array().expect("list") {
        assert_eq!(letter["error"]["error-class"], json!("permanent"));
        assert_eq!(letter["error"]["source-topic"], json!(topic));
    }
    app.stop().await;
}
