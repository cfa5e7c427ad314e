//! The HTTP API: ingest, query and health routes, and what they share.

mod auth;
mod chaos;
mod dead_letters;
mod health;
mod ingest;
mod lag;
mod metrics;
mod offsets;
mod query;
pub mod rate_limit;
pub mod request_metrics;
mod schemas;

use std::sync::Arc;

use actix_web::web::{self, Bytes, ServiceConfig};
use actix_web::{guard, HttpRequest, HttpResponse, Resource, ResponseError};
use arus_actors::{ConsumerStats, ReadModel, Router};
use futures::StreamExt;

use crate::error::ApiError;
use crate::health::Health;
use crate::kafka::consumer_driver::{Assignment, Consumption};
use crate::kafka::producer::EventProducer;

/// Everything a handler may use.
pub struct AppState {
    pub settings: Arc<arus_config::Settings>,
    pub brokers: String,
    pub instance_id: String,
    pub group_id: String,
    pub user_topic: String,
    pub page_topic: String,
    pub max_body_bytes: usize,
    pub max_batch_size: usize,
    pub active_window_seconds: u64,
    pub top_pages_limit: usize,
    pub producer: Arc<EventProducer>,
    pub read_model: Arc<ReadModel>,
    pub stats: Arc<ConsumerStats>,
    pub health: Arc<Health>,
    pub assignment: Assignment,
    pub consumption: Consumption,
    pub router: Arc<Router>,
    pub lag: Arc<crate::lag::LagView>,
    pub requests: request_metrics::RequestMetrics,
    /// `None` when off.
    pub rate_limiter: Option<rate_limit::RateLimiter>,
    /// `http.trusted_proxies`, parsed.
    pub trusted_proxies: Vec<arus_config::IpRange>,
    /// Events this instance's ingest endpoints wrote (acknowledged by Kafka).
    pub ingested: std::sync::atomic::AtomicU64,
}

impl AppState {
    /// The ingest topic named `name` (full name), as the consumer knows it.
    pub fn input_topic(&self, name: &str) -> Option<arus_actors::model::source::InputTopic> {
        use arus_actors::model::source::InputTopic;
        if name == self.user_topic {
            Some(InputTopic::UserEvents)
        } else if name == self.page_topic {
            Some(InputTopic::PageViews)
        } else {
            None
        }
    }
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.app_data(
        web::QueryConfig::default()
            .error_handler(|err, _| ApiError::BadRequest(err.to_string()).into()),
    )
    .service(
        web::scope("/events")
            .service(post("/user-event", ingest::user_event))
            .service(post("/page-view", ingest::page_view))
            .service(post("/batch-events", ingest::batch_events))
            .service(get("/stats", query::stats))
            .service(get("/analytics", query::analytics))
            .service(get("/analytics/event-counts", query::event_counts))
            .service(get("/analytics/active-users", query::active_users))
            .service(get("/analytics/top-pages", query::top_pages))
            .service(get("/analytics/sessions", query::sessions))
            .service(get("/analytics/users/{user_id}", query::user)),
    )
    .service(get("/v1/dead-letters", dead_letters::list))
    .service(post("/v1/dead-letters/replay", dead_letters::replay))
    .service(post("/v1/chaos/shard-outage", chaos::shard_outage))
    .service(post("/v1/chaos/panic", chaos::panic))
    .service(post("/v1/chaos/shard-stop", chaos::shard_stop))
    .service(get("/v1/lag", lag::current))
    .service(get("/v1/schemas", schemas::list))
    .service(get("/v1/schemas/{kind}/{version}", schemas::document))
    .service(get(
        "/v1/consumer-groups/{group}/offsets",
        offsets::group_offsets,
    ))
    .service(post("/v1/consumer-groups/{group}/reset", offsets::reset))
    .service(post("/v1/consumer/pause", lag::pause))
    .service(post("/v1/consumer/resume", lag::resume))
    .service(get("/metrics", metrics::scrape))
    .service(get("/health/live", health::live))
    .service(get("/health/ready", health::ready))
    .default_service(web::to(not_found));
}

/// A route answering GET and HEAD (the same answer without its body, as
/// probes send it); any other method is a 405 naming those two.
fn get<F, Args>(path: &str, handler: F) -> Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(
            web::route()
                .guard(guard::Any(guard::Get()).or(guard::Head()))
                .to(handler),
        )
        .default_service(web::to(|req: HttpRequest| {
            method_not_allowed(req, "GET, HEAD")
        }))
}

/// A route answering POST; any other method is a 405.
fn post<F, Args>(path: &str, handler: F) -> Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::post().to(handler))
        .default_service(web::to(|req: HttpRequest| method_not_allowed(req, "POST")))
}

async fn method_not_allowed(req: HttpRequest, allow: &'static str) -> HttpResponse {
    ApiError::MethodNotAllowed {
        message: format!(
            "{} does not answer {}; it answers {allow}",
            req.path(),
            request_metrics::method_label(req.method())
        ),
        allow,
    }
    .error_response()
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::NotFound(format!(
        "no route for {} {}",
        request_metrics::method_label(req.method()),
        req.path()
    ))
    .error_response()
}

/// Reads a request body of at most `limit` bytes; a larger one is a 413
/// without reading the rest.
async fn read_body(payload: web::Payload, limit: usize) -> Result<Bytes, ApiError> {
    read_body_sized(payload, limit, 0, ADMIN_BODY_TIMEOUT).await
}

/// How long an admin request's (small) body may take to arrive.
const ADMIN_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// [`read_body`] into a buffer of `capacity` bytes from the start (a
/// body's declared length, see [`declared_length`]), rather than one that
/// grows and copies as chunks arrive. A body that has not arrived whole
/// within `timeout` is a 408 (and its connection is closed): a client that
/// declares a length and goes silent holds nothing for long.
async fn read_body_sized(
    mut payload: web::Payload,
    limit: usize,
    capacity: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, ApiError> {
    let read = async {
        let mut body = web::BytesMut::with_capacity(capacity.min(limit));
        while let Some(chunk) = payload.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::BadRequest(format!("cannot read request body: {e}")))?;
            if body.len() + chunk.len() > limit {
                return Err(ApiError::TooLarge(format!(
                    "request body is larger than {limit} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    tokio::time::timeout(timeout, read).await.map_err(|_| {
        ApiError::RequestTimeout(format!(
            "the request body did not arrive within {} ms",
            timeout.as_millis()
        ))
    })?
}

/// The request's `Content-Length`, when it declares one of at most
/// `limit` bytes, as a capacity of at most [`PREALLOCATED_BODY`]; 0
/// otherwise. Only a capacity: the body read is what counts, and a client
/// that declares much and sends little holds no more than that bound.
fn declared_length(req: &actix_web::HttpRequest, limit: usize) -> usize {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n <= limit)
        .map_or(0, |n| n.min(PREALLOCATED_BODY))
}

/// The most a request body's buffer takes before its bytes arrive (the
/// default body limit; a larger body grows the buffer as it comes).
const PREALLOCATED_BODY: usize = 1 << 20;
