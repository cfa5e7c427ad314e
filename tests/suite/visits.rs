//! Visits against the real broker: a generated stream of page views and
//! user events with its visits computed here (a user's run of events with
//! no gap of the inactivity or more, in the minute it starts), answered by
//! `POST /v1/query` on each of three instances of one group: visits,
//! bounces, views per visit and the mean duration exactly, the duration's
//! quantiles within the sketch's bound; an event arriving out of order that
//! bridges two visits merges them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::helpers::{random_prefix, spawn_app_on, test_brokers, TestApp};

const MINUTE: i64 = 60_000;
/// The inactivity the instances run with: 10 minutes.
const GAP: i64 = 10 * MINUTE;

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

/// One event of the stream: its user, time and whether it is a page view.
#[derive(Clone)]
struct Sent {
    user: String,
    at: i64,
    page: bool,
}

impl Sent {
    fn body(&self, n: usize) -> Value {
        if self.page {
            json!({"userId": self.user, "url": format!("/p/{}", n % 7), "timestamp": iso(self.at)})
        } else {
            json!({"userId": self.user, "eventType": "view", "timestamp": iso(self.at)})
        }
    }
}

#[derive(Default, Debug, Clone, Copy, PartialEq)]
struct VisitTotals {
    visits: u64,
    bounces: u64,
    pageviews: u64,
    duration_ms: u64,
}

impl VisitTotals {
    fn sum(minutes: &BTreeMap<i64, VisitTotals>) -> Self {
        let mut total = VisitTotals::default();
        for t in minutes.values() {
            total.visits += t.visits;
            total.bounces += t.bounces;
            total.pageviews += t.pageviews;
            total.duration_ms += t.duration_ms;
        }
        total
    }

    /// `[visits, bounce_rate, visit_duration, views_per_visit]` as the
    /// query answers them (Plausible's rounding).
    fn answer(&self) -> Vec<Value> {
        let per = |x: u64| x as f64 / self.visits as f64;
        vec![
            json!(self.visits),
            json!((per(self.bounces) * 100.0).round() as u64),
            json!((per(self.duration_ms) / 1000.0).round() as u64),
            json!((per(self.pageviews) * 100.0).round() / 100.0),
        ]
    }
}

/// The visits of `events`: per user, by time, split at gaps of `GAP` or
/// more; each counted in the minute it starts. Also every visit's duration.
fn reference(events: &[Sent]) -> (BTreeMap<i64, VisitTotals>, Vec<u64>) {
    let mut by_user: BTreeMap<&str, Vec<&Sent>> = BTreeMap::new();
    for e in events {
        by_user.entry(&e.user).or_default().push(e);
    }
    let mut minutes: BTreeMap<i64, VisitTotals> = BTreeMap::new();
    let mut durations = Vec::new();
    for list in by_user.values_mut() {
        list.sort_by_key(|e| e.at);
        let mut visit: Vec<&Sent> = Vec::new();
        let mut close = |visit: &Vec<&Sent>| {
            let Some(first) = visit.first() else { return };
            let last = visit.last().expect("not empty");
            let pv = visit.iter().filter(|e| e.page).count() as u64;
            let t = minutes
                .entry(first.at.div_euclid(MINUTE) * MINUTE)
                .or_default();
            t.visits += 1;
            t.bounces += u64::from(pv == 1 && visit.len() == 1);
            t.pageviews += pv;
            t.duration_ms += (last.at - first.at) as u64;
            durations.push((last.at - first.at) as u64);
        };
        for e in list.iter() {
            if visit.last().is_some_and(|l| e.at - l.at >= GAP) {
                close(&visit);
                visit.clear();
            }
            visit.push(e);
        }
        close(&visit);
    }
    (minutes, durations)
}

fn metrics_of(row: &Value) -> Vec<Value> {
    row["metrics"].as_array().expect("metrics").clone()
}

async fn query(app: &TestApp, body: Value) -> Value {
    let (status, answer) = app.post("/v1/query", &body).await;
    assert_eq!(status, 200, "{body}: {answer}");
    answer
}

/// 720 events over an hour of event time from `t0`, 36 users, each now
/// and then idle for longer than the inactivity; some events a minute or
/// two out of order (within the grace).
fn generated(t0: i64) -> Vec<Sent> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut stream = Vec::new();
    for i in 0..720i64 {
        let base = t0 + i * 5_000;
        let at = if i % 9 == 4 {
            base - rng.next(3) as i64 * MINUTE
        } else {
            base
        };
        // Users come in waves: a third of them sit out each 20 minutes.
        let wave = (i / 240) as u64;
        let user = loop {
            let u = rng.next(36);
            if u % 3 != wave {
                break u;
            }
        };
        stream.push(Sent {
            user: format!("v-user-{user}"),
            at,
            page: rng.next(3) != 0,
        });
    }
    stream
}

/// Sends `stream` in time order, both topics together (visits are pruned
/// by the earlier of their watermarks): runs of user events in one batch,
/// page views one by one, through `apps` in turn.
async fn post_in_order(apps: &[&TestApp], stream: &[Sent]) {
    let mut batch: Vec<Value> = Vec::new();
    let mut turn = 0usize;
    for (i, e) in stream.iter().enumerate() {
        if !e.page {
            batch.push(e.body(i));
            if batch.len() < 60 && i + 1 < stream.len() {
                continue;
            }
        }
        if !batch.is_empty() {
            let body = json!(std::mem::take(&mut batch));
            let (status, answer) = apps[turn % apps.len()]
                .post("/events/batch-events", &body)
                .await;
            assert_eq!(status, 201, "{answer}");
            turn += 1;
        }
        if e.page {
            let (status, answer) = apps[turn % apps.len()]
                .post("/events/page-view", &e.body(i))
                .await;
            assert_eq!(status, 201, "{answer}");
            turn += 1;
        }
    }
}

/// `app` answers the reference's visits minute by minute over `range`
/// (minutes where no visit started left out).
async fn assert_minutes(app: &TestApp, range: &Value, minutes: &BTreeMap<i64, VisitTotals>) {
    let answer = query(
        app,
        json!({"metrics": ["visits", "bounce_rate", "visit_duration", "views_per_visit"], "date_range": range, "dimensions": ["time:minute"]}),
    )
    .await;
    let got: Vec<(String, Vec<Value>)> = answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["metrics"][0] != json!(0))
        .map(|r| {
            (
                r["dimensions"][0].as_str().expect("time").to_string(),
                metrics_of(r),
            )
        })
        .collect();
    let want: Vec<(String, Vec<Value>)> =
        minutes.iter().map(|(m, t)| (iso(*m), t.answer())).collect();
    assert_eq!(got, want);
}

/// Waits until the query `whole` answers `want` in its one row.
async fn settled(app: &TestApp, whole: &Value, want: Vec<Value>) {
    let start = Instant::now();
    loop {
        let answer = query(app, whole.clone()).await;
        if answer["results"].get(0).map(metrics_of).as_ref() == Some(&want) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "visits did not reach {want:?}: {answer}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
}

#[actix_web::test]
async fn visits_match_a_reference_on_every_instance_and_a_bridging_event_merges_two() {
    let brokers = test_brokers();
    let prefix = random_prefix();
    let gap = GAP.to_string();
    let mut apps = Vec::new();
    for n in 0..3 {
        let id = format!("{prefix}v{n}");
        let extra = [
            ("ARUS__KAFKA__PARTITIONS", "6"),
            ("ARUS__SESSIONS__INACTIVITY_MS", gap.as_str()),
            ("ARUS__INSTANCE_ID", id.as_str()),
        ];
        apps.push(spawn_app_on(&brokers, &prefix, &extra).await);
    }
    // Two hours ago, on the hour; 720 events over an hour of event time,
    // 36 users, each now and then idle for longer than the inactivity;
    // some events a minute or two out of order (within the grace).
    let now = Utc::now().timestamp_millis();
    let t0 = (now - 2 * 3_600_000).div_euclid(3_600_000) * 3_600_000;
    let mut stream = generated(t0);
    // One user with two visits 12 minutes apart (each sent in its place in
    // time); an event between them, sent once both are counted, bridges
    // them into one.
    let bridge = "v-bridge";
    let sent = |at: i64, page: bool| Sent {
        user: bridge.into(),
        at,
        page,
    };
    stream.insert(600, sent(t0 + 50 * MINUTE, true));
    stream.push(sent(t0 + 62 * MINUTE, false));
    let bridging = sent(t0 + 57 * MINUTE, true);

    let targets: Vec<&TestApp> = apps.iter().collect();
    post_in_order(&targets, &stream).await;
    let range = json!([iso(t0 - 5 * MINUTE), iso(t0 + 90 * MINUTE)]);
    let whole = json!({"metrics": ["visits", "bounce_rate", "visit_duration", "views_per_visit"], "date_range": range});
    let (minutes, _) = reference(&stream);
    let before = VisitTotals::sum(&minutes);
    settled(&apps[0], &whole, before.answer()).await;

    let (status, answer) = apps[1].post("/events/page-view", &bridging.body(0)).await;
    assert_eq!(status, 201, "{answer}");
    stream.push(bridging);
    let (minutes, mut durations) = reference(&stream);
    let total = VisitTotals::sum(&minutes);
    // The bridge's two visits became one of 12 minutes.
    assert_eq!(total.visits, before.visits - 1);
    assert_eq!(total.duration_ms, before.duration_ms + 12 * MINUTE as u64);
    durations.sort_unstable();

    for app in &apps {
        settled(app, &whole, total.answer()).await;
        // Minute by minute, the same as the reference.
        assert_minutes(app, &range, &minutes).await;
        // By hour: the minutes' visits summed (an hour with events but no
        // visit starting in it answers 0).
        let answer = query(
            app,
            json!({"metrics": ["visits"], "date_range": range, "dimensions": ["time:hour"]}),
        )
        .await;
        let mut hours: BTreeMap<i64, u64> = BTreeMap::new();
        for (m, t) in &minutes {
            *hours
                .entry(m.div_euclid(3_600_000) * 3_600_000)
                .or_default() += t.visits;
        }
        let want: Vec<Value> = hours
            .iter()
            .map(|(h, v)| json!({"dimensions": [iso(*h)], "metrics": [v]}))
            .collect();
        let got: Vec<Value> = answer["results"]
            .as_array()
            .expect("results")
            .iter()
            .filter(|r| r["metrics"][0] != json!(0))
            .cloned()
            .collect();
        assert_eq!(got, want);
        // Duration quantiles: within the sketch's 1% of a duration of that
        // rank, in whole seconds.
        let answer = query(
            app,
            json!({"metrics": ["visit_duration_p50", "visit_duration_p90"], "date_range": range}),
        )
        .await;
        for (i, q) in [0.5, 0.9].into_iter().enumerate() {
            let exact =
                durations[(q * (durations.len() - 1) as f64).floor() as usize] as f64 / 1000.0;
            let got = answer["results"][0]["metrics"][i]
                .as_f64()
                .expect("a number");
            assert!(
                (got - exact).abs() <= exact * 0.01 + 0.5,
                "p{}: {got} s against {exact} s",
                q * 100.0
            );
        }
    }
    for app in apps {
        app.stop().await;
    }
}

/// A page view sent: user, time, url, referrer.
type View<'a> = (String, i64, String, Option<&'a str>);

/// Page views of a skewed (Zipf) popularity over 400 pages, in visits
/// entering from a few referrers, with pages counted in tables of only 40
/// (so they fill, and bounds are needed): the most read page exact, every
/// answered count within the bound the answer states, most read first;
/// visits by entry page and by source exactly as computed here. (That the
/// ten largest of a Zipf stream are exact at the default size is the
/// sketch's unit test, at 100,000 views.)
#[actix_web::test]
async fn breakdowns_by_page_entry_page_and_source_match_a_reference() {
    let gap = GAP.to_string();
    let app = crate::helpers::spawn_app(&[
        ("ARUS__SESSIONS__INACTIVITY_MS", gap.as_str()),
        ("ARUS__WINDOWS__TOP_PAGES", "40"),
    ])
    .await;
    let now = Utc::now().timestamp_millis();
    let t0 = (now - 2 * 3_600_000).div_euclid(3_600_000) * 3_600_000;
    let pages = 400u64;
    let harmonic: f64 = (1..=pages).map(|i| 1.0 / i as f64).sum();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let referrers = [
        None,
        Some("https://www.google.com/search?q=arus"),
        Some("https://news.ycombinator.com/item?id=1"),
        Some("/internal"),
    ];
    // 1,500 page views over 50 minutes by 60 users; a user's views come
    // every few seconds, so each user's first view in a run is its entry.
    let mut views: Vec<View<'_>> = Vec::new();
    for i in 0..1_500i64 {
        let at = t0 + i * 2_000;
        let user = format!("b-user-{}", rng.next(60));
        let mut x = rng.next(1_000_000) as f64 / 1_000_000.0 * harmonic;
        let mut rank = pages;
        for r in 1..=pages {
            x -= 1.0 / r as f64;
            if x <= 0.0 {
                rank = r;
                break;
            }
        }
        let referrer = referrers[rng.next(4) as usize];
        views.push((user, at, format!("/z/{rank}"), referrer));
    }
    for (user, at, url, referrer) in &views {
        let mut body = json!({"userId": user, "url": url, "timestamp": iso(*at)});
        if let Some(r) = referrer {
            body["referrer"] = json!(r);
        }
        let (status, answer) = app.post("/events/page-view", &body).await;
        assert_eq!(status, 201, "{answer}");
    }
    // The reference: counts by page; visits (gaps of GAP) by entry and source.
    let mut by_page: BTreeMap<&str, u64> = BTreeMap::new();
    let mut by_user: BTreeMap<&str, Vec<&View<'_>>> = BTreeMap::new();
    for v in &views {
        *by_page.entry(&v.2).or_default() += 1;
        by_user.entry(&v.0).or_default().push(v);
    }
    let (mut entries, mut sources): (BTreeMap<String, u64>, BTreeMap<String, u64>) =
        Default::default();
    for list in by_user.values() {
        let mut last: Option<i64> = None;
        for v in list {
            if last.is_none_or(|l| v.1 - l >= GAP) {
                *entries.entry(v.2.clone()).or_default() += 1;
                let source = match v.3 {
                    Some(r) if r.starts_with("https://") => {
                        let host = r["https://".len()..].split('/').next().unwrap_or_default();
                        host.trim_start_matches("www.").to_string()
                    }
                    _ => "Direct / None".to_string(),
                };
                *sources.entry(source).or_default() += 1;
            }
            last = Some(v.1);
        }
    }
    let range = json!([iso(t0), iso(t0 + 60 * MINUTE)]);
    app.wait_for("/events/stats", crate::helpers::workload::WAIT, |s| {
        s["totalPageViews"] == json!(1_500)
    })
    .await;
    // Visits by source is the last thing written: wait for its total.
    let visits: u64 = sources.values().sum();
    let start = Instant::now();
    let answer = loop {
        let answer = query(
            &app,
            json!({"metrics": ["visits"], "date_range": range, "dimensions": ["visit:source"]}),
        )
        .await;
        let total: u64 = answer["results"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r["metrics"][0].as_u64().expect("count"))
            .sum();
        if total == visits {
            break answer;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{answer}");
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    };
    let mut want: Vec<(String, u64)> = sources.into_iter().collect();
    want.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let got: Vec<(String, u64)> = answer["results"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["dimensions"][0].as_str().expect("source").to_string(),
                r["metrics"][0].as_u64().expect("visits"),
            )
        })
        .collect();
    assert_eq!(got, want);
    let answer = query(
        &app,
        json!({"metrics": ["visits"], "date_range": range, "dimensions": ["visit:entry_page"], "order_by": [["visit:entry_page", "asc"]]}),
    )
    .await;
    let got: BTreeMap<String, u64> = answer["results"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["dimensions"][0].as_str().expect("page").to_string(),
                r["metrics"][0].as_u64().expect("visits"),
            )
        })
        .collect();
    assert_eq!(got, entries);

    // Pages: the most read exact, every count within the stated bound.
    let answer = query(
        &app,
        json!({"metrics": ["pageviews"], "date_range": range, "dimensions": ["event:page"], "limit": 30}),
    )
    .await;
    let rows = answer["results"].as_array().expect("rows");
    assert_eq!(rows.len(), 30);
    let mut ranked: Vec<(&str, u64)> = by_page.iter().map(|(k, v)| (*k, *v)).collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    assert_eq!(
        (
            rows[0]["dimensions"][0].as_str().expect("page"),
            rows[0]["metrics"][0].as_u64().expect("views")
        ),
        ranked[0],
        "{answer}"
    );
    let counts: Vec<u64> = rows
        .iter()
        .map(|r| r["metrics"][0].as_u64().expect("views"))
        .collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{counts:?}");
    let bound = answer["meta"]["pageCountBound"].as_u64().expect("a bound");
    for row in rows {
        let page = row["dimensions"][0].as_str().expect("page");
        let count = row["metrics"][0].as_u64().expect("views");
        assert!(
            count >= by_page[page] && count - bound <= by_page[page],
            "{page}: {count} ± {bound}"
        );
    }
    // The tables filled (400 pages, 40 held): the answer says so.
    assert!(
        answer["meta"]["unlistedPageBound"]
            .as_u64()
            .expect("a bound")
            > 0
    );
    app.stop().await;
}

/// Two instances; the one holding partitions is killed with SIGKILL while
/// the stream is being sent (its open transaction and uncommitted visits
/// lost), the other takes its partitions over from the changelog, and the
/// killed one comes back under its name: both answer the reference's
/// visits, minute by minute.
#[actix_web::test]
async fn visits_survive_kill_9_mid_stream_and_agree_after_the_restart() {
    use crate::helpers::process::Process;
    use crate::helpers::workload::WAIT;

    let brokers = test_brokers();
    let prefix = random_prefix();
    let gap = GAP.to_string();
    let extra = [
        ("ARUS__KAFKA__PARTITIONS", "6"),
        ("ARUS__SESSIONS__INACTIVITY_MS", gap.as_str()),
    ];
    let (a_id, b_id) = (format!("{prefix}ka"), format!("{prefix}kb"));
    let a = Process::start(&brokers, &prefix, &a_id, &extra);
    let b = Process::start(&brokers, &prefix, &b_id, &extra);
    let a_http = TestApp::remote(a.address.clone(), &brokers, &prefix).await;
    let b_http = TestApp::remote(b.address.clone(), &brokers, &prefix).await;
    let now = Utc::now().timestamp_millis();
    let t0 = (now - 2 * 3_600_000).div_euclid(3_600_000) * 3_600_000;
    let stream = generated(t0);
    post_in_order(&[&a_http], &stream[..300]).await;
    let stats = b_http
        .wait_for("/events/stats", WAIT, |s| {
            s["consumer"]["recordsConsumed"].as_u64() > Some(0)
        })
        .await;
    assert!(
        stats["consumer"]["assignedPartitions"]
            .as_array()
            .is_some_and(|p| !p.is_empty()),
        "{stats}"
    );
    let through_a = [&a_http];
    let more = post_in_order(&through_a, &stream[300..500]);
    let kill = async {
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        b.kill();
    };
    futures::join!(more, kill);
    post_in_order(&[&a_http], &stream[500..]).await;

    let (minutes, _) = reference(&stream);
    let total = VisitTotals::sum(&minutes);
    let range = json!([iso(t0 - 5 * MINUTE), iso(t0 + 90 * MINUTE)]);
    let whole = json!({"metrics": ["visits", "bounce_rate", "visit_duration", "views_per_visit"], "date_range": range});
    settled(&a_http, &whole, total.answer()).await;
    let b = Process::start(&brokers, &prefix, &b_id, &extra);
    let b_http = TestApp::remote(b.address.clone(), &brokers, &prefix).await;
    for app in [&a_http, &b_http] {
        settled(app, &whole, total.answer()).await;
        assert_minutes(app, &range, &minutes).await;
    }
    assert!(b.terminate().success());
    assert!(a.terminate().success());
}
