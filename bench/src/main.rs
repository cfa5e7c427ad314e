//! arus benchmarks, each measured as a ratio to the raw broker in the same run:
//!
//! - raw produce: a plain idempotent `acks=all` producer, same compression
//! - raw consume: a plain consumer reading the same records
//! - ingest: arus's `POST /events/batch-events`, batches of 1,000
//! - end to end: records preloaded into the input; arus consumes, aggregates,
//!   commits (transactions) and shows them all in a query answer
//! - freshness: under half the rate arus sustains (the lower of ingest and
//!   end to end), time from a probe event's
//!   201 to its first appearance in a query answer (p50, p99)
//!
//! Usage: arus-bench --brokers HOST:PORT --arus PATH [--events N] [--runs R] [--out FILE]
//!        [--without-event-ids] [--ingest-only]
//! (bench/run.sh starts the test broker and builds everything first).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures::future::join_all;
use futures::StreamExt as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{json, Value};

const PARTITIONS: i32 = 3;
/// Events in flight at once, for the raw producer and for arus's ingest
/// alike (20 batches of 1,000 on as many HTTP connections).
const IN_FLIGHT: usize = 20_000;
const BATCH: usize = 1_000;

struct Args {
    brokers: String,
    arus: String,
    events: usize,
    runs: usize,
    out: Option<String>,
    event_ids: bool,
    ingest_only: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        brokers: String::new(),
        arus: "target/release/arus".into(),
        events: 200_000,
        runs: 3,
        out: None,
        event_ids: true,
        ingest_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--without-event-ids" {
            a.event_ids = false;
            continue;
        }
        if flag == "--ingest-only" {
            a.ingest_only = true;
            continue;
        }
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--brokers" => a.brokers = value,
            "--arus" => a.arus = value,
            "--events" => a.events = value.parse()?,
            "--runs" => a.runs = value.parse()?,
            "--out" => a.out = Some(value),
            other => bail!("unknown flag {other}"),
        }
    }
    if a.brokers.is_empty() {
        bail!("--brokers is required");
    }
    Ok(a)
}

/// A realistic user event, about 200 bytes as JSON.
fn event(i: usize, with_id: bool) -> Value {
    let kind = ["login", "view", "purchase", "logout"][i % 4];
    let mut e = json!({
        "eventId": uuid::Uuid::new_v4(),
        "userId": format!("user-{:06}", i % 50_000),
        "eventType": kind,
        "timestamp": "2026-11-24T12:00:00.000Z",
        "metadata": {"sku": format!("SKU-{:06}", i % 9973), "amount": 42.5, "device": "mobile"}
    });
    if !with_id {
        if let Some(e) = e.as_object_mut() {
            e.remove("eventId");
        }
    }
    e
}

fn prefix() -> String {
    format!("bench{}-", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

async fn create_topic(brokers: &str, topic: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let new = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1));
    for result in admin.create_topics([&new], &AdminOptions::new()).await? {
        result.map_err(|(t, e)| anyhow::anyhow!("creating {t}: {e}"))?;
    }
    Ok(())
}

/// Produces `n` events like arus's ingest does; returns events per second.
/// `timed`: the rate is the figure wanted (not a preload).
async fn raw_produce(
    brokers: &str,
    topic: &str,
    n: usize,
    ids: bool,
    timed: bool,
) -> anyhow::Result<f64> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .create()?;
    let payloads: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            let e = event(i, ids);
            let key = e["userId"].as_str().unwrap_or_default().to_string();
            (key, serde_json::to_vec(&e).unwrap_or_default())
        })
        .collect();
    if timed {
        // Connected and with its producer id before the clock starts, like
        // arus's producer when its ingest is timed (one record more).
        producer
            .send(
                FutureRecord::to(topic).key("warm-up").payload("{}"),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)?;
    }
    let started = Instant::now();
    for chunk in payloads.chunks(IN_FLIGHT) {
        let sends = chunk.iter().map(|(key, value)| {
            producer.send(
                FutureRecord::to(topic).key(key).payload(value),
                Duration::from_secs(30),
            )
        });
        for result in join_all(sends).await {
            result.map_err(|(e, _)| e)?;
        }
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Reads `n` records of `topic` from the beginning; returns records per second.
fn raw_consume(brokers: &str, topic: &str, n: usize) -> anyhow::Result<f64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-raw"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let started = Instant::now();
    let mut read = 0;
    while read < n {
        if started.elapsed() > Duration::from_secs(600) {
            bail!("raw consumer read {read} of {n}");
        }
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            m?;
            read += 1;
        }
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

struct Arus {
    child: Child,
    url: String,
}

impl Drop for Arus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn get(client: &awc::Client, url: &str) -> Option<Value> {
    let mut resp = client.get(url).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json::<Value>().limit(1 << 20).await.ok()
}

async fn start_arus(args: &Args, prefix: &str, client: &awc::Client) -> anyhow::Result<Arus> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(&args.arus)
        .arg("serve")
        .env("ARUS__KAFKA__BROKERS", &args.brokers)
        .env("ARUS__KAFKA__TOPIC_PREFIX", prefix)
        .env("ARUS__KAFKA__GROUP_ID", format!("{prefix}group"))
        .env("ARUS__KAFKA__PARTITIONS", PARTITIONS.to_string())
        .env("ARUS__INSTANCE_ID", prefix.trim_end_matches('-'))
        .env("ARUS__HTTP__BIND", format!("127.0.0.1:{port}"))
        .env("ARUS__KAFKA__SESSION_TIMEOUT_MS", "2000")
        .env("ARUS__KAFKA__HEARTBEAT_INTERVAL_MS", "500")
        .env("ARUS__KAFKA__MAX_POLL_INTERVAL_MS", "10000")
        .env(
            "RUST_LOG",
            std::env::var("BENCH_ARUS_LOG").unwrap_or_else(|_| "warn".into()),
        )
        // Its log (stdout) only when asked for, with BENCH_ARUS_LOG.
        .stdout(if std::env::var_os("BENCH_ARUS_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", args.arus))?;
    let arus = Arus {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let started = Instant::now();
    while get(client, &format!("{}/health/ready", arus.url))
        .await
        .is_none()
    {
        if started.elapsed() > Duration::from_secs(120) {
            bail!("arus not ready");
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(arus)
}

/// Preloads `n` events, starts arus, and measures from its first applied
/// event until every event shows in a query answer (committed, lag 0).
async fn end_to_end(args: &Args, client: &awc::Client) -> anyhow::Result<(f64, f64)> {
    let prefix = prefix();
    let topic = format!("{prefix}user-events");
    create_topic(&args.brokers, &topic).await?;
    raw_produce(&args.brokers, &topic, args.events, args.event_ids, false).await?;
    let raw = raw_consume(&args.brokers, &topic, args.events)?;
    let arus = start_arus(args, &prefix, client).await?;
    // From readiness, or later, the last moment nothing was applied yet.
    let (mut first, mut done) = (Some(Instant::now()), None);
    let limit = Instant::now() + Duration::from_secs(900);
    while done.is_none() && Instant::now() < limit {
        let now = Instant::now();
        if let Some(stats) = get(client, &format!("{}/events/stats", arus.url)).await {
            let applied = stats["consumer"]["eventsApplied"].as_u64().unwrap_or(0);
            if applied == 0 {
                first = Some(now);
            }
            if stats["totalEvents"].as_u64() == Some(args.events as u64) {
                done = Some(now);
            }
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let (Some(first), Some(done)) = (first, done) else {
        bail!("arus did not count everything")
    };
    drop(arus);
    Ok((raw, args.events as f64 / (done - first).as_secs_f64()))
}

/// Raw producer against arus's batch ingest, same number of events. The raw
/// producer runs just before and just after arus (the broker slows as its
/// in-memory storage fills), and its figure is the mean of the two.
async fn ingest(args: &Args, client: &awc::Client) -> anyhow::Result<(f64, f64)> {
    let prefix = prefix();
    let raw_before = format!("{prefix}raw-before");
    create_topic(&args.brokers, &raw_before).await?;
    let before = raw_produce(
        &args.brokers,
        &raw_before,
        args.events,
        args.event_ids,
        true,
    )
    .await?;
    let arus = start_arus(args, &prefix, client).await?;
    let batches: Vec<String> = (0..args.events)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(|c| Value::Array(c.iter().map(|&i| event(i, args.event_ids)).collect()).to_string())
        .collect();
    let url = format!("{}/events/batch-events", arus.url);
    let started = Instant::now();
    let mut answers = futures::stream::iter(batches.into_iter().map(|body| {
        client
            .post(&url)
            .insert_header(("content-type", "application/json"))
            .send_body(body)
    }))
    .buffer_unordered(IN_FLIGHT / BATCH);
    while let Some(resp) = answers.next().await {
        let mut resp = resp.map_err(|e| anyhow::anyhow!("ingest: {e}"))?;
        if resp.status().as_u16() != 201 {
            bail!("ingest answered {}", resp.status());
        }
        // Read the answer whole, as a client would.
        resp.body().limit(1 << 22).await?;
    }
    let arus_rate = args.events as f64 / started.elapsed().as_secs_f64();
    drop(arus);
    let raw_after = format!("{prefix}raw-after");
    create_topic(&args.brokers, &raw_after).await?;
    let after = raw_produce(&args.brokers, &raw_after, args.events, args.event_ids, true).await?;
    Ok(((before + after) / 2.0, arus_rate))
}

/// Probe events per freshness run.
const PROBES: usize = 100;

/// Freshness at `load` events/s of batch ingest (half of what arus
/// sustained in this run): single probe events, one after another; for each, the time
/// from its 201 to the first answer of `GET /events/analytics/users/{id}`
/// that shows it. Returns (p50, p99) in milliseconds.
async fn freshness(args: &Args, client: &awc::Client, load: f64) -> anyhow::Result<(f64, f64)> {
    let prefix = prefix();
    let arus = start_arus(args, &prefix, client).await?;
    let stop = std::rc::Rc::new(std::cell::Cell::new(false));
    let background = {
        let (stop, client, url) = (
            stop.clone(),
            client.clone(),
            format!("{}/events/batch-events", arus.url),
        );
        let ids = args.event_ids;
        let period = Duration::from_secs_f64(BATCH as f64 / load);
        actix_web::rt::spawn(async move {
            let (mut next, mut i) = (Instant::now(), 0);
            while !stop.get() {
                let body =
                    Value::Array((i..i + BATCH).map(|n| event(n, ids)).collect()).to_string();
                i += BATCH;
                // Paced, not waiting for the answer: the load stays at its rate.
                let send = client
                    .post(&url)
                    .insert_header(("content-type", "application/json"))
                    .send_body(body);
                actix_web::rt::spawn(async move {
                    let _ = send.await;
                });
                next += period;
                actix_web::rt::time::sleep_until(next.into()).await;
            }
        })
    };
    // Let the load settle first.
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    let mut latencies = Vec::with_capacity(PROBES);
    for k in 0..PROBES {
        let user = format!("probe-{k}");
        let resp = client
            .post(format!("{}/events/user-event", arus.url))
            .send_json(&json!({"userId": user, "eventType": "view"}))
            .await
            .map_err(|e| anyhow::anyhow!("probe: {e}"))?;
        if resp.status().as_u16() != 201 {
            bail!("probe answered {}", resp.status());
        }
        let acknowledged = Instant::now();
        let url = format!("{}/events/analytics/users/{user}", arus.url);
        while get(client, &url).await.is_none() {
            if acknowledged.elapsed() > Duration::from_secs(30) {
                bail!("probe {k} never showed");
            }
            actix_web::rt::time::sleep(Duration::from_millis(2)).await;
        }
        latencies.push(acknowledged.elapsed().as_secs_f64() * 1000.0);
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    stop.set(true);
    let _ = background.await;
    drop(arus);
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    Ok((at(0.50), at(0.99)))
}

fn median_spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn row(name: &str, raw: Vec<f64>, arus: Vec<f64>, target: &str) -> String {
    let ratios: Vec<f64> = raw.iter().zip(&arus).map(|(r, a)| a / r).collect();
    let (rm, rlo, rhi) = median_spread(raw);
    let (am, alo, ahi) = median_spread(arus);
    let (qm, qlo, qhi) = median_spread(ratios);
    format!(
        "| {name} | {rm:.0} ({rlo:.0}–{rhi:.0}) | {am:.0} ({alo:.0}–{ahi:.0}) | {:.0}% ({:.0}–{:.0}%) | {target} |\n",
        qm * 100.0,
        qlo * 100.0,
        qhi * 100.0
    )
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    actix_web::rt::System::new().block_on(async {
        let client = awc::Client::builder().timeout(Duration::from_secs(60)).finish();
        let (mut raw_c, mut e2e, mut raw_p, mut ing) = (vec![], vec![], vec![], vec![]);
        let mut fresh: Vec<(f64, f64, f64)> = vec![];
        for run in 1..=args.runs {
            if !args.ingest_only {
                let (raw, arus) = end_to_end(&args, &client).await?;
                eprintln!("run {run}: raw consume {raw:.0}/s, arus end to end {arus:.0}/s");
                raw_c.push(raw);
                e2e.push(arus);
            }
            let (raw, arus) = ingest(&args, &client).await?;
            eprintln!("run {run}: raw produce {raw:.0}/s, arus batch ingest {arus:.0}/s");
            raw_p.push(raw);
            ing.push(arus);
            if !args.ingest_only {
                // The most arus sustains is the lower of what it ingests and
                // what it processes end to end; freshness is taken at half.
                let load = arus.min(e2e[e2e.len() - 1]) / 2.0;
                let (p50, p99) = freshness(&args, &client, load).await?;
                eprintln!("run {run}: freshness at {load:.0} events/s: p50 {p50:.0} ms, p99 {p99:.0} ms");
                fresh.push((load, p50, p99));
            }
        }
        let mut table = String::from(
            "| benchmark | raw broker, events/s | arus, events/s | arus / raw | target |\n|---|---|---|---|---|\n",
        );
        table += &row("ingest, batches of 1,000 (HTTP) vs raw producer", raw_p, ing, "≥ 70%");
        if !args.ingest_only {
            table += &row("end to end (consume, aggregate, commit, visible) vs raw consumer", raw_c, e2e, "≥ 50%");
            let (load, _, _) = median_spread(fresh.iter().map(|f| f.0).collect());
            let (p50, p50lo, p50hi) = median_spread(fresh.iter().map(|f| f.1).collect());
            let (p99, p99lo, p99hi) = median_spread(fresh.iter().map(|f| f.2).collect());
            table += &format!(
                "\n| freshness: ingest 201 to visible in a query, {PROBES} probes, at half the sustained rate (~{load:.0} events/s) | p50 | p99 | target |\n|---|---|---|---|\n| ms | {p50:.0} ({p50lo:.0}–{p50hi:.0}) | {p99:.0} ({p99lo:.0}–{p99hi:.0}) | p99 ≤ 2 × commit interval + 50 ms = 250 ms |\n"
            );
        }
        // The bench's own output: the table is what it is run for.
        #[allow(clippy::print_stdout)]
        {
            println!("{table}");
        }
        if let Some(out) = &args.out {
            std::fs::write(out, &table)?;
        }
        anyhow::Ok(())
    })
}
