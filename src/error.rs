//! `ApiError`: the one place errors become HTTP answers, always shaped
//! `{"error": {"code": "...", "message": "..."}}`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use arus_actors::model::event::ValidationError;
use serde_json::json;

use crate::kafka::producer::ProduceError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("{0}")]
    Validation(#[from] ValidationError),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    TooLarge(String),
    /// One event's record is larger than Kafka takes; `field` names it.
    #[error("{message}")]
    EventTooLarge { field: String, message: String },
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body did not arrive in time (408; the connection is closed).
    #[error("{0}")]
    RequestTimeout(String),
    /// The route exists, not for this method (405, with `Allow`).
    #[error("{message}")]
    MethodNotAllowed {
        message: String,
        allow: &'static str,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    /// The request contradicts the current state (409): another member in
    /// the group, another reset under way.
    #[error("{0}")]
    Conflict(String),
    /// Something the answer needs is not there yet (503, retry shortly).
    #[error("{0}")]
    NotReady(String),
    #[error("event not written: {0}")]
    Unavailable(#[from] ProduceError),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::Validation(_) => "validation_failed",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::TooLarge(_) => "payload_too_large",
            ApiError::EventTooLarge { .. } => "event_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::NotFound(_) => "not_found",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Conflict(_) => "conflict",
            ApiError::NotReady(_) => "not_ready",
            ApiError::Unavailable(ProduceError::TooLarge) => "event_too_large",
            ApiError::Unavailable(_) => "kafka_unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) | ApiError::Validation(_) | ApiError::BadRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::TooLarge(_)
            | ApiError::EventTooLarge { .. }
            | ApiError::Unavailable(ProduceError::TooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if self.status_code() == StatusCode::SERVICE_UNAVAILABLE {
            // Kafka could not take the event, or the answer is not there yet:
            // a retry shortly may succeed.
            response.insert_header((header::RETRY_AFTER, "1"));
        }
        if let ApiError::RateLimited {
            retry_after_secs, ..
        } = self
        {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        if self.status_code() == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let ApiError::MethodNotAllowed { allow, .. } = self {
            response.insert_header((header::ALLOW, *allow));
        }
        if let ApiError::RequestTimeout(_) = self {
            // The rest of the body may still come: the connection is not
            // reusable.
            response.force_close();
        }
        let mut error = json!({ "code": self.code(), "message": self.to_string() });
        match self {
            ApiError::Validation(v) => error["field"] = json!(v.field),
            ApiError::EventTooLarge { field, .. } if !field.is_empty() => {
                error["field"] = json!(field)
            }
            _ => {}
        }
        response.json(json!({ "error": error }))
    }
}
