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

/// The exit status after a panic (EX_SOFTWARE): an internal error.
pub const PANIC_EXIT_CODE: i32 = 70;

/// Makes any panic, on any thread, end the process with
/// [`PANIC_EXIT_CODE`]. actix does not restart an actor that panicked (its
/// arbiter thread just ends), so a half-alive process would stop consuming
/// while looking alive; an exit lets the orchestrator restart it, and the
/// restart resumes from the last commit, exactly once.
pub fn exit_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        let thread = std::thread::current();
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            panic = %info,
            exit_code = PANIC_EXIT_CODE,
            "panic: exiting"
        );
        std::process::exit(PANIC_EXIT_CODE);
    }));
}
