//! Queries over the read model. Every answer says how fresh it is: `asOf`,
//! when the read model last changed, and `lag`, changelog records not yet in it.

use actix_web::{web, HttpRequest, HttpResponse};
use arus_actors::ConsumerStats;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::owner::Route;
use super::AppState;
use crate::error::ApiError;

pub(super) fn as_of(state: &AppState) -> Value {
    match DateTime::<Utc>::from_timestamp_millis(state.read_model.updated_at_ms()) {
        Some(t) if state.read_model.updated_at_ms() > 0 => {
            json!(t.to_rfc3339_opts(SecondsFormat::Millis, true))
        }
        _ => Value::Null,
    }
}

/// Pages in the seed's `/events/analytics` answer.
const SEED_ANALYTICS_PAGES: usize = 5;

/// The widest active-users window: 366 days. Wider asks nothing useful,
/// and past about 292 million years the arithmetic would wrap.
const MAX_WINDOW_SECONDS: u64 = 366 * 24 * 3600;

fn active_since_ms(window_seconds: u64) -> i64 {
    Utc::now().timestamp_millis() - (window_seconds as i64).saturating_mul(1000)
}

fn event_counts_body(state: &AppState) -> (Value, u64) {
    let counts = state.read_model.event_counts();
    let total = counts.values().sum();
    (json!(counts), total)
}

#[utoipa::path(get, path = "/events/analytics/event-counts", tag = "query",
    responses((status = 200, description = "User events by type", body = super::openapi::EventCounts), (status = 401, description = "A credential is needed", body = super::openapi::ErrorBody), (status = 403, description = "The credential is not valid here", body = super::openapi::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn event_counts(state: web::Data<AppState>) -> HttpResponse {
    let (counts, total) = event_counts_body(&state);
    HttpResponse::Ok().json(json!({
        "eventCounts": counts,
        "total": total,
        "asOf": as_of(&state),
        "lag": state.read_model.lag(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActiveUsersQuery {
    window_seconds: Option<u64>,
}

#[utoipa::path(get, path = "/events/analytics/active-users", tag = "query",
    params(("windowSeconds" = Option<u64>, Query, minimum = 1, maximum = 31622400, description = "Active within this many seconds (default aggregator.active_window_seconds)")),
    responses((status = 200, description = "Users seen within the window", body = super::openapi::ActiveUsers), (status = 400, description = "Bad request (names the field)", body = super::openapi::ErrorBody), (status = 401, description = "A credential is needed", body = super::openapi::ErrorBody), (status = 403, description = "The credential is not valid here", body = super::openapi::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn active_users(
    state: web::Data<AppState>,
    query: web::Query<ActiveUsersQuery>,
) -> Result<HttpResponse, ApiError> {
    let window = query.window_seconds.unwrap_or(state.active_window_seconds);
    if window > MAX_WINDOW_SECONDS {
        return Err(ApiError::BadRequest(format!(
            "windowSeconds must be at most {MAX_WINDOW_SECONDS} (366 days); got {window}"
        )));
    }
    if window == 0 {
        return Err(ApiError::BadRequest(
            "windowSeconds must be at least 1".into(),
        ));
    }
    Ok(HttpResponse::Ok().json(json!({
        "activeUsers": state.read_model.active_users(active_since_ms(window)),
        "windowSeconds": window,
        "uniqueUsers": state.read_model.unique_users(),
        "asOf": as_of(&state),
        "lag": state.read_model.lag(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopPagesQuery {
    limit: Option<usize>,
}

impl TopPagesQuery {
    fn limit(&self, state: &AppState) -> Result<usize, ApiError> {
        let limit = self.limit.unwrap_or(state.top_pages_limit);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::BadRequest(
                "limit must be between 1 and 1000".into(),
            ));
        }
        Ok(limit)
    }
}

/// Pages as the seed answers them: `[url, views]` pairs, most viewed first.
fn page_pairs(state: &AppState, limit: usize) -> Value {
    let pairs: Vec<(String, u64)> = state
        .read_model
        .top_pages(limit)
        .into_iter()
        .map(|p| (p.url, p.views))
        .collect();
    json!(pairs)
}

/// The seed's top pages: a bare array of `[url, views]` pairs (10 unless
/// `limit` says otherwise). The same with durations and freshness is
/// `GET /v1/top-pages`.
#[utoipa::path(get, path = "/events/analytics/top-pages", tag = "query",
    params(("limit" = Option<u64>, Query, minimum = 1, maximum = 1000)),
    responses((status = 200, description = "`[url, views]` pairs, most viewed first", body = Vec<Vec<serde_json::Value>>), (status = 400, description = "Bad request (names the field)", body = super::openapi::ErrorBody), (status = 401, description = "A credential is needed", body = super::openapi::ErrorBody), (status = 403, description = "The credential is not valid here", body = super::openapi::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn top_pages(
    state: web::Data<AppState>,
    query: web::Query<TopPagesQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit(&state)?;
    Ok(HttpResponse::Ok().json(page_pairs(&state, limit)))
}

/// The top pages with their average durations, the limit and freshness.
#[utoipa::path(get, path = "/v1/top-pages", tag = "query",
    params(("limit" = Option<u64>, Query, minimum = 1, maximum = 1000)),
    responses((status = 200, description = "Top pages with durations", body = super::openapi::TopPagesDetail), (status = 400, description = "Bad request (names the field)", body = super::openapi::ErrorBody), (status = 401, description = "A credential is needed", body = super::openapi::ErrorBody), (status = 403, description = "The credential is not valid here", body = super::openapi::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn top_pages_detail(
    state: web::Data<AppState>,
    query: web::Query<TopPagesQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit(&state)?;
    Ok(HttpResponse::Ok().json(json!({
        "topPages": state.read_model.top_pages(limit),
        "limit": limit,
        "asOf": as_of(&state),
        "lag": state.read_model.lag(),
    })))
}

#[utoipa::path(get, path = "/events/analytics/sessions", tag = "query",
    responses((status = 200, description = "Login-to-logout sessions", body = super::openapi::SessionsAnswer), (status = 401, description = "A credential is needed", body = super::openapi::ErrorBody), (status = 403, description = "The credential is not valid here", body = super::openapi::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn sessions(state: web::Data<AppState>) -> HttpResponse {
    let mut body = json!(state.read_model.sessions());
    body["asOf"] = as_of(&state);
    body["lag"] = json!(state.read_model.lag());
    HttpResponse::Ok().json(body)
}

#[utoipa::path(get, path = "/events/analytics/users/{user_id}", tag = "query",
    params(("user_id" = String, Path)),
    responses((status = 200, description = "One user's activity", body = super::openapi::UserAnswer), (status = 401, description = "A credential is needed", body = super::openapi::ErrorBody), (status = 403, description = "The credential is not valid here", body = super::openapi::ErrorBody), (status = 404, description = "Not found", body = super::openapi::ErrorBody), (status = 503, description = "The owner of the user's partition is restoring, not known yet, or did not answer (Retry-After)", body = super::openapi::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn user(
    req: HttpRequest,
    state: web::Data<AppState>,
    user_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let forwarded = req.headers().contains_key(super::owner::FORWARDED_BY);
    let partition = super::owner::partition(&state, &user_id);
    if let Route::Owner(owner) = super::owner::route(&state, &user_id, partition, forwarded)? {
        return super::owner::forward(&state, &req, &owner).await;
    }
    let summary = state
        .read_model
        .user(&user_id)
        .ok_or_else(|| ApiError::NotFound(format!("no events of user {:?}", user_id.as_str())))?;
    let mut body = json!(summary);
    body["lastSeen"] = DateTime::<Utc>::from_timestamp_millis(summary.last_seen_ms)
        .map_or(Value::Null, |t| {
            json!(t.to_rfc3339_opts(SecondsFormat::Millis, true))
        });
    body["asOf"] = as_of(&state);
    body["lag"] = json!(state.read_model.lag());
    body["answeredBy"] = json!(state.instance_id);
    body["partition"] = json!(partition);
    Ok(HttpResponse::Ok().json(body))
}

/// The seed's dashboard call (`timestamp`, `activeUsers`, `activeSessions`,
/// `eventCounts`, `topPages` as five `[url, views]` pairs), with arus's
/// totals, sessions, pages with durations and freshness beside them.
#[utoipa::path(get, path = "/events/analytics", tag = "query",
    responses((status = 200, description = "The seed's dashboard call", body = super::openapi::Analytics), (status = 401, description = "A credential is needed", body = super::openapi::ErrorBody), (status = 403, description = "The credential is not valid here", body = super::openapi::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn analytics(state: web::Data<AppState>) -> HttpResponse {
    let (counts, total) = event_counts_body(&state);
    let rm = &state.read_model;
    let sessions = rm.sessions();
    HttpResponse::Ok().json(json!({
        "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        "activeUsers": rm.active_users(active_since_ms(state.active_window_seconds)),
        "activeSessions": sessions.active_sessions,
        "eventCounts": counts,
        "topPages": page_pairs(&state, SEED_ANALYTICS_PAGES),
        "totalEvents": total,
        "totalPageViews": rm.total_page_views(),
        "uniqueUsers": rm.unique_users(),
        "topPagesDetail": rm.top_pages(state.top_pages_limit),
        "sessions": sessions,
        "asOf": as_of(&state),
        "lag": state.read_model.lag(),
    }))
}

/// Totals (the seed's `totalEvents`, `eventsByType`, `eventsByUser`) and
/// this instance's consumer. `eventsByUser` holds the
/// `aggregator.events_by_user_limit` users with the most user events.
#[utoipa::path(get, path = "/events/stats", tag = "query",
    responses((status = 200, description = "Totals and this instance's consumer", body = super::openapi::Stats), (status = 401, description = "A credential is needed", body = super::openapi::ErrorBody), (status = 403, description = "The credential is not valid here", body = super::openapi::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn stats(state: web::Data<AppState>) -> HttpResponse {
    let (counts, total) = event_counts_body(&state);
    let rm = &state.read_model;
    let s = &state.stats;
    let by_user: serde_json::Map<String, Value> = rm
        .top_users(state.events_by_user_limit)
        .into_iter()
        .map(|(user, events)| (user, json!(events)))
        .collect();
    HttpResponse::Ok().json(json!({
        "totalEvents": total,
        "eventsByType": counts.clone(),
        "eventsByUser": by_user,
        "totalPageViews": rm.total_page_views(),
        "uniqueUsers": rm.unique_users(),
        "activeUsers": rm.active_users(active_since_ms(state.active_window_seconds)),
        "eventCounts": counts,
        "deadLetters": rm.dead_letters(),
        "lateEvents": rm.windows().late_total(),
        "consumer": {
            "instanceId": state.instance_id,
            "groupId": state.group_id,
            "assignedPartitions": state.assignment.partitions(),
            "recordsConsumed": ConsumerStats::get(&s.records_consumed),
            "recordsInvalid": ConsumerStats::get(&s.records_invalid),
            "duplicatesDropped": ConsumerStats::get(&s.duplicates_dropped),
            "deadLetters": ConsumerStats::get(&s.dead_letters),
            "eventsApplied": ConsumerStats::get(&s.events_applied),
            "replayedHopsSkipped": ConsumerStats::get(&s.replayed_hops_skipped),
            "commits": ConsumerStats::get(&s.commits),
            "rebalances": ConsumerStats::get(&s.rebalances),
            "rollbacks": ConsumerStats::get(&s.rollbacks),
            "producerRecreated": ConsumerStats::get(&s.producer_recreated),
            "actorRestarts": state.router.restarts().total(),
        },
        "asOf": as_of(&state),
        "lag": state.read_model.lag(),
    }))
}
