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
use crate::model::json::Json;

mod rules;

use rules::Node;

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
