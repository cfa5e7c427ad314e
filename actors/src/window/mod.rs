//! Event-time windows: buckets of a minute, an hour and a day per source
//! partition, its watermark and late events, and the sketches in a bucket.

mod bucket;
mod partition_windows;
mod resolution;
mod visitors;

pub use bucket::{Bucket, WatermarkMark};
pub use partition_windows::{PartitionWindows, Placed, WindowConfig, WindowFlush};
pub use resolution::Resolution;
pub use visitors::{VisitorUnion, Visitors};
