//! `GET /v1/stream`: the dashboard's numbers as Server-Sent Events, one
//! JSON message a second.
//!
//! Each message carries the answers of the dashboard's queries, computed
//! exactly as `POST /v1/query` computes them (and the query bodies, so a
//! client can ask the same), the all-time top pages, and this instance's
//! side of the operations: its partitions, consumer lag per partition, dead
//! letters, retries, freshness. A message is a whole snapshot, so a client
//! that reconnects (`Last-Event-ID`) misses nothing it needs: its ids go on
//! from the one it last saw. A comment line every 15 s keeps idle proxies
//! from closing the connection; the stream ends when the instance begins
//! to shut down, and the browser reconnects, through the load balancer, to
//! one that stays.

use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use arus_actors::ConsumerStats;
use chrono::{SecondsFormat, Utc};
use futures::stream;
use serde_json::{json, Value};

use super::{auth, windowed, AppState};
use crate::error::ApiError;
use crate::stats_api::QueryRequest;

/// How often a message is sent.
const PERIOD: Duration = Duration::from_secs(1);
/// Every this many messages, a keep-alive comment too.
const KEEP_ALIVE_EVERY: u64 = 15;
/// Top pages (all time) in a message.
const TOP_PAGES: usize = 10;

/// The dashboard's panels: each a `POST /v1/query` body.
pub fn panels() -> Value {
    json!({
        "now": {"metrics": ["visitors"], "date_range": "realtime"},
        "minutes": {"metrics": ["visitors", "pageviews", "events"], "date_range": "1h", "dimensions": ["time:minute"], "order_by": [["time:minute", "asc"]]},
        "hours": {"metrics": ["visitors", "pageviews", "events"], "date_range": "24h", "dimensions": ["time:hour"], "order_by": [["time:hour", "asc"]]},
        "day": {"metrics": ["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "views_per_visit"], "date_range": "24h"},
        "types": {"metrics": ["events", "visitors"], "date_range": "24h", "dimensions": ["event:type"], "order_by": [["events", "desc"]]},
        "sources": {"metrics": ["visits"], "date_range": "24h", "dimensions": ["visit:source"], "order_by": [["visits", "desc"]], "limit": 10},
        "pages": {"metrics": ["pageviews"], "date_range": "24h", "dimensions": ["event:page"], "limit": 10},
    })
}

/// One message: every panel's answer and the operations side.
pub fn snapshot(state: &AppState, id: u64) -> Result<Value, ApiError> {
    let now = Utc::now().timestamp_millis();
    let queries = panels();
    let mut answers = serde_json::Map::new();
    if let Value::Object(panels) = &queries {
        for (name, body) in panels {
            let request: QueryRequest = serde_json::from_value(body.clone())
                .map_err(|e| ApiError::Internal(format!("panel {name}: {e}")))?;
            answers.insert(name.clone(), windowed::answer(state, request, now)?);
        }
    }
    let rm = &state.read_model;
    let s = &state.stats;
    let lag: Vec<Value> = state
        .lag
        .latest()
        .map(|snapshot| {
            snapshot
                .partitions
                .iter()
                .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
                .collect()
        })
        .unwrap_or_default();
    let pages: Vec<(String, u64)> = rm
        .top_pages(TOP_PAGES)
        .into_iter()
        .map(|p| (p.url, p.views))
        .collect();
    Ok(json!({
        "id": id,
        "at": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        "queries": queries,
        "answers": answers,
        "topPages": pages,
        "operations": {
            "instance": state.instance_id,
            "partitions": state.assignment.partitions(),
            "lag": lag,
            "deadLetters": rm.dead_letters(),
            "retriesScheduled": ConsumerStats::get(&s.retries_scheduled),
            "retriesApplied": ConsumerStats::get(&s.retries_applied),
            "lateEvents": rm.windows().late_total(),
            "asOf": super::query::as_of(state),
            "changelogLag": rm.lag(),
        },
    }))
}

fn event(id: u64, data: &Value) -> Bytes {
    Bytes::from(format!("id: {id}\nevent: snapshot\ndata: {data}\n\n"))
}

#[utoipa::path(get, path = "/v1/stream", tag = "query",
    params(("key" = Option<String>, Query, description = "A read key, for an EventSource")),
    responses((status = 200, description = "Server-Sent Events: a snapshot a second", content_type = "text/event-stream", body = String), (status = 401, description = "A credential is needed", body = super::openapi::ErrorBody), (status = 403, description = "The credential is not valid here", body = super::openapi::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn stream(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth::query_in_url(&req, &state.settings.security.query_api_keys)?;
    if req.method() == actix_web::http::Method::HEAD {
        // What a GET would open, without opening it.
        return Ok(HttpResponse::Ok()
            .content_type("text/event-stream")
            .finish());
    }
    // Ids go on from the last one the client saw.
    let first = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(1, |last| last.saturating_add(1));
    // The first message at once, so a page has numbers as it opens.
    let opening = event(first, &snapshot(&state, first)?);
    let head = Bytes::from_static(b"retry: 2000\n\n");
    let state = state.into_inner();
    let ticks = stream::unfold((first, state), |(id, state)| async move {
        actix_web::rt::time::sleep(PERIOD).await;
        if state.health.shutting_down() {
            return None;
        }
        let next = id + 1;
        let mut chunk = match snapshot(&state, next) {
            Ok(data) => event(next, &data).to_vec(),
            Err(error) => format!(": no snapshot: {error}\n\n").into_bytes(),
        };
        if next % KEEP_ALIVE_EVERY == 0 {
            chunk.extend_from_slice(b": keep-alive\n\n");
        }
        Some((Ok::<_, actix_web::Error>(Bytes::from(chunk)), (next, state)))
    });
    let opening = stream::iter([Ok(head), Ok(opening)]);
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(futures::StreamExt::chain(opening, ticks)))
}
