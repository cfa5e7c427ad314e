//! The benchmarks themselves; each returns the raw figure and arus's, or
//! arus's with its own baseline, measured in the same run.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures::StreamExt as _;
use serde_json::{json, Value};

use crate::raw::{create_topic, raw_consume, raw_produce, raw_produce_one_at_a_time};
use crate::service::{get, start_arus, Load, ADMIN_TOKEN};
use crate::{event, prefix, Args, BATCH, IN_FLIGHT};

/// Preloads `n` events, starts arus, and measures from its first applied
/// event until every event shows in a query answer (committed, lag 0).
pub async fn end_to_end(args: &Args, client: &awc::Client) -> anyhow::Result<(f64, f64)> {
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

/// What one ingest run measured, events/s: the raw producer, arus's batch
/// ingest while it also counts what it ingests (consumer, aggregation, read
/// model on the same cores), the same run's events over the time until every
/// one of them shows in a query (what arus sustains ingesting and counting
/// at once), and arus's batch ingest alone (its consumer paused, as the raw
/// producer has none).
pub struct Ingest {
    pub raw: f64,
    pub counting: f64,
    pub counted: f64,
    pub alone: f64,
}

/// Raw producer against arus's batch ingest, same number of events. The raw
/// producer runs just before and just after arus (the broker slows as its
/// in-memory storage fills), and its figure is the mean of the two.
pub async fn ingest(args: &Args, client: &awc::Client) -> anyhow::Result<Ingest> {
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
    let (counting, counted) = arus_ingest(args, client, &format!("{prefix}c-"), false).await?;
    let (alone, _) = arus_ingest(args, client, &format!("{prefix}a-"), true).await?;
    let raw_after = format!("{prefix}raw-after");
    create_topic(&args.brokers, &raw_after).await?;
    let after = raw_produce(&args.brokers, &raw_after, args.events, args.event_ids, true).await?;
    Ok(Ingest {
        raw: (before + after) / 2.0,
        counting,
        counted,
        alone,
    })
}

/// One arus, fresh topics under `prefix`, ingesting every event in batches:
/// events/s until the last batch is answered and, unless `paused`, until
/// every event shows in a query. With `paused`, its consumption is paused
/// first (through the admin endpoint, until every assigned partition shows
/// paused), and the second figure is 0.
async fn arus_ingest(
    args: &Args,
    client: &awc::Client,
    prefix: &str,
    paused: bool,
) -> anyhow::Result<(f64, f64)> {
    let arus = start_arus(args, prefix, client).await?;
    if paused {
        pause(client, &arus.url).await?;
    }
    let batches: Vec<String> = (0..args.events)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(|c| Value::Array(c.iter().map(|&i| event(i, args.event_ids)).collect()).to_string())
        .collect();
    let started = Instant::now();
    post_batches(client, &arus.url, batches).await?;
    let ingested = args.events as f64 / started.elapsed().as_secs_f64();
    if paused {
        return Ok((ingested, 0.0));
    }
    let every = Duration::from_millis(20);
    wait_for_stat(client, &arus.url, "totalEvents", args.events, every, 300).await?;
    Ok((
        ingested,
        args.events as f64 / started.elapsed().as_secs_f64(),
    ))
}

/// Polls `GET /events/stats` every `every` until its `field` is `want`, for
/// at most `limit_s` seconds.
pub async fn wait_for_stat(
    client: &awc::Client,
    base: &str,
    field: &str,
    want: usize,
    every: Duration,
    limit_s: u64,
) -> anyhow::Result<()> {
    let started = Instant::now();
    while get(client, &format!("{base}/events/stats"))
        .await
        .and_then(|s| s[field].as_u64())
        != Some(want as u64)
    {
        if started.elapsed() > Duration::from_secs(limit_s) {
            bail!("arus's {field} did not reach {want} within {limit_s} s");
        }
        actix_web::rt::time::sleep(every).await;
    }
    Ok(())
}

/// Pauses arus's consumption and waits until it holds for every assigned
/// partition (assignment may come after readiness: partitions assigned
/// during a pause are paused too, but the bench waits to see them).
async fn pause(client: &awc::Client, base: &str) -> anyhow::Result<()> {
    let limit = Instant::now() + Duration::from_secs(30);
    loop {
        let mut resp = client
            .post(format!("{base}/v1/consumer/pause"))
            .insert_header(("x-admin-token", ADMIN_TOKEN))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("pausing arus: {e}"))?;
        if !resp.status().is_success() {
            bail!("pausing arus answered {}", resp.status());
        }
        let answer: Value = resp.json().await?;
        let paused = answer["pausedPartitions"].as_u64().unwrap_or(0) as usize;
        let assigned = answer["assignedPartitions"].as_array().map_or(0, Vec::len);
        if assigned > 0 && paused == assigned {
            return Ok(());
        }
        if Instant::now() > limit {
            bail!("arus's consumption did not pause ({paused} of {assigned} partitions)");
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Posts every batch body to arus's batch ingest, `IN_FLIGHT` events at a
/// time, reading each answer whole as a client would; fails on any answer
/// but 201.
pub async fn post_batches(
    client: &awc::Client,
    base: &str,
    bodies: impl IntoIterator<Item = String>,
) -> anyhow::Result<()> {
    let url = format!("{base}/events/batch-events");
    let mut answers = futures::stream::iter(bodies.into_iter().map(|body| {
        client
            .post(&url)
            .insert_header(("content-type", "application/json"))
            .send_body(body)
    }))
    .buffer_unordered(IN_FLIGHT / BATCH);
    while let Some(resp) = answers.next().await {
        let mut resp = resp.map_err(|e| anyhow::anyhow!("batch ingest: {e}"))?;
        if resp.status().as_u16() != 201 {
            bail!("batch ingest answered {}", resp.status());
        }
        resp.body().limit(1 << 22).await?;
    }
    Ok(())
}

/// Probe events per freshness run.
pub const PROBES: usize = 100;

/// The query endpoints, each timed this many times per state.
pub const QUERY_SAMPLES: usize = 200;
pub const QUERIES: [&str; 7] = [
    "/events/stats",
    "/events/analytics",
    "/events/analytics/event-counts",
    "/events/analytics/active-users",
    "/events/analytics/top-pages",
    "/events/analytics/sessions",
    "/events/analytics/users/user-000007",
];

/// What one freshness run measured: probe latencies, and per query endpoint
/// its p50 and p99 idle and under the load (milliseconds).
pub struct Freshness {
    pub p50: f64,
    pub p99: f64,
    pub queries: Vec<QueryLatency>,
}

/// One endpoint of [`QUERIES`], in its order.
pub struct QueryLatency {
    pub idle: (f64, f64),
    pub loaded: (f64, f64),
}

pub fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    (at(0.50), at(0.99))
}

/// Each query endpoint `QUERY_SAMPLES` times, one request after another.
async fn time_queries(client: &awc::Client, base: &str) -> anyhow::Result<Vec<(f64, f64)>> {
    let mut out = Vec::with_capacity(QUERIES.len());
    for path in QUERIES {
        let url = format!("{base}{path}");
        let mut ms = Vec::with_capacity(QUERY_SAMPLES);
        for _ in 0..QUERY_SAMPLES {
            let started = Instant::now();
            let mut resp = client
                .get(&url)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
            resp.body().limit(1 << 20).await?;
            ms.push(started.elapsed().as_secs_f64() * 1000.0);
            if !resp.status().is_success() {
                bail!("{path} answered {}", resp.status());
            }
        }
        out.push(percentiles(ms));
    }
    Ok(out)
}

/// Freshness and query latency at `load` events/s of batch ingest (half of
/// what arus sustained in this run). Probes: single events, one after
/// another; for each, the time from its 201 to the first answer of
/// `GET /events/analytics/users/{id}` that shows it. Then every query
/// endpoint is timed under the same load, and again once the load has
/// stopped and everything is counted (the baseline).
pub async fn freshness(args: &Args, client: &awc::Client, load: f64) -> anyhow::Result<Freshness> {
    let prefix = prefix();
    let arus = start_arus(args, &prefix, client).await?;
    let background = Load::start(client, &arus, args.event_ids, load);
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
    let loaded = time_queries(client, &arus.url).await?;
    background.stop().await;
    wait_caught_up(client, &arus.url).await?;
    let idle = time_queries(client, &arus.url).await?;
    drop(arus);
    let (p50, p99) = percentiles(latencies);
    let queries = idle
        .into_iter()
        .zip(loaded)
        .map(|(idle, loaded)| QueryLatency { idle, loaded })
        .collect();
    Ok(Freshness { p50, p99, queries })
}

/// Waits until arus has counted everything sent: its total stops moving.
async fn wait_caught_up(client: &awc::Client, base: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    let (mut last, mut still) = (None, 0);
    while still < 4 {
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
        let total = get(client, &format!("{base}/events/stats"))
            .await
            .and_then(|s| s["totalEvents"].as_u64());
        still = if total.is_some() && total == last {
            still + 1
        } else {
            0
        };
        last = total;
        if started.elapsed() > Duration::from_secs(300) {
            bail!("arus did not settle: total {last:?}");
        }
    }
    Ok(())
}

/// Memory against distinct users: arus's resident set once it is ready
/// (the baseline) and once `users` events from as many distinct users are
/// all counted. Returns MiB (idle, loaded).
pub async fn memory(args: &Args, client: &awc::Client, users: usize) -> anyhow::Result<(f64, f64)> {
    let prefix = prefix();
    let arus = start_arus(args, &prefix, client).await?;
    actix_web::rt::time::sleep(Duration::from_secs(1)).await;
    let idle = arus.rss_mib()?;
    let batches = (0..users).step_by(BATCH).map(|from| {
        let events: Vec<Value> = (from..(from + BATCH).min(users))
            .map(|i| {
                let mut e = event(i, args.event_ids);
                e["userId"] = json!(format!("mem-user-{i:08}"));
                e
            })
            .collect();
        Value::Array(events).to_string()
    });
    post_batches(client, &arus.url, batches).await?;
    let every = Duration::from_millis(200);
    wait_for_stat(client, &arus.url, "uniqueUsers", users, every, 600).await?;
    // Settled: the last commit's buffers returned.
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    let loaded = arus.rss_mib()?;
    Ok((idle, loaded))
}

/// Connections (wrk) and raw senders of the single-event benchmark.
pub const SINGLE_CLIENTS: usize = 64;

/// Single events over keep-alive connections with wrk, every one answered
/// 201, against the raw producer with as many senders each waiting for its
/// record's acknowledgement: (raw, arus) events per second. `None` when wrk
/// is not installed.
pub async fn single_event(args: &Args, client: &awc::Client) -> anyhow::Result<Option<(f64, f64)>> {
    if Command::new("wrk").arg("--version").output().is_err() {
        return Ok(None);
    }
    let prefix = prefix();
    let raw_topic = format!("{prefix}raw-single");
    create_topic(&args.brokers, &raw_topic).await?;
    let raw = raw_produce_one_at_a_time(&args.brokers, &raw_topic, 50_000, SINGLE_CLIENTS).await?;
    let arus = start_arus(args, &prefix, client).await?;
    let script = std::env::temp_dir().join(format!("{prefix}wrk.lua"));
    let mut body = event(7, false);
    if let Some(obj) = body.as_object_mut() {
        // One user for every request: the rate does not depend on keys.
        obj.remove("eventId");
    }
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"content-type\"] = \"application/json\"\nwrk.body = {}\n",
            serde_json::to_string(&body.to_string())?
        ),
    )?;
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{SINGLE_CLIENTS}"),
            "-d15s",
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(format!("{}/events/user-event", arus.url))
        .output()
        .context("running wrk")?;
    let _ = std::fs::remove_file(&script);
    drop(arus);
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Non-2xx or 3xx responses") {
        bail!("single-event ingest answered errors:\n{text}");
    }
    let rate = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .with_context(|| format!("no rate in wrk's output:\n{text}"))?;
    Ok(Some((raw, rate)))
}
