//! A consumer group's offsets on arus's input topics (admin):
//! `GET /v1/consumer-groups/{group}/offsets` reads them now;
//! `POST /v1/consumer-groups/{group}/reset` moves them (see
//! [`crate::kafka::consumer::reset`]).

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use arus_actors::model::source::SourcePartition;
use serde::Deserialize;
use serde_json::json;

use super::{auth, read_body, AppState};
use crate::error::ApiError;
use crate::kafka::client_config;
use crate::kafka::consumer::reset::{self, Planned, ResetRefused, ResetRequest, Target};
use crate::kafka::offsets::{Member, OffsetReader, PartitionOffsets};

/// Kafka's own limit on a group id's length.
const MAX_GROUP_ID: usize = 255;

fn group_of(path: web::Path<String>) -> Result<String, ApiError> {
    let group = path.into_inner();
    if group.trim().is_empty()
        || group.trim() != group
        || group.len() > MAX_GROUP_ID
        || group.chars().any(char::is_control)
    {
        return Err(ApiError::BadRequest(format!(
            "a group id has 1 to {MAX_GROUP_ID} characters, no control characters and no \
             space at either end (got {group:?})"
        )));
    }
    Ok(group)
}

/// Runs `work` with a reader of `group`'s offsets, off the HTTP worker
/// (reading Kafka blocks).
async fn with_reader<T: Send + 'static>(
    state: &AppState,
    group: &str,
    work: impl FnOnce(&OffsetReader) -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let (settings, brokers, name) = (
        state.settings.clone(),
        state.brokers.clone(),
        group.to_string(),
    );
    web::block(move || work(&OffsetReader::new(&settings, &brokers, &name)?))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(format!("group {group}'s offsets: {e:#}")))
}

#[utoipa::path(get, path = "/v1/consumer-groups/{group}/offsets", tag = "admin",
    params(("group" = String, Path)),
    responses((status = 200, description = "A group's offsets and members", body = super::openapi::AdminAnswer), (status = 400, description = "Bad request (names the field)", body = super::openapi::ErrorBody), (status = 401, description = "A credential is needed", body = super::openapi::ErrorBody), (status = 403, description = "The credential is not valid here", body = super::openapi::ErrorBody), (status = 404, description = "Not found", body = super::openapi::ErrorBody), (status = 409, description = "Conflicts with the current state", body = super::openapi::ErrorBody), (status = 503, description = "Not ready, or Kafka did not take the event (Retry-After)", body = super::openapi::ErrorBody)))]
#[tracing::instrument(skip_all, fields(group = %path))]
pub async fn group_offsets(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth::admin(&req, &state.settings.security.admin_token)?;
    let group = group_of(path)?;
    let (partitions, group_state, members) = with_reader(&state, &group, |reader| {
        let partitions = reader.read()?;
        let (group_state, members) = reader.members()?;
        Ok((partitions, group_state, members))
    })
    .await?;
    let total_lag: i64 = partitions.iter().map(|p| p.lag).sum();
    Ok(HttpResponse::Ok().json(json!({
        "group": group,
        "state": group_state,
        "members": members,
        "totalLag": total_lag,
        "partitions": partitions,
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResetBody {
    #[serde(flatten)]
    target: Target,
    /// Full topic names; both input topics when left out.
    topics: Option<Vec<String>>,
    #[serde(default)]
    rebuild: bool,
}

/// What the reset needs to know about the group, read in one go.
struct GroupNow {
    members: Vec<Member>,
    partitions: Vec<PartitionOffsets>,
    at_time: std::collections::HashMap<(String, i32), i64>,
    /// Retry records the group has not read (only asked for a rebuild).
    retries_unread: usize,
}

#[utoipa::path(post, path = "/v1/consumer-groups/{group}/reset", tag = "admin", request_body = super::openapi::AdminAnswer,
    params(("group" = String, Path)),
    responses((status = 200, description = "Offsets reset", body = super::openapi::AdminAnswer), (status = 400, description = "Bad request (names the field)", body = super::openapi::ErrorBody), (status = 401, description = "A credential is needed", body = super::openapi::ErrorBody), (status = 403, description = "The credential is not valid here", body = super::openapi::ErrorBody), (status = 404, description = "Not found", body = super::openapi::ErrorBody), (status = 409, description = "Conflicts with the current state", body = super::openapi::ErrorBody), (status = 503, description = "Not ready, or Kafka did not take the event (Retry-After)", body = super::openapi::ErrorBody)))]
#[tracing::instrument(skip_all, fields(group = %path))]
pub async fn reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    auth::admin(&req, &state.settings.security.admin_token)?;
    let group = group_of(path)?;
    let body = read_body(payload, 256 * 1024).await?;
    let request: ResetBody =
        serde_json::from_slice(&body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let own = group == state.group_id;
    let inputs = [state.user_topic.clone(), state.page_topic.clone()];
    let topics = request.topics.clone().unwrap_or_else(|| inputs.to_vec());
    if let Some(other) = topics.iter().find(|t| state.input_topic(t).is_none()) {
        return Err(ApiError::BadRequest(format!(
            "topic {other} cannot be reset: the input topics are {} (the retry topic's \
             offsets follow the retries)",
            inputs.join(" and ")
        )));
    }
    if request.rebuild && !own {
        return Err(ApiError::BadRequest(format!(
            "rebuild recomputes this service's state, which group {} holds; group {group} has none",
            state.group_id
        )));
    }
    if request.rebuild && topics.len() < inputs.len() {
        return Err(ApiError::BadRequest(
            "a rebuild recomputes the whole state: it resets both input topics".into(),
        ));
    }
    let (target, rebuild) = (request.target.clone(), request.rebuild);
    let retry_topic = {
        let k = &state.settings.kafka;
        k.topic_name(&k.topics.retry_events)
    };
    let now = with_reader(&state, &group, move |reader| {
        let (_, members) = reader.members()?;
        let partitions = reader.read()?;
        let at_time = match target {
            Target::Timestamp { timestamp } if timestamp >= 0 => {
                reader.offsets_at(&partitions, timestamp)?
            }
            _ => Default::default(),
        };
        let retries_unread = if rebuild {
            let retries: Vec<PartitionOffsets> = partitions
                .iter()
                .filter(|p| p.topic == retry_topic)
                .cloned()
                .collect();
            reader.unread(&retries)?
        } else {
            0
        };
        Ok(GroupNow {
            members,
            partitions,
            at_time,
            retries_unread,
        })
    })
    .await?;
    let planned = reset::plan(&request.target, &now.partitions, &topics, &now.at_time)
        .map_err(ApiError::BadRequest)?;
    let me = client_config::consumer_client_id(&state.settings);
    let others: Vec<&str> = now
        .members
        .iter()
        .filter(|m| !(own && m.is_client(&me)))
        .map(|m| {
            if m.client_id.is_empty() {
                m.member_id.as_str()
            } else {
                m.client_id.as_str()
            }
        })
        .collect();
    if !others.is_empty() {
        return Err(ApiError::Conflict(format!(
            "group {group} has {} active member(s) besides this instance ({}); stop them \
             (scale to one instance) before resetting its offsets",
            others.len(),
            others.join(", ")
        )));
    }
    if now.retries_unread > 0 {
        return Err(ApiError::Conflict(format!(
            "{} retry records are not processed yet; a rebuild waits until the retry topic \
             is drained",
            now.retries_unread
        )));
    }
    let entries_deleted = if own {
        reset_own(&state, &planned, rebuild).await?
    } else {
        let offsets: Vec<(String, i32, i64)> = planned
            .iter()
            .map(|p| (p.topic.clone(), p.partition, p.to))
            .collect();
        with_reader(&state, &group, move |reader| reader.commit(&offsets)).await?;
        0
    };
    Ok(HttpResponse::Ok().json(json!({
        "group": group,
        "rebuild": rebuild,
        "entriesDeleted": entries_deleted,
        "partitions": planned,
    })))
}

/// Resets this instance's own group through its consumer driver; returns
/// how many state entries a rebuild deleted.
async fn reset_own(
    state: &AppState,
    planned: &[Planned],
    rebuild: bool,
) -> Result<usize, ApiError> {
    let offsets = planned
        .iter()
        .map(|p| {
            let topic = state
                .input_topic(&p.topic)
                .ok_or_else(|| ApiError::Internal(format!("{} is not an input topic", p.topic)))?;
            Ok((SourcePartition::new(topic, p.partition), p.to))
        })
        .collect::<Result<_, ApiError>>()?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    state
        .consumption
        .request_reset(ResetRequest {
            offsets,
            rebuild,
            reply,
        })
        .map_err(|_| ApiError::Conflict("another offset reset is under way".into()))?;
    // The driver takes it at its next commit, reads the partitions' state
    // from the changelog and commits: bounded by the restore's own limit.
    let c = &state.settings;
    let limit = Duration::from_millis(
        c.consumer.restore_timeout_ms
            + c.consumer.commit_interval_ms
            + 2 * c.kafka.admin_timeout_ms,
    );
    match actix_web::rt::time::timeout(limit, answer).await {
        Err(_) => Err(ApiError::Internal(format!(
            "the reset did not finish within {limit:?}; read the group's offsets to see where it stands"
        ))),
        Ok(Err(_)) => Err(ApiError::Internal(
            "the consumer stopped before it could reset".into(),
        )),
        Ok(Ok(Err(ResetRefused::Busy(why)))) => Err(ApiError::Conflict(why)),
        Ok(Ok(Err(ResetRefused::Failed(why)))) => Err(ApiError::Internal(why)),
        Ok(Ok(Ok(done))) => Ok(done.entries_deleted),
    }
}
