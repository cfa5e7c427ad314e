//! Browsers on other sites: `http.cors_allowed_origins`.
//!
//! A request with an `Origin` from an allowed page (or from arus's own host)
//! gets `Access-Control-Allow-Origin` for it, and its preflight (`OPTIONS`
//! with `Access-Control-Request-Method`) is answered. A preflight from any
//! other origin is refused, and so is a POST from one: a `text/plain`
//! beacon needs no preflight, so refusing to answer it would not stop it
//! from being counted. Requests without an `Origin` are not a browser's on
//! another site, and pass as before.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, ResponseError};

use super::AppState;
use crate::error::ApiError;

/// What the request's `Origin` is to this instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// No `Origin` header: not a browser's cross-site request.
    None,
    /// A page of this host, or of an allowed origin.
    Allowed,
    Refused,
}

pub fn origin(req: &actix_web::HttpRequest, allowed: &[String]) -> Origin {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return Origin::None;
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    let same_host = origin
        .split_once("://")
        .is_some_and(|(_, rest)| Some(rest) == host);
    if same_host || allowed.iter().any(|a| a == "*" || a == origin) {
        Origin::Allowed
    } else {
        Origin::Refused
    }
}

pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let seen = origin(req.request(), &state.settings.http.cors_allowed_origins);
    let given = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    match (seen, given) {
        (Origin::Refused, Some(origin)) if preflight || req.method() == Method::POST => {
            let refusal = ApiError::Forbidden(format!(
                "origin {origin:?} is not in http.cors_allowed_origins"
            ));
            Ok(req
                .into_response(refusal.error_response())
                .map_into_right_body())
        }
        (Origin::Allowed, Some(origin)) if preflight => {
            let answer = HttpResponse::NoContent()
                .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, HEAD, POST"))
                .insert_header((
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    "content-type, content-encoding, x-api-key, authorization, x-correlation-id",
                ))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
                .insert_header((header::VARY, "Origin"))
                .finish();
            Ok(req.into_response(answer).map_into_right_body())
        }
        (Origin::Allowed, Some(origin)) => {
            let mut response = next.call(req).await?;
            let headers = response.headers_mut();
            if let Ok(value) = header::HeaderValue::from_str(&origin) {
                headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            }
            headers.insert(header::VARY, header::HeaderValue::from_static("Origin"));
            Ok(response.map_into_left_body())
        }
        _ => Ok(next.call(req).await?.map_into_left_body()),
    }
}
