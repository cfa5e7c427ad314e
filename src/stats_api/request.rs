//! `POST /v1/query`, in the shape of Plausible's Stats API v2: the request
//! as sent, and the query it normalizes to. Everything a query may not ask
//! is refused here with a message naming what is supported, so that no
//! answer is a silently wrong number.

use arus_actors::window::Resolution;
use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::{json, Value};

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    pub metrics: Vec<String>,
    #[serde(default)]
    pub date_range: Option<Value>,
    #[serde(default)]
    pub dimensions: Vec<String>,
    #[serde(default)]
    pub filters: Vec<Value>,
    #[serde(default)]
    pub order_by: Option<Vec<(String, String)>>,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default)]
    pub timezone: Option<String>,
    /// Plausible's site; arus serves one.
    #[serde(default)]
    pub site_id: Option<String>,
}

/// A metric a bucket holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Visitors,
    Pageviews,
    Events,
    Visits,
    BounceRate,
    VisitDuration,
    VisitDurationP50,
    VisitDurationP90,
    ViewsPerVisit,
}

impl Metric {
    pub const ALL: [Metric; 9] = [
        Metric::Visitors,
        Metric::Pageviews,
        Metric::Events,
        Metric::Visits,
        Metric::BounceRate,
        Metric::VisitDuration,
        Metric::VisitDurationP50,
        Metric::VisitDurationP90,
        Metric::ViewsPerVisit,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Metric::Visitors => "visitors",
            Metric::Pageviews => "pageviews",
            Metric::Events => "events",
            Metric::Visits => "visits",
            Metric::BounceRate => "bounce_rate",
            Metric::VisitDuration => "visit_duration",
            Metric::VisitDurationP50 => "visit_duration_p50",
            Metric::VisitDurationP90 => "visit_duration_p90",
            Metric::ViewsPerVisit => "views_per_visit",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

const SUPPORTED_METRICS: &str = "visitors, pageviews, events, visits, bounce_rate, visit_duration, visit_duration_p50, visit_duration_p90, views_per_visit";
const SUPPORTED_DIMENSIONS: &str =
    "time:minute, time:hour, time:day, and one of event:type, event:page, visit:entry_page, visit:source";

/// A breakdown: rows by a dimension other than time, each with the
/// metrics that dimension keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breakdown {
    /// User events by `eventType` (`events`, `visitors`).
    EventType,
    /// Page views by `url`, the most read (`pageviews`).
    Page,
    /// Visits by their first page view's `url` (`visits`).
    EntryPage,
    /// Visits by their entry's referrer host (`visits`).
    Source,
}

impl Breakdown {
    pub const fn dimension(self) -> &'static str {
        match self {
            Breakdown::EventType => "event:type",
            Breakdown::Page => "event:page",
            Breakdown::EntryPage => "visit:entry_page",
            Breakdown::Source => "visit:source",
        }
    }

    /// The metrics kept by this dimension.
    pub const fn metrics(self) -> &'static [Metric] {
        match self {
            Breakdown::EventType => &[Metric::Events, Metric::Visitors],
            Breakdown::Page => &[Metric::Pageviews],
            Breakdown::EntryPage | Breakdown::Source => &[Metric::Visits],
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [
            Breakdown::EventType,
            Breakdown::Page,
            Breakdown::EntryPage,
            Breakdown::Source,
        ]
        .into_iter()
        .find(|b| b.dimension() == name)
    }
}
/// Plausible's default and largest page of results.
pub const MAX_LIMIT: u64 = 10_000;

/// A normalized query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub metrics: Vec<Metric>,
    pub from_ms: i64,
    pub to_ms: i64,
    /// The range as asked (`"24h"`, or the pair).
    pub range_asked: Value,
    pub time: Option<Resolution>,
    pub breakdown: Option<Breakdown>,
    /// `["is", "event:type", [...]]`.
    pub types: Option<Vec<String>>,
    /// `["is" | "contains", "event:page", [...]]`.
    pub pages: Option<PageMatch>,
    /// Columns (a metric's name or a dimension) and whether descending.
    pub order_by: Vec<(String, bool)>,
    pub limit: usize,
    pub timezone: Tz,
    pub dimensions: Vec<String>,
}

impl Query {
    /// The normalized query, as an answer's `query` shows it.
    pub fn to_json(&self) -> Value {
        json!({
            "metrics": self.metrics.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
            "date_range": [iso(self.from_ms), iso(self.to_ms)],
            "date_range_asked": self.range_asked,
            "dimensions": self.dimensions,
            "filters": self
                .types
                .iter()
                .map(|t| json!(["is", "event:type", t]))
                .chain(self.pages.iter().map(PageMatch::to_json))
                .collect::<Vec<_>>(),
            "order_by": self.order_by.iter().map(|(c, desc)| json!([c, if *desc { "desc" } else { "asc" }])).collect::<Vec<_>>(),
            "limit": self.limit,
            "timezone": self.timezone.name(),
        })
    }
}

/// An instant as ISO-8601 in UTC, to the second.
pub fn iso(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;

fn ceil_to(t: i64, unit: i64) -> i64 {
    t.div_euclid(unit) * unit + if t.rem_euclid(unit) == 0 { 0 } else { unit }
}

/// Reads a request against `now_ms` and the oldest day bucket kept
/// (`days_retention_ms` back).
pub fn normalize(req: QueryRequest, now_ms: i64, days_retention_ms: i64) -> Result<Query, String> {
    if req.metrics.is_empty() {
        return Err(format!(
            "metrics must name at least one of: {SUPPORTED_METRICS}"
        ));
    }
    let mut metrics = Vec::new();
    for name in &req.metrics {
        let Some(metric) = Metric::parse(name) else {
            return Err(format!(
                "unknown metric {name:?}; supported metrics: {SUPPORTED_METRICS}"
            ));
        };
        if metrics.contains(&metric) {
            return Err(format!("metric {name:?} is named twice"));
        }
        metrics.push(metric);
    }
    let timezone = match req.timezone.as_deref() {
        None => Tz::UTC,
        Some(name) => name.parse::<Tz>().map_err(|_| {
            format!("unknown timezone {name:?}: an IANA time zone name, like \"Asia/Jakarta\" or \"UTC\"")
        })?,
    };
    let (from_ms, to_ms, range_asked) =
        date_range(req.date_range.as_ref(), now_ms, days_retention_ms)?;
    let mut time = None;
    let mut breakdown: Option<Breakdown> = None;
    for dimension in &req.dimensions {
        match dimension.as_str() {
            "time:minute" | "time:hour" | "time:day" => {
                if time.is_some() {
                    return Err("at most one time dimension".into());
                }
                time = Resolution::parse(&dimension[5..]);
            }
            name if Breakdown::parse(name).is_some() => {
                if let Some(held) = breakdown {
                    return Err(format!(
                        "dimension {name:?} with {:?}: one of event:type, event:page, visit:entry_page, visit:source at a time (each is kept on its own, not crossed)",
                        held.dimension()
                    ));
                }
                breakdown = Breakdown::parse(name);
            }
            "visit:referrer" => {
                return Err(
                    "dimension \"visit:referrer\" is not pre-aggregated: referrers are kept by host, as visit:source".into(),
                )
            }
            other => {
                return Err(format!(
                    "unknown dimension {other:?}; supported dimensions: {SUPPORTED_DIMENSIONS}"
                ))
            }
        }
    }
    let mut types = None;
    let mut pages = None;
    for filter in &req.filters {
        match self::filter(filter)? {
            Filter::Types(list) if types.is_none() => types = Some(list),
            Filter::Pages(matcher) if pages.is_none() => pages = Some(matcher),
            Filter::Types(_) => return Err("at most one event:type filter".into()),
            Filter::Pages(_) => return Err("at most one event:page filter".into()),
        }
    }
    if pages.is_some() {
        if types.is_some() {
            return Err("an event:page filter and an event:type filter together are not pre-aggregated (page views have no type)".into());
        }
        if let Some(other) = metrics.iter().find(|m| **m != Metric::Pageviews) {
            return Err(format!(
                "only the metric \"pageviews\" is kept by page; {:?} filtered by event:page is not pre-aggregated",
                other.as_str()
            ));
        }
        if breakdown.is_some_and(|b| b != Breakdown::Page) {
            return Err("the event:page filter goes with event:page or no breakdown".into());
        }
    }
    if let Some(b) = breakdown {
        let kept = b.metrics();
        if let Some(other) = metrics.iter().find(|m| !kept.contains(m)) {
            let names: Vec<&str> = kept.iter().map(|m| m.as_str()).collect();
            return Err(format!(
                "only {} {:?} kept by {}; {:?} by it is not pre-aggregated",
                if kept.len() == 1 {
                    "the metric"
                } else {
                    "the metrics"
                },
                names.join(", "),
                b.dimension(),
                other.as_str()
            ));
        }
    }
    if types.is_some() && breakdown.is_some_and(|b| b != Breakdown::EventType) {
        return Err("the event:type filter goes with event:type or no breakdown".into());
    }
    if types.is_some()
        && metrics
            .iter()
            .any(|m| !Breakdown::EventType.metrics().contains(m))
    {
        return Err(
            "only the metrics \"events\" and \"visitors\" are kept by event type; pageviews and visits by event:type are not pre-aggregated"
                .into(),
        );
    }
    let mut dimensions: Vec<String> = Vec::new();
    if let Some(r) = time {
        dimensions.push(format!("time:{}", r.as_str()));
    }
    if let Some(b) = breakdown {
        dimensions.push(b.dimension().into());
    }
    let order_by = match req.order_by {
        Some(order) => order
            .into_iter()
            .map(|(column, direction)| {
                let known = metrics.iter().any(|m| m.as_str() == column)
                    || dimensions.contains(&column);
                if !known {
                    return Err(format!(
                        "order_by column {column:?} is neither a metric nor a dimension of this query"
                    ));
                }
                match direction.as_str() {
                    "asc" => Ok((column, false)),
                    "desc" => Ok((column, true)),
                    other => Err(format!(
                        "order_by direction {other:?}: \"asc\" or \"desc\""
                    )),
                }
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => match (&time, metrics.first()) {
            (Some(r), _) => vec![(format!("time:{}", r.as_str()), false)],
            (None, Some(m)) => vec![(m.as_str().to_string(), true)],
            (None, None) => Vec::new(),
        },
    };
    let limit = match req.limit {
        None => MAX_LIMIT,
        Some(l) if (1..=MAX_LIMIT).contains(&l) => l,
        Some(l) => return Err(format!("limit must be from 1 to {MAX_LIMIT} (got {l})")),
    } as usize;
    Ok(Query {
        metrics,
        from_ms,
        to_ms,
        range_asked,
        time,
        breakdown,
        types,
        pages,
        order_by,
        limit,
        timezone,
        dimensions,
    })
}

/// Which pages an `event:page` filter keeps: any of the URLs (`is`), or
/// any URL holding one of the strings (`contains`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageMatch {
    Is(Vec<String>),
    Contains(Vec<String>),
}

impl PageMatch {
    pub fn matches(&self, url: &str) -> bool {
        match self {
            PageMatch::Is(urls) => urls.iter().any(|u| u == url),
            PageMatch::Contains(parts) => parts.iter().any(|p| url.contains(p.as_str())),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            PageMatch::Is(urls) => json!(["is", "event:page", urls]),
            PageMatch::Contains(parts) => json!(["contains", "event:page", parts]),
        }
    }
}

enum Filter {
    Types(Vec<String>),
    Pages(PageMatch),
}

fn filter(filter: &Value) -> Result<Filter, String> {
    let supported = "supported filters: [\"is\", \"event:type\", [\"purchase\", ...]] (events), [\"is\" or \"contains\", \"event:page\", [\"/blog\", ...]] (pageviews)";
    let parts = filter
        .as_array()
        .filter(|p| p.len() == 3)
        .ok_or_else(|| format!("a filter is [operator, dimension, [values]]; {supported}"))?;
    let (op, dimension) = (parts[0].as_str(), parts[1].as_str());
    let values = || -> Result<Vec<String>, String> {
        parts[2]
            .as_array()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("a filter's values are a non-empty list; {supported}"))?
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("filter values are strings (got {v})"))
            })
            .collect()
    };
    match (op, dimension) {
        (Some("is"), Some("event:type")) => Ok(Filter::Types(values()?)),
        (Some("is"), Some("event:page")) => Ok(Filter::Pages(PageMatch::Is(values()?))),
        (Some("contains"), Some("event:page")) => Ok(Filter::Pages(PageMatch::Contains(values()?))),
        _ => Err(format!(
            "filter {filter} is not pre-aggregated by this version; {supported}"
        )),
    }
}

/// `[from, to)` in ms. Relative ranges end at the next minute boundary
/// after `now` (the current minute included); `7d` and `30d` start on the
/// hour, `all` on the first day kept.
pub(super) fn date_range(
    range: Option<&Value>,
    now_ms: i64,
    days_retention_ms: i64,
) -> Result<(i64, i64, Value), String> {
    let supported = "date_range is one of \"realtime\", \"30m\", \"1h\", \"24h\", \"7d\", \"30d\", \"all\", or a [from, to] pair of ISO-8601 times";
    let Some(range) = range else {
        return Err(supported.into());
    };
    let to = ceil_to(now_ms + 1, MINUTE);
    let asked = range.clone();
    let (from, to) = match range {
        Value::String(name) => match name.as_str() {
            "realtime" => (to - 5 * MINUTE, to),
            "30m" => (to - 30 * MINUTE, to),
            "1h" => (to - HOUR, to),
            "24h" => (to - 24 * HOUR, to),
            "7d" => ((to - 7 * 24 * HOUR).div_euclid(HOUR) * HOUR, to),
            "30d" => ((to - 30 * 24 * HOUR).div_euclid(HOUR) * HOUR, to),
            // The first day bucket still kept whole: the one before it
            // has started expiring.
            "all" => (
                ceil_to(
                    now_ms.saturating_sub(days_retention_ms),
                    Resolution::Day.ms(),
                ),
                to,
            ),
            other => return Err(format!("unknown date_range {other:?}; {supported}")),
        },
        Value::Array(pair) if pair.len() == 2 => {
            let instant = |v: &Value| {
                v.as_str()
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| t.timestamp_millis())
                    .ok_or_else(|| format!("date_range times are ISO-8601 with an offset, like \"2026-12-01T00:00:00Z\" (got {v})"))
            };
            let (from, to) = (instant(&pair[0])?, instant(&pair[1])?);
            if from >= to {
                return Err(format!(
                    "date_range's from ({}) must be before its to ({})",
                    pair[0], pair[1]
                ));
            }
            (from.div_euclid(MINUTE) * MINUTE, ceil_to(to, MINUTE))
        }
        _ => return Err(supported.into()),
    };
    Ok((from, to, asked))
}
