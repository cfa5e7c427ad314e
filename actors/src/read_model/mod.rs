//! The read model: every changelog partition merged into what the query
//! endpoints answer, with the index of users by activity.

mod activity;
mod model;

pub use model::*;
