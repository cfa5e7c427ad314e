//! Fault injection, for testing the failure paths on a running service
//! (admin token, and `chaos.enabled = true`):
//!
//! - `POST /v1/chaos/shard-outage {"metric","shard","durationMs"}`: the shard
//!   refuses every batch for a while; its hop fails, its breaker opens, and
//!   its events go through the retry topic.
//! - `POST /v1/chaos/shard-stop {"metric","shard"}`: the shard stops; its
//!   supervisor restarts it, and the partitions roll back to the last commit.
//! - `POST /v1/chaos/panic {"metric","shard"}`: the shard panics, which ends
//!   the process with a non-zero status.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use arus_actors::model::event::ValidationError;
use arus_actors::MetricKind;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use super::{auth, read_body, AppState};
use crate::error::ApiError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ShardOutage {
    metric: String,
    shard: usize,
    duration_ms: u64,
}

/// The shard a panic or a stop is injected into.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ShardPanic {
    metric: String,
    shard: usize,
}

/// Checks the token and the switch, and reads the body.
async fn chaos_request<T: DeserializeOwned>(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, ApiError> {
    auth::admin(req, &state.settings.security.admin_token)?;
    if !state.settings.chaos.enabled {
        return Err(ApiError::NotFound(
            "fault injection is disabled (chaos.enabled = false)".into(),
        ));
    }
    let body = read_body(payload, 4096).await?;
    serde_json::from_slice(&body).map_err(|e| ApiError::MalformedJson(e.to_string()))
}

fn check_shard(state: &AppState, metric: &str, shard: usize) -> Result<MetricKind, ApiError> {
    let Some(kind) = MetricKind::parse(metric) else {
        return Err(ValidationError::new(
            "metric",
            format!("must be one of {} (got {metric:?})", MetricKind::names()),
        )
        .into());
    };
    let shards = state.settings.aggregator.shards.max(1);
    if shard >= shards {
        return Err(ValidationError::new(
            "shard",
            format!("no shard {shard} (there are {shards})"),
        )
        .into());
    }
    Ok(kind)
}

#[utoipa::path(post, path = "/v1/chaos/shard-outage", tag = "admin",
    responses((status = 200, description = "Fault injected (chaos.enabled only)", body = super::openapi::AdminAnswer), (status = 400, description = "Bad request (names the field)", body = super::openapi::ErrorBody), (status = 401, description = "A credential is needed", body = super::openapi::ErrorBody), (status = 403, description = "The credential is not valid here", body = super::openapi::ErrorBody), (status = 404, description = "Not found", body = super::openapi::ErrorBody), (status = 409, description = "Conflicts with the current state", body = super::openapi::ErrorBody), (status = 503, description = "Not ready, or Kafka did not take the event (Retry-After)", body = super::openapi::ErrorBody)))]
pub async fn shard_outage(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: ShardOutage = chaos_request(&state, &req, payload).await?;
    let metric = check_shard(&state, &body.metric, body.shard)?;
    if body.duration_ms == 0 || body.duration_ms > 600_000 {
        return Err(ValidationError::new(
            "durationMs",
            format!("must be between 1 and 600000 (got {})", body.duration_ms),
        )
        .into());
    }
    let duration = Duration::from_millis(body.duration_ms);
    match state.router.outage(metric, body.shard, duration).await {
        Some(Ok(())) => Ok(HttpResponse::Accepted().json(json!({
            "metric": body.metric,
            "shard": body.shard,
            "durationMs": body.duration_ms,
        }))),
        Some(Err(e)) => Err(ApiError::Internal(format!("shard is gone: {e}"))),
        None => Err(ApiError::Internal("shard not found".into())),
    }
}

/// Injects a panic or a stop into the shard the body names.
async fn into_shard(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
    what: &str,
    inject: fn(&arus_actors::Router, MetricKind, usize) -> bool,
) -> Result<HttpResponse, ApiError> {
    let body: ShardPanic = chaos_request(state, req, payload).await?;
    let metric = check_shard(state, &body.metric, body.shard)?;
    tracing::warn!(%metric, shard = body.shard, what, "injecting a fault");
    inject(&state.router, metric, body.shard);
    Ok(HttpResponse::Accepted().json(json!({"metric": body.metric, "shard": body.shard})))
}

#[utoipa::path(post, path = "/v1/chaos/panic", tag = "admin",
    responses((status = 200, description = "The process panics (chaos.enabled only)", body = super::openapi::AdminAnswer), (status = 400, description = "Bad request (names the field)", body = super::openapi::ErrorBody), (status = 401, description = "A credential is needed", body = super::openapi::ErrorBody), (status = 403, description = "The credential is not valid here", body = super::openapi::ErrorBody), (status = 404, description = "Not found", body = super::openapi::ErrorBody), (status = 409, description = "Conflicts with the current state", body = super::openapi::ErrorBody), (status = 503, description = "Not ready, or Kafka did not take the event (Retry-After)", body = super::openapi::ErrorBody)))]
pub async fn panic(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    into_shard(&state, &req, payload, "panic", arus_actors::Router::crash).await
}

#[utoipa::path(post, path = "/v1/chaos/shard-stop", tag = "admin",
    responses((status = 200, description = "A shard stopped (chaos.enabled only)", body = super::openapi::AdminAnswer), (status = 400, description = "Bad request (names the field)", body = super::openapi::ErrorBody), (status = 401, description = "A credential is needed", body = super::openapi::ErrorBody), (status = 403, description = "The credential is not valid here", body = super::openapi::ErrorBody), (status = 404, description = "Not found", body = super::openapi::ErrorBody), (status = 409, description = "Conflicts with the current state", body = super::openapi::ErrorBody), (status = 503, description = "Not ready, or Kafka did not take the event (Retry-After)", body = super::openapi::ErrorBody)))]
pub async fn shard_stop(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    into_shard(&state, &req, payload, "stop", arus_actors::Router::stop).await
}
