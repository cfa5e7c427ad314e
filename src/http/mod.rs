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
use actix_web::{HttpResponse, ResponseError};
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
    /// Events this instance's ingest endpoints wrote (acknowledged by Kafka).
    pub ingested: std::sync::atomic::AtomicU64,
}

impl AppState {
    /// The ingest topic named `name` (full name), as the consumer knows it.
    pub fn input_topic(&self, name: &str) -> Option<arus_actors::source::InputTopic> {
        use arus_actors::source::InputTopic;
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
            .route("/user-event", web::post().to(ingest::user_event))
            .route("/page-view", web::post().to(ingest::page_view))
            .route("/batch-events", web::post().to(ingest::batch_events))
            .route("/stats", web::get().to(query::stats))
            .route("/analytics", web::get().to(query::analytics))
            .route(
                "/analytics/event-counts",
                web::get().to(query::event_counts),
            )
            .route(
                "/analytics/active-users",
                web::get().to(query::active_users),
            )
            .route("/analytics/top-pages", web::get().to(query::top_pages))
            .route("/analytics/sessions", web::get().to(query::sessions))
            .route("/analytics/users/{user_id}", web::get().to(query::user)),
    )
    .route("/v1/dead-letters", web::get().to(dead_letters::list))
    .route(
        "/v1/dead-letters/replay",
        web::post().to(dead_letters::replay),
    )
    .route(
        "/v1/chaos/shard-outage",
        web::post().to(chaos::shard_outage),
    )
    .route("/v1/chaos/panic", web::post().to(chaos::panic))
    .route("/v1/chaos/shard-stop", web::post().to(chaos::shard_stop))
    .route("/v1/lag", web::get().to(lag::current))
    .route("/v1/schemas", web::get().to(schemas::list))
    .route(
        "/v1/schemas/{kind}/{version}",
        web::get().to(schemas::document),
    )
    .route(
        "/v1/consumer-groups/{group}/offsets",
        web::get().to(offsets::group_offsets),
    )
    .route(
        "/v1/consumer-groups/{group}/reset",
        web::post().to(offsets::reset),
    )
    .route("/v1/consumer/pause", web::post().to(lag::pause))
    .route("/v1/consumer/resume", web::post().to(lag::resume))
    .route("/metrics", web::get().to(metrics::scrape))
    .route("/health/live", web::get().to(health::live))
    .route("/health/ready", web::get().to(health::ready))
    .default_service(web::to(not_found));
}

async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    ApiError::NotFound(format!("no route for {} {}", req.method(), req.path())).error_response()
}

/// Reads a request body of at most `limit` bytes; a larger one is a 413
/// without reading the rest.
async fn read_body(payload: web::Payload, limit: usize) -> Result<Bytes, ApiError> {
    read_body_sized(payload, limit, 0).await
}

/// [`read_body`] into a buffer of `capacity` bytes from the start (a
/// body's declared length, see [`declared_length`]), rather than one that
/// grows and copies as chunks arrive.
async fn read_body_sized(
    mut payload: web::Payload,
    limit: usize,
    capacity: usize,
) -> Result<Bytes, ApiError> {
    let mut body = web::BytesMut::with_capacity(capacity.min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("cannot read request body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::TooLarge(format!(
                "request body is larger than {limit} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
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
