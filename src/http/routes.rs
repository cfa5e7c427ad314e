//! Every route, with its methods: a GET route answers HEAD too, and any
//! other method on a known path is a 405 naming what it answers.

use actix_web::web::{self, ServiceConfig};
use actix_web::{guard, HttpRequest, HttpResponse, Resource, ResponseError};

use super::{
    auth, chaos, dashboard, dead_letters, health, ingest, lag, metrics, offsets, openapi, query,
    request_metrics, schemas, stream, tracker, windowed,
};
use crate::error::ApiError;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.app_data(
        web::QueryConfig::default()
            .error_handler(|err, _| ApiError::BadRequest(err.to_string()).into()),
    )
    .service(
        web::scope("/events")
            .wrap(actix_web::middleware::from_fn(auth::read_key_for_queries))
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
    .service(
        get("/v1/top-pages", query::top_pages_detail)
            .wrap(actix_web::middleware::from_fn(auth::read_key_for_queries)),
    )
    .service(post("/v1/query", windowed::query))
    .service(get("/v1/stream", stream::stream))
    .service(get("/", dashboard::page))
    .service(get("/arus.js", tracker::script))
    .service(post("/v1/track", tracker::track))
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
    .service(get("/openapi.json", openapi::openapi_json))
    .service(
        utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}")
            .config(utoipa_swagger_ui::Config::from("/openapi.json")),
    )
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
