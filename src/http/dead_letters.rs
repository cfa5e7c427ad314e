//! `GET /v1/dead-letters?limit=N`: the newest dead letters.
//! `POST /v1/dead-letters/replay`: re-publishes chosen ones.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{auth, read_body, AppState};
use crate::error::ApiError;
use crate::kafka::dead_letter_reader;
use arus_actors::model::event::ValidationError;
use arus_actors::MetricKind;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/dead-letters", tag = "admin", operation_id = "list_dead_letters",
    params(("limit" = Option<u64>, Query)),
    responses((status = 200, description = "The newest dead letters", body = super::openapi::AdminAnswer), (status = 400, description = "Bad request (names the field)", body = super::openapi::ErrorBody), (status = 401, description = "A credential is needed", body = super::openapi::ErrorBody), (status = 403, description = "The credential is not valid here", body = super::openapi::ErrorBody), (status = 404, description = "Not found", body = super::openapi::ErrorBody), (status = 409, description = "Conflicts with the current state", body = super::openapi::ErrorBody), (status = 503, description = "Not ready, or Kafka did not take the event (Retry-After)", body = super::openapi::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    auth::admin(&req, &state.settings.security.admin_token)?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest(
            "limit must be between 1 and 1000".into(),
        ));
    }
    let settings = state.settings.clone();
    let brokers = state.brokers.clone();
    // Reading Kafka blocks: off the HTTP worker.
    let letters = web::block(move || dead_letter_reader::recent(&settings, &brokers, limit))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(format!("reading the dead-letter topic: {e:#}")))?;
    Ok(HttpResponse::Ok().json(json!({
        "deadLetters": letters,
        "count": letters.len(),
        "total": state.read_model.dead_letters(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    letters: Vec<LetterRef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LetterRef {
    partition: i32,
    offset: i64,
}

/// Most dead letters one replay request may name.
const MAX_REPLAY: usize = 100;

/// Re-publishes the named dead letters (partition and offset in the
/// dead-letter topic). A letter whose retries ran out goes back through the
/// retry topic for the one metric it lacks, with its attempts counted
/// afresh, due now: applied
/// once, however often it is replayed (within the dedupe window). Any other
/// goes to its source topic with its key, value and headers as they were,
/// plus `x-replayed-from`; there it is consumed like a new record (it is
/// counted once per replay unless its value carries an `eventId`).
#[utoipa::path(post, path = "/v1/dead-letters/replay", tag = "admin", request_body = super::openapi::AdminAnswer,
    responses((status = 200, description = "Replayed", body = super::openapi::AdminAnswer), (status = 400, description = "Bad request (names the field)", body = super::openapi::ErrorBody), (status = 401, description = "A credential is needed", body = super::openapi::ErrorBody), (status = 403, description = "The credential is not valid here", body = super::openapi::ErrorBody), (status = 404, description = "Not found", body = super::openapi::ErrorBody), (status = 409, description = "Conflicts with the current state", body = super::openapi::ErrorBody), (status = 503, description = "Not ready, or Kafka did not take the event (Retry-After)", body = super::openapi::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn replay(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    auth::admin(&req, &state.settings.security.admin_token)?;
    let body = read_body(payload, 64 * 1024).await?;
    let request: ReplayRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    if request.letters.is_empty() || request.letters.len() > MAX_REPLAY {
        return Err(ValidationError::new(
            "letters",
            format!(
                "must name 1 to {MAX_REPLAY} dead letters (got {})",
                request.letters.len()
            ),
        )
        .into());
    }
    let wanted: Vec<(i32, i64)> = request
        .letters
        .iter()
        .map(|l| (l.partition, l.offset))
        .collect();
    let (settings, brokers) = (state.settings.clone(), state.brokers.clone());
    let lookup = wanted.clone();
    let found = web::block(move || {
        let partitions = dead_letter_reader::partitions(&settings, &brokers)?;
        if let Some((p, _)) = lookup.iter().find(|(p, _)| !partitions.contains(p)) {
            return Ok(Err(format!(
                "partition {p} is not a partition of the dead-letter topic (it has {})",
                partitions.len()
            )));
        }
        dead_letter_reader::fetch(&settings, &brokers, &lookup).map(Ok)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(format!("reading the dead-letter topic: {e:#}")))?
    .map_err(|message| ValidationError::new("letters", message))?;
    let k = &state.settings.kafka;
    let error_topic = k.topic_name(&k.topics.error_events);
    let retry_topic = k.topic_name(&k.topics.retry_events);
    let mut replayed = Vec::new();
    let mut failed = Vec::new();
    for ((partition, offset), letter) in wanted.into_iter().zip(found) {
        let outcome = match letter {
            None => Err(format!(
                "no dead letter at partition {partition} offset {offset}"
            )),
            Some(letter) => replay_one(&state, &letter, &error_topic, &retry_topic).await,
        };
        match outcome {
            Ok(to) => replayed.push(json!({"partition": partition, "offset": offset, "to": to})),
            Err(error) => {
                failed.push(json!({"partition": partition, "offset": offset, "error": error}))
            }
        }
    }
    tracing::info!(
        replayed = replayed.len(),
        failed = failed.len(),
        "dead letters replayed"
    );
    Ok(HttpResponse::Ok().json(json!({
        "replayed": replayed,
        "failed": failed,
    })))
}

async fn replay_one(
    state: &AppState,
    letter: &dead_letter_reader::StoredLetter,
    error_topic: &str,
    retry_topic: &str,
) -> Result<serde_json::Value, String> {
    use arus_actors::consume::dead_letter::headers as h;
    use arus_actors::consume::retry::{self, Origin, RetryRecord};
    use arus_actors::model::source::SourcePartition;

    let source_topic = letter
        .header(h::SOURCE_TOPIC)
        .ok_or("the dead letter has no x-source-topic header")?;
    let role = state.input_topic(&source_topic).ok_or_else(|| {
        format!("source topic {source_topic:?} is not an input topic of this deployment")
    })?;
    let client_headers: Vec<(String, Option<Vec<u8>>)> = letter
        .record
        .headers
        .iter()
        .filter(|(k, _)| !retry::is_own_header(k) && k != "x-replayed-from")
        .cloned()
        .collect();
    let written = match letter.header(retry::headers::METRIC) {
        Some(metric) => {
            let metric =
                MetricKind::parse(&metric).ok_or_else(|| format!("unknown metric {metric:?}"))?;
            let number = |name: &str| {
                letter
                    .header(name)
                    .and_then(|v| v.parse::<i64>().ok())
                    .ok_or_else(|| format!("the dead letter has no valid {name} header"))
            };
            let origin = Origin {
                source: SourcePartition::new(role, number(h::SOURCE_PARTITION)? as i32),
                offset: number(h::SOURCE_OFFSET)?,
                timestamp_ms: number(h::SOURCE_TIMESTAMP).ok(),
            };
            let record = RetryRecord {
                origin,
                key: letter.record.key.clone(),
                payload: letter.record.payload.clone(),
                headers: client_headers,
                metric,
                // A replay starts the count afresh: max_attempts more tries.
                attempt: 1,
                not_before_ms: chrono::Utc::now().timestamp_millis(),
                message: format!(
                    "replayed from {error_topic}/{}/{}",
                    letter.partition, letter.record.offset
                ),
            };
            let written = state
                .producer
                .send_raw(
                    retry_topic,
                    Some(origin.source.partition),
                    record.key.as_deref(),
                    record.payload.as_deref(),
                    &record.all_headers(&source_topic),
                )
                .await
                .map_err(|e| e.to_string())?;
            json!({"topic": retry_topic, "metric": metric.as_str(), "partition": written.partition, "offset": written.offset})
        }
        None => {
            let mut headers = client_headers;
            headers.push((
                "x-replayed-from".into(),
                Some(
                    format!(
                        "{error_topic}/{}/{}",
                        letter.partition, letter.record.offset
                    )
                    .into_bytes(),
                ),
            ));
            let written = state
                .producer
                .send_raw(
                    &source_topic,
                    None,
                    letter.record.key.as_deref(),
                    letter.record.payload.as_deref(),
                    &headers,
                )
                .await
                .map_err(|e| e.to_string())?;
            json!({"topic": source_topic, "partition": written.partition, "offset": written.offset})
        }
    };
    Ok(written)
}
