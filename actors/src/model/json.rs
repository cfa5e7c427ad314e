//! A JSON document that borrows its strings from the bytes it was parsed
//! from: what ingest and the partition consumers validate and build events
//! from.
//!
//! `serde_json::Value` allocates every string and every object key, and
//! keeps objects in a `BTreeMap` (a node allocation per object, more for
//! larger ones); for an event of nine values that was about fifteen
//! allocations, each freed again a moment later, and the largest single
//! cost of ingest. Here a string without escapes is a slice of the input,
//! an object is one vector of its fields, and a document costs an
//! allocation per object or array. The rules are the JSON ones `Value`
//! follows: numbers are `serde_json::Number` built the same way, and a name
//! given twice in one object keeps its last value.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Number, Value};

/// A JSON value whose strings may borrow from the input.
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Object<'a>),
}

/// A JSON object: its fields in the order written, each name once.
#[derive(Debug, Clone, Default)]
pub struct Object<'a> {
    fields: Vec<(Cow<'a, str>, Json<'a>)>,
    /// The object's text as the input wrote it, when it was asked for (see
    /// [`Json::parse_keeping_text`]).
    text: Option<&'a RawValue>,
}

/// Objects are equal when their fields are, however they were written.
impl PartialEq for Object<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.fields == other.fields
    }
}

impl<'a> Json<'a> {
    /// Parses `bytes`, borrowing every string that holds no escape.
    pub fn parse(bytes: &'a [u8]) -> Result<Json<'a>, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// [`Json::parse`], also keeping the text of every object that is the
    /// value of a field named `field`, at any depth ([`Object::text`]): a
    /// value to be written out again as it came (an event's metadata) then
    /// needs no serializing, and keeps what parsing would lose (an integer
    /// too large for 64 bits, `2.50` written as `2.5`).
    pub fn parse_keeping_text(
        bytes: &'a [u8],
        field: &'static str,
    ) -> Result<Json<'a>, serde_json::Error> {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let value = Seed {
            keep: Some(field),
            _input: PhantomData,
        }
        .deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(value)
    }

    /// A view of a `Value`, borrowing all of it.
    pub fn of(value: &'a Value) -> Json<'a> {
        match value {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => Json::Number(n.clone()),
            Value::String(s) => Json::String(Cow::Borrowed(s)),
            Value::Array(items) => Json::Array(items.iter().map(Json::of).collect()),
            Value::Object(map) => Json::Object(Object {
                fields: map
                    .iter()
                    .map(|(k, v)| (Cow::Borrowed(k.as_str()), Json::of(v)))
                    .collect(),
                text: None,
            }),
        }
    }
}

impl<'a> Object<'a> {
    pub fn get(&self, name: &str) -> Option<&Json<'a>> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Json<'a>> {
        self.fields
            .iter_mut()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Takes a field out, keeping the others in their order.
    pub fn remove(&mut self, name: &str) -> Option<Json<'a>> {
        let at = self.fields.iter().position(|(k, _)| k == name)?;
        Some(self.fields.remove(at).1)
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The object as its input wrote it (insignificant whitespace and all),
    /// if it was parsed by [`Json::parse_keeping_text`] as the value of the
    /// field named there.
    pub fn text(&self) -> Option<&'a RawValue> {
        self.text
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Json<'a>)> {
        self.fields.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// Builds an object from fields as written: a name given more than
    /// once keeps its last value (as `serde_json::Value` does), in the
    /// place of its last occurrence.
    fn from_fields(mut fields: Vec<(Cow<'a, str>, Json<'a>)>) -> Self {
        /// Up to this many fields, names are compared pairwise.
        const PAIRWISE: usize = 16;
        let n = fields.len();
        let repeated = if n <= PAIRWISE {
            (1..n).any(|i| fields[..i].iter().any(|(k, _)| *k == fields[i].0))
        } else {
            let mut names = HashSet::with_capacity(n);
            !fields.iter().all(|(k, _)| names.insert(k.as_ref()))
        };
        if repeated {
            // From the back: the first time a name is met there is its
            // last occurrence, the one kept.
            let mut keep = vec![false; n];
            let mut names = HashSet::with_capacity(n);
            for (i, (k, _)) in fields.iter().enumerate().rev() {
                keep[i] = names.insert(k.as_ref());
            }
            let mut flags = keep.into_iter();
            fields.retain(|_| flags.next().unwrap_or(false));
        }
        Object { fields, text: None }
    }
}

/// Equal to a `Value` holding the same JSON (objects in any field order).
impl PartialEq<Value> for Json<'_> {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Json::Null, Value::Null) => true,
            (Json::Bool(a), Value::Bool(b)) => a == b,
            (Json::Number(a), Value::Number(b)) => a == b,
            (Json::String(a), Value::String(b)) => a == b,
            (Json::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
            }
            (Json::Object(a), Value::Object(b)) => {
                a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| v == w))
            }
            _ => false,
        }
    }
}

impl fmt::Display for Json<'_> {
    /// The value as compact JSON.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(b) => serializer.serialize_bool(*b),
            Json::Number(n) => n.serialize(serializer),
            Json::String(s) => serializer.serialize_str(s),
            Json::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Object(obj) => obj.serialize(serializer),
        }
    }
}

impl Serialize for Object<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.fields.len()))?;
        for (k, v) in &self.fields {
            map.serialize_entry(k.as_ref(), v)?;
        }
        map.end()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Json<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Seed {
            keep: None,
            _input: PhantomData,
        }
        .deserialize(deserializer)
    }
}

/// Reads one value; `keep`: the name of the fields whose object values keep
/// their text.
#[derive(Clone, Copy)]
struct Seed<'a> {
    keep: Option<&'static str>,
    _input: PhantomData<&'a ()>,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for Seed<'a> {
    type Value = Json<'a>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Json<'a>, D::Error> {
        deserializer.deserialize_any(JsonVisitor(self))
    }
}

struct JsonVisitor<'a>(Seed<'a>);

/// Capacity taken on a size hint, at most: a hint is the input's claim.
const MAX_PREALLOCATED: usize = 1024;

impl<'de: 'a, 'a> Visitor<'de> for JsonVisitor<'a> {
    type Value = Json<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Json<'a>, E> {
        Ok(Json::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Json<'a>, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Json<'a>, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Json<'a>, E> {
        Ok(Number::from_f64(n).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Json<'a>, E> {
        Ok(Json::String(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Json<'a>, E> {
        Ok(Json::String(Cow::Owned(s.to_string())))
    }

    fn visit_string<E>(self, s: String) -> Result<Json<'a>, E> {
        Ok(Json::String(Cow::Owned(s)))
    }

    fn visit_unit<E>(self) -> Result<Json<'a>, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json<'a>, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Json<'a>, D::Error> {
        self.0.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'a>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_PREALLOCATED));
        while let Some(item) = seq.next_element_seed(self.0)? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'a>, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8).min(MAX_PREALLOCATED));
        while let Some(name) = map.next_key_seed(Name(PhantomData))? {
            let value = match self.0.keep {
                Some(keep) if name == keep => {
                    // Its text first (the outer parser checks its syntax),
                    // then the value read from that text.
                    let text: &'de RawValue = map.next_value()?;
                    let mut value = Json::parse_keeping_text(text.get().as_bytes(), keep)
                        .map_err(de::Error::custom)?;
                    if let Json::Object(obj) = &mut value {
                        obj.text = Some(text);
                    }
                    value
                }
                _ => map.next_value_seed(self.0)?,
            };
            fields.push((name, value));
        }
        Ok(Json::Object(Object::from_fields(fields)))
    }
}

/// An object's field name, borrowed when it holds no escape.
struct Name<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> DeserializeSeed<'de> for Name<'a> {
    type Value = Cow<'a, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for Name<'a> {
    type Value = Cow<'a, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s.to_string()))
    }

    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_without_escapes_borrow_from_the_input() {
        let text = br#"{"userId":"u-1","note":"a\"b","nested":{"k":"v"},"list":["x"]}"#;
        let doc = Json::parse(text).expect("parses");
        let Json::Object(obj) = &doc else {
            panic!("an object")
        };
        assert!(matches!(
            obj.get("userId"),
            Some(Json::String(Cow::Borrowed("u-1")))
        ));
        // An escape needs a copy: the string differs from its bytes.
        assert!(matches!(obj.get("note"), Some(Json::String(Cow::Owned(s))) if s == "a\"b"));
        let Some(Json::Object(nested)) = obj.get("nested") else {
            panic!("an object")
        };
        assert!(matches!(
            nested.get("k"),
            Some(Json::String(Cow::Borrowed("v")))
        ));
        assert!(obj
            .fields
            .iter()
            .all(|(k, _)| matches!(k, Cow::Borrowed(_))));
    }

    #[test]
    fn it_reads_and_writes_what_value_does() {
        let texts = [
            r#"{"a":1,"b":-2,"c":2.5,"d":1e3,"e":18446744073709551615,"f":-9223372036854775808}"#,
            r#"[null,true,false,"",[],{},[[1]],{"x":{"y":[{"z":null}]}}]"#,
            r#""\u00e9\n\t\\""#,
            "0",
            r#"{"same":1,"other":2,"same":3}"#,
        ];
        for text in texts {
            let value: Value = serde_json::from_str(text).expect("value");
            let doc = Json::parse(text.as_bytes()).expect("json");
            assert!(doc == value, "{text}");
            let written: Value = serde_json::from_str(&doc.to_string()).expect("reparses");
            assert_eq!(written, value, "{text}");
            assert_eq!(
                Json::of(&value),
                Json::parse(value.to_string().as_bytes()).expect("json")
            );
        }
    }

    #[test]
    fn a_repeated_name_keeps_its_last_value() {
        let doc = Json::parse(br#"{"a":1,"b":2,"a":3,"c":4,"a":5}"#).expect("parses");
        assert_eq!(doc.to_string(), r#"{"b":2,"c":4,"a":5}"#);
        // Past the pairwise limit too.
        let fields: Vec<String> = (0..40).map(|i| format!("\"k{}\":{i}", i % 20)).collect();
        let text = format!("{{{}}}", fields.join(","));
        let Json::Object(obj) = Json::parse(text.as_bytes()).expect("parses") else {
            panic!("an object")
        };
        assert_eq!(obj.len(), 20);
        assert_eq!(obj.get("k3"), Some(&Json::Number(23.into())));
        let names: Vec<&str> = obj.iter().map(|(k, _)| k).collect();
        assert_eq!(names[0], "k0");
        assert_eq!(names[19], "k19");
    }

    #[test]
    fn equality_with_value_ignores_field_order_only() {
        let doc = Json::parse(br#"{"b":[1,"x"],"a":null}"#).expect("parses");
        assert!(doc == json!({"a": null, "b": [1, "x"]}));
        assert!(doc != json!({"a": null, "b": [1, "y"]}));
        assert!(doc != json!({"a": null}));
        assert!(Json::parse(b"1").expect("parses") != json!(1.0));
        assert!(Json::parse(b"1.0").expect("parses") == json!(1.0));
    }

    fn object<'a>(value: Option<&Json<'a>>) -> Object<'a> {
        match value {
            Some(Json::Object(obj)) => obj.clone(),
            other => panic!("not an object: {other:?}"),
        }
    }

    #[test]
    fn the_named_fields_objects_keep_their_text_at_any_depth() {
        let text = br#"[{"metadata": {"a" : [1, 2]}, "other": {"b": 1}},
            {"metadata": 7}, {"x": {"metadata": {"c": {"metadata": {}}}}}]"#;
        let doc = Json::parse_keeping_text(text, "metadata").expect("parses");
        let Json::Array(items) = &doc else {
            panic!("an array")
        };
        let text_of = |obj: &Object<'_>| obj.text().map(|t| t.get().to_string());
        let first = object(items.first());
        assert_eq!(text_of(&first), None);
        assert_eq!(
            text_of(&object(first.get("metadata"))).as_deref(),
            Some(r#"{"a" : [1, 2]}"#)
        );
        assert_eq!(text_of(&object(first.get("other"))), None);
        // Not an object: nothing kept, the value as it is.
        assert_eq!(
            object(items.get(1)).get("metadata"),
            Some(&Json::Number(7.into()))
        );
        let deep = object(object(object(items.get(2)).get("x")).get("metadata"));
        assert_eq!(
            text_of(&deep).as_deref(),
            Some(r#"{"c": {"metadata": {}}}"#)
        );
        let deeper = object(object(deep.get("c")).get("metadata"));
        assert_eq!(text_of(&deeper).as_deref(), Some("{}"));
        // The same document as a plain parse reads it: text is not part of
        // an object's equality.
        assert_eq!(doc, Json::parse(text).expect("parses"));
        // A syntax error inside the kept object is the outer parser's, at
        // its place in the whole input.
        let error = Json::parse_keeping_text(br#"{"x":1,"metadata":{"a":}}"#, "metadata")
            .expect_err("refused")
            .to_string();
        assert!(error.contains("column 24"), "{error}");
    }

    #[test]
    fn removing_a_field_keeps_the_others_in_order() {
        let Json::Object(mut obj) = Json::parse(br#"{"a":1,"events":[],"b":2}"#).expect("parses")
        else {
            panic!("an object")
        };
        assert_eq!(obj.remove("events"), Some(Json::Array(vec![])));
        assert_eq!(obj.remove("events"), None);
        assert_eq!(Json::Object(obj).to_string(), r#"{"a":1,"b":2}"#);
    }
}
