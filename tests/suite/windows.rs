//! Event-time windows against the real broker: a generated stream with its
//! reference computed here, answered by `POST /v1/query` exactly (counts)
//! and within the sketch's bound (visitors; exact at these sizes); late
//! events excluded from buckets, counted and dead-lettered; future ones
//! refused; every 400 of the query endpoint.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, SecondsFormat, Utc};
use rdkafka::message::{Headers, Message};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, workload::WAIT};

const MINUTE: i64 = 60_000;

fn iso(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .expect("in range")
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

#[derive(Default, Clone, Debug, PartialEq)]
struct Expected {
    events: u64,
    pageviews: u64,
    visitors: BTreeSet<String>,
    types: BTreeMap<String, u64>,
    type_visitors: BTreeMap<String, BTreeSet<String>>,
    pages: BTreeMap<String, u64>,
}

#[actix_web::test]
async fn minute_buckets_match_a_reference_and_late_events_are_left_out() {
    let app = spawn_app(&[]).await;
    // Two hours ago, on the hour: old enough that the whole stream is in
    // the past, young enough for minute buckets (48 h) and the 7-day bound.
    let now = Utc::now().timestamp_millis();
    let t0 = (now - 2 * 3_600_000).div_euclid(3_600_000) * 3_600_000;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let types = ["login", "logout", "purchase", "view"];
    let mut per_minute: BTreeMap<i64, Expected> = BTreeMap::new();
    let (mut batch, mut views) = (Vec::new(), Vec::new());
    // 600 events over 20 minutes, 40 users, mostly in order, some a few
    // minutes out of order (within the 5-minute grace of their partition:
    // never more than 3 minutes behind any earlier event of the stream).
    let mut latest = t0;
    for i in 0..600u64 {
        let base = t0 + (i as i64) * 2_000;
        let at = if i % 10 == 7 {
            base - rng.next(3) as i64 * MINUTE
        } else {
            base
        };
        latest = latest.max(at);
        let user = format!("w-user-{}", rng.next(40));
        let minute = at.div_euclid(MINUTE) * MINUTE;
        let e = per_minute.entry(minute).or_default();
        e.visitors.insert(user.clone());
        if rng.next(3) == 0 {
            e.pageviews += 1;
            let url = format!("/p/{}", rng.next(5));
            *e.pages.entry(url.clone()).or_default() += 1;
            views.push(json!({"userId": user, "url": url, "timestamp": iso(at)}));
        } else {
            let kind = types[rng.next(4) as usize];
            e.events += 1;
            *e.types.entry(kind.to_string()).or_default() += 1;
            e.type_visitors
                .entry(kind.to_string())
                .or_default()
                .insert(user.clone());
            batch.push(json!({"userId": user, "eventType": kind, "timestamp": iso(at)}));
        }
    }
    // In order within each topic (each has its own watermarks).
    for chunk in batch.chunks(100) {
        let (status, answer) = app.post("/events/batch-events", &json!(chunk)).await;
        assert_eq!(status, 201, "{answer}");
    }
    for view in &views {
        let (status, answer) = app.post("/events/page-view", view).await;
        assert_eq!(status, 201, "{answer}");
    }
    // One user, in one partition: 40 minutes in, then back at minute 1 —
    // 39 minutes behind, far past the grace: late.
    let late_user = "w-late";
    let ahead = t0 + 40 * MINUTE;
    for (at, expect) in [(ahead, true), (t0 + MINUTE, false)] {
        let (status, answer) = app
            .post(
                "/events/user-event",
                &json!({"userId": late_user, "eventType": "purchase", "timestamp": iso(at)}),
            )
            .await;
        assert_eq!(status, 201, "{answer}");
        if expect {
            let e = per_minute.entry(ahead).or_default();
            e.events += 1;
            e.visitors.insert(late_user.into());
            *e.types.entry("purchase".into()).or_default() += 1;
            e.type_visitors
                .entry("purchase".into())
                .or_default()
                .insert(late_user.into());
        }
    }
    // Ten minutes ahead of now: refused at ingest, naming the field.
    let (status, answer) = app
        .post(
            "/events/user-event",
            &json!({"userId": "w-future", "eventType": "view", "timestamp": iso(now + 10 * MINUTE)}),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("timestamp"), "{answer}");

    // Every event counts in the all-time totals, the late one included.
    app.wait_for("/events/stats", WAIT, |s| {
        s["totalEvents"].as_u64().unwrap_or(0) + s["totalPageViews"].as_u64().unwrap_or(0) == 602
            && s["lateEvents"] == json!(1)
    })
    .await;

    let range = json!([iso(t0 - 5 * MINUTE), iso(t0 + 60 * MINUTE)]);
    let query = |body: Value| {
        let app = &app;
        async move { app.post("/v1/query", &body).await }
    };
    let minutes = json!({"metrics": ["visitors", "pageviews", "events"], "date_range": range, "dimensions": ["time:minute"]});
    let (status, answer) = query(minutes).await;
    assert_eq!(status, 200, "{answer}");
    let got: Vec<(String, Vec<u64>)> = answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["dimensions"][0].as_str().expect("time").to_string(),
                r["metrics"]
                    .as_array()
                    .expect("metrics")
                    .iter()
                    .map(|v| v.as_u64().expect("a count"))
                    .collect(),
            )
        })
        .collect();
    let want: Vec<(String, Vec<u64>)> = per_minute
        .iter()
        .map(|(m, e)| {
            (
                iso(*m),
                vec![e.visitors.len() as u64, e.pageviews, e.events],
            )
        })
        .collect();
    assert_eq!(got, want);
    // The latest minute may still change; the first cannot any more in the
    // partition of the late user, but others may lag: only the latest is sure.
    assert!(
        answer["meta"]["openBuckets"]
            .as_array()
            .expect("open buckets")
            .contains(&json!(iso(ahead))),
        "{answer}"
    );
    assert_eq!(answer["meta"]["lateEvents"], json!(1));
    assert_eq!(answer["query"]["dimensions"], json!(["time:minute"]));

    // The whole range, no dimension: distinct visitors over all minutes.
    let all_users: BTreeSet<&String> = per_minute.values().flat_map(|e| &e.visitors).collect();
    let pageviews: u64 = per_minute.values().map(|e| e.pageviews).sum();
    let events: u64 = per_minute.values().map(|e| e.events).sum();
    let (status, answer) =
        query(json!({"metrics": ["visitors", "pageviews", "events"], "date_range": range})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["results"],
        json!([{"dimensions": [], "metrics": [all_users.len(), pageviews, events]}])
    );
    // Its open buckets are the tiles' own: the hour from t0 (the late
    // user's partition has not passed its end), not the range's start.
    let open = answer["meta"]["openBuckets"]
        .as_array()
        .expect("open buckets");
    assert!(open.contains(&json!(iso(t0))), "{answer}");
    assert!(!open.contains(&json!(iso(t0 - 5 * MINUTE))), "{answer}");
    // Events by type, filtered, and by hour in a zone 7 hours east.
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    for e in per_minute.values() {
        for (k, v) in &e.types {
            *by_type.entry(k.clone()).or_default() += v;
        }
    }
    let mut visitors_by_type: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in per_minute.values() {
        for (k, users) in &e.type_visitors {
            visitors_by_type
                .entry(k.clone())
                .or_default()
                .extend(users.iter().cloned());
        }
    }
    let (status, answer) = query(json!({"metrics": ["events", "visitors"], "date_range": range, "dimensions": ["event:type"], "filters": [["is", "event:type", ["purchase", "login"]]], "order_by": [["event:type", "asc"]]})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["results"],
        json!([
            {"dimensions": ["login"], "metrics": [by_type["login"], visitors_by_type["login"].len()]},
            {"dimensions": ["purchase"], "metrics": [by_type["purchase"], visitors_by_type["purchase"].len()]},
        ])
    );
    // Distinct over the filtered types: a user of both counts once.
    let either: BTreeSet<&String> = visitors_by_type["purchase"]
        .iter()
        .chain(&visitors_by_type["login"])
        .collect();
    assert!(either.len() < visitors_by_type["purchase"].len() + visitors_by_type["login"].len());
    let (status, answer) = query(json!({"metrics": ["visitors", "events"], "date_range": range, "filters": [["is", "event:type", ["purchase", "login"]]]})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["results"],
        json!([{"dimensions": [], "metrics": [either.len(), by_type["login"] + by_type["purchase"]]}])
    );
    // Page views of some pages: a total, and by page. Five pages, so no
    // table filled: exact, and the bounds say so.
    let mut by_page: BTreeMap<String, u64> = BTreeMap::new();
    for e in per_minute.values() {
        for (k, v) in &e.pages {
            *by_page.entry(k.clone()).or_default() += v;
        }
    }
    let some = json!([["contains", "event:page", ["/p/1", "/p/3"]]]);
    let (status, answer) =
        query(json!({"metrics": ["pageviews"], "date_range": range, "filters": some})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["results"],
        json!([{"dimensions": [], "metrics": [by_page["/p/1"] + by_page["/p/3"]]}])
    );
    assert_eq!(answer["meta"]["pageCountBound"], json!(0), "{answer}");
    assert_eq!(answer["meta"]["unlistedPageBound"], json!(0), "{answer}");
    assert_eq!(answer["query"]["filters"], some);
    let (status, answer) = query(json!({"metrics": ["pageviews"], "date_range": range, "dimensions": ["event:page"], "filters": [["is", "event:page", ["/p/4", "/p/0"]]], "order_by": [["event:page", "asc"]]})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["results"],
        json!([
            {"dimensions": ["/p/0"], "metrics": [by_page["/p/0"]]},
            {"dimensions": ["/p/4"], "metrics": [by_page["/p/4"]]},
        ])
    );
    let (status, answer) = query(json!({"metrics": ["events", "pageviews"], "date_range": range, "dimensions": ["time:hour"], "timezone": "Asia/Jakarta"})).await;
    assert_eq!(status, 200, "{answer}");
    let mut hours: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    for (minute, e) in &per_minute {
        let hour = hours
            .entry(minute.div_euclid(3_600_000) * 3_600_000)
            .or_default();
        hour.0 += e.events;
        hour.1 += e.pageviews;
    }
    let jakarta = chrono::FixedOffset::east_opt(7 * 3600).expect("offset");
    let want: Vec<Value> = hours
        .iter()
        .map(|(hour, (ev, pv))| {
            let local = DateTime::<Utc>::from_timestamp_millis(*hour)
                .expect("in range")
                .with_timezone(&jakarta)
                .to_rfc3339_opts(SecondsFormat::Secs, true);
            json!({"dimensions": [local], "metrics": [ev, pv]})
        })
        .collect();
    assert_eq!(answer["results"], json!(want));
    // Half-hour zone: days composed from minutes, all of it one local day
    // or two, summing to the same.
    let (status, answer) = query(json!({"metrics": ["events"], "date_range": range, "dimensions": ["time:day"], "timezone": "Asia/Kolkata"})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["meta"]["resolution"], json!("minute"));
    let summed: u64 = answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["metrics"][0].as_u64().expect("count"))
        .sum();
    assert_eq!(summed, events);

    let (_, scrape) = app.get_text("/metrics").await;
    let late_series: Vec<&str> = scrape
        .lines()
        .filter(|l| l.starts_with("arus_late_events_total{"))
        .collect();
    assert_eq!(
        late_series.iter().filter(|l| l.ends_with(" 1")).count(),
        1,
        "{late_series:?}"
    );
    // The late event: dead-lettered as late, with its origin.
    let letters = app.read_all(&app.topic("error-events"), 3);
    let late: Vec<_> = letters
        .iter()
        .filter(|m| {
            m.headers().is_some_and(|h| {
                h.iter()
                    .any(|h| h.key == "x-error-class" && h.value == Some(b"late".as_slice()))
            })
        })
        .collect();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].key(), Some(late_user.as_bytes()));

    // Every refusal names what is supported.
    for (body, needle) in [
        (
            json!({"metrics": ["sessions"], "date_range": "24h"}),
            "unknown metric",
        ),
        (
            json!({"metrics": ["bounce_rate"], "date_range": "24h", "dimensions": ["event:type"]}),
            "not pre-aggregated",
        ),
        (
            json!({"metrics": ["events"], "date_range": "2d"}),
            "unknown date_range",
        ),
        (
            json!({"metrics": ["events"], "date_range": ["2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z"]}),
            "before",
        ),
        (
            json!({"metrics": ["events"], "date_range": ["yesterday", "today"]}),
            "ISO-8601",
        ),
        (json!({"metrics": ["events"]}), "date_range is one of"),
        (
            json!({"metrics": ["pageviews"], "date_range": "24h", "filters": [["is", "event:type", ["purchase"]]]}),
            "not pre-aggregated",
        ),
        (
            json!({"metrics": ["visitors"], "date_range": "24h", "filters": [["contains", "event:page", ["/blog"]]]}),
            "not pre-aggregated",
        ),
        (
            json!({"metrics": ["visitors"], "date_range": "24h", "dimensions": ["event:page"]}),
            "not pre-aggregated",
        ),
        (
            json!({"metrics": ["pageviews"], "date_range": "24h", "dimensions": ["visit:source"], "filters": [["contains", "event:page", ["/blog"]]]}),
            "event:page or no breakdown",
        ),
        (
            json!({"metrics": ["pageviews"], "date_range": "24h", "filters": [["matches", "event:page", ["/blog"]]]}),
            "not pre-aggregated",
        ),
        (
            json!({"metrics": ["events"], "date_range": "24h", "timezone": "Mars/Olympus"}),
            "unknown timezone",
        ),
        (
            json!({"metrics": ["events"], "date_range": "7d", "dimensions": ["time:minute"]}),
            "kept for 48 h",
        ),
        (
            json!({"metrics": ["events"], "date_range": "24h", "limit": 0}),
            "limit",
        ),
        (
            json!({"metrics": ["events"], "date_range": "24h", "order_by": [["visitors", "desc"]]}),
            "order_by",
        ),
        (
            json!({"metrics": ["events"], "date_range": "24h", "colour": "red"}),
            "unknown field",
        ),
    ] {
        let (status, answer) = query(body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{body}: {message}");
    }
    let (status, answer) = app.post_raw("/v1/query", "{not json").await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (400, json!("malformed_json"))
    );
    app.stop().await;
}
