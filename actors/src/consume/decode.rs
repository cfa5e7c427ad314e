//! Reading an input record into an event: its schema version, its schema,
//! its fields; and why a record could not be read (a dead letter).

use chrono::{DateTime, Utc};

use crate::consume::retry::RetryHeaderError;
use crate::model::error_class::ErrorClass;
use crate::model::event::{Defaults, Event, PageView, UserEvent, ValidationError};
use crate::model::schema;
use crate::model::source::{InputTopic, RawRecord, SCHEMA_VERSION_HEADER};

/// Why a record was not decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("record has no value")]
    Empty,
    #[error("unknown schema version {0:?}")]
    UnknownSchemaVersion(String),
    #[error("value is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("{0}")]
    Invalid(#[from] ValidationError),
    #[error("{0}")]
    RetryHeaders(#[from] RetryHeaderError),
    #[error("unknown metric {0:?} in a retry record")]
    UnknownMetric(String),
    #[error("{0}")]
    EventTime(#[from] crate::model::event_time::EventTimeError),
}

impl DecodeError {
    /// Every decode error is permanent: the record says what it says, and
    /// reading it again gives the same error. It is a dead letter.
    pub fn class(&self) -> ErrorClass {
        match self {
            DecodeError::Empty
            | DecodeError::UnknownSchemaVersion(_)
            | DecodeError::NotJson(_)
            | DecodeError::Invalid(_)
            | DecodeError::RetryHeaders(_)
            | DecodeError::UnknownMetric(_)
            | DecodeError::EventTime(_) => ErrorClass::Permanent,
        }
    }

    /// The dead letter's `x-error-class`: `future` and `too_old` for an
    /// event time out of bounds, the class's name for the rest.
    pub fn label(&self) -> &'static str {
        match self {
            DecodeError::EventTime(e) => e.label(),
            _ => self.class().label(),
        }
    }
}

/// Decodes a record of input topic `topic` in the seed's shapes. A missing
/// `timestamp` is the record's own timestamp, so replays decode to the same
/// event.
pub fn decode(topic: InputTopic, record: &RawRecord) -> Result<Event, DecodeError> {
    let kind = match topic {
        InputTopic::UserEvents => schema::Kind::UserEvent,
        InputTopic::PageViews => schema::Kind::PageView,
        // Never an event kind of its own: a retry record's kind is its
        // origin's input topic.
        InputTopic::RetryEvents => {
            return Err(DecodeError::RetryHeaders(RetryHeaderError::Missing(
                crate::consume::retry::headers::INPUT,
            )))
        }
    };
    let version = record
        .header(SCHEMA_VERSION_HEADER)
        .map(String::from_utf8_lossy)
        .unwrap_or(schema::DEFAULT_VERSION.into());
    let schema = schema::built_in()
        .get(kind, &version)
        .ok_or_else(|| DecodeError::UnknownSchemaVersion(version.into_owned()))?;
    let payload = record.payload.as_deref().ok_or(DecodeError::Empty)?;
    let mut value = crate::model::json::Json::parse(payload)?;
    schema.validate(&value)?;
    // Validated with it, but not kept: no metric reads a user event's
    // metadata, and a dead letter or retry carries the record as it was.
    if let crate::model::json::Json::Object(obj) = &mut value {
        obj.remove("metadata");
    }
    let now = record
        .timestamp_ms
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .unwrap_or_else(Utc::now);
    let defaults = Defaults { now };
    Ok(match kind {
        schema::Kind::UserEvent => Event::User(UserEvent::from_json(value, defaults)?),
        schema::Kind::PageView => Event::Page(PageView::from_json(value, defaults)?),
    })
}
