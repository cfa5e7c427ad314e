//! The group consumer and its exactly-once protocol, each decision in a
//! piece of its own:
//!
//! ```text
//! driver.rs        the poll loop on its own thread: batches to the partition actors,
//!                  the commit barrier every interval, pause and resume
//! assignment.rs  the partitions this instance holds, for the HTTP side
//! exactly_once.rs  what the poll loop and the rebalance callbacks share: assignment,
//!                  commit, rollback, restore, fencing, reset
//! rebalance.rs     the rebalance callbacks: commit and release revoked, restore assigned
//! restore.rs       reading assigned partitions' state from the changelog, off the poll loop
//! offset_reset.rs  a reset inside the protocol: roll back, restore, commit the new offsets
//! continuity.rs    a hole in a partition's offsets: fetched again before it is believed
//! committer.rs     one Kafka transaction: changelog entries, dead letters, retries, offsets
//! abort_streak.rs  after an abort: roll back, recreate the producer, or stop
//! pause.rs         which partitions an operator's pause or resume moves now
//! resume.rs        where a restored partition's input resumes
//! retry_hold.rs    which retry records wait for their time
//! reset.rs         offset resets of this instance's own group
//! ```

mod abort_streak;
mod assignment;
pub mod committer;
mod continuity;
pub mod driver;
mod error;
mod exactly_once;
mod offset_reset;
mod pause;
mod rebalance;
pub mod reset;
mod restore;
mod resume;
mod retry_hold;
