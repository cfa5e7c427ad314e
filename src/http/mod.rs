//! The HTTP API: ingest, query and health routes, and what they share.

mod auth;
mod body;
mod chaos;
mod cors;
mod dashboard;
mod dead_letters;
pub mod drain;
mod health;
mod ingest;
mod lag;
mod metrics;
mod offsets;
pub mod openapi;
mod owner;
mod query;
pub mod rate_limit;
pub mod request_metrics;
mod routes;
mod schemas;
mod state;
mod stream;
mod tracker;
mod windowed;

pub use body::{declared_length, read_body, read_body_sized};
pub use cors::guard as cors_guard;
pub use routes::routes;
pub use state::AppState;
