//! Ingest: `POST /events/user-event`, `/events/page-view`, `/events/batch-events`.
//!
//! Input is validated whole before anything is written, and the answer waits
//! for Kafka's acknowledgement: a 201 means every event in it is in Kafka.

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use arus_actors::model::event::{Defaults, PageView, UserEvent, ValidationError};
use arus_actors::model::event_time::TimeBounds;
use arus_actors::model::json::Json;
use arus_actors::model::schema::{self, Kind, Schema};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::{auth, declared_length, read_body_sized, AppState};
use crate::error::ApiError;
use crate::kafka::producer::{Stamp, Written, RECORD_OVERHEAD};

fn correlation_id(req: &HttpRequest) -> String {
    req.headers()
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map_or_else(|| Uuid::new_v4().to_string(), str::to_string)
}

/// The request body, as JSON text: of a media type ingest takes, read
/// within `http.body_timeout_ms`, at most `http.max_body_bytes` (after
/// decompression, for a gzip body).
pub(super) async fn body(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Bytes, ApiError> {
    accepted_media_type(req)?;
    let gzip = gzip_encoded(req)?;
    let limit = state.max_body_bytes;
    let timeout = Duration::from_millis(state.settings.http.body_timeout_ms);
    let body = read_body_sized(payload, limit, declared_length(req, limit), timeout).await?;
    if gzip {
        gunzip(&body, limit)
    } else {
        Ok(body)
    }
}

/// JSON (`application/json`, any `+json` type) and `text/plain`, which a
/// browser's `navigator.sendBeacon` sends without a preflight; a request
/// that names no type is read as JSON. Forms and anything else: 415.
fn accepted_media_type(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if json || essence == "text/plain" {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "content-type {essence:?} is not taken here: send application/json (or text/plain from a browser beacon)"
        )))
    }
}

/// Whether the body is gzip-compressed; any other coding is a 415.
fn gzip_encoded(req: &HttpRequest) -> Result<bool, ApiError> {
    let Some(value) = req.headers().get(header::CONTENT_ENCODING) else {
        return Ok(false);
    };
    let coding = value
        .to_str()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match coding.as_str() {
        "" | "identity" => Ok(false),
        "gzip" | "x-gzip" => Ok(true),
        _ => Err(ApiError::UnsupportedMediaType(format!(
            "content-encoding {coding:?} is not taken here: send gzip or no encoding"
        ))),
    }
}

/// A gzip body decompressed, refused past `limit` bytes of JSON (a small
/// body must not inflate into a large one unchecked).
fn gunzip(body: &[u8], limit: usize) -> Result<Bytes, ApiError> {
    use std::io::Read as _;
    let mut out = Vec::with_capacity((body.len() * 4).min(limit));
    let read = flate2::read::MultiGzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::BadRequest(format!("the gzip body cannot be decompressed: {e}")))?;
    if read > limit {
        return Err(ApiError::TooLarge(format!(
            "request body is larger than {limit} bytes once decompressed"
        )));
    }
    Ok(Bytes::from(out))
}

/// An event's time within the bounds of `windows.*` around the time of
/// ingest (which its record carries as its timestamp).
fn check_time(state: &AppState, event_ms: i64, now: DateTime<Utc>) -> Result<(), ValidationError> {
    TimeBounds::from(&state.settings.windows)
        .check(event_ms, now.timestamp_millis())
        .map_err(|e| ValidationError::new("timestamp", e.to_string()))
}

/// Refuses a record larger than Kafka takes, before anything is written:
/// `field` names the event (`[2]` in a batch).
fn check_record_size(
    state: &AppState,
    field: String,
    key: &str,
    value: &[u8],
    headers: usize,
) -> Result<(), ApiError> {
    let size = key.len() + value.len() + headers + RECORD_OVERHEAD;
    let max = state.max_record_bytes;
    if size > max {
        return Err(ApiError::EventTooLarge {
            field,
            message: format!(
                "the event's record would be {size} bytes; Kafka takes at most {max} (message.max.bytes); nothing was written"
            ),
        });
    }
    Ok(())
}

/// The body as a JSON document borrowing its strings from it (no copy of
/// each string and field name, as a `serde_json::Value` would make), with
/// each event's metadata object keeping its own text, which its record
/// carries as it was sent.
fn parse(body: &[u8]) -> Result<Json<'_>, ApiError> {
    Json::parse_keeping_text(body, "metadata").map_err(|e| {
        // Valid JSON, but a number no 64-bit float holds (a 310-digit
        // integer): the body is well-formed, its value is not accepted.
        if e.to_string().starts_with("number out of range") {
            ApiError::Validation(ValidationError::new(
                "",
                format!("{e}: numbers must be within ±1.7976931348623157e308"),
            ))
        } else {
            ApiError::MalformedJson(e.to_string())
        }
    })
}

/// Writes `event` as its record's value at the end of `buf`.
fn encode_into<T: Serialize>(buf: &mut Vec<u8>, event: &T) -> Result<(), ApiError> {
    serde_json::to_writer(buf, event)
        .map_err(|e| ApiError::Internal(format!("cannot encode event: {e}")))
}

/// Where one accepted event went, as the answer lists it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Accepted<'a> {
    event_id: Uuid,
    topic: &'a str,
    partition: i32,
    offset: i64,
}

impl<'a> Accepted<'a> {
    fn new(event_id: Uuid, topic: &'a str, written: Written) -> Self {
        Self {
            event_id,
            topic,
            partition: written.partition,
            offset: written.offset,
        }
    }
}

/// The batch answer, serialized straight from the accepted events (a
/// thousand of them: no JSON tree built first).
#[derive(Serialize)]
struct BatchAccepted<'a> {
    success: bool,
    message: &'static str,
    count: usize,
    events: Vec<Accepted<'a>>,
}

/// The rate limit, once a request is known good: `cost` events.
fn limit(state: &AppState, req: &HttpRequest, cost: usize) -> Result<(), ApiError> {
    match &state.rate_limiter {
        Some(limiter) => limiter.check(
            &auth::client(req, &state.settings.security, &state.trusted_proxies),
            cost,
        ),
        None => Ok(()),
    }
}

/// The schema events are checked against at ingest: the version their
/// records will carry.
fn current_schema(kind: Kind) -> &'static Schema {
    // Every kind has a schema at the current version; the schema module's
    // tests check it.
    schema::built_in()
        .get(kind, kind.current_version())
        .unwrap_or_else(|| panic!("no {} schema at the current version", kind.as_str()))
}

/// What the two single-event routes take: a user event or a page view.
trait SingleEvent: Serialize + Sized {
    /// Its schema.
    const KIND: Kind;
    /// The seed's answer: its `message`, and the field holding the event
    /// as published.
    const MESSAGE: &'static str;
    const SEED_FIELD: &'static str;
    fn from_json(value: Json<'_>, defaults: Defaults) -> Result<Self, ValidationError>;
    /// Its eventId, generated now when the client sent none.
    fn event_id(&mut self) -> Uuid;
    /// The record key: the user.
    fn user_id(&self) -> &str;
    /// Its time, in milliseconds since the epoch.
    fn timestamp_ms(&self) -> i64;
}

impl SingleEvent for UserEvent {
    const KIND: Kind = Kind::UserEvent;
    const MESSAGE: &'static str = "Event tracked successfully";
    const SEED_FIELD: &'static str = "event";
    fn from_json(value: Json<'_>, defaults: Defaults) -> Result<Self, ValidationError> {
        UserEvent::from_json(value, defaults)
    }
    fn event_id(&mut self) -> Uuid {
        *self.event_id.get_or_insert_with(Uuid::new_v4)
    }
    fn user_id(&self) -> &str {
        &self.user_id
    }
    fn timestamp_ms(&self) -> i64 {
        self.timestamp.timestamp_millis()
    }
}

impl SingleEvent for PageView {
    const KIND: Kind = Kind::PageView;
    const MESSAGE: &'static str = "Page view tracked successfully";
    const SEED_FIELD: &'static str = "pageView";
    fn from_json(value: Json<'_>, defaults: Defaults) -> Result<Self, ValidationError> {
        PageView::from_json(value, defaults)
    }
    fn event_id(&mut self) -> Uuid {
        *self.event_id.get_or_insert_with(Uuid::new_v4)
    }
    fn user_id(&self) -> &str {
        &self.user_id
    }
    fn timestamp_ms(&self) -> i64 {
        self.timestamp.timestamp_millis()
    }
}

/// Checks, validates and writes one event to `topic`; answers 201 with
/// where it went once Kafka acknowledged it.
async fn ingest_one<E: SingleEvent>(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
    topic: &str,
) -> Result<HttpResponse, ApiError> {
    auth::ingest(req, &state.settings.security.ingest_api_keys)?;
    let body = body(state, req, payload).await?;
    ingest_body::<E>(state, req, &body, topic).await
}

/// Validates and writes one event read from `body` (JSON text) to `topic`,
/// as [`ingest_one`] does once the request may ingest.
async fn ingest_body<E: SingleEvent>(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
    topic: &str,
) -> Result<HttpResponse, ApiError> {
    let value = parse(body)?;
    current_schema(E::KIND).validate(&value)?;
    let now = Utc::now();
    let mut event = E::from_json(value, Defaults { now })?;
    check_time(state, event.timestamp_ms(), now)?;
    limit(state, req, 1)?;
    let event_id = event.event_id();
    let mut encoded = Vec::with_capacity(body.len() + 64);
    encode_into(&mut encoded, &event)?;
    let stamp = Stamp {
        schema_version: E::KIND.current_version(),
        timestamp_ms: now.timestamp_millis(),
    };
    let correlation = correlation_id(req);
    check_record_size(
        state,
        String::new(),
        event.user_id(),
        &encoded,
        state.producer.header_bytes(&correlation, stamp),
    )?;
    let written = state
        .producer
        .send(topic, event.user_id(), &encoded, &correlation, stamp)
        .await?;
    state.ingested.fetch_add(1, Ordering::Relaxed);
    let mut body = json!(Accepted::new(event_id, topic, written));
    body["success"] = json!(true);
    body["message"] = json!(E::MESSAGE);
    // The event as it was written (the same serialization), eventId and
    // timestamp filled in.
    body[E::SEED_FIELD] = serde_json::to_value(&event)
        .map_err(|e| ApiError::Internal(format!("cannot encode the event: {e}")))?;
    Ok(HttpResponse::Created().json(body))
}

/// A page view read from `body` (JSON text), for a request that may ingest.
pub(super) async fn page_view_from(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    ingest_body::<PageView>(state, req, body, &state.page_topic).await
}

#[utoipa::path(post, path = "/events/user-event", tag = "ingest", request_body = super::openapi::UserEventIn,
    responses((status = 201, description = "Written to Kafka", body = super::openapi::Accepted), (status = 400, description = "Bad request (names the field)", body = super::openapi::ErrorBody), (status = 401, description = "A credential is needed", body = super::openapi::ErrorBody), (status = 403, description = "The credential is not valid here", body = super::openapi::ErrorBody), (status = 408, description = "The body did not arrive in time", body = super::openapi::ErrorBody), (status = 413, description = "Too large", body = super::openapi::ErrorBody), (status = 415, description = "Unsupported media type", body = super::openapi::ErrorBody), (status = 429, description = "Rate limited (Retry-After)", body = super::openapi::ErrorBody), (status = 503, description = "Not ready, or Kafka did not take the event (Retry-After)", body = super::openapi::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn user_event(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    ingest_one::<UserEvent>(&state, &req, payload, &state.user_topic).await
}

#[utoipa::path(post, path = "/events/page-view", tag = "ingest", request_body = super::openapi::PageViewIn,
    responses((status = 201, description = "Written to Kafka", body = super::openapi::Accepted), (status = 400, description = "Bad request (names the field)", body = super::openapi::ErrorBody), (status = 401, description = "A credential is needed", body = super::openapi::ErrorBody), (status = 403, description = "The credential is not valid here", body = super::openapi::ErrorBody), (status = 408, description = "The body did not arrive in time", body = super::openapi::ErrorBody), (status = 413, description = "Too large", body = super::openapi::ErrorBody), (status = 415, description = "Unsupported media type", body = super::openapi::ErrorBody), (status = 429, description = "Rate limited (Retry-After)", body = super::openapi::ErrorBody), (status = 503, description = "Not ready, or Kafka did not take the event (Retry-After)", body = super::openapi::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn page_view(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    ingest_one::<PageView>(&state, &req, payload, &state.page_topic).await
}

/// A JSON array of user events (or `{"events": [...]}`), validated whole
/// before the first is written.
#[utoipa::path(post, path = "/events/batch-events", tag = "ingest", request_body = Vec<super::openapi::UserEventIn>,
    responses((status = 201, description = "Every event written to Kafka", body = super::openapi::BatchAccepted), (status = 400, description = "Bad request (names the field)", body = super::openapi::ErrorBody), (status = 401, description = "A credential is needed", body = super::openapi::ErrorBody), (status = 403, description = "The credential is not valid here", body = super::openapi::ErrorBody), (status = 408, description = "The body did not arrive in time", body = super::openapi::ErrorBody), (status = 413, description = "Too large", body = super::openapi::ErrorBody), (status = 415, description = "Unsupported media type", body = super::openapi::ErrorBody), (status = 429, description = "Rate limited (Retry-After)", body = super::openapi::ErrorBody), (status = 503, description = "Not ready, or Kafka did not take the event (Retry-After)", body = super::openapi::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn batch_events(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    auth::ingest(&req, &state.settings.security.ingest_api_keys)?;
    let body = body(&state, &req, payload).await?;
    let items = match parse(&body)? {
        Json::Array(items) => items,
        Json::Object(mut obj) => match obj.remove("events") {
            Some(Json::Array(items)) => items,
            _ => {
                return Err(ApiError::BadRequest(
                    "body must be a JSON array of user events".into(),
                ))
            }
        },
        _ => {
            return Err(ApiError::BadRequest(
                "body must be a JSON array of user events".into(),
            ))
        }
    };
    if items.is_empty() {
        return Err(ApiError::BadRequest("batch holds no events".into()));
    }
    if items.len() > state.max_batch_size {
        return Err(ApiError::TooLarge(format!(
            "batch holds {} events; at most {} are accepted",
            items.len(),
            state.max_batch_size
        )));
    }
    let now = Utc::now();
    let defaults = Defaults { now };
    let schema = current_schema(Kind::UserEvent);
    // Sized for the batch at once (collecting `Result`s cannot know it).
    let mut events: Vec<UserEvent> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        schema.validate(&item).map_err(|e| e.in_item(i))?;
        let mut e = UserEvent::from_json(item, defaults).map_err(|e| e.in_item(i))?;
        check_time(&state, e.timestamp.timestamp_millis(), now).map_err(|e| e.in_item(i))?;
        e.event_id.get_or_insert_with(Uuid::new_v4);
        events.push(e);
    }
    limit(&state, &req, events.len())?;
    let stamp = Stamp {
        schema_version: Kind::UserEvent.current_version(),
        timestamp_ms: now.timestamp_millis(),
    };
    let correlation = correlation_id(&req);
    let headers = state.producer.header_bytes(&correlation, stamp);
    // Every record's value in one buffer, each a slice of it: one
    // allocation for the batch instead of one (and its regrowths) per event.
    // Each is checked against Kafka's record size limit before the first
    // is written: the batch is validated whole.
    let mut encoded = Vec::with_capacity(body.len() + events.len() * 64);
    let mut ends = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        let start = encoded.len();
        encode_into(&mut encoded, event)?;
        check_record_size(
            &state,
            format!("[{i}]"),
            &event.user_id,
            &encoded[start..],
            headers,
        )?;
        ends.push(encoded.len());
    }
    let payloads = ends.iter().scan(0, |start, &end| {
        let payload = &encoded[*start..end];
        *start = end;
        Some(payload)
    });
    let results = state
        .producer
        .send_all(
            &state.user_topic,
            events.iter().map(|e| e.user_id.as_str()).zip(payloads),
            &correlation,
            stamp,
        )
        .await;
    let mut accepted_events = Vec::with_capacity(results.len());
    let mut failures = Vec::new();
    for (event, result) in events.iter().zip(results) {
        let event_id = event.event_id.unwrap_or_default();
        match result {
            Ok(written) => {
                accepted_events.push(Accepted::new(event_id, &state.user_topic, written))
            }
            Err(error) => failures.push((event_id, error)),
        }
    }
    state
        .ingested
        .fetch_add(accepted_events.len() as u64, Ordering::Relaxed);
    if let Some((_, error)) = failures.pop() {
        // Some events may be written, some not: the batch is not accepted,
        // and a retry with the same eventIds is the way to finish it.
        tracing::warn!(failed = failures.len() + 1, %error, "batch partly unwritten");
        return Err(error.into());
    }
    // Written into a buffer sized for it (about 110 bytes an event) rather
    // than one that grows and copies as it fills.
    let mut answer = Vec::with_capacity(64 + accepted_events.len() * 128);
    serde_json::to_writer(
        &mut answer,
        &BatchAccepted {
            success: true,
            message: "Batch events tracked successfully",
            count: accepted_events.len(),
            events: accepted_events,
        },
    )
    .map_err(|e| ApiError::Internal(format!("cannot encode the answer: {e}")))?;
    Ok(HttpResponse::Created()
        .content_type(actix_web::http::header::ContentType::json())
        .body(answer))
}
