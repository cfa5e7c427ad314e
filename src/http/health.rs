//! `/health/live` and `/health/ready`.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;

#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "The process is up", body = super::openapi::Live)))]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready once the topics exist and the consumer has joined its group; not
/// ready again from the moment shutdown starts.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, description = "Ready", body = super::openapi::Ready), (status = 503, description = "Not ready (which checks fail)", body = super::openapi::Ready)))]
#[tracing::instrument(skip_all)]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let h = &state.health;
    let body = json!({
        "status": if h.ready() { "ready" } else { "not-ready" },
        "checks": {
            "topics": h.topics_ready(),
            "consumerGroup": h.joined(),
            "restoring": h.restoring(),
            "readModel": h.read_model_ready(),
            "unreadableChangelogRecords": h.unreadable_changelog_records(),
            "shuttingDown": h.shutting_down(),
        },
    });
    if h.ready() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
