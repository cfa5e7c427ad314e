//! `POST /v1/query`: windowed analytics in the shape of Plausible's Stats
//! API v2 (see `crate::stats_api`).

use actix_web::{web, HttpRequest, HttpResponse};
use arus_actors::window::WindowConfig;
use chrono::Utc;
use serde_json::{json, Value};

use super::{auth, AppState};
use crate::error::ApiError;
use crate::stats_api::{normalize, run, Kept, QueryRequest};

/// A query is small; anything bigger is not one.
const MAX_QUERY_BYTES: usize = 64 * 1024;

#[utoipa::path(post, path = "/v1/query", tag = "query", request_body = super::openapi::QueryBody,
    responses((status = 200, description = "Rows, freshness, the normalized query", body = super::openapi::QueryAnswer), (status = 400, description = "Bad request (names the field)", body = super::openapi::ErrorBody), (status = 401, description = "A credential is needed", body = super::openapi::ErrorBody), (status = 403, description = "The credential is not valid here", body = super::openapi::ErrorBody), (status = 413, description = "Too large", body = super::openapi::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn query(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    auth::query(&req, &state.settings.security.query_api_keys)?;
    if body.len() > MAX_QUERY_BYTES {
        return Err(ApiError::TooLarge(format!(
            "a query is at most {MAX_QUERY_BYTES} bytes"
        )));
    }
    let request: QueryRequest = serde_json::from_slice(&body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::MalformedJson(e.to_string())
        } else {
            ApiError::BadRequest(format!("not a query: {e}"))
        }
    })?;
    Ok(HttpResponse::Ok().json(answer(&state, request, Utc::now().timestamp_millis())?))
}

/// A query's answer: results, freshness, and the query as normalized.
pub fn answer(state: &AppState, request: QueryRequest, now: i64) -> Result<Value, ApiError> {
    let config = WindowConfig::from(&state.settings.windows);
    let query = normalize(request, now, config.retention_ms[2]).map_err(ApiError::BadRequest)?;
    let kept = Kept {
        retention_ms: config.retention_ms,
        grace_ms: config.grace_ms,
    };
    let windows = state.read_model.windows();
    let answer = run(&query, windows, kept, now).map_err(ApiError::BadRequest)?;
    let mut meta = json!({
        "asOf": super::query::as_of(state),
        "lag": state.read_model.lag(),
        "openBuckets": answer.open_buckets,
        "resolution": answer.resolution.as_str(),
        "lateEvents": windows.late_total(),
    });
    if let Some((answered, unlisted)) = answer.page_bounds {
        // Page counts come from bounded tables (windows.top_pages): how far
        // an answered count may be above the truth, and how often a page
        // not in the answer may have been read (0 and 0: exact).
        meta["pageCountBound"] = json!(answered);
        meta["unlistedPageBound"] = json!(unlisted);
    }
    Ok(json!({
        "results": answer.results,
        "meta": meta,
        "query": query.to_json(),
    }))
}
