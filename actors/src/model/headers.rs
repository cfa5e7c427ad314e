//! Every record header arus reads or writes, named once. Everything else on
//! a record is the client's and travels unchanged.

/// The schema version of an input record's value (no header: version 1).
pub const SCHEMA_VERSION: &str = "schema-version";

/// What a dead letter carries beside the original record's headers.
pub mod dead_letter {
    pub const ERROR_CLASS: &str = "x-error-class";
    pub const ERROR_MESSAGE: &str = "x-error-message";
    pub const SOURCE_TOPIC: &str = "x-source-topic";
    pub const SOURCE_PARTITION: &str = "x-source-partition";
    pub const SOURCE_OFFSET: &str = "x-source-offset";
    pub const SOURCE_TIMESTAMP: &str = "x-source-timestamp";
    pub const ATTEMPT: &str = "x-attempt";
}

/// What a retry record carries beside the original record's headers (and
/// the dead letter's `x-source-*` and `x-attempt`).
pub mod retry {
    /// The role of the input topic the event came from: `user-events` or `page-views`.
    pub const INPUT: &str = "x-input";
    /// The one metric the event is to be applied to.
    pub const METRIC: &str = "x-retry-metric";
    /// Milliseconds since the epoch before which the retry is not tried.
    pub const NOT_BEFORE: &str = "x-not-before";
}

/// Headers arus sets on retry and dead-letter records.
const OWN: [&str; 10] = [
    dead_letter::ERROR_CLASS,
    dead_letter::ERROR_MESSAGE,
    dead_letter::SOURCE_TOPIC,
    dead_letter::SOURCE_PARTITION,
    dead_letter::SOURCE_OFFSET,
    dead_letter::SOURCE_TIMESTAMP,
    dead_letter::ATTEMPT,
    retry::INPUT,
    retry::METRIC,
    retry::NOT_BEFORE,
];

/// Whether header `name` is one of arus's own (not the client's).
pub fn is_own(name: &str) -> bool {
    OWN.contains(&name)
}
