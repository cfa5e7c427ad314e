//! Logging setup: `tracing` with structured fields, filtered by `RUST_LOG`
//! (default `info`), JSON lines when `ARUS_LOG_FORMAT=json`.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,librdkafka=warn,rdkafka=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    // A second init (tests) is not an error worth failing over.
    let _ = builder.try_init();
}
