//! `GET /v1/dead-letters?limit=N`: the newest dead letters.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{auth, AppState};
use crate::error::ApiError;
use crate::kafka::dead_letters;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<usize>,
}

#[tracing::instrument(skip_all)]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    auth::admin(&req, &state.settings.security.admin_token)?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest(
            "limit must be between 1 and 1000".into(),
        ));
    }
    let settings = state.settings.clone();
    let brokers = state.brokers.clone();
    // Reading Kafka blocks: off the HTTP worker.
    let letters = web::block(move || dead_letters::recent(&settings, &brokers, limit))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(format!("reading the dead-letter topic: {e:#}")))?;
    Ok(HttpResponse::Ok().json(json!({
        "deadLetters": letters,
        "count": letters.len(),
        "total": state.read_model.dead_letters(),
    })))
}
