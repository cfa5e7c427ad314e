//! Per-user queries are answered by the owner of the user's partition.
//!
//! Any instance computes the user's partition (the producer's partitioner)
//! and looks up its owner in the ownership records the owners write to the
//! changelog (see `arus_actors::state::owner`). The owner answers; any
//! other instance forwards the request there (once: a forwarded request is
//! never forwarded again) and relays the answer, which names the instance
//! that answered (`answeredBy`). An owner still restoring, one not known
//! yet, or one that does not answer in `http.forward_timeout_ms` is a 503
//! with `Retry-After`.

use std::time::Duration;

use actix_web::{http::header, HttpRequest, HttpResponse};
use arus_actors::model::source::InputTopic;
use arus_actors::state::owner::Owner;

use super::AppState;
use crate::error::ApiError;
use crate::kafka::partitioner::partition_of;

/// Marks a forwarded request, naming the instance that forwarded it.
pub const FORWARDED_BY: &str = "x-arus-forwarded-by";

/// Where a per-user query is answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// Here: this instance owns the user's partition, or the partition
    /// cannot be computed (a partitioner arus does not compute; every
    /// instance's read model holds every user).
    Here,
    /// At the owner, another instance.
    Owner(Owner),
}

/// The user's partition number, as the producer puts the user's records
/// (`None`: a partitioner arus does not compute).
pub fn partition(state: &AppState, user_id: &str) -> Option<i32> {
    partition_of(
        user_id,
        state.user_partitions,
        &state.settings.kafka.partitioner,
    )
}

/// Where the query of `user_id`, of `partition` (see [`partition`]), is
/// answered, or why it cannot be now.
pub fn route(
    state: &AppState,
    user_id: &str,
    partition: Option<i32>,
    forwarded: bool,
) -> Result<Route, ApiError> {
    let Some(partition) = partition else {
        return Ok(Route::Here);
    };
    if state.assignment.ready(InputTopic::UserEvents, partition) {
        return Ok(Route::Here);
    }
    if state.assignment.holds(InputTopic::UserEvents, partition) {
        return Err(ApiError::NotReady(format!(
            "partition {partition}, where user {user_id:?} is kept, is restoring on this instance; try again shortly"
        )));
    }
    if forwarded {
        return Err(ApiError::NotReady(format!(
            "this instance no longer holds partition {partition} (it moved); try again shortly"
        )));
    }
    match state.read_model.owner(partition) {
        Some(owner) if owner.instance != state.instance_id => Ok(Route::Owner(owner)),
        Some(_) => Err(ApiError::NotReady(format!(
            "partition {partition} moved from this instance and its new owner has not announced itself yet; try again shortly"
        ))),
        None => Err(ApiError::NotReady(format!(
            "no owner of partition {partition} is known yet; try again shortly"
        ))),
    }
}

/// Forwards `req` to `owner` and relays its answer.
pub async fn forward(
    state: &AppState,
    req: &HttpRequest,
    owner: &Owner,
) -> Result<HttpResponse, ApiError> {
    let timeout = Duration::from_millis(state.settings.http.forward_timeout_ms);
    let path = req
        .uri()
        .path_and_query()
        .map_or(req.path(), |p| p.as_str());
    let client = awc::Client::builder().timeout(timeout).finish();
    let mut request = client
        .get(format!("{}{path}", owner.url))
        .insert_header((FORWARDED_BY, state.instance_id.as_str()));
    // The caller's read key, if any: the owner checks it as this one did.
    for name in [header::AUTHORIZATION.as_str(), "x-api-key"] {
        if let Some(value) = req.headers().get(name) {
            request = request.insert_header((name, value.clone()));
        }
    }
    let unavailable = |why: String| {
        ApiError::NotReady(format!(
            "the owner of this user's partition ({} at {}) {why}; try again shortly",
            owner.instance, owner.url
        ))
    };
    let mut answer = request
        .send()
        .await
        .map_err(|e| unavailable(format!("did not answer: {e}")))?;
    let body = answer
        .body()
        .limit(1 << 20)
        .await
        .map_err(|e| unavailable(format!("sent no whole answer: {e}")))?;
    let mut relayed = HttpResponse::build(answer.status());
    for name in [header::CONTENT_TYPE, header::RETRY_AFTER] {
        if let Some(value) = answer.headers().get(&name) {
            relayed.insert_header((name, value.clone()));
        }
    }
    Ok(relayed.body(body))
}
