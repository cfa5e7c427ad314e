//! Ingest: `POST /events/user-event`, `/events/page-view`, `/events/batch-events`.
//!
//! Input is validated whole before anything is written, and the answer waits
//! for Kafka's acknowledgement: a 201 means every event in it is in Kafka.

use std::sync::atomic::Ordering;

use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use arus_actors::event::{Defaults, PageView, UserEvent, ValidationError};
use arus_actors::json::Json;
use arus_actors::schema::{self, Kind, Schema};
use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::{auth, declared_length, read_body_sized, AppState};
use crate::error::ApiError;
use crate::kafka::producer::Written;

fn correlation_id(req: &HttpRequest) -> String {
    req.headers()
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map_or_else(|| Uuid::new_v4().to_string(), str::to_string)
}

async fn body(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Bytes, ApiError> {
    let limit = state.max_body_bytes;
    read_body_sized(payload, limit, declared_length(req, limit)).await
}

/// The body as a JSON document borrowing its strings from it (no copy of
/// each string and field name, as a `serde_json::Value` would make), with
/// each event's metadata object keeping its own text, which its record
/// carries as it was sent.
fn parse(body: &[u8]) -> Result<Json<'_>, ApiError> {
    Json::parse_keeping_text(body, "metadata").map_err(|e| ApiError::MalformedJson(e.to_string()))
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
    count: usize,
    events: Vec<Accepted<'a>>,
}

/// The rate limit, once a request is known good: `cost` events.
fn limit(state: &AppState, req: &HttpRequest, cost: usize) -> Result<(), ApiError> {
    match &state.rate_limiter {
        Some(limiter) => limiter.check(&auth::client(req, &state.settings.security), cost),
        None => Ok(()),
    }
}

/// The schema events are checked against at ingest: the version their
/// records will carry.
fn current_schema(kind: Kind) -> &'static Schema {
    // Every kind has a schema at the current version; the schema module's
    // tests check it.
    schema::built_in()
        .get(kind, schema::CURRENT_VERSION)
        .unwrap_or_else(|| panic!("no {} schema at the current version", kind.as_str()))
}

/// What the two single-event routes take: a user event or a page view.
trait SingleEvent: Serialize + Sized {
    /// Its schema.
    const KIND: Kind;
    fn from_json(value: Json<'_>, defaults: Defaults) -> Result<Self, ValidationError>;
    /// Its eventId, generated now when the client sent none.
    fn event_id(&mut self) -> Uuid;
    /// The record key: the user.
    fn user_id(&self) -> &str;
}

impl SingleEvent for UserEvent {
    const KIND: Kind = Kind::UserEvent;
    fn from_json(value: Json<'_>, defaults: Defaults) -> Result<Self, ValidationError> {
        UserEvent::from_json(value, defaults)
    }
    fn event_id(&mut self) -> Uuid {
        *self.event_id.get_or_insert_with(Uuid::new_v4)
    }
    fn user_id(&self) -> &str {
        &self.user_id
    }
}

impl SingleEvent for PageView {
    const KIND: Kind = Kind::PageView;
    fn from_json(value: Json<'_>, defaults: Defaults) -> Result<Self, ValidationError> {
        PageView::from_json(value, defaults)
    }
    fn event_id(&mut self) -> Uuid {
        *self.event_id.get_or_insert_with(Uuid::new_v4)
    }
    fn user_id(&self) -> &str {
        &self.user_id
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
    let value = parse(&body)?;
    current_schema(E::KIND).validate(&value)?;
    let mut event = E::from_json(value, Defaults { now: Utc::now() })?;
    limit(state, req, 1)?;
    let event_id = event.event_id();
    let mut encoded = Vec::with_capacity(body.len() + 64);
    encode_into(&mut encoded, &event)?;
    let written = state
        .producer
        .send(topic, event.user_id(), &encoded, &correlation_id(req))
        .await?;
    state.ingested.fetch_add(1, Ordering::Relaxed);
    let mut body = json!(Accepted::new(event_id, topic, written));
    body["success"] = json!(true);
    Ok(HttpResponse::Created().json(body))
}

#[tracing::instrument(skip_all)]
pub async fn user_event(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    ingest_one::<UserEvent>(&state, &req, payload, &state.user_topic).await
}

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
    let defaults = Defaults { now: Utc::now() };
    let schema = current_schema(Kind::UserEvent);
    // Sized for the batch at once (collecting `Result`s cannot know it).
    let mut events: Vec<UserEvent> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        schema.validate(&item).map_err(|e| e.in_item(i))?;
        let mut e = UserEvent::from_json(item, defaults).map_err(|e| e.in_item(i))?;
        e.event_id.get_or_insert_with(Uuid::new_v4);
        events.push(e);
    }
    limit(&state, &req, events.len())?;
    // Every record's value in one buffer, each a slice of it: one
    // allocation for the batch instead of one (and its regrowths) per event.
    let mut encoded = Vec::with_capacity(body.len() + events.len() * 64);
    let mut ends = Vec::with_capacity(events.len());
    for event in &events {
        encode_into(&mut encoded, event)?;
        ends.push(encoded.len());
    }
    let payloads = ends.iter().scan(0, |start, &end| {
        let payload = &encoded[*start..end];
        *start = end;
        Some(payload)
    });
    let correlation = correlation_id(&req);
    let results = state
        .producer
        .send_all(
            &state.user_topic,
            events.iter().map(|e| e.user_id.as_str()).zip(payloads),
            &correlation,
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
            count: accepted_events.len(),
            events: accepted_events,
        },
    )
    .map_err(|e| ApiError::Internal(format!("cannot encode the answer: {e}")))?;
    Ok(HttpResponse::Created()
        .content_type(actix_web::http::header::ContentType::json())
        .body(answer))
}
