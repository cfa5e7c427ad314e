//! Request counts and latency by route, method and status, for `/metrics`,
//! and, when tracing is on, a server span per request that continues an
//! incoming `traceparent`. The route is the pattern that matched
//! (`/events/analytics/users/{user_id}`), never the raw path, so the number
//! of series stays bounded.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use arus_actors::LATENCY_BUCKETS;
use prometheus::{HistogramOpts, HistogramVec};

use super::AppState;
use crate::telemetry::{self, propagation};
use tracing::Instrument as _;

/// (route, method, status).
pub type RequestKind = (String, String, u16);

/// One histogram per route pattern, method and status: the library's
/// labelled histogram, its label values escaped by the library.
pub struct RequestMetrics {
    histograms: HistogramVec,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        let opts = HistogramOpts::new(
            "arus_http_request_duration_seconds",
            "HTTP requests by route pattern, method and status, and how long they took.",
        )
        .buckets(LATENCY_BUCKETS.to_vec());
        let histograms = HistogramVec::new(opts, &["route", "method", "status"])
            .unwrap_or_else(|e| panic!("request histogram: {e}"));
        Self { histograms }
    }
}

impl RequestMetrics {
    pub fn observe(&self, (route, method, status): RequestKind, took: std::time::Duration) {
        let status = status.to_string();
        self.histograms
            .with_label_values(&[route.as_str(), method.as_str(), status.as_str()])
            .observe(took.as_secs_f64());
    }

    /// For a registry.
    pub fn collector(&self) -> Box<dyn prometheus::core::Collector> {
        Box::new(self.histograms.clone())
    }
}

/// A method as a label: the standard ones by name, anything else (a
/// client may send any token, of any length) as `other`, so no caller can
/// grow the number of series.
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The middleware: times every request through to its response.
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let method = method_label(req.method()).to_string();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    // Probes and scrapes come every few seconds and say nothing: untraced.
    let probe = route.starts_with("/health") || route == "/metrics";
    let span = if telemetry::tracing_on() && !probe {
        let span = tracing::info_span!(
            "http request",
            otel.name = %format!("{method} {route}"),
            otel.kind = "server",
            http.request.method = %method,
            http.route = %route,
            url.path = %req.path(),
            http.response.status_code = tracing::field::Empty,
        );
        propagation::continue_trace(&span, &propagation::HttpHeaders(req.headers()));
        span
    } else {
        tracing::Span::none()
    };
    let result = next.call(req).instrument(span.clone()).await;
    let status = match &result {
        Ok(response) => response.status().as_u16(),
        Err(error) => error.as_response_error().status_code().as_u16(),
    };
    span.record("http.response.status_code", status);
    if let Some(state) = state {
        state
            .requests
            .observe((route, method, status), started.elapsed());
    }
    result
}
