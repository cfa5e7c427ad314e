//! The data model: what arus counts and how it is checked. Events in the
//! seed's shapes, the JSON document they are read from, their schemas,
//! event-time bounds, where a record came from, and the kinds of state.

pub mod error_class;
pub mod event;
pub mod event_time;
pub mod headers;
pub mod json;
pub mod metric_kind;
pub mod schema;
pub mod source;
