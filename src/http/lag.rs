//! Consumer lag: `GET /v1/lag` (the lag monitor's latest reading), and
//! pausing this instance's consumption; all admin.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::{auth, AppState};
use crate::error::ApiError;

/// Admin: the group's name, its offsets and alert state are an operator's
/// business, not a page visitor's.
#[utoipa::path(get, path = "/v1/lag", tag = "admin",
    responses((status = 200, description = "The group's lag per partition", body = super::openapi::AdminAnswer), (status = 400, description = "Bad request (names the field)", body = super::openapi::ErrorBody), (status = 401, description = "A credential is needed", body = super::openapi::ErrorBody), (status = 403, description = "The credential is not valid here", body = super::openapi::ErrorBody), (status = 404, description = "Not found", body = super::openapi::ErrorBody), (status = 409, description = "Conflicts with the current state", body = super::openapi::ErrorBody), (status = 503, description = "Not ready, or Kafka did not take the event (Retry-After)", body = super::openapi::ErrorBody)))]
pub async fn current(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    auth::admin(&req, &state.settings.security.admin_token)?;
    match state.lag.latest() {
        Some(snapshot) => Ok(HttpResponse::Ok().json(snapshot)),
        None => Err(ApiError::NotReady(
            "the lag monitor has not read the group's offsets yet".into(),
        )),
    }
}

/// Pauses this instance's consumption (not the group's: other instances
/// keep consuming their partitions). The answer comes at once; the pause
/// has taken hold when `pausedPartitions` equals `assignedPartitions`' length.
#[utoipa::path(post, path = "/v1/consumer/pause", tag = "admin",
    responses((status = 200, description = "This instance's consumption paused", body = super::openapi::AdminAnswer), (status = 400, description = "Bad request (names the field)", body = super::openapi::ErrorBody), (status = 401, description = "A credential is needed", body = super::openapi::ErrorBody), (status = 403, description = "The credential is not valid here", body = super::openapi::ErrorBody), (status = 404, description = "Not found", body = super::openapi::ErrorBody), (status = 409, description = "Conflicts with the current state", body = super::openapi::ErrorBody), (status = 503, description = "Not ready, or Kafka did not take the event (Retry-After)", body = super::openapi::ErrorBody)))]
pub async fn pause(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    auth::admin(&req, &state.settings.security.admin_token)?;
    state.consumption.set_paused(true);
    Ok(paused_answer(&state))
}

#[utoipa::path(post, path = "/v1/consumer/resume", tag = "admin",
    responses((status = 200, description = "Resumed", body = super::openapi::AdminAnswer), (status = 400, description = "Bad request (names the field)", body = super::openapi::ErrorBody), (status = 401, description = "A credential is needed", body = super::openapi::ErrorBody), (status = 403, description = "The credential is not valid here", body = super::openapi::ErrorBody), (status = 404, description = "Not found", body = super::openapi::ErrorBody), (status = 409, description = "Conflicts with the current state", body = super::openapi::ErrorBody), (status = 503, description = "Not ready, or Kafka did not take the event (Retry-After)", body = super::openapi::ErrorBody)))]
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
