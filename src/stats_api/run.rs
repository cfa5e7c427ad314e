//! Answering a normalized query from the read model's buckets.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::Range;

use arus_actors::read_model::{Merged, WindowStore};
use arus_actors::window::Resolution;
use arus_actors::window::VisitorUnion;
use chrono::{SecondsFormat, TimeZone, Timelike};
use chrono_tz::Tz;
use serde_json::{json, Value};

use super::request::{iso, Breakdown, Metric, Query};

/// What the windows keep: retention by [`Resolution::index`], and the grace.
#[derive(Debug, Clone, Copy)]
pub struct Kept {
    pub retention_ms: [i64; 3],
    pub grace_ms: i64,
}

/// An answer's rows and the buckets among them still open.
#[derive(Debug)]
pub struct Answer {
    pub results: Vec<Value>,
    pub open_buckets: Vec<String>,
    /// For a page breakdown: the most any answered count may exceed the
    /// true one (0: all exact), and how often a page not answered may
    /// have been read.
    pub page_bounds: Option<(u64, u64)>,
    /// The bucket size the answer was composed from.
    pub resolution: Resolution,
}

/// `t` in `tz`, as ISO-8601 with the zone's offset.
fn local_iso(tz: Tz, ms: i64) -> String {
    match tz.timestamp_millis_opt(ms).single() {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Secs, true),
        None => iso(ms),
    }
}

/// The start of the `resolution` bucket holding `ms`, in `tz` (a local
/// day starts at the zone's midnight, whatever its length).
fn local_start(tz: Tz, resolution: Resolution, ms: i64) -> i64 {
    let Some(t) = tz.timestamp_millis_opt(ms).single() else {
        return resolution.start_of(ms);
    };
    let sub = i64::from(t.timestamp_subsec_millis());
    match resolution {
        Resolution::Minute => ms - i64::from(t.second()) * 1000 - sub,
        Resolution::Hour => ms - i64::from(t.minute() * 60 + t.second()) * 1000 - sub,
        Resolution::Day => {
            let midnight = t.date_naive().and_time(chrono::NaiveTime::MIN);
            tz.from_local_datetime(&midnight)
                .earliest()
                .map_or(resolution.start_of(ms), |m| m.timestamp_millis())
        }
    }
}

/// Whether `tz` is a whole number of hours from UTC throughout `range`
/// (checked at its ends and every 6 hours between, which sees every
/// transition's side).
fn whole_hours(tz: Tz, range: &Range<i64>) -> bool {
    let step = 6 * Resolution::Hour.ms();
    let mut t = range.start;
    loop {
        let Some(local) = tz.timestamp_millis_opt(t.min(range.end)).single() else {
            return false;
        };
        let offset = local.naive_local() - local.naive_utc();
        if offset.num_seconds() % 3600 != 0 {
            return false;
        }
        if t >= range.end {
            return true;
        }
        t = t.saturating_add(step);
    }
}

fn covering(kept: &Kept, from: i64, now: i64) -> String {
    let list: Vec<&str> = Resolution::ALL
        .into_iter()
        .filter(|r| from >= now - kept.retention_ms[r.index()])
        .map(|r| r.as_str())
        .collect();
    if list.is_empty() {
        "no resolution keeps buckets that old".into()
    } else {
        format!("buckets kept that far back: {}", list.join(", "))
    }
}

fn kept_hours(ms: i64) -> String {
    format!("{} h", ms / Resolution::Hour.ms())
}

/// Runs `q` at `now_ms`.
pub fn run(q: &Query, store: &WindowStore, kept: Kept, now_ms: i64) -> Result<Answer, String> {
    let range = q.from_ms..q.to_ms;
    let mut groups: BTreeMap<i64, Merged> = BTreeMap::new();
    let mut tiled_open: Vec<i64> = Vec::new();
    let resolution = match q.time {
        Some(asked) => {
            // UTC-aligned buckets serve a zone as they are when its offset
            // is whole hours (hours) or zero (days); else finer buckets are
            // grouped by the zone's own boundaries.
            let utc = q.timezone == Tz::UTC || q.timezone == Tz::Etc__UTC;
            let source = match asked {
                Resolution::Minute => Resolution::Minute,
                Resolution::Hour if whole_hours(q.timezone, &range) => Resolution::Hour,
                Resolution::Day if utc => Resolution::Day,
                Resolution::Day if whole_hours(q.timezone, &range) => Resolution::Hour,
                _ => Resolution::Minute,
            };
            let oldest = now_ms - kept.retention_ms[source.index()];
            let first = local_start(q.timezone, asked, q.from_ms);
            if first < oldest {
                return Err(format!(
                    "time:{} over a range from {} needs {} buckets, kept for {} (windows.{}s_retention_ms); {}",
                    asked.as_str(),
                    iso(q.from_ms),
                    source.as_str(),
                    kept_hours(kept.retention_ms[source.index()]),
                    source.as_str(),
                    covering(&kept, first, now_ms)
                ));
            }
            let tz = q.timezone;
            store.fold_into(
                source,
                source.start_of(first)..q.to_ms,
                kept.grace_ms,
                &mut groups,
                |start| local_start(tz, asked, start),
            );
            source
        }
        None => {
            let mut finest = Resolution::Day;
            for (resolution, run) in tiles(&range, &kept, now_ms)? {
                finest = finest.min(resolution);
                // The one row's open buckets are the tiles' own.
                tiled_open.extend(store.fold_into(
                    resolution,
                    run,
                    kept.grace_ms,
                    &mut groups,
                    |_| q.from_ms,
                ));
            }
            groups.entry(q.from_ms).or_default();
            finest
        }
    };
    let open_buckets = match q.time {
        Some(_) => groups
            .iter()
            .filter(|(_, m)| m.open)
            .map(|(start, _)| local_iso(q.timezone, *start))
            .collect(),
        // Tiles are disjoint and come in order: their starts too.
        None => tiled_open
            .into_iter()
            .map(|start| local_iso(q.timezone, start))
            .collect(),
    };
    let mut rows = rows(q, &groups);
    sort(q, &mut rows);
    rows.truncate(q.limit);
    let page_bounds = (q.breakdown == Some(Breakdown::Page) || q.pages.is_some()).then(|| {
        let answered = rows.iter().map(|r| r.bound).max().unwrap_or(0);
        let unheld = groups.values().map(|m| m.pages.floor()).max().unwrap_or(0);
        (answered, unheld)
    });
    Ok(Answer {
        page_bounds,
        results: rows
            .into_iter()
            .map(|r| json!({"dimensions": r.dimensions, "metrics": r.metrics}))
            .collect(),
        open_buckets,
        resolution,
    })
}

/// `range` cut into the largest buckets that fit it and are still kept,
/// as runs of one resolution each.
fn tiles(
    range: &Range<i64>,
    kept: &Kept,
    now: i64,
) -> Result<Vec<(Resolution, Range<i64>)>, String> {
    let mut out: Vec<(Resolution, Range<i64>)> = Vec::new();
    let mut t = range.start;
    while t < range.end {
        let fits = Resolution::ALL.into_iter().rev().find(|r| {
            t.rem_euclid(r.ms()) == 0
                && t + r.ms() <= range.end
                && t >= now - kept.retention_ms[r.index()]
        });
        let Some(r) = fits else {
            return Err(format!(
                "the range from {} to {} cannot be composed of kept buckets at {}: minute buckets are kept for {}, hour buckets for {}, day buckets for {}; {}. Start and end older ranges on the hour or the day",
                iso(range.start),
                iso(range.end),
                iso(t),
                kept_hours(kept.retention_ms[0]),
                kept_hours(kept.retention_ms[1]),
                kept_hours(kept.retention_ms[2]),
                covering(kept, t, now)
            ));
        };
        match out.last_mut() {
            Some((last, run)) if *last == r && run.end == t => run.end = t + r.ms(),
            _ => out.push((r, t..t + r.ms())),
        }
        t += r.ms();
    }
    Ok(out)
}

struct Row {
    time: Option<i64>,
    /// The breakdown's item (event type, page, entry page, source).
    item: Option<String>,
    dimensions: Vec<Value>,
    metrics: Vec<Value>,
    values: Vec<f64>,
    /// At most this much of the count may be another item's (pages only).
    bound: u64,
}

/// What visits without a referrer are called, as web analytics name them.
pub const DIRECT: &str = "Direct / None";

/// A breakdown's items in a group: name, count, bound on its overcount.
fn items(breakdown: Breakdown, merged: &Merged) -> Vec<(String, u64, u64)> {
    let exact = |map: &BTreeMap<String, u64>| -> Vec<(String, u64, u64)> {
        map.iter().map(|(k, n)| (k.clone(), *n, 0)).collect()
    };
    match breakdown {
        Breakdown::EventType => exact(&merged.types),
        Breakdown::Page => merged.pages.ranked(),
        Breakdown::EntryPage => exact(&merged.visits.entries),
        Breakdown::Source => merged
            .visits
            .sources
            .iter()
            .map(|(k, n)| {
                let name = if k.is_empty() { DIRECT } else { k.as_str() };
                (name.to_string(), *n, 0)
            })
            .collect(),
    }
}

/// A metric's value in a group, as Plausible rounds it: integers, but
/// views per visit to two decimals. `events` and `visitors`: of the types
/// a filter keeps.
fn value(metric: Metric, merged: &Merged, events: u64, visitors: u64) -> f64 {
    let v = &merged.visits;
    let per_visit = |x: f64| {
        if v.visits == 0 {
            0.0
        } else {
            x / v.visits as f64
        }
    };
    let seconds = |ms: Option<f64>| (ms.unwrap_or(0.0) / 1000.0).round();
    match metric {
        Metric::Visitors => visitors as f64,
        Metric::Pageviews => merged.pageviews as f64,
        Metric::Events => events as f64,
        Metric::Visits => v.visits as f64,
        Metric::BounceRate => (per_visit(v.bounces as f64) * 100.0).round(),
        Metric::VisitDuration => (per_visit(v.duration_ms as f64) / 1000.0).round(),
        Metric::VisitDurationP50 => seconds(v.durations.quantile(0.5)),
        Metric::VisitDurationP90 => seconds(v.durations.quantile(0.9)),
        Metric::ViewsPerVisit => (per_visit(v.pageviews as f64) * 100.0).round() / 100.0,
    }
}

fn number(metric: Metric, x: f64) -> Value {
    if metric == Metric::ViewsPerVisit {
        json!(x)
    } else {
        json!(x as u64)
    }
}

fn rows(q: &Query, groups: &BTreeMap<i64, Merged>) -> Vec<Row> {
    let mut out = Vec::new();
    for (start, merged) in groups {
        let time = q.time.map(|_| *start);
        let label = |dims: &mut Vec<Value>| {
            if q.time.is_some() {
                dims.push(json!(local_iso(q.timezone, *start)));
            }
        };
        if let Some(breakdown) = q.breakdown {
            for (name, count, bound) in items(breakdown, merged) {
                if q.types.as_ref().is_some_and(|t| !t.contains(&name))
                    || q.pages.as_ref().is_some_and(|p| !p.matches(&name))
                {
                    continue;
                }
                let mut dimensions = Vec::new();
                label(&mut dimensions);
                dimensions.push(json!(name));
                // A breakdown's metrics (see `Breakdown::metrics`): its
                // count, and for event types their visitors.
                let values: Vec<f64> = q
                    .metrics
                    .iter()
                    .map(|m| match m {
                        Metric::Visitors => merged
                            .type_visitors
                            .get(&name)
                            .map_or(0.0, |v| v.estimate() as f64),
                        _ => count as f64,
                    })
                    .collect();
                out.push(Row {
                    time,
                    item: Some(name),
                    dimensions,
                    metrics: values.iter().map(|x| json!(*x as u64)).collect(),
                    values,
                    bound,
                });
            }
        } else {
            if q.time.is_some()
                && merged.events == 0
                && merged.pageviews == 0
                && merged.visits.visits == 0
            {
                continue;
            }
            let (events, visitors) = match &q.types {
                Some(types) => {
                    // Distinct over the types: a user of two counts once.
                    let mut union = VisitorUnion::default();
                    for t in types {
                        if let Some(v) = merged.type_visitors.get(t) {
                            union.merge(v);
                        }
                    }
                    (
                        types.iter().filter_map(|t| merged.types.get(t)).sum(),
                        union.estimate(),
                    )
                }
                None => (merged.events, merged.visitors.estimate()),
            };
            // Page views of the pages a filter keeps: those the tables
            // hold (each within its bound; `normalize` allows only
            // `pageviews` with a page filter).
            let mut bound = 0;
            let values: Vec<f64> = match &q.pages {
                Some(pages) => {
                    let (mut views, mut over) = (0, 0);
                    for (url, count, b) in merged.pages.ranked() {
                        if pages.matches(&url) {
                            views += count;
                            over += b;
                        }
                    }
                    bound = over;
                    vec![views as f64; q.metrics.len()]
                }
                None => q
                    .metrics
                    .iter()
                    .map(|m| value(*m, merged, events, visitors))
                    .collect(),
            };
            let mut dimensions = Vec::new();
            label(&mut dimensions);
            out.push(Row {
                time,
                item: None,
                dimensions,
                metrics: q
                    .metrics
                    .iter()
                    .zip(&values)
                    .map(|(m, x)| number(*m, *x))
                    .collect(),
                values,
                bound,
            });
        }
    }
    out
}

fn sort(q: &Query, rows: &mut [Row]) {
    let metric_index = |name: &str| q.metrics.iter().position(|m| m.as_str() == name);
    rows.sort_by(|a, b| {
        for (column, desc) in &q.order_by {
            let order = if let Some(i) = metric_index(column) {
                a.values[i].total_cmp(&b.values[i])
            } else if column.starts_with("time:") {
                a.time.cmp(&b.time)
            } else {
                a.item.cmp(&b.item)
            };
            let order = if *desc { order.reverse() } else { order };
            if order != Ordering::Equal {
                return order;
            }
        }
        // Then by the dimensions, for a stable answer.
        a.time.cmp(&b.time).then_with(|| a.item.cmp(&b.item))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats_api::request::date_range;

    const MINUTE: i64 = 60_000;
    const HOUR: i64 = 60 * MINUTE;
    const DAY: i64 = 24 * HOUR;

    #[test]
    fn the_whole_kept_range_is_tiled_from_its_first_whole_day() {
        let kept = Kept {
            retention_ms: [48 * HOUR, 90 * DAY, 730 * DAY],
            grace_ms: 5 * MINUTE,
        };
        // 2026-12-01T21:02:30Z and midnight itself.
        for now in [1_796_158_950_000, 1_796_083_200_000] {
            let (from, to, _) =
                date_range(Some(&json!("all")), now, kept.retention_ms[2]).expect("a range");
            assert_eq!(from.rem_euclid(DAY), 0);
            assert!(from >= now - 730 * DAY && from - DAY < now - 730 * DAY);
            assert_eq!(to, (now / MINUTE + 1) * MINUTE);
            let runs = tiles(&(from..to), &kept, now).expect("tiled");
            let covered: i64 = runs.iter().map(|(_, run)| run.end - run.start).sum();
            assert_eq!(covered, to - from);
            assert_eq!(runs[0], (Resolution::Day, from..now / DAY * DAY));
        }
    }
}
