//! The windowed analytics query, `POST /v1/query`, in the shape of
//! Plausible's Stats API v2: its request and normalization, and its
//! answering from the read model's time buckets.

pub mod request;
pub mod run;

pub use request::{normalize, Metric, Query, QueryRequest};
pub use run::{run, Answer, Kept};
