//! `POST /v1/chaos/shard-outage`: fault injection for testing the failure
//! paths on a running service (admin token, and `chaos.enabled`).

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use arus_actors::event::ValidationError;
use arus_actors::METRICS;
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

/// The shard refuses every batch for the duration: its hop fails, its
/// breaker opens, and its events go through the retry topic.
pub async fn shard_outage(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    auth::admin(&req, &state.settings.security.admin_token)?;
    let body = read_body(payload, 4096).await?;
    let body: ShardOutage =
        serde_json::from_slice(&body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    if !state.settings.chaos.enabled {
        return Err(ApiError::NotFound(
            "fault injection is disabled (chaos.enabled = false)".into(),
        ));
    }
    if !METRICS.contains(&body.metric.as_str()) {
        return Err(ValidationError::new(
            "metric",
            format!(
                "must be one of {} (got {:?})",
                METRICS.join(", "),
                body.metric
            ),
        )
        .into());
    }
    if body.duration_ms == 0 || body.duration_ms > 600_000 {
        return Err(ValidationError::new(
            "durationMs",
            format!("must be between 1 and 600000 (got {})", body.duration_ms),
        )
        .into());
    }
    let duration = Duration::from_millis(body.duration_ms);
    match state
        .router
        .outage(&body.metric, body.shard, duration)
        .await
    {
        None => Err(ValidationError::new(
            "shard",
            format!(
                "no shard {} (there are {})",
                body.shard, state.settings.aggregator.shards
            ),
        )
        .into()),
        Some(Err(e)) => Err(ApiError::Internal(format!("shard is gone: {e}"))),
        Some(Ok(())) => Ok(HttpResponse::Accepted().json(json!({
            "metric": body.metric,
            "shard": body.shard,
            "durationMs": body.duration_ms,
        }))),
    }
}
