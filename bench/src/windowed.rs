//! `POST /v1/query` with many distinct visitors in the data: `VISITORS`
//! user events of as many users through arus's batch ingest, and as many
//! page views of the same users (Zipf-popular pages) produced straight
//! into the page-views topic, keyed and partitioned (murmur2) as arus's
//! ingest does; then each windowed query timed one request after another.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::{json, Value};

use crate::changelog_bytes::{by_kind, KindBytes};
use crate::runs::{percentiles, post_batches, wait_for_stat, QUERY_SAMPLES};
use crate::service::start_arus;
use crate::{event, prefix, Args, BATCH};

/// The queries timed: a day by minute, thirty days by day, a page breakdown.
pub const WINDOW_QUERIES: [(&str, &str); 3] = [
    (
        "24 h by minute (visitors, page views, events)",
        r#"{"metrics":["visitors","pageviews","events"],"date_range":"24h","dimensions":["time:minute"]}"#,
    ),
    (
        "30 days by day (visitors, visits, bounce rate)",
        r#"{"metrics":["visitors","visits","bounce_rate"],"date_range":"30d","dimensions":["time:day"]}"#,
    ),
    (
        "page breakdown over 24 h (page views, top 100)",
        r#"{"metrics":["pageviews"],"date_range":"24h","dimensions":["event:page"],"limit":100}"#,
    ),
];

/// What the data cost: the instance's memory and the changelog's bytes.
pub struct Footprint {
    pub rss_idle_mib: f64,
    pub rss_loaded_mib: f64,
    pub changelog: BTreeMap<String, KindBytes>,
}

/// p50 and p99 in ms of each of [`WINDOW_QUERIES`], the visitors the
/// whole range answered (a check that the data is in), and the footprint.
pub async fn windowed_queries(
    args: &Args,
    client: &awc::Client,
    visitors: usize,
) -> anyhow::Result<(Vec<(f64, f64)>, u64, Footprint)> {
    let prefix = prefix();
    let arus = start_arus(args, &prefix, client).await?;
    actix_web::rt::time::sleep(Duration::from_secs(1)).await;
    let rss_idle_mib = arus.rss_mib()?;
    let batches = (0..visitors).step_by(BATCH).map(|from| {
        let events: Vec<Value> = (from..(from + BATCH).min(visitors))
            .map(|i| {
                let mut e = event(i, args.event_ids);
                e["userId"] = json!(format!("visitor-{i:08}"));
                e
            })
            .collect();
        Value::Array(events).to_string()
    });
    post_batches(client, &arus.url, batches).await?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("partitioner", "murmur2_random")
        .create()?;
    let topic = format!("{prefix}page-views");
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let harmonic: f64 = (1..=1000).map(|r| 1.0 / f64::from(r)).sum();
    let mut pending = Vec::new();
    for i in 0..visitors {
        // Page rank by a Zipf law over 1,000 pages, from i's bits.
        let mut x = ((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11) as f64
            / (1u64 << 53) as f64
            * harmonic;
        let mut rank = 1000;
        for r in 1..=1000 {
            x -= 1.0 / f64::from(r);
            if x <= 0.0 {
                rank = r;
                break;
            }
        }
        let user = format!("visitor-{i:08}");
        let body =
            json!({"userId": user, "url": format!("/page/{rank}"), "timestamp": now}).to_string();
        let producer = producer.clone();
        let topic = topic.clone();
        pending.push(async move {
            producer
                .send(
                    FutureRecord::to(&topic).key(&user).payload(&body),
                    Duration::from_secs(60),
                )
                .await
                .map(|_| ())
                .map_err(|(e, _)| e)
        });
        if pending.len() == 20_000 {
            for r in futures::future::join_all(std::mem::take(&mut pending)).await {
                r?;
            }
        }
    }
    for r in futures::future::join_all(pending).await {
        r?;
    }
    let every = Duration::from_millis(500);
    wait_for_stat(client, &arus.url, "totalEvents", visitors, every, 900).await?;
    wait_for_stat(client, &arus.url, "totalPageViews", visitors, every, 900).await?;
    actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    let url = format!("{}/v1/query", arus.url);
    let mut out = Vec::new();
    for (_, body) in WINDOW_QUERIES {
        let mut ms = Vec::with_capacity(QUERY_SAMPLES);
        for _ in 0..QUERY_SAMPLES {
            let started = Instant::now();
            let mut resp = client
                .post(&url)
                .insert_header(("content-type", "application/json"))
                .send_body(body)
                .await
                .map_err(|e| anyhow::anyhow!("query: {e}"))?;
            if !resp.status().is_success() {
                bail!("query {body} answered {}", resp.status());
            }
            resp.body().limit(1 << 24).await?;
            ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        out.push(percentiles(ms));
    }
    let mut resp = client
        .post(&url)
        .insert_header(("content-type", "application/json"))
        .send_body(r#"{"metrics":["visitors"],"date_range":"24h"}"#)
        .await
        .map_err(|e| anyhow::anyhow!("query: {e}"))?;
    let answer: Value = resp.json().limit(1 << 20).await?;
    let counted = answer["results"][0]["metrics"][0].as_u64().unwrap_or(0);
    let footprint = Footprint {
        rss_idle_mib,
        rss_loaded_mib: arus.rss_mib()?,
        changelog: by_kind(&args.brokers, &format!("{prefix}analytics-events"))?,
    };
    Ok((out, counted, footprint))
}
