//! The browser tracker: `GET /arus.js` (a page view on load and on every
//! single-page navigation, sent with `navigator.sendBeacon`; no cookies)
//! and `POST /v1/track`, where its beacons land.
//!
//! A beacon is `{"url", "referrer"?, "userId"?}` as `text/plain` (what
//! `sendBeacon` sends for a string, with no preflight) or JSON. Without a
//! `userId`, the visitor is a keyed hash (SipHash-2-4, keyed by
//! `security.visitor_salt` and the UTC day) of the client's address, its
//! user agent and the page's host: the same person on the same site is the
//! same visitor all day and a new one the next, with nothing stored in the
//! browser, as Plausible counts visitors. The page view is then ingested
//! exactly as `POST /events/page-view` would ingest it.

use std::hash::Hasher as _;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use siphasher::sip::SipHasher24;

use super::cors::{self, Origin};
use super::{auth, ingest, AppState};
use crate::error::ApiError;

const SCRIPT: &str = include_str!("arus.js");

#[utoipa::path(get, path = "/arus.js", tag = "ingest",
    responses((status = 200, description = "The browser tracker", content_type = "text/javascript", body = String)))]
pub async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(SCRIPT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Beacon {
    url: String,
    #[serde(default)]
    referrer: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
}

/// The visitor a beacon without a `userId` counts as (see the module).
fn visitor(state: &AppState, req: &HttpRequest) -> String {
    let day = Utc::now().date_naive().to_string();
    let salt = state.settings.security.visitor_salt.expose();
    let mut keys = [0u64; 2];
    for (i, key) in keys.iter_mut().enumerate() {
        let mut h = SipHasher24::new_with_keys(i as u64, 0x6172_7573);
        h.write(salt.as_bytes());
        h.write_u8(0);
        h.write(day.as_bytes());
        *key = h.finish();
    }
    let address = req.peer_addr().map_or_else(String::new, |peer| {
        auth::client_address(req, peer.ip(), &state.trusted_proxies).to_string()
    });
    let text = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let site = text(header::ORIGIN);
    let site = site.split_once("://").map_or(site, |(_, host)| host);
    let mut h = SipHasher24::new_with_keys(keys[0], keys[1]);
    for part in [address.as_str(), text(header::USER_AGENT), site] {
        h.write(part.as_bytes());
        h.write_u8(0);
    }
    format!("anon-{:016x}", h.finish())
}

#[utoipa::path(post, path = "/v1/track", tag = "ingest",
    request_body(content((super::openapi::Beacon = "text/plain"), (super::openapi::Beacon = "application/json"))),
    responses((status = 201, description = "The page view, written to Kafka", body = super::openapi::Accepted), (status = 400, description = "Bad request (names the field)", body = super::openapi::ErrorBody), (status = 401, description = "A credential is needed", body = super::openapi::ErrorBody), (status = 403, description = "The credential is not valid here", body = super::openapi::ErrorBody), (status = 408, description = "The body did not arrive in time", body = super::openapi::ErrorBody), (status = 413, description = "Too large", body = super::openapi::ErrorBody), (status = 415, description = "Unsupported media type", body = super::openapi::ErrorBody), (status = 429, description = "Rate limited (Retry-After)", body = super::openapi::ErrorBody), (status = 503, description = "Not ready, or Kafka did not take the event (Retry-After)", body = super::openapi::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn track(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // A browser's beacon carries its page's Origin, which the CORS guard
    // has let through; anything else is a server's request, which needs
    // an ingest key when keys are set, as for every ingest route.
    if cors::origin(&req, &state.settings.http.cors_allowed_origins) != Origin::Allowed {
        auth::ingest(&req, &state.settings.security.ingest_api_keys)?;
    }
    let body = ingest::body(&state, &req, payload).await?;
    let beacon: Beacon = serde_json::from_slice(&body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::MalformedJson(e.to_string())
        } else {
            ApiError::BadRequest(format!(
                "a beacon is {{\"url\", \"referrer\"?, \"userId\"?}}: {e}"
            ))
        }
    })?;
    let user_id = match beacon.user_id {
        Some(id) if !id.trim().is_empty() => id,
        _ => visitor(&state, &req),
    };
    let mut view = json!({"userId": user_id, "url": beacon.url});
    if let Some(referrer) = beacon.referrer.filter(|r| !r.is_empty()) {
        view["referrer"] = json!(referrer);
    }
    let body = serde_json::to_vec(&view)
        .map_err(|e| ApiError::Internal(format!("cannot encode the page view: {e}")))?;
    ingest::page_view_from(&state, &req, &body).await
}
