//! Reading request bodies: bounded in size and in time.

use actix_web::web::{self, Bytes};
use futures::StreamExt;

use crate::error::ApiError;

/// Reads a request body of at most `limit` bytes; a larger one is a 413
/// without reading the rest.
pub async fn read_body(payload: web::Payload, limit: usize) -> Result<Bytes, ApiError> {
    read_body_sized(payload, limit, 0, ADMIN_BODY_TIMEOUT).await
}

/// How long an admin request's (small) body may take to arrive.
const ADMIN_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// [`read_body`] into a buffer of `capacity` bytes from the start (a
/// body's declared length, see [`declared_length`]), rather than one that
/// grows and copies as chunks arrive. A body that has not arrived whole
/// within `timeout` is a 408 (and its connection is closed): a client that
/// declares a length and goes silent holds nothing for long.
pub async fn read_body_sized(
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
pub fn declared_length(req: &actix_web::HttpRequest, limit: usize) -> usize {
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
