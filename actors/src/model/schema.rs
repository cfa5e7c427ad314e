//! The JSON Schemas of the events, `config/schemas/<kind>.v<N>.json`, and
//! the validator that checks values against them: at ingest (a 400 naming the
//! failing field) and at consume (a dead letter), so both ends agree.
//!
//! The schema files are compiled into the binary rather than read at
//! startup: a version's schema must never change once records carry it (a
//! replay has to accept exactly what was accepted when the record was
//! written), so a new rule is a new version, shipped with the code that
//! understands it. Records name their version in the `schema-version`
//! header; a version this build has no schema for is a dead letter.
//!
//! The validator implements the part of JSON Schema (draft 2020-12) these
//! schemas use — `type`, `properties`, `required`, `additionalProperties`,
//! `minProperties`/`maxProperties`, `items`, `minItems`/`maxItems`, `enum`,
//! `const`, `minLength`/`maxLength`, `pattern`, `minimum`/`maximum`,
//! `exclusiveMinimum`/`exclusiveMaximum` and the `date-time` and `uuid`
//! formats (asserted, not just annotated) — and refuses a schema with any
//! other keyword, so no rule is ever silently ignored. It stops at the first
//! failure: the answer names one field, with the path to it.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde_json::Value;

use crate::model::event::ValidationError;
use crate::model::json::{Json, Object};

/// The version of a record without a `schema-version` header.
pub const DEFAULT_VERSION: &str = "1";

/// Which event a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    UserEvent,
    PageView,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::UserEvent, Kind::PageView];

    /// The name in the schema's file name and URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::UserEvent => "user-event",
            Kind::PageView => "page-view",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The schema version arus checks events of this kind against at
    /// ingest and writes on their records. Each kind moves on its own: page
    /// views are at 2 (a bounded duration), user events still at 1.
    pub fn current_version(self) -> &'static str {
        match self {
            Kind::UserEvent => "1",
            Kind::PageView => "2",
        }
    }
}

/// The schema files of this build: (kind, version, document).
const FILES: [(Kind, &str, &str); 3] = [
    (
        Kind::UserEvent,
        "1",
        include_str!("../../../config/schemas/user-event.v1.json"),
    ),
    (
        Kind::PageView,
        "1",
        include_str!("../../../config/schemas/page-view.v1.json"),
    ),
    (
        Kind::PageView,
        "2",
        include_str!("../../../config/schemas/page-view.v2.json"),
    ),
];

/// A schema, compiled, with the document it came from.
#[derive(Debug)]
pub struct Schema {
    document: Value,
    root: Node,
}

/// Every schema of this build, by kind and version.
#[derive(Debug)]
pub struct Schemas {
    /// By kind, then version: looked up with a borrowed version, so a
    /// lookup per event allocates nothing.
    by_kind: BTreeMap<Kind, BTreeMap<String, Schema>>,
}

static BUILT_IN: LazyLock<Schemas> = LazyLock::new(|| {
    // The files are part of the build and covered by unit tests: a broken
    // one cannot ship.
    Schemas::compile(&FILES).unwrap_or_else(|error| panic!("a built-in schema is broken: {error}"))
});

/// The schemas compiled into this build.
pub fn built_in() -> &'static Schemas {
    &BUILT_IN
}

impl Schemas {
    fn compile(files: &[(Kind, &str, &str)]) -> Result<Self, SchemaError> {
        let mut by_kind: BTreeMap<Kind, BTreeMap<String, Schema>> = BTreeMap::new();
        for (kind, version, text) in files {
            let document: Value = serde_json::from_str(text).map_err(|e| SchemaError {
                at: format!("{}.v{version}", kind.as_str()),
                message: format!("is not JSON: {e}"),
            })?;
            let root = Node::compile(&document, "").map_err(|e| SchemaError {
                at: format!("{}.v{version}{}", kind.as_str(), e.at),
                ..e
            })?;
            by_kind
                .entry(*kind)
                .or_default()
                .insert(version.to_string(), Schema { document, root });
        }
        Ok(Self { by_kind })
    }

    /// The schema of `kind` at `version`; `None` for a version this build
    /// does not know.
    pub fn get(&self, kind: Kind, version: &str) -> Option<&Schema> {
        self.by_kind.get(&kind)?.get(version)
    }

    /// Every (kind, version) there is a schema for.
    pub fn versions(&self) -> impl Iterator<Item = (Kind, &str)> {
        self.by_kind
            .iter()
            .flat_map(|(k, versions)| versions.keys().map(|v| (*k, v.as_str())))
    }
}

impl Schema {
    /// The schema document, as in its file.
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// Checks `value`; the error names the first failing field by its path
    /// (`metadata.items[2].sku`; empty for the value itself).
    pub fn validate(&self, value: &Json<'_>) -> Result<(), ValidationError> {
        let mut path = String::new();
        self.root.check(value, &mut path)
    }
}

/// A schema that cannot be compiled: where in it, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schema {at}: {message}")]
pub struct SchemaError {
    at: String,
    message: String,
}

fn schema_error(at: &str, message: impl Into<String>) -> SchemaError {
    SchemaError {
        at: at.to_string(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Object,
    Array,
    String,
    Number,
    Integer,
    Boolean,
    Null,
}

impl Type {
    fn parse(name: &str) -> Option<Type> {
        Some(match name {
            "object" => Type::Object,
            "array" => Type::Array,
            "string" => Type::String,
            "number" => Type::Number,
            "integer" => Type::Integer,
            "boolean" => Type::Boolean,
            "null" => Type::Null,
            _ => return None,
        })
    }

    fn matches(self, value: &Json<'_>) -> bool {
        match (self, value) {
            (Type::Object, Json::Object(_))
            | (Type::Array, Json::Array(_))
            | (Type::String, Json::String(_))
            | (Type::Number, Json::Number(_))
            | (Type::Boolean, Json::Bool(_))
            | (Type::Null, Json::Null) => true,
            (Type::Integer, Json::Number(n)) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            _ => false,
        }
    }

    fn described(self, at_root: bool) -> &'static str {
        match self {
            Type::Object if at_root => "a JSON object",
            Type::Object => "an object",
            Type::Array => "an array",
            Type::String => "a string",
            Type::Number => "a number",
            Type::Integer => "an integer",
            Type::Boolean => "a boolean",
            Type::Null => "null",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Format {
    DateTime,
    Uuid,
}

#[derive(Debug)]
enum Additional {
    Allowed,
    Refused,
    Checked(Box<Node>),
}

/// One compiled (sub)schema.
#[derive(Debug)]
enum Node {
    /// `true`: anything.
    Any,
    /// `false`: nothing.
    Nothing,
    Rules(Box<Rules>),
}

#[derive(Debug)]
struct Rules {
    types: Option<Vec<Type>>,
    properties: Vec<(String, Node)>,
    required: Vec<String>,
    /// Whether each of `properties` is required, in their order.
    property_required: Vec<bool>,
    /// Required names that are not among `properties`.
    required_elsewhere: Vec<String>,
    additional: Additional,
    min_properties: Option<usize>,
    max_properties: Option<usize>,
    items: Option<Node>,
    min_items: Option<usize>,
    max_items: Option<usize>,
    one_of_values: Option<Vec<Value>>,
    constant: Option<Value>,
    min_length: Option<usize>,
    max_length: Option<usize>,
    pattern: Option<(String, regex_lite::Regex)>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    exclusive_minimum: Option<f64>,
    exclusive_maximum: Option<f64>,
    format: Option<Format>,
}

/// Keywords that only describe; they never fail a value.
const ANNOTATIONS: [&str; 8] = [
    "$schema",
    "$id",
    "$comment",
    "title",
    "description",
    "examples",
    "default",
    "deprecated",
];

fn count(at: &str, keyword: &str, value: &Value) -> Result<usize, SchemaError> {
    value
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| schema_error(at, format!("{keyword} must be a non-negative integer")))
}

fn number(at: &str, keyword: &str, value: &Value) -> Result<f64, SchemaError> {
    value
        .as_f64()
        .ok_or_else(|| schema_error(at, format!("{keyword} must be a number")))
}

impl Node {
    fn compile(schema: &Value, at: &str) -> Result<Node, SchemaError> {
        let obj = match schema {
            Value::Bool(true) => return Ok(Node::Any),
            Value::Bool(false) => return Ok(Node::Nothing),
            Value::Object(obj) => obj,
            _ => return Err(schema_error(at, "a schema must be an object or a boolean")),
        };
        let mut rules = Rules {
            types: None,
            properties: Vec::new(),
            required: Vec::new(),
            property_required: Vec::new(),
            required_elsewhere: Vec::new(),
            additional: Additional::Allowed,
            min_properties: None,
            max_properties: None,
            items: None,
            min_items: None,
            max_items: None,
            one_of_values: None,
            constant: None,
            min_length: None,
            max_length: None,
            pattern: None,
            minimum: None,
            maximum: None,
            exclusive_minimum: None,
            exclusive_maximum: None,
            format: None,
        };
        for (keyword, value) in obj {
            match keyword.as_str() {
                k if ANNOTATIONS.contains(&k) => {}
                "type" => rules.types = Some(compile_types(value, at)?),
                "properties" => {
                    let props = value
                        .as_object()
                        .ok_or_else(|| schema_error(at, "properties must be an object"))?;
                    for (name, sub) in props {
                        let node = Node::compile(sub, &format!("{at}/properties/{name}"))?;
                        rules.properties.push((name.clone(), node));
                    }
                }
                "required" => {
                    rules.required = value
                        .as_array()
                        .and_then(|names| {
                            names
                                .iter()
                                .map(|n| n.as_str().map(str::to_string))
                                .collect()
                        })
                        .ok_or_else(|| schema_error(at, "required must be an array of names"))?;
                }
                "additionalProperties" => {
                    rules.additional = match Node::compile(value, &format!("{at}/{keyword}"))? {
                        Node::Any => Additional::Allowed,
                        Node::Nothing => Additional::Refused,
                        node => Additional::Checked(Box::new(node)),
                    }
                }
                "minProperties" => rules.min_properties = Some(count(at, keyword, value)?),
                "maxProperties" => rules.max_properties = Some(count(at, keyword, value)?),
                "items" => rules.items = Some(Node::compile(value, &format!("{at}/items"))?),
                "minItems" => rules.min_items = Some(count(at, keyword, value)?),
                "maxItems" => rules.max_items = Some(count(at, keyword, value)?),
                "enum" => {
                    let values = value
                        .as_array()
                        .filter(|v| !v.is_empty())
                        .ok_or_else(|| schema_error(at, "enum must be a non-empty array"))?;
                    rules.one_of_values = Some(values.clone());
                }
                "const" => rules.constant = Some(value.clone()),
                "minLength" => rules.min_length = Some(count(at, keyword, value)?),
                "maxLength" => rules.max_length = Some(count(at, keyword, value)?),
                "pattern" => {
                    let text = value
                        .as_str()
                        .ok_or_else(|| schema_error(at, "pattern must be a string"))?;
                    let regex = regex_lite::Regex::new(text)
                        .map_err(|e| schema_error(at, format!("pattern {text:?}: {e}")))?;
                    rules.pattern = Some((text.to_string(), regex));
                }
                "minimum" => rules.minimum = Some(number(at, keyword, value)?),
                "maximum" => rules.maximum = Some(number(at, keyword, value)?),
                "exclusiveMinimum" => rules.exclusive_minimum = Some(number(at, keyword, value)?),
                "exclusiveMaximum" => rules.exclusive_maximum = Some(number(at, keyword, value)?),
                "format" => {
                    rules.format = Some(match value.as_str() {
                        Some("date-time") => Format::DateTime,
                        Some("uuid") => Format::Uuid,
                        _ => {
                            return Err(schema_error(
                                at,
                                format!("format {value} is not one arus checks (date-time, uuid)"),
                            ))
                        }
                    })
                }
                other => {
                    return Err(schema_error(
                        at,
                        format!("keyword {other:?} is not supported; arus would not check it"),
                    ))
                }
            }
        }
        // Looked up once here rather than for every value checked.
        rules.property_required = rules
            .properties
            .iter()
            .map(|(name, _)| rules.required.contains(name))
            .collect();
        rules.required_elsewhere = rules
            .required
            .iter()
            .filter(|r| !rules.properties.iter().any(|(name, _)| name == *r))
            .cloned()
            .collect();
        Ok(Node::Rules(Box::new(rules)))
    }

    fn allows_null(&self) -> bool {
        match self {
            Node::Any => true,
            Node::Nothing => false,
            Node::Rules(r) => r.types.as_ref().is_none_or(|t| t.contains(&Type::Null)),
        }
    }

    fn check(&self, value: &Json<'_>, path: &mut String) -> Result<(), ValidationError> {
        match self {
            Node::Any => Ok(()),
            Node::Nothing => Err(ValidationError::new(path.as_str(), "is not allowed")),
            Node::Rules(rules) => rules.check(value, path),
        }
    }
}

fn compile_types(value: &Value, at: &str) -> Result<Vec<Type>, SchemaError> {
    let names: Vec<&str> = match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str())
            .collect::<Option<_>>()
            .ok_or_else(|| schema_error(at, "type must name types"))?,
        _ => return Err(schema_error(at, "type must be a name or an array of names")),
    };
    names
        .into_iter()
        .map(|n| Type::parse(n).ok_or_else(|| schema_error(at, format!("unknown type {n:?}"))))
        .collect()
}

/// Runs `check` with `segment` appended to the path, then restores it.
fn within<T>(path: &mut String, segment: &str, check: impl FnOnce(&mut String) -> T) -> T {
    let len = path.len();
    if !path.is_empty() && !segment.starts_with('[') {
        path.push('.');
    }
    path.push_str(segment);
    let result = check(path);
    path.truncate(len);
    result
}

fn fail(path: &str, message: impl Into<String>) -> Result<(), ValidationError> {
    Err(ValidationError::new(path, message))
}

fn listed(values: &[Value]) -> String {
    values
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Rules {
    fn check(&self, value: &Json<'_>, path: &mut String) -> Result<(), ValidationError> {
        if let Some(types) = &self.types {
            if !types.iter().any(|t| t.matches(value)) {
                let at_root = path.is_empty();
                let mut wanted: Vec<&str> = types
                    .iter()
                    .filter(|t| **t != Type::Null)
                    .map(|t| t.described(at_root))
                    .collect();
                if wanted.is_empty() {
                    wanted.push("null");
                }
                return fail(path, format!("must be {}", wanted.join(" or ")));
            }
        }
        if let Some(values) = &self.one_of_values {
            if !values.iter().any(|v| value == v) {
                let got = match value {
                    Json::String(s) => format!(" (got {s:?})"),
                    _ => String::new(),
                };
                return fail(path, format!("must be one of {}{got}", listed(values)));
            }
        }
        if let Some(constant) = &self.constant {
            if value != constant {
                return fail(path, format!("must be {constant}"));
            }
        }
        match value {
            Json::Object(obj) => self.check_object(obj, path),
            Json::Array(items) => self.check_array(items, path),
            Json::String(s) => self.check_string(s, path),
            Json::Number(n) => self.check_number(n.as_f64().unwrap_or(f64::NAN), path),
            Json::Bool(_) | Json::Null => Ok(()),
        }
    }

    fn check_object(&self, obj: &Object<'_>, path: &mut String) -> Result<(), ValidationError> {
        // In the schema's order: the first failing field is the first the
        // schema names, whatever order the client wrote.
        for ((name, node), &required) in self.properties.iter().zip(&self.property_required) {
            match obj.get(name) {
                None => {
                    if required {
                        return within(path, name, |p| fail(p, "is required"));
                    }
                }
                Some(Json::Null) if required && !node.allows_null() => {
                    return within(path, name, |p| fail(p, "is required"));
                }
                Some(v) => within(path, name, |p| node.check(v, p))?,
            }
        }
        for name in &self.required_elsewhere {
            if !obj.contains_key(name) {
                return within(path, name, |p| fail(p, "is required"));
            }
        }
        // Fields the schema does not name: nothing to look at when it
        // allows any.
        if !matches!(self.additional, Additional::Allowed) {
            for (name, v) in obj.iter() {
                if self.properties.iter().any(|(n, _)| n == name) {
                    continue;
                }
                match &self.additional {
                    Additional::Allowed => {}
                    Additional::Refused => {
                        return within(path, name, |p| fail(p, "is not an allowed field"))
                    }
                    Additional::Checked(node) => within(path, name, |p| node.check(v, p))?,
                }
            }
        }
        if let Some(min) = self.min_properties.filter(|m| obj.len() < *m) {
            return fail(path, format!("must have at least {min} fields"));
        }
        if let Some(max) = self.max_properties.filter(|m| obj.len() > *m) {
            return fail(path, format!("must have at most {max} fields"));
        }
        Ok(())
    }

    fn check_array(&self, items: &[Json<'_>], path: &mut String) -> Result<(), ValidationError> {
        if let Some(min) = self.min_items.filter(|m| items.len() < *m) {
            return fail(path, format!("must hold at least {min} items"));
        }
        if let Some(max) = self.max_items.filter(|m| items.len() > *m) {
            return fail(path, format!("must hold at most {max} items"));
        }
        if let Some(node) = &self.items {
            for (i, item) in items.iter().enumerate() {
                within(path, &format!("[{i}]"), |p| node.check(item, p))?;
            }
        }
        Ok(())
    }

    fn check_string(&self, s: &str, path: &str) -> Result<(), ValidationError> {
        // JSON Schema counts characters (code points), not bytes. A
        // character is one to four bytes: most strings are decided by their
        // length in bytes, without counting.
        let chars = || s.chars().count();
        if let Some(min) = self
            .min_length
            .filter(|m| s.len() < m.saturating_mul(4) && chars() < *m)
        {
            return if min == 1 {
                fail(path, "must not be empty")
            } else {
                fail(path, format!("must be at least {min} characters long"))
            };
        }
        if let Some(max) = self.max_length.filter(|m| s.len() > *m && chars() > *m) {
            return fail(path, format!("must be at most {max} characters long"));
        }
        if let Some((text, regex)) = &self.pattern {
            if !regex.is_match(s) {
                return fail(path, format!("must match the pattern {text}"));
            }
        }
        match self.format {
            Some(Format::DateTime) if chrono::DateTime::parse_from_rfc3339(s).is_err() => fail(
                path,
                "must be an ISO-8601 date-time like 2024-01-31T12:00:00.000Z",
            ),
            Some(Format::Uuid) if uuid::Uuid::parse_str(s).is_err() => fail(path, "must be a UUID"),
            _ => Ok(()),
        }
    }

    fn check_number(&self, n: f64, path: &str) -> Result<(), ValidationError> {
        if let Some(min) = self.minimum.filter(|m| n < *m) {
            return fail(path, format!("must be at least {min}"));
        }
        if let Some(max) = self.maximum.filter(|m| n > *m) {
            return fail(path, format!("must be at most {max}"));
        }
        if let Some(min) = self.exclusive_minimum.filter(|m| n <= *m) {
            return fail(path, format!("must be more than {min}"));
        }
        if let Some(max) = self.exclusive_maximum.filter(|m| n >= *m) {
            return fail(path, format!("must be less than {max}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compiled(schema: Value) -> Schema {
        let text = schema.to_string();
        let schemas = Schemas::compile(&[(Kind::UserEvent, "9", text.as_str())]).expect("compiles");
        let mut all = schemas
            .by_kind
            .into_values()
            .flat_map(BTreeMap::into_values);
        all.next().expect("one schema")
    }

    /// Validation of a `Value` (the tests write their cases with `json!`).
    trait CheckValue {
        fn check_value(&self, value: &Value) -> Result<(), ValidationError>;
    }

    impl CheckValue for Schema {
        fn check_value(&self, value: &Value) -> Result<(), ValidationError> {
            self.validate(&Json::of(value))
        }
    }

    fn error(schema: &Schema, value: Value) -> String {
        schema
            .validate(&Json::of(&value))
            .expect_err("invalid")
            .to_string()
    }

    #[test]
    fn the_built_in_schemas_compile_and_are_listed() {
        let versions: Vec<_> = built_in().versions().collect();
        assert_eq!(
            versions,
            vec![
                (Kind::UserEvent, "1"),
                (Kind::PageView, "1"),
                (Kind::PageView, "2")
            ]
        );
        for kind in Kind::ALL {
            assert!(built_in().get(kind, kind.current_version()).is_some());
        }
        assert!(built_in().get(Kind::PageView, DEFAULT_VERSION).is_some());
        assert!(built_in().get(Kind::UserEvent, "2").is_none());
        assert_eq!(
            built_in().get(Kind::PageView, "1").expect("v1").document()["title"],
            json!("Page view, schema version 1")
        );
    }

    #[test]
    fn the_user_event_schema_names_the_failing_field() {
        let schema = built_in().get(Kind::UserEvent, "1").expect("v1");
        schema
            .check_value(
                &json!({"userId": "u", "eventType": "login", "metadata": null, "extra": 1}),
            )
            .expect("valid");
        schema
            .check_value(&json!({
                "eventId": "0b7f6a3c-8f7e-4d43-9c5c-2d8b5d3c1a10", "userId": "u",
                "eventType": "purchase", "timestamp": "2024-05-01T09:30:00.250Z",
                "metadata": {"amount": 42}
            }))
            .expect("valid");
        let cases = [
            (json!([]), "must be a JSON object"),
            (json!({"eventType": "login"}), "userId: is required"),
            (
                json!({"userId": null, "eventType": "login"}),
                "userId: is required",
            ),
            (
                json!({"userId": "", "eventType": "login"}),
                "userId: must not be empty",
            ),
            (
                json!({"userId": 7, "eventType": "login"}),
                "userId: must be a string",
            ),
            (
                json!({"userId": "x".repeat(1025), "eventType": "login"}),
                "userId: must be at most 1024 characters long",
            ),
            (json!({"userId": "u"}), "eventType: is required"),
            (
                json!({"userId": "u", "eventType": "click"}),
                "eventType: must be one of login, logout, purchase, view (got \"click\")",
            ),
            (
                json!({"userId": "u", "eventType": 3}),
                "eventType: must be a string",
            ),
            (
                json!({"userId": "u", "eventType": "view", "timestamp": "yesterday"}),
                "timestamp: must be an ISO-8601 date-time like 2024-01-31T12:00:00.000Z",
            ),
            (
                json!({"userId": "u", "eventType": "view", "timestamp": 1}),
                "timestamp: must be a string",
            ),
            (
                json!({"userId": "u", "eventType": "view", "metadata": 3}),
                "metadata: must be an object",
            ),
            (
                json!({"userId": "u", "eventType": "view", "eventId": "nope"}),
                "eventId: must be a UUID",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(error(schema, input.clone()), expected, "for {input}");
        }
    }

    #[test]
    fn the_page_view_schema_names_the_failing_field() {
        let schema = built_in().get(Kind::PageView, "1").expect("v1");
        schema
            .check_value(&json!({"userId": "u", "url": "/home", "referrer": "/", "duration": 12.5}))
            .expect("valid");
        let cases = [
            (json!({"userId": "u"}), "url: is required"),
            (json!({"userId": "u", "url": ""}), "url: must not be empty"),
            (
                json!({"userId": "u", "url": "/", "duration": -1}),
                "duration: must be at least 0",
            ),
            (
                json!({"userId": "u", "url": "/", "duration": "long"}),
                "duration: must be a number",
            ),
            (
                json!({"userId": "u", "url": "/", "referrer": false}),
                "referrer: must be a string",
            ),
            (json!({"url": "/"}), "userId: is required"),
        ];
        for (input, expected) in cases {
            assert_eq!(error(schema, input.clone()), expected, "for {input}");
        }
    }

    #[test]
    fn nested_paths_name_fields_and_items() {
        let schema = compiled(json!({
            "type": "object",
            "properties": {
                "order": {
                    "type": "object",
                    "required": ["lines"],
                    "properties": {
                        "lines": {
                            "type": "array", "minItems": 1, "maxItems": 3,
                            "items": {
                                "type": "object",
                                "additionalProperties": false,
                                "properties": {
                                    "sku": {"type": "string", "pattern": "^SKU-[0-9]+$"},
                                    "qty": {"type": "integer", "minimum": 1, "exclusiveMaximum": 100}
                                }
                            }
                        }
                    }
                },
                "tag": {"const": "beta"},
                "labels": {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "string"}}
            }
        }));
        schema
            .check_value(&json!({"order": {"lines": [{"sku": "SKU-1", "qty": 2}]}, "tag": "beta"}))
            .expect("valid");
        let cases = [
            (json!({"order": {}}), "order.lines: is required"),
            (
                json!({"order": {"lines": []}}),
                "order.lines: must hold at least 1 items",
            ),
            (
                json!({"order": {"lines": [{}, {}, {}, {}]}}),
                "order.lines: must hold at most 3 items",
            ),
            (
                json!({"order": {"lines": [{"sku": "SKU-1"}, {"sku": "sku-2"}]}}),
                "order.lines[1].sku: must match the pattern ^SKU-[0-9]+$",
            ),
            (
                json!({"order": {"lines": [{"qty": 1.5}]}}),
                "order.lines[0].qty: must be an integer",
            ),
            (
                json!({"order": {"lines": [{"qty": 0}]}}),
                "order.lines[0].qty: must be at least 1",
            ),
            (
                json!({"order": {"lines": [{"qty": 100}]}}),
                "order.lines[0].qty: must be less than 100",
            ),
            (
                json!({"order": {"lines": [{"qty": 1, "gift": true}]}}),
                "order.lines[0].gift: is not an allowed field",
            ),
            (json!({"tag": "alpha"}), "tag: must be \"beta\""),
            (json!({"labels": {"a": 1}}), "labels.a: must be a string"),
            (
                json!({"labels": {"a": "x", "b": "y"}}),
                "labels: must have at most 1 fields",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(error(&schema, input.clone()), expected, "for {input}");
        }
    }

    #[test]
    fn a_schema_with_a_keyword_arus_would_not_check_is_refused() {
        let refused = |schema: Value| {
            Schemas::compile(&[(Kind::PageView, "3", schema.to_string().as_str())])
                .expect_err("refused")
                .to_string()
        };
        assert_eq!(
            refused(json!({"type": "object", "properties": {"url": {"anyOf": []}}})),
            "schema page-view.v3/properties/url: keyword \"anyOf\" is not supported; arus would not check it"
        );
        assert_eq!(
            refused(json!({"format": "email"})),
            "schema page-view.v3: format \"email\" is not one arus checks (date-time, uuid)"
        );
        assert_eq!(
            refused(json!({"type": "text"})),
            "schema page-view.v3: unknown type \"text\""
        );
        assert_eq!(
            refused(json!({"minLength": -1})),
            "schema page-view.v3: minLength must be a non-negative integer"
        );
        assert_eq!(
            refused(json!({"pattern": "("})).split(':').next(),
            Some("schema page-view.v3")
        );
        assert_eq!(
            Schemas::compile(&[(Kind::PageView, "3", "{")])
                .expect_err("not JSON")
                .to_string()
                .split(" is not JSON")
                .next(),
            Some("schema page-view.v3:")
        );
    }

    #[test]
    fn boolean_schemas_accept_everything_or_nothing() {
        let schema = compiled(json!({"properties": {"a": true, "b": false}}));
        schema
            .check_value(&json!({"a": [1, {"x": null}]}))
            .expect("valid");
        assert_eq!(error(&schema, json!({"b": 1})), "b: is not allowed");
    }
}
