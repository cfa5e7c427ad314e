//! `GET /`: the live dashboard, one page built into the binary (no CDN, no
//! build step): its charts are a few lines of SVG drawn by the page itself,
//! fed by `GET /v1/stream`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::{auth, AppState};
use crate::error::ApiError;

const PAGE: &str = include_str!("dashboard.html");

#[utoipa::path(get, path = "/", tag = "query",
    params(("key" = Option<String>, Query, description = "A read key")),
    responses((status = 200, description = "The live dashboard", content_type = "text/html", body = String), (status = 401, description = "A credential is needed", body = super::openapi::ErrorBody), (status = 403, description = "The credential is not valid here", body = super::openapi::ErrorBody)))]
pub async fn page(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    auth::query_in_url(&req, &state.settings.security.query_api_keys)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
        ))
        .body(PAGE))
}
