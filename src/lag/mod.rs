//! Consumer lag: the monitor actor that reads the whole group's lag and
//! alerts (`monitor.rs`), the alert state machine (`alert.rs`), and the
//! end-offset history that dates the first unread record (`history.rs`).

pub mod alert;
pub mod history;
mod monitor;

pub use monitor::*;
