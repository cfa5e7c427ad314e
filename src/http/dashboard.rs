//! `GET /`: the live dashboard, one page built into the binary (no CDN, no
//! build step): its charts are a few lines of SVG drawn by the page itself,
//! fed by `GET /v1/stream`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::{auth, AppState};
use crate::error::ApiError;

const PAGE: &str = include_str!("dashboard.html");

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
