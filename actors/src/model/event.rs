//! The events arus counts, in the seed's JSON shapes, and their validation.
//!
//! The same checks run at ingest (a 400 naming the field) and at consume (a
//! record another producer wrote in a bad shape is skipped, never counted), so
//! records any Kafka producer writes in these shapes count exactly like arus's own.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::model::json::{Json, Object};

/// What a user did. The seed's four kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Login,
    Logout,
    Purchase,
    View,
}

impl EventType {
    pub const ALL: [EventType; 4] = [
        EventType::Login,
        EventType::Logout,
        EventType::Purchase,
        EventType::View,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Login => "login",
            EventType::Logout => "logout",
            EventType::Purchase => "purchase",
            EventType::View => "view",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// A user event as written to `user-events`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserEvent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Uuid>,
    pub user_id: String,
    pub event_type: EventType,
    #[serde(serialize_with = "iso8601")]
    pub timestamp: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

/// A user event's metadata: the client's JSON object, kept as compact JSON
/// text and written out as it is (arus never looks inside it).
#[derive(Debug, Clone)]
pub struct Metadata(Box<RawValue>);

impl Metadata {
    /// The object's own text, compacted, when it was kept at parsing (see
    /// `Json::parse_keeping_text`): numbers as the client wrote them (an
    /// integer beyond 64 bits stays exact) and no serializing. Otherwise the
    /// object written out.
    fn of(obj: &Object<'_>) -> Result<Self, ValidationError> {
        let kept = match obj.text() {
            // Checked by the parser already: only a copy.
            Some(text) if !text.get().bytes().any(is_space) => Ok(text.to_owned()),
            Some(text) => RawValue::from_string(compact(text.get())),
            None => serde_json::value::to_raw_value(obj),
        };
        kept.map(Metadata)
            .map_err(|e| ValidationError::new("metadata", format!("cannot be kept: {e}")))
    }

    /// The object, as JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }
}

/// JSON's whitespace.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// `text`, JSON, without the whitespace between its tokens (a string's own
/// spaces stay).
fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if c.is_ascii() && is_space(c as u8) {
            continue;
        }
        out.push(c);
    }
    out
}

impl PartialEq for Metadata {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Serialize for Metadata {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// A page view as written to `page-views`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PageView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Uuid>,
    pub user_id: String,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    #[serde(serialize_with = "iso8601")]
    pub timestamp: DateTime<Utc>,
    /// Time on the page, as the client reports it (the seed leaves the unit
    /// to the client; arus only sums and averages it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
}

/// Either kind of event.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    User(UserEvent),
    Page(PageView),
}

impl Event {
    pub fn user_id(&self) -> &str {
        match self {
            Event::User(e) => &e.user_id,
            Event::Page(p) => &p.user_id,
        }
    }

    pub fn event_id(&self) -> Option<Uuid> {
        match self {
            Event::User(e) => e.event_id,
            Event::Page(p) => p.event_id,
        }
    }

    /// What identifies the event beside its eventId, for telling a client's
    /// retry (the same eventId with the same content: counted once) from
    /// another event under a reused eventId (counted too): the user and
    /// what happened (event type; page, referrer and duration of a view).
    /// Not the timestamp, which ingest fills in at each try when the
    /// client sent none; not a user event's metadata, which no metric
    /// reads. FNV-1a over the fields, stable across builds (seen-set
    /// entries are changelog state).
    pub fn content_hash(&self) -> u64 {
        let mut hash = Fnv::default();
        match self {
            Event::User(e) => {
                hash.field(b"u");
                hash.field(e.user_id.as_bytes());
                hash.field(e.event_type.as_str().as_bytes());
            }
            Event::Page(p) => {
                hash.field(b"p");
                hash.field(p.user_id.as_bytes());
                hash.field(p.url.as_bytes());
                hash.field(p.referrer.as_deref().unwrap_or_default().as_bytes());
                hash.field(&p.duration.map_or(u64::MAX, f64::to_bits).to_le_bytes());
            }
        }
        hash.0
    }

    pub fn timestamp_ms(&self) -> i64 {
        match self {
            Event::User(e) => e.timestamp.timestamp_millis(),
            Event::Page(p) => p.timestamp.timestamp_millis(),
        }
    }
}

/// FNV-1a, each field followed by its length (so `ab`+`c` and `a`+`bc`
/// differ).
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn field(&mut self, bytes: &[u8]) {
        for byte in bytes.iter().chain(&(bytes.len() as u64).to_le_bytes()) {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn iso8601<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// A field that failed validation, with the path to it (`[3].eventType` in a batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error, for an item inside a batch.
    pub fn in_item(self, index: usize) -> Self {
        let field = if self.field.is_empty() {
            format!("[{index}]")
        } else {
            format!("[{index}].{}", self.field)
        };
        Self { field, ..self }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for ValidationError {}

/// How a missing `timestamp` is filled: the time of ingest, or the Kafka
/// record's timestamp when consuming another producer's record.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub now: DateTime<Utc>,
}

/// The event's fields, taken out of a document its schema has accepted.
///
/// The rules an event is held to live in one place, the schema files
/// (`config/schemas/`), checked before these run, at ingest and at consume
/// alike. What follows only converts a valid document into its type; a
/// document that reached it unchecked and does not convert is still an
/// error naming the field, never a panic.
fn object(value: Json<'_>) -> Result<Object<'_>, ValidationError> {
    match value {
        Json::Object(obj) => Ok(obj),
        _ => Err(unchecked("")),
    }
}

/// What a document that skipped its schema gets when it does not convert.
fn unchecked(field: &str) -> ValidationError {
    ValidationError::new(field, "does not fit the event's schema")
}

fn string(obj: &mut Object<'_>, field: &str) -> Result<String, ValidationError> {
    match obj.get_mut(field) {
        Some(Json::String(s)) => Ok(std::mem::take(s).into_owned()),
        _ => Err(unchecked(field)),
    }
}

fn optional_string(obj: &mut Object<'_>, field: &str) -> Result<Option<String>, ValidationError> {
    match obj.get_mut(field) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(std::mem::take(s).into_owned())),
        Some(_) => Err(unchecked(field)),
    }
}

fn optional_timestamp(
    obj: &Object<'_>,
    defaults: Defaults,
) -> Result<DateTime<Utc>, ValidationError> {
    match obj.get("timestamp") {
        None | Some(Json::Null) => Ok(defaults.now),
        Some(Json::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| unchecked("timestamp")),
        Some(_) => Err(unchecked("timestamp")),
    }
}

fn optional_event_id(obj: &Object<'_>) -> Result<Option<Uuid>, ValidationError> {
    match obj.get("eventId") {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Uuid::parse_str(s)
            .map(Some)
            .map_err(|_| unchecked("eventId")),
        Some(_) => Err(unchecked("eventId")),
    }
}

impl UserEvent {
    /// A user event from a document its schema accepted.
    pub fn from_json(value: Json<'_>, defaults: Defaults) -> Result<Self, ValidationError> {
        let mut obj = object(value)?;
        let obj = &mut obj;
        let user_id = string(obj, "userId")?;
        let event_type = match obj.get("eventType") {
            Some(Json::String(s)) => EventType::parse(s).ok_or_else(|| unchecked("eventType"))?,
            _ => return Err(unchecked("eventType")),
        };
        let metadata = match obj.get("metadata") {
            None | Some(Json::Null) => None,
            Some(Json::Object(m)) => Some(Metadata::of(m)?),
            Some(_) => return Err(unchecked("metadata")),
        };
        Ok(Self {
            event_id: optional_event_id(obj)?,
            user_id,
            event_type,
            timestamp: optional_timestamp(obj, defaults)?,
            metadata,
        })
    }
}

impl PageView {
    /// A page view from a document its schema accepted.
    pub fn from_json(value: Json<'_>, defaults: Defaults) -> Result<Self, ValidationError> {
        let mut obj = object(value)?;
        let obj = &mut obj;
        let user_id = string(obj, "userId")?;
        let url = string(obj, "url")?;
        let referrer = optional_string(obj, "referrer")?;
        let duration = match obj.get("duration") {
            None | Some(Json::Null) => None,
            Some(Json::Number(n)) => Some(n.as_f64().ok_or_else(|| unchecked("duration"))?),
            Some(_) => return Err(unchecked("duration")),
        };
        Ok(Self {
            event_id: optional_event_id(obj)?,
            user_id,
            url,
            referrer,
            timestamp: optional_timestamp(obj, defaults)?,
            duration,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::schema::{built_in, Kind};
    use serde_json::json;

    fn defaults() -> Defaults {
        Defaults {
            now: DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z")
                .expect("valid")
                .with_timezone(&Utc),
        }
    }

    #[test]
    fn user_event_round_trips_in_the_seed_shape() {
        let input = json!({
            "userId": "user-1", "eventType": "purchase",
            "timestamp": "2024-05-01T09:30:00.250Z", "metadata": {"amount": 42}
        });
        let e = UserEvent::from_json(Json::of(&input), defaults()).expect("valid");
        assert_eq!(e.event_type, EventType::Purchase);
        assert_eq!(e.timestamp.timestamp_millis(), 1_714_555_800_250);
        let written = serde_json::to_value(&e).expect("serializes");
        assert_eq!(written, input);
        let again = UserEvent::from_json(Json::of(&written), defaults()).expect("valid");
        assert_eq!(again, e);
    }

    #[test]
    fn metadata_kept_at_parsing_is_written_as_the_client_sent_it_compacted() {
        let body = br#"[{"userId":"u","eventType":"view","metadata":{ "big" : 123456789012345678901234567890,
            "price": 2.50, "note": "two  spaces, a \"quote\" and \u00e9", "list": [1, {"x" : null}] }}]"#;
        let Json::Array(mut items) = Json::parse_keeping_text(body, "metadata").expect("parses")
        else {
            panic!("an array")
        };
        let e = UserEvent::from_json(items.remove(0), defaults()).expect("valid");
        assert_eq!(
            e.metadata.as_ref().map(Metadata::get),
            Some(
                r#"{"big":123456789012345678901234567890,"price":2.50,"note":"two  spaces, a \"quote\" and \u00e9","list":[1,{"x":null}]}"#
            )
        );
        // Already compact: copied as it is.
        let compact_body = br#"{"userId":"u","eventType":"view","metadata":{"n":1.50,"s":"a b"}}"#;
        let item = Json::parse_keeping_text(compact_body, "metadata").expect("parses");
        let e = UserEvent::from_json(item, defaults()).expect("valid");
        assert_eq!(
            e.metadata.as_ref().map(Metadata::get),
            Some(r#"{"n":1.50,"s":"a b"}"#)
        );
        // Parsed without keeping the text, the object is written out: the
        // same JSON, but the number past 64 bits is a float now.
        let Json::Array(mut items) = Json::parse(body).expect("parses") else {
            panic!("an array")
        };
        let e = UserEvent::from_json(items.remove(0), defaults()).expect("valid");
        let written = e.metadata.as_ref().map(Metadata::get).expect("metadata");
        assert!(
            written.starts_with(r#"{"big":1.2345678901234568e+29,"price":2.5,"#),
            "{written}"
        );
    }

    #[test]
    fn missing_timestamp_takes_the_default() {
        let e = UserEvent::from_json(
            Json::of(&json!({"userId": "u", "eventType": "login"})),
            defaults(),
        )
        .expect("valid");
        assert_eq!(e.timestamp, defaults().now);
        assert_eq!(e.event_id, None);
    }

    /// What ingest and consume do with a document: its schema, then its type.
    fn read(kind: Kind, value: serde_json::Value) -> Result<(), String> {
        let schema = built_in()
            .get(kind, kind.current_version())
            .expect("a current schema");
        let doc = Json::of(&value);
        schema.validate(&doc).map_err(|e| e.to_string())?;
        match kind {
            Kind::UserEvent => UserEvent::from_json(doc, defaults()).map(|_| ()),
            Kind::PageView => PageView::from_json(doc, defaults()).map(|_| ()),
        }
        .map_err(|e| e.to_string())
    }

    #[test]
    fn user_event_errors_name_the_field() {
        let cases = [
            (json!([]), "must be a JSON object"),
            (json!({"eventType": "login"}), "userId: is required"),
            (
                json!({"userId": "", "eventType": "login"}),
                "userId: must not be empty",
            ),
            (
                json!({"userId": " \u{3000}", "eventType": "login"}),
                "userId: must match the pattern",
            ),
            (
                json!({"userId": 7, "eventType": "login"}),
                "userId: must be a string",
            ),
            (json!({"userId": "u"}), "eventType: is required"),
            (
                json!({"userId": "u", "eventType": "click"}),
                "eventType: must be one of login, logout, purchase, view (got \"click\")",
            ),
            (
                json!({"userId": "u", "eventType": "view", "timestamp": "yesterday"}),
                "timestamp: must be",
            ),
            (
                json!({"userId": "u", "eventType": "view", "metadata": 3}),
                "metadata: must be",
            ),
            (
                json!({"userId": "u", "eventType": "view", "eventId": "nope"}),
                "eventId: must be",
            ),
        ];
        for (input, expected) in cases {
            let err = read(Kind::UserEvent, input.clone()).expect_err("invalid");
            assert!(err.starts_with(expected), "for {input}: {err}");
        }
        read(
            Kind::UserEvent,
            json!({"userId": " u ", "eventType": "login"}),
        )
        .expect("valid");
    }

    #[test]
    fn page_view_errors_name_the_field() {
        let ok = PageView::from_json(
            Json::of(&json!({"userId": "u", "url": "/home", "referrer": "/", "duration": 12.5})),
            defaults(),
        )
        .expect("valid");
        assert_eq!(ok.duration, Some(12.5));
        let cases = [
            (json!({"userId": "u"}), "url: is required"),
            (json!({"userId": "u", "url": ""}), "url: must not be empty"),
            (
                json!({"userId": "u", "url": "\t"}),
                "url: must match the pattern",
            ),
            (
                json!({"userId": "u", "url": "/", "duration": -1}),
                "duration: must be at least 0",
            ),
            (
                json!({"userId": "u", "url": "/", "duration": 1e9 + 1.0}),
                "duration: must be at most 1000000000",
            ),
            (json!({"url": "/"}), "userId: is required"),
        ];
        for (input, expected) in cases {
            let err = read(Kind::PageView, input.clone()).expect_err("invalid");
            assert!(err.starts_with(expected), "for {input}: {err}");
        }
    }

    #[test]
    fn a_document_that_skipped_its_schema_is_an_error_not_a_panic() {
        for (input, field) in [
            (json!({"userId": 7, "eventType": "login"}), "userId"),
            (json!({"userId": "u", "eventType": "dance"}), "eventType"),
            (
                json!({"userId": "u", "eventType": "view", "timestamp": 3}),
                "timestamp",
            ),
        ] {
            let err =
                UserEvent::from_json(Json::of(&input), defaults()).expect_err("not converted");
            assert_eq!(err.field, field);
        }
    }

    #[test]
    fn batch_items_carry_their_index() {
        let err = ValidationError::new("eventType", "is required").in_item(3);
        assert_eq!(err.to_string(), "[3].eventType: is required");
        let err = ValidationError::new("", "must be a JSON object").in_item(0);
        assert_eq!(err.to_string(), "[0]: must be a JSON object");
    }
}
