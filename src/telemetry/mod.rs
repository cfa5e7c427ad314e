//! Logs and traces.
//!
//! Logs: `tracing` to stderr, pretty or JSON lines (`telemetry.log_format`),
//! levels from `RUST_LOG` (default `info`). A JSON line inside a traced span
//! carries its `trace_id` and `span_id`.
//!
//! Traces (OpenTelemetry), when an OTLP endpoint is configured:
//!
//! ```text
//! HTTP request span (continues an incoming traceparent)
//!   └─ "<topic> publish" span ──traceparent header──▶ Kafka record
//!        └─ "<topic> process" span (consumer driver, parent from the header)
//!             └─ "apply <metric>" span per aggregator shard that applies it
//! "changelog commit" span, linked to the process spans of the records it commits
//! ```
//!
//! Spans are exported in batches from the SDK's own thread, so export never
//! blocks the data path; a full queue drops spans rather than wait. With no
//! endpoint configured nothing is traced: the per-record spans are not even
//! created ([`tracing_on`]). Spans still queued are flushed at shutdown.

mod http_client;
pub mod propagation;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use arus_config::TelemetrySettings;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{DynFilterFn, EnvFilter, FilterExt as _, LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer, Registry};

static TRACING: AtomicBool = AtomicBool::new(false);
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Whether spans are exported: the per-record spans are made only then.
pub fn tracing_on() -> bool {
    TRACING.load(Ordering::Relaxed)
}

/// The levels: `RUST_LOG`, else [`DEFAULT_LOG_FILTER`]. A `RUST_LOG` that
/// is set but empty (`RUST_LOG=` in a unit file or a shell) counts as
/// unset: read as a filter it has no directives and shows errors only, so
/// the embedded broker's warning, among others, would never show. One
/// that does not parse is said so on stderr, and the default applies.
fn log_filter() -> EnvFilter {
    filter_from(std::env::var("RUST_LOG").ok().as_deref())
}

fn filter_from(rust_log: Option<&str>) -> EnvFilter {
    match rust_log.map(str::trim).filter(|v| !v.is_empty()) {
        None => EnvFilter::new(DEFAULT_LOG_FILTER),
        Some(value) => EnvFilter::try_new(value).unwrap_or_else(|error| {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("RUST_LOG={value:?} is not a log filter ({error}); logging at {DEFAULT_LOG_FILTER}");
            }
            EnvFilter::new(DEFAULT_LOG_FILTER)
        }),
    }
}

/// Everything at info and above, arus's own lines and its libraries'
/// (librdkafka's own log lines come through rdkafka at their level).
pub const DEFAULT_LOG_FILTER: &str = "info";

/// actix-http logs every connection that sends something that is not HTTP
/// (a malformed request line, a TLS ClientHello) as an ERROR from its
/// dispatcher, one line per connection: anyone could fill the log. Such
/// lines pass at most once per [`STREAM_ERROR_EVERY`]; `/metrics` counts
/// those held back.
const STREAM_ERROR_TARGET: &str = "actix_http::h1::dispatcher";
const STREAM_ERROR_EVERY: Duration = Duration::from_secs(60);

static STREAM_ERRORS_HELD: AtomicU64 = AtomicU64::new(0);
static STREAM_ERROR_LAST: Mutex<Option<Instant>> = Mutex::new(None);

/// The filter that holds back the dispatcher's flood. Its callsites alone
/// are asked at each event (the others are decided once, when they
/// register, at no cost per event). It is combined with the level filter
/// into one filter (`and`), never stacked as a second one: two per-layer
/// filters that answer a callsite differently (the level filter "never",
/// this one "always") make it "sometimes", asked at every event, and
/// rdkafka logs a `trace!` as each message is dropped.
fn flood_guard<S>() -> impl tracing_subscriber::layer::Filter<S> {
    DynFilterFn::new(
        |meta: &tracing::Metadata<'_>, _: &tracing_subscriber::layer::Context<'_, S>| {
            not_a_flood(meta)
        },
    )
    .with_callsite_filter(|meta| {
        if meta.target() == STREAM_ERROR_TARGET {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::always()
        }
    })
}

/// Whether a log line may pass: all do but the dispatcher's errors, which
/// pass once a minute.
fn not_a_flood(meta: &tracing::Metadata<'_>) -> bool {
    if !meta.is_event() || meta.target() != STREAM_ERROR_TARGET {
        return true;
    }
    let mut last = STREAM_ERROR_LAST.lock().unwrap_or_else(|p| p.into_inner());
    let pass = once_per_period(&mut last, Instant::now());
    if !pass {
        STREAM_ERRORS_HELD.fetch_add(1, Ordering::Relaxed);
    }
    pass
}

/// Whether a line at `now` passes when the last one passed at `last`.
fn once_per_period(last: &mut Option<Instant>, now: Instant) -> bool {
    if last.is_some_and(|at| now.duration_since(at) < STREAM_ERROR_EVERY) {
        return false;
    }
    *last = Some(now);
    true
}

/// Dispatcher errors held back since start (`/metrics`).
pub fn stream_errors_held() -> u64 {
    STREAM_ERRORS_HELD.load(Ordering::Relaxed)
}

fn pretty_logs() -> Box<dyn Layer<Registry> + Send + Sync> {
    tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_filter(log_filter().and(flood_guard()))
        .boxed()
}

/// Pretty logs only, no traces: what the in-process tests use.
pub fn init() {
    // A second init (tests) is not an error worth failing over.
    let _ = tracing_subscriber::registry()
        .with(pretty_logs())
        .try_init();
}

/// Logs and, when an endpoint is configured, trace export, as `settings`
/// and the standard `OTEL_*` variables say.
pub fn init_from(settings: &TelemetrySettings, instance_id: &str) -> anyhow::Result<()> {
    let logs: Box<dyn Layer<Registry> + Send + Sync> = if settings.log_format == "json" {
        tracing_subscriber::fmt::layer()
            .event_format(JsonLines)
            .with_filter(log_filter().and(flood_guard()))
            .boxed()
    } else {
        pretty_logs()
    };
    let traces = match tracer_provider(settings, instance_id)? {
        Some(provider) => {
            let tracer = provider.tracer("arus");
            let _ = PROVIDER.set(provider);
            opentelemetry::global::set_text_map_propagator(
                opentelemetry_sdk::propagation::TraceContextPropagator::new(),
            );
            TRACING.store(true, Ordering::Relaxed);
            // arus's own spans, whatever RUST_LOG says about log lines.
            let spans = Targets::new()
                .with_target("arus", LevelFilter::INFO)
                .with_target("arus_actors", LevelFilter::INFO);
            Some(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(spans),
            )
        }
        None => None,
    };
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .context("installing the log subscriber")?;
    if tracing_on() {
        tracing::info!("exporting traces over OTLP");
    }
    Ok(())
}

/// Where spans go, if anywhere: the configured URL, else the standard
/// variables (which the exporter reads itself).
fn endpoint_configured(settings: &TelemetrySettings) -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
        || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.eq_ignore_ascii_case("none"));
    !disabled
        && (!settings.otlp_endpoint.is_empty()
            || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            || set("OTEL_EXPORTER_OTLP_ENDPOINT"))
}

fn tracer_provider(
    settings: &TelemetrySettings,
    instance_id: &str,
) -> anyhow::Result<Option<SdkTracerProvider>> {
    if !endpoint_configured(settings) {
        return Ok(None);
    }
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Ok(protocol) = std::env::var(name) {
            anyhow::ensure!(
                protocol == "http/protobuf",
                "{name}={protocol}: this build exports OTLP over http/protobuf only"
            );
        }
    }
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_http_client(http_client::PlainHttpClient {
            timeout: Duration::from_secs(10),
        });
    if !settings.otlp_endpoint.is_empty() {
        exporter = exporter.with_endpoint(settings.otlp_endpoint.clone());
    }
    let exporter = exporter
        .build()
        .context("building the OTLP span exporter")?;
    let mut resource = Resource::builder().with_attribute(KeyValue::new(
        "service.instance.id",
        instance_id.to_string(),
    ));
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(settings.service_name.clone());
    }
    let mut provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build());
    if std::env::var("OTEL_TRACES_SAMPLER").is_err() {
        provider = provider.with_sampler(Sampler::ParentBased(Box::new(
            Sampler::TraceIdRatioBased(settings.sampling_ratio),
        )));
    }
    Ok(Some(provider.build()))
}

/// Exports the spans still queued; at shutdown.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        if let Err(error) = provider.shutdown() {
            eprintln!("arus: flushing spans at shutdown failed: {error}");
        }
    }
}

/// JSON log lines: time, level, target, message and fields, the current
/// span's name and, inside a traced span, its trace and span ids.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut line = serde_json::Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        event.record(&mut JsonFields(&mut line));
        if let Some(span) = ctx.lookup_current() {
            line.insert("span".into(), span.name().into());
            for s in span.scope() {
                let extensions = s.extensions();
                let ids = extensions
                    .get::<tracing_opentelemetry::OtelData>()
                    .and_then(|d| Some((d.trace_id()?, d.span_id()?)));
                if let Some((trace, span)) = ids {
                    line.insert("trace_id".into(), trace.to_string().into());
                    line.insert("span_id".into(), span.to_string().into());
                    break;
                }
            }
        }
        writeln!(writer, "{}", serde_json::Value::Object(line))
    }
}

struct JsonFields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for JsonFields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn json_lines_carry_the_trace_and_span_ids_of_the_traced_span_they_are_in() {
        let provider = SdkTracerProvider::builder().build();
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(JsonLines)
                    .with_writer(buffer.clone()),
            );
        let (trace_id, span_id) = tracing::subscriber::with_default(subscriber, || {
            tracing::info!(outside = true, "before any span");
            let span = tracing::info_span!("work");
            let _entered = span.enter();
            tracing::info!(records = 3_u64, "inside");
            let sc = propagation::span_context(&span);
            (sc.trace_id().to_string(), sc.span_id().to_string())
        });
        let text = String::from_utf8(buffer.0.lock().expect("buffer").clone()).expect("utf-8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["message"], "before any span");
        assert_eq!(lines[0]["outside"], true);
        assert!(lines[0].get("trace_id").is_none());
        assert_eq!(lines[1]["message"], "inside");
        assert_eq!(lines[1]["records"], 3);
        assert_eq!(lines[1]["level"], "INFO");
        assert_eq!(lines[1]["span"], "work");
        assert_eq!(lines[1]["trace_id"], trace_id.as_str());
        assert_eq!(lines[1]["span_id"], span_id.as_str());
        assert_eq!(trace_id.len(), 32);
    }

    #[test]
    fn an_empty_rust_log_is_the_default_and_not_errors_only() {
        let level = |v: Option<&str>| filter_from(v).max_level_hint();
        assert_eq!(level(None), Some(LevelFilter::INFO));
        assert_eq!(level(Some("")), Some(LevelFilter::INFO));
        assert_eq!(level(Some("  ")), Some(LevelFilter::INFO));
        assert_eq!(level(Some("debug")), Some(LevelFilter::DEBUG));
        // What an empty filter would have been: errors only.
        assert_eq!(
            EnvFilter::new("").max_level_hint(),
            Some(LevelFilter::ERROR)
        );
    }

    #[test]
    fn dispatcher_errors_pass_once_a_minute() {
        let start = Instant::now();
        let mut last = None;
        let passed: Vec<bool> = [0, 1, 30, 59, 60, 61, 119, 120]
            .iter()
            .map(|s| once_per_period(&mut last, start + Duration::from_secs(*s)))
            .collect();
        assert_eq!(
            passed,
            vec![true, false, false, false, true, false, false, true]
        );
    }

    #[test]
    fn a_flood_of_dispatcher_errors_leaves_one_line() {
        use std::sync::atomic::AtomicUsize;
        use std::sync::Arc;
        struct Count(Arc<AtomicUsize>);
        impl<S: Subscriber> Layer<S> for Count {
            fn on_event(&self, _: &Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let seen = Arc::new(AtomicUsize::new(0));
        let subscriber = tracing_subscriber::registry()
            .with(Count(Arc::clone(&seen)).with_filter(flood_guard()));
        let held = stream_errors_held();
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..20 {
                tracing::error!(target: "actix_http::h1::dispatcher", "stream error: request parse error");
            }
            for _ in 0..3 {
                tracing::error!("an error of arus's own");
            }
        });
        assert_eq!(seen.load(Ordering::SeqCst), 1 + 3);
        assert_eq!(stream_errors_held() - held, 19);
    }
}
