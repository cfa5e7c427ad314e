//! Event-time windows: buckets of a minute, an hour and a day per source
//! partition, its watermark and late events, the sketches in a bucket, and
//! visits (session windows over both input topics of a partition number).

mod bucket;
mod durations;
mod partition_windows;
mod resolution;
mod top_k;
mod visitors;
mod visits;

pub use bucket::{Bucket, WatermarkMark};
pub use durations::{Durations, RELATIVE_ERROR as DURATION_RELATIVE_ERROR};
pub use partition_windows::{PartitionWindows, Placed, SharedVisits, WindowConfig, WindowFlush};
pub use resolution::Resolution;
pub use top_k::{TopK, TopKUnion};
pub use visitors::{VisitorUnion, Visitors};
pub use visits::{PartitionVisits, Visit, VisitBucket, VisitConfig, VisitEntry, VisitMark};
