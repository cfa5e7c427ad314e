//! arus benchmarks, each measured as a ratio to a baseline taken in the same run:
//!
//! - raw produce: a plain idempotent `acks=all` producer, same compression
//! - raw consume: a plain consumer reading the same records
//! - ingest: arus's `POST /events/batch-events`, batches of 1,000, against the
//!   raw producer, with arus's consumption paused (alone) and running (while
//!   counting, and until every event is counted); single events over 64
//!   keep-alive connections (wrk) against 64 raw senders that each wait for
//!   their record's acknowledgement
//! - end to end: records preloaded into the input; arus consumes, aggregates,
//!   commits (transactions) and shows them all in a query answer
//! - freshness: under half the rate arus sustains ingesting and processing at
//!   once (as the ingest run measured it: events until every one is counted),
//!   time from a probe event's 201 to its first appearance in a query answer
//!   (p50, p99)
//! - queries: every query endpoint's p50/p99 under that load, against the
//!   same endpoint once the load has stopped
//! - memory: arus's resident set with 10k, 100k and 1M distinct users,
//!   against its own once started
//!
//! Usage: arus-bench --brokers HOST:PORT --arus PATH [--events N] [--runs R] [--out FILE]
//!        [--without-event-ids] [--ingest-only] [--memory-users N,N,...]
//!        [--freshness-at EVENTS_PER_S] [--window-queries VISITORS]
//! (bench/run.sh starts the test broker and builds everything first).

mod changelog_bytes;
mod raw;
mod runs;
mod service;
mod windowed;

use std::time::Duration;

use anyhow::{bail, Context as _};
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
    memory_users: Vec<usize>,
    /// Only the windowed-query run, with this many distinct visitors.
    window_visitors: Option<usize>,
    /// Only the freshness and query run, at this many events/s: for
    /// comparing one change quickly; the full run is what BENCHMARKS.md shows.
    freshness_at: Option<f64>,
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
        memory_users: vec![10_000, 100_000, 1_000_000],
        freshness_at: None,
        window_visitors: None,
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
            "--freshness-at" => a.freshness_at = Some(value.parse()?),
            "--window-queries" => a.window_visitors = Some(value.parse()?),
            "--memory-users" => {
                a.memory_users = value
                    .split(',')
                    .filter(|v| !v.is_empty())
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
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
        // Now, as a client would send it: arus refuses event times more
        // than windows.max_past_ms (7 days) behind the time of ingest.
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
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

/// Median (min–max) of one figure over the runs.
fn spread(v: Vec<f64>, decimals: usize) -> String {
    let (m, lo, hi) = median_spread(v);
    format!("{m:.decimals$} ({lo:.decimals$}–{hi:.decimals$})")
}

/// The freshness and query tables, from every run's measurements.
fn freshness_tables(fresh: &[(f64, runs::Freshness)]) -> String {
    let (load, _, _) = median_spread(fresh.iter().map(|f| f.0).collect());
    let mut out = format!(
        "\n| freshness: ingest 201 to visible in a query, {} probes, at half the sustained rate (~{load:.0} events/s) | p50 | p99 | target |\n|---|---|---|---|\n| ms | {} | {} | p99 ≤ 2 × commit interval + 50 ms = 250 ms |\n",
        runs::PROBES,
        spread(fresh.iter().map(|f| f.1.p50).collect(), 0),
        spread(fresh.iter().map(|f| f.1.p99).collect(), 0),
    );
    out += &format!(
        "\n| query ({} requests each, one at a time), ms | idle p50 | idle p99 | under load p50 | under load p99 | target |\n|---|---|---|---|---|---|\n",
        runs::QUERY_SAMPLES
    );
    for (i, path) in runs::QUERIES.iter().enumerate() {
        let of = |pick: fn(&runs::QueryLatency) -> f64| -> String {
            spread(fresh.iter().map(|f| pick(&f.1.queries[i])).collect(), 2)
        };
        out += &format!(
            "| `{path}` | {} | {} | {} | {} | p99 ≤ 5 ms |\n",
            of(|q| q.idle.0),
            of(|q| q.idle.1),
            of(|q| q.loaded.0),
            of(|q| q.loaded.1),
        );
    }
    out
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    actix_web::rt::System::new().block_on(async {
        let client = awc::Client::builder().timeout(Duration::from_secs(60)).finish();
        let (mut raw_c, mut e2e, mut raw_p, mut ing) = (vec![], vec![], vec![], vec![]);
        let (mut ing_alone, mut ing_counted) = (vec![], vec![]);
        let (mut raw_single, mut single) = (vec![], vec![]);
        let mut fresh: Vec<(f64, runs::Freshness)> = vec![];
        if let Some(visitors) = args.window_visitors {
            let mut table = format!(
                "| POST /v1/query, {visitors} distinct visitors and page views (200 requests each, one at a time), ms | p50 | p99 | target |\n|---|---|---|---|\n"
            );
            let mut tail = String::new();
            for _ in 0..args.runs {
                let (times, counted, after) =
                    windowed::windowed_queries(&args, &client, visitors).await?;
                eprintln!("windowed queries: visitors over 24 h answered {counted}");
                tail += &format!(
                    "\nAfter the load: RSS {:.0} MiB once started, {:.0} MiB with the data (the whole process: the read model, the shards' per-user state, open visits).\n\n{}",
                    after.rss_idle_mib,
                    after.rss_loaded_mib,
                    changelog_bytes::table(&after.changelog, 2 * visitors)
                );
                for ((name, _), (p50, p99)) in windowed::WINDOW_QUERIES.iter().zip(times) {
                    table += &format!("| {name} | {p50:.2} | {p99:.2} | p99 ≤ 10 ms |\n");
                }
                table += &format!("| (visitors over 24 h answered: {counted} of {visitors}) | | | |\n");
            }
            #[allow(clippy::print_stdout)]
            {
                println!("{table}{tail}");
            }
            return anyhow::Ok(());
        }
        if let Some(load) = args.freshness_at {
            for _ in 0..args.runs {
                fresh.push((load, runs::freshness(&args, &client, load).await?));
            }
            eprintln!("{}", freshness_tables(&fresh));
            return anyhow::Ok(());
        }
        for run in 1..=args.runs {
            if !args.ingest_only {
                let (raw, arus) = runs::end_to_end(&args, &client).await?;
                eprintln!("run {run}: raw consume {raw:.0}/s, arus end to end {arus:.0}/s");
                raw_c.push(raw);
                e2e.push(arus);
            }
            let i = runs::ingest(&args, &client).await?;
            eprintln!(
                "run {run}: raw produce {:.0}/s, arus batch ingest {:.0}/s counting ({:.0}/s until all counted), {:.0}/s alone",
                i.raw, i.counting, i.counted, i.alone
            );
            raw_p.push(i.raw);
            ing.push(i.counting);
            ing_counted.push(i.counted);
            ing_alone.push(i.alone);
            if let Some((raw, rate)) = runs::single_event(&args, &client).await? {
                eprintln!("run {run}: raw one at a time {raw:.0}/s, arus single-event ingest {rate:.0}/s");
                raw_single.push(raw);
                single.push(rate);
            }
            if !args.ingest_only {
                // What arus sustains when it ingests and processes at once,
                // on the same cores: the events of the ingest run above over
                // the time until every one of them showed in a query. Half
                // of the lower of ingest and end to end alone (an earlier
                // choice) overloaded the machine: consumption fell behind and
                // a probe waited more than 30 s in some runs. Freshness is
                // taken at half of the measured combined rate.
                let sustained = i.counted;
                let load = sustained / 2.0;
                let f = runs::freshness(&args, &client, load).await?;
                eprintln!(
                    "run {run}: freshness at {load:.0} events/s: p50 {:.0} ms, p99 {:.0} ms",
                    f.p50, f.p99
                );
                fresh.push((load, f));
            }
        }
        let mut table = String::from(
            "| benchmark | raw broker, events/s | arus, events/s | arus / raw | target |\n|---|---|---|---|---|\n",
        );
        table += &row(
            "ingest alone (arus's consumer paused), batches of 1,000 (HTTP) vs raw producer",
            raw_p.clone(),
            ing_alone,
            "≥ 70%",
        );
        table += &row(
            "ingest while counting it (consumer, aggregation, read model on the same cores), batches of 1,000 (HTTP) vs raw producer",
            raw_p.clone(),
            ing,
            "(none set)",
        );
        table += &row(
            "ingest and count at once: the same run's events over the time until every one shows in a query, vs raw producer",
            raw_p,
            ing_counted,
            "(none set)",
        );
        if single.is_empty() {
            table += "| ingest, single events (wrk) | not run: wrk is not installed | | | |\n";
        } else {
            table += &row(
                &format!(
                    "ingest, single events, {} keep-alive connections (wrk) vs raw producer with {} senders each awaiting its ack",
                    runs::SINGLE_CLIENTS,
                    runs::SINGLE_CLIENTS
                ),
                raw_single,
                single,
                "(none set)",
            );
        }
        if !args.ingest_only {
            table += &row("end to end (consume, aggregate, commit, visible) vs raw consumer", raw_c, e2e, "≥ 50%");
            table += &freshness_tables(&fresh);
            if !args.memory_users.is_empty() {
                table += "\n| memory: distinct users (one event each) | RSS once started, MiB | RSS with them counted, MiB | per user, bytes |\n|---|---|---|---|\n";
                for &users in &args.memory_users {
                    let (idle, loaded) = runs::memory(&args, &client, users).await?;
                    eprintln!("memory with {users} users: {idle:.0} MiB → {loaded:.0} MiB");
                    table += &format!(
                        "| {users} | {idle:.0} | {loaded:.0} | {:.0} |\n",
                        (loaded - idle) * 1024.0 * 1024.0 / users as f64
                    );
                }
            }
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
