//! The read model: every changelog partition merged into what the query
//! endpoints answer, with the index of users by activity.

mod activity;
mod model;
mod windows;

pub use model::*;
pub use windows::{Merged, WindowStore};
