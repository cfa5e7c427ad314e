//! Consumer lag and offsets: `GET /v1/lag` (the lag monitor's latest
//! reading), `GET /v1/consumer-groups/{group}/offsets` (read now, admin),
//! and pausing this instance's consumption (admin).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::{auth, AppState};
use crate::error::ApiError;
use crate::kafka::offsets::OffsetReader;

pub async fn current(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match state.lag.latest() {
        Some(snapshot) => Ok(HttpResponse::Ok().json(snapshot)),
        None => Err(ApiError::NotReady(
            "the lag monitor has not read the group's offsets yet".into(),
        )),
    }
}

/// Kafka's own limit on a group id's length.
const MAX_GROUP_ID: usize = 255;

#[tracing::instrument(skip_all, fields(group = %path))]
pub async fn group_offsets(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth::admin(&req, &state.settings.security.admin_token)?;
    let group = path.into_inner();
    if group.is_empty() || group.len() > MAX_GROUP_ID || group.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "a group id has 1 to {MAX_GROUP_ID} characters and no control characters"
        )));
    }
    let settings = state.settings.clone();
    let brokers = state.brokers.clone();
    let read = {
        let group = group.clone();
        move || -> anyhow::Result<_> {
            let reader = OffsetReader::new(&settings, &brokers, &group)?;
            let partitions = reader.read()?;
            let (group_state, members) = reader.members()?;
            Ok((partitions, group_state, members))
        }
    };
    // Reading Kafka blocks: off the HTTP worker.
    let (partitions, group_state, members) = web::block(read)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(format!("reading the group's offsets: {e:#}")))?;
    let total_lag: i64 = partitions.iter().map(|p| p.lag).sum();
    Ok(HttpResponse::Ok().json(json!({
        "group": group,
        "state": group_state,
        "members": members,
        "totalLag": total_lag,
        "partitions": partitions,
    })))
}

/// Pauses this instance's consumption (not the group's: other instances
/// keep consuming their partitions). The answer comes at once; the pause
/// has taken hold when `pausedPartitions` equals `assignedPartitions`' length.
pub async fn pause(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    auth::admin(&req, &state.settings.security.admin_token)?;
    state.consumption.set_paused(true);
    Ok(paused_answer(&state))
}

pub async fn resume(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    auth::admin(&req, &state.settings.security.admin_token)?;
    state.consumption.set_paused(false);
    Ok(paused_answer(&state))
}

fn paused_answer(state: &AppState) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "instance": state.instance_id,
        "paused": state.consumption.paused(),
        "pausedPartitions": state.consumption.paused_partitions(),
        "assignedPartitions": state.assignment.partitions(),
    }))
}
