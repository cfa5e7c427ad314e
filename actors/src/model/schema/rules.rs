//! The validator: a schema document compiled into a tree of rules, and
//! the check of a value against it (the keywords the parent module lists).

use serde_json::Value;

use super::SchemaError;
use crate::model::event::ValidationError;
use crate::model::json::{Json, Object};

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
pub(super) enum Node {
    /// `true`: anything.
    Any,
    /// `false`: nothing.
    Nothing,
    Rules(Box<Rules>),
}

#[derive(Debug)]
pub(super) struct Rules {
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
    pub(super) fn compile(schema: &Value, at: &str) -> Result<Node, SchemaError> {
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

    pub(super) fn check(&self, value: &Json<'_>, path: &mut String) -> Result<(), ValidationError> {
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
