//! What a hostile client and a careless producer found, each against the
//! real broker: accepted events that were never counted, a batch half
//! written behind a 413, reused eventIds dropped, unbounded event times,
//! and the HTTP edges (methods, stalled bodies, media types, tokens).

use crate::helpers;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use helpers::spawn_app;
use helpers::workload::WAIT;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::{json, Value};

const ADMIN: &str = "hardening-admin-token-01";

/// Sends `request` as it is on a fresh connection and returns everything
/// the server answers until it closes the connection or `limit` passes.
pub fn raw_http(address: &str, request: &[u8], limit: Duration) -> String {
    let host = address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    // The server may answer and close before it has read all of a bad
    // request; that is not this function's failure.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let start = Instant::now();
    let mut buf = [0u8; 8192];
    while start.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status code of a raw HTTP answer (0 when there was none).
pub fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.max.bytes", "2000000")
        .create()
        .expect("producer")
}

/// Writes one record as another producer would: value and headers as given,
/// record time `at_ms` (now when `None`).
async fn produce(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    value: &str,
    version: Option<&str>,
    at_ms: Option<i64>,
) {
    let mut headers = OwnedHeaders::new();
    if let Some(version) = version {
        headers = headers.insert(Header {
            key: "schema-version",
            value: Some(version),
        });
    }
    let mut record = FutureRecord::<str, str>::to(topic)
        .key(key)
        .payload(value)
        .headers(headers);
    if let Some(at) = at_ms {
        record = record.timestamp(at);
    }
    producer
        .send(record, Duration::from_secs(10))
        .await
        .expect("written");
}

fn views_of(pages: &Value, url: &str) -> Option<u64> {
    pages["topPages"]
        .as_array()?
        .iter()
        .find(|p| p["url"] == json!(url))
        .and_then(|p| p["views"].as_u64())
}

/// The bug: durations summed as floats overflowed to infinity, were
/// written to the changelog as null, and the read model skipped the page's
/// record for good. Now: schema v2 bounds a duration, sums are saturating
/// integers, and version-1 records from other producers (unbounded) still
/// count, page included.
#[actix_web::test]
async fn huge_durations_never_lose_a_page() {
    let app = spawn_app(&[]).await;
    let (status, answer) = app
        .post(
            "/events/page-view",
            &json!({"userId": "inf2", "url": "/dur2", "duration": 1e308}),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], json!("duration"));
    for duration in [1e9, 1e9, 1.0] {
        let (status, answer) = app
            .post(
                "/events/page-view",
                &json!({"userId": "inf2", "url": "/dur2", "duration": duration}),
            )
            .await;
        assert_eq!(status, 201, "{answer}");
    }
    // Version 1 took any duration: written by another producer, twice 1e308
    // then 1, as the probe sent them.
    let producer = producer(&app.brokers);
    let topic = app.topic("page-views");
    for duration in ["1e308", "1e308", "1"] {
        let value = format!(r#"{{"userId":"inf3","url":"/dur3","duration":{duration}}}"#);
        produce(&producer, &topic, "inf3", &value, Some("1"), None).await;
    }
    let pages = app
        .wait_for("/v1/top-pages?limit=100", WAIT, |b| {
            views_of(b, "/dur2") == Some(3) && views_of(b, "/dur3") == Some(3)
        })
        .await;
    let dur2 = pages["topPages"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["url"] == json!("/dur2")))
        .expect("/dur2");
    assert_eq!(dur2["averageDuration"], json!((2e9 + 1.0) / 3.0));
    let (_, metrics) = app.get_text("/metrics").await;
    let samples = helpers::scrape_samples(&metrics);
    assert_eq!(
        samples.get("arus_changelog_unreadable_records_total"),
        Some(&0.0)
    );
    let (status, ready) = app.get("/health/ready").await;
    assert_eq!(status, 200, "{ready}");
    app.stop().await;
}

/// A changelog record arus cannot read is never skipped in silence: the
/// read model counts it and the instance stops being ready.
#[actix_web::test]
async fn an_unreadable_changelog_record_is_loud() {
    let app = spawn_app(&[]).await;
    let producer = producer(&app.brokers);
    let changelog = app.topic("analytics-events");
    produce(
        &producer,
        &changelog,
        "top-pages/page-views/0//broken",
        r#"{"views":1,"totalDurationMilli":"many","asOf":3}"#,
        None,
        None,
    )
    .await;
    let start = Instant::now();
    loop {
        let (status, ready) = app.get("/health/ready").await;
        if status == 503 {
            assert_eq!(ready["checks"]["unreadableChangelogRecords"], json!(1));
            break;
        }
        assert!(start.elapsed() < WAIT, "still ready: {ready}");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, metrics) = app.get_text("/metrics").await;
    let samples = helpers::scrape_samples(&metrics);
    assert_eq!(
        samples.get("arus_changelog_unreadable_records_total"),
        Some(&1.0)
    );
    app.stop().await;
}

/// An event whose record Kafka would refuse is found before anything of
/// the batch is written, wherever it is in the batch.
#[actix_web::test]
async fn a_batch_with_an_oversized_event_writes_nothing() {
    let app = spawn_app(&[]).await;
    let big = json!({
        "userId": "big",
        "eventType": "view",
        "metadata": {"blob": "x".repeat(1_000_100)}
    });
    let small = |user: &str| json!({"userId": user, "eventType": "login"});
    for (at, batch) in [
        (1, json!([small("partY"), big])),
        (0, json!([big, small("partY")])),
        (1, json!([small("partY"), big, small("partZ")])),
    ] {
        let body = batch.to_string();
        assert!(body.len() < 1_048_576, "under the body limit");
        let (status, answer) = app.post_raw("/events/batch-events", body).await;
        assert_eq!(status, 413, "{answer}");
        assert_eq!(answer["error"]["code"], json!("event_too_large"));
        assert_eq!(answer["error"]["field"], json!(format!("[{at}]")));
    }
    let (status, answer) = app.post("/events/user-event", &big).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (413, json!("event_too_large"))
    );
    assert_eq!(app.end_offsets(&app.topic("user-events"), 3), vec![0, 0, 0]);
    // One just under the limit goes through whole.
    let fits = json!({
        "userId": "fits",
        "eventType": "view",
        "metadata": {"blob": "x".repeat(990_000)}
    });
    let (status, answer) = app
        .post("/events/batch-events", &json!([small("partY"), fits]))
        .await;
    assert_eq!(status, 201, "{answer}");
    app.wait_for("/events/analytics/event-counts", WAIT, |b| {
        b["total"] == json!(2)
    })
    .await;
    app.stop().await;
}

/// An eventId is an event's identity together with what it says: the same
/// eventId with the same content is a retry (counted once); with other
/// content it is another event, and it counts.
#[actix_web::test]
async fn a_reused_event_id_with_other_content_is_counted() {
    let app = spawn_app(&[]).await;
    let id = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b";
    for body in [
        json!({"eventId": id, "userId": "reuse1", "eventType": "login"}),
        json!({"eventId": id, "userId": "reuse1", "eventType": "login"}),
        json!({"eventId": id, "userId": "reuse2", "eventType": "purchase"}),
        json!({"eventId": id, "userId": "reuse1", "eventType": "logout"}),
    ] {
        let (status, answer) = app.post("/events/user-event", &body).await;
        assert_eq!(status, 201, "{answer}");
        assert_eq!(answer["eventId"], json!(id));
    }
    // A batch of the same ids again: a retry of what was sent, counted once.
    let retried = json!([
        {"eventId": id, "userId": "reuse1", "eventType": "login"},
        {"eventId": id, "userId": "reuse2", "eventType": "purchase"},
    ]);
    let (status, answer) = app.post("/events/batch-events", &retried).await;
    assert_eq!(status, 201, "{answer}");
    // And a page view under the same id is another event again.
    let (status, _) = app
        .post(
            "/events/page-view",
            &json!({"eventId": id, "userId": "reuse1", "url": "/r"}),
        )
        .await;
    assert_eq!(status, 201);
    let counts = app
        .wait_for("/events/analytics/event-counts", WAIT, |b| {
            b["total"] == json!(3) && b["lag"] == json!(0)
        })
        .await;
    assert_eq!(
        counts["eventCounts"],
        json!({"login": 1, "purchase": 1, "logout": 1, "view": 0})
    );
    let pages = app
        .wait_for("/v1/top-pages", WAIT, |b| views_of(b, "/r") == Some(1))
        .await;
    assert_eq!(views_of(&pages, "/r"), Some(1));
    // Nothing more arrives later: the retries were dropped, not delayed.
    actix_web::rt::time::sleep(Duration::from_millis(1_000)).await;
    let (_, counts) = app.get("/events/analytics/event-counts").await;
    assert_eq!(counts["total"], json!(3), "{counts}");
    app.stop().await;
}

/// Event time is bounded against the time of writing: refused at ingest,
/// and dead-lettered (`future`, `too_old`) when another producer wrote it.
#[actix_web::test]
async fn event_times_far_from_their_writing_are_refused() {
    let app = spawn_app(&[]).await;
    for (timestamp, batch) in [
        ("0001-01-01T00:00:00Z", false),
        ("9999-12-31T23:59:59Z", false),
        ("0001-01-01T00:00:00Z", true),
    ] {
        let event = json!({"userId": "t", "eventType": "login", "timestamp": timestamp});
        let (status, answer) = if batch {
            app.post(
                "/events/batch-events",
                &json!([{"userId": "t", "eventType": "view"}, event]),
            )
            .await
        } else {
            app.post("/events/user-event", &event).await
        };
        assert_eq!(status, 400, "{answer}");
        let field = if batch { "[1].timestamp" } else { "timestamp" };
        assert_eq!(answer["error"]["field"], json!(field), "{answer}");
    }
    let now = chrono::Utc::now();
    let an_hour_ago = (now - chrono::Duration::hours(1)).to_rfc3339();
    let (status, answer) = app
        .post(
            "/events/user-event",
            &json!({"userId": "t", "eventType": "login", "timestamp": an_hour_ago}),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(
        app.end_offsets(&app.topic("user-events"), 3)
            .iter()
            .sum::<i64>(),
        1
    );

    // Another producer's records, judged against their own record time.
    let producer = producer(&app.brokers);
    let topic = app.topic("user-events");
    let at = now.timestamp_millis();
    let cases = [
        ("0001-01-01T00:00:00Z", "too_old"),
        ("9999-12-31T23:59:59Z", "future"),
    ];
    for (timestamp, _) in cases {
        let value = format!(r#"{{"userId":"o","eventType":"login","timestamp":"{timestamp}"}}"#);
        produce(&producer, &topic, "o", &value, None, Some(at)).await;
    }
    // Within bounds of its own (old) record time: counted.
    let old_at = at - 3_600_000;
    let value = format!(
        r#"{{"userId":"o","eventType":"logout","timestamp":"{}"}}"#,
        chrono::DateTime::from_timestamp_millis(old_at - 60_000)
            .expect("a time")
            .to_rfc3339()
    );
    produce(&producer, &topic, "o", &value, None, Some(old_at)).await;
    let counts = app
        .wait_for("/events/stats", WAIT, |b| {
            b["consumer"]["deadLetters"] == json!(2)
        })
        .await;
    let counts_now = app
        .wait_for("/events/analytics/event-counts", WAIT, |b| {
            b["total"] == json!(2)
        })
        .await;
    assert_eq!(
        counts_now["eventCounts"],
        json!({"login": 1, "logout": 1, "purchase": 0, "view": 0}),
        "{counts}"
    );
    let letters = app.read_all(&app.topic("error-events"), 3);
    let mut classes: Vec<String> = letters
        .iter()
        .filter_map(|m| {
            let h = m.headers()?.iter().find(|h| h.key == "x-error-class")?;
            Some(String::from_utf8_lossy(h.value?).into_owned())
        })
        .collect();
    classes.sort();
    assert_eq!(classes, vec!["future".to_string(), "too_old".to_string()]);
    app.stop().await;
}

/// Methods: unknown ones fold into one label, known routes answer 405 with
/// `Allow`, HEAD answers like GET without a body.
#[actix_web::test]
async fn methods_cannot_grow_metrics_and_get_405_with_allow() {
    let app = spawn_app(&[]).await;
    let (_, before) = app.get_text("/metrics").await;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for i in 0..200 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let method: String = (0..8)
            .map(|k| (b'A' + ((rng >> (k * 5)) % 26) as u8) as char)
            .collect();
        let path = if i % 2 == 0 { "/x1" } else { "/events/stats" };
        let answer = raw_http(
            &app.address,
            format!("{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
            Duration::from_secs(5),
        );
        let expected = if path == "/x1" { 404 } else { 405 };
        assert_eq!(status_of(&answer), expected, "{method} {path}: {answer}");
    }
    let long = "M".repeat(30_000);
    let answer = raw_http(
        &app.address,
        format!("{long} /events/stats HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    );
    assert!(
        matches!(status_of(&answer), 0 | 400 | 405 | 431),
        "{answer:.200}"
    );
    let (_, after) = app.get_text("/metrics").await;
    // At most three new series of 17 lines (12 buckets, +Inf, sum, count
    // and the two comment lines are the family's): the 404 and the 405 of
    // the one folded method, and the first scrape's own. Not 200.
    let series = |text: &str| {
        text.lines()
            .filter(|l| l.contains("method=\"other\""))
            .count()
    };
    assert!(series(&after) > 0, "the requests were counted");
    assert!(
        after.lines().count() <= before.lines().count() + 3 * 17,
        "{} lines before, {} after",
        before.lines().count(),
        after.lines().count()
    );
    assert!(!after.contains("AAAA"), "no method became a label");

    let answer = raw_http(
        &app.address,
        b"PUT /events/stats HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    assert_eq!(status_of(&answer), 405, "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("allow: get, head"),
        "{answer}"
    );
    let answer = raw_http(
        &app.address,
        b"DELETE /events/user-event HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    assert_eq!(status_of(&answer), 405, "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("allow: post"),
        "{answer}"
    );
    let answer = raw_http(
        &app.address,
        b"HEAD /health/ready HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert!(answer.ends_with("\r\n\r\n"), "no body: {answer:?}");
    let answer = raw_http(
        &app.address,
        b"HEAD /events/analytics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    assert_eq!(status_of(&answer), 200, "{answer}");
    app.stop().await;
}

/// A client that declares a body and stops sending gets 408 and loses
/// its connection.
#[actix_web::test]
async fn a_stalled_body_is_timed_out() {
    let app = spawn_app(&[("ARUS__HTTP__BODY_TIMEOUT_MS", "700")]).await;
    let started = Instant::now();
    let answer = raw_http(
        &app.address,
        b"POST /events/user-event HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\n\r\n{\"userId\":",
        Duration::from_secs(10),
    );
    assert_eq!(status_of(&answer), 408, "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "the connection was closed, not left open"
    );
    app.stop().await;
}

/// Media types and encodings: JSON and text/plain (beacons) are read, gzip
/// is decompressed, the rest is a 415.
#[actix_web::test]
async fn media_types_and_encodings_are_checked() {
    let app = spawn_app(&[]).await;
    let event = json!({"userId": "mt", "eventType": "view"}).to_string();
    let post =
        |content_type: Option<&'static str>, encoding: Option<&'static str>, body: Vec<u8>| {
            let mut request = app.client.post(app.url("/events/user-event"));
            if let Some(t) = content_type {
                request = request.insert_header(("content-type", t));
            }
            if let Some(e) = encoding {
                request = request.insert_header(("content-encoding", e));
            }
            async move {
                let mut resp = request.send_body(body).await.expect("sent");
                let status = resp.status().as_u16();
                let body: Value = serde_json::from_slice(&resp.body().await.expect("body"))
                    .unwrap_or(Value::Null);
                (status, body)
            }
        };
    for t in [
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        Some("text/plain;charset=UTF-8"),
        Some("application/vnd.arus+json"),
        None,
    ] {
        let (status, answer) = post(t, None, event.clone().into_bytes()).await;
        assert_eq!(status, 201, "{t:?}: {answer}");
    }
    for t in [
        "application/x-www-form-urlencoded",
        "garbage/////",
        "multipart/form-data",
    ] {
        let (status, answer) = post(Some(t), None, event.clone().into_bytes()).await;
        assert_eq!(
            (status, answer["error"]["code"].clone()),
            (415, json!("unsupported_media_type")),
            "{t}"
        );
    }
    let gzipped = {
        use flate2::write::GzEncoder;
        let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(event.as_bytes()).expect("compressed");
        encoder.finish().expect("compressed")
    };
    let (status, answer) = post(Some("application/json"), Some("gzip"), gzipped).await;
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = post(
        Some("application/json"),
        Some("br"),
        event.clone().into_bytes(),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (415, json!("unsupported_media_type"))
    );
    // A gzip bomb: small on the wire, over the body limit inflated.
    let bomb = {
        use flate2::write::GzEncoder;
        let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&vec![b' '; 4 << 20]).expect("compressed");
        encoder.finish().expect("compressed")
    };
    let (status, answer) = post(Some("application/json"), Some("gzip"), bomb).await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (413, json!("payload_too_large"))
    );
    app.wait_for("/events/analytics/event-counts", WAIT, |b| {
        b["total"] == json!(6)
    })
    .await;
    app.stop().await;
}

/// Small things a user notices: bounds on query parameters, error texts,
/// the bearer scheme's case, numbers beyond a float, admin mistakes.
#[actix_web::test]
async fn small_edges_answer_clearly() {
    let app = spawn_app(&[
        ("ARUS__SECURITY__ADMIN_TOKEN", ADMIN),
        ("ARUS__SECURITY__INGEST_API_KEYS", "ingest-key-0123456789"),
    ])
    .await;
    for window in ["18446744073709551615", "9223372036854775807", "31622401"] {
        let (status, answer) = app
            .get(&format!(
                "/events/analytics/active-users?windowSeconds={window}"
            ))
            .await;
        assert_eq!(status, 400, "{window}: {answer}");
    }
    let (status, _) = app
        .get("/events/analytics/active-users?windowSeconds=31622400")
        .await;
    assert_eq!(status, 200);
    let (status, answer) = app.get("/events/analytics/users/dupA").await;
    assert_eq!(status, 404);
    assert_eq!(
        answer["error"]["message"],
        json!("no events of user \"dupA\"")
    );
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let (status, answer) = app
            .post_with(
                "/events/user-event",
                &json!({"userId": "b", "eventType": "login"}),
                ("authorization", &format!("{scheme} ingest-key-0123456789")),
            )
            .await;
        assert_eq!(status, 201, "{scheme}: {answer}");
    }
    let digits = "9".repeat(310);
    let mut resp = app
        .client
        .post(app.url("/events/user-event"))
        .insert_header(("content-type", "application/json"))
        .insert_header(("x-api-key", "ingest-key-0123456789"))
        .send_body(format!(
            r#"{{"userId":"n","eventType":"login","metadata":{{"n":{digits}}}}}"#
        ))
        .await
        .expect("sent");
    let answer: Value = serde_json::from_slice(&resp.body().await.expect("body")).expect("json");
    assert_eq!(resp.status().as_u16(), 400, "{answer}");
    assert_eq!(
        answer["error"]["code"],
        json!("validation_failed"),
        "{answer}"
    );

    let admin = ("x-admin-token", ADMIN);
    let (status, answer) = app
        .post_with(
            "/v1/dead-letters/replay",
            &json!({"letters": [{"partition": 99999, "offset": 0}]}),
            admin,
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("partition 99999")),
        "{answer}"
    );
    let (status, answer) = app.get_with("/v1/consumer-groups/%20/offsets", admin).await;
    assert_eq!(status, 400, "{answer}");
    app.stop().await;
}

/// Which `/v1` routes need the admin token: all but the schemas, a
/// public contract, and the top pages, a query as open as the seed's. Each is tried without a token, with a wrong one, and
/// with the right one.
#[actix_web::test]
async fn every_admin_route_needs_the_token_and_the_schemas_do_not() {
    let app = spawn_app(&[("ARUS__SECURITY__ADMIN_TOKEN", ADMIN)]).await;
    let admin = [
        ("GET", "/v1/dead-letters"),
        ("GET", "/v1/lag"),
        ("GET", "/v1/consumer-groups/some-group/offsets"),
        ("POST", "/v1/dead-letters/replay"),
        ("POST", "/v1/consumer-groups/some-group/reset"),
        ("POST", "/v1/consumer/pause"),
        ("POST", "/v1/consumer/resume"),
        ("POST", "/v1/chaos/shard-outage"),
        ("POST", "/v1/chaos/shard-stop"),
        ("POST", "/v1/chaos/panic"),
    ];
    for (method, path) in admin {
        for (token, expected) in [(None, 401), (Some("wrong-token-0123456789"), 403)] {
            let mut request = match method {
                "GET" => app.client.get(app.url(path)),
                _ => app.client.post(app.url(path)),
            };
            if let Some(token) = token {
                request = request.insert_header(("x-admin-token", token));
            }
            let resp = request.send_body("{}").await.expect("sent");
            assert_eq!(
                resp.status().as_u16(),
                expected,
                "{method} {path} with {token:?}"
            );
        }
    }
    // With the token: the read-only ones answer (lag once it has a reading).
    for path in ["/v1/dead-letters", "/v1/consumer-groups/some-group/offsets"] {
        let (status, answer) = app.get_with(path, ("x-admin-token", ADMIN)).await;
        assert_eq!(status, 200, "{path}: {answer}");
    }
    let (status, _) = app
        .get_with("/v1/lag", ("authorization", &format!("bearer {ADMIN}")))
        .await;
    assert!(matches!(status, 200 | 503), "{status}");
    for path in [
        "/v1/schemas",
        "/v1/schemas/user-event/1",
        "/v1/schemas/page-view/2",
        "/v1/top-pages",
    ] {
        let (status, answer) = app.get(path).await;
        assert_eq!(status, 200, "{path}: {answer}");
    }
    app.stop().await;
}

/// Behind a load balancer every client shares its address: a trusted
/// proxy's forwarded-for names the client instead; anyone else's is not
/// believed.
#[actix_web::test]
async fn rate_limits_see_clients_behind_trusted_proxies() {
    let event = json!({"userId": "rl", "eventType": "view"});
    let trusting = spawn_app(&[
        ("ARUS__SECURITY__RATE_LIMIT_EVENTS_PER_SECOND", "1"),
        ("ARUS__SECURITY__RATE_LIMIT_BURST", "1"),
        ("ARUS__HTTP__MAX_BATCH_SIZE", "1"),
        ("ARUS__HTTP__TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let from = |ip: &'static str| ("x-forwarded-for", ip);
    let (a, _) = trusting
        .post_with("/events/user-event", &event, from("198.51.100.1"))
        .await;
    let (b, _) = trusting
        .post_with("/events/user-event", &event, from("198.51.100.2"))
        .await;
    let (c, _) = trusting
        .post_with("/events/user-event", &event, from("198.51.100.1"))
        .await;
    assert_eq!((a, b, c), (201, 201, 429));
    trusting.stop().await;

    let wary = spawn_app(&[
        ("ARUS__SECURITY__RATE_LIMIT_EVENTS_PER_SECOND", "1"),
        ("ARUS__SECURITY__RATE_LIMIT_BURST", "1"),
        ("ARUS__HTTP__MAX_BATCH_SIZE", "1"),
    ])
    .await;
    let (a, _) = wary
        .post_with("/events/user-event", &event, from("198.51.100.1"))
        .await;
    let (b, _) = wary
        .post_with("/events/user-event", &event, from("198.51.100.2"))
        .await;
    assert_eq!((a, b), (201, 429));
    wary.stop().await;
}

/// The first run: no RUST_LOG (or an empty one), no broker. The warning
/// that everything is in memory shows in the default log, and a flood of
/// malformed connections leaves one line, not one each.
#[actix_web::test]
async fn the_default_log_shows_the_embedded_broker_warning_and_no_flood() {
    first_run_log(None);
    first_run_log(Some(""));
}

fn first_run_log(rust_log: Option<&str>) {
    use std::process::{Command, Stdio};
    let port = helpers::process::free_port();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-logs");
    std::fs::create_dir_all(&dir).expect("log dir");
    let log = dir.join(format!("first-run-{port}.log"));
    let file = std::fs::File::create(&log).expect("log file");
    let mut env = helpers::test_env(
        "",
        &helpers::random_prefix(),
        &helpers::MOCK_CLUSTER_TIMEOUTS,
    );
    env.retain(|(k, _)| k != "ARUS__HTTP__BIND");
    let mut command = Command::new(env!("CARGO_BIN_EXE_arus"));
    command
        .arg("serve")
        .envs(env)
        .env("ARUS__HTTP__BIND", format!("127.0.0.1:{port}"))
        .env_remove("RUST_LOG")
        .stdout(Stdio::from(file.try_clone().expect("log")))
        .stderr(Stdio::from(file));
    if let Some(value) = rust_log {
        command.env("RUST_LOG", value);
    }
    let mut child = command.spawn().expect("arus starts");
    helpers::process::wait_listening(port, "arus");
    let address = format!("127.0.0.1:{port}");
    for _ in 0..50 {
        // A TLS ClientHello's first bytes: not HTTP.
        raw_http(
            &address,
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
            Duration::from_millis(500),
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    let status = child.wait().expect("exit");
    assert!(status.success(), "{status}");
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.lines()
            .any(|l| l.contains("WARN") && l.contains("no broker configured")),
        "RUST_LOG {rust_log:?}: {text}"
    );
    assert!(text.contains("arus listening"), "{text}");
    let floods = text.lines().filter(|l| l.contains("stream error")).count();
    assert!(floods <= 1, "{floods} stream error lines: {text}");
    assert!(
        !text
            .lines()
            .any(|l| l.contains("ERROR") && l.contains("librdkafka")),
        "{text}"
    );
}
