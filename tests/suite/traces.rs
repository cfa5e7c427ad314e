//! One event's trace, end to end, as a real OTLP receiver gets it: arus runs
//! as a process exporting over OTLP/HTTP to rotel (a collector, installed by
//! scripts/otlp-receiver.sh) on loopback, which prints every span it
//! receives. One event sent with a known `traceparent` must give one trace
//! holding the HTTP span, the produce span, the consume span and the apply
//! spans, each the child of the one before, and a commit span linking the
//! consume span.

use crate::helpers;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use helpers::process::{free_port, wait_listening, Process};
use helpers::workload::WAIT;
use helpers::{random_prefix, test_brokers, TestApp};
use serde_json::json;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

struct Receiver {
    child: Child,
    output: std::path::PathBuf,
    port: u16,
}

impl Receiver {
    fn start() -> Self {
        let bin = std::env::var("ARUS_TEST_OTLP_RECEIVER").unwrap_or_else(|_| {
            panic!(
                "ARUS_TEST_OTLP_RECEIVER is not set: run the tests with scripts/test.sh, \
                 which installs the OTLP receiver"
            )
        });
        let (port, grpc) = (free_port(), free_port());
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-logs");
        std::fs::create_dir_all(&dir).expect("log dir");
        let output = dir.join(format!("otlp-receiver-{port}.log"));
        let file = std::fs::File::create(&output).expect("receiver output");
        let child = Command::new(bin)
            .args([
                "start",
                "--otlp-http-endpoint",
                &format!("127.0.0.1:{port}"),
                "--otlp-grpc-endpoint",
                &format!("127.0.0.1:{grpc}"),
                "--exporter",
                "blackhole",
                "--debug-log",
                "traces",
                "--debug-log-verbosity",
                "detailed",
                "--log-file",
                &dir.join(format!("otlp-receiver-{port}.own.log"))
                    .to_string_lossy(),
            ])
            .env("NO_COLOR", "1")
            .stdout(Stdio::from(file.try_clone().expect("output")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("the OTLP receiver starts");
        wait_listening(port, "the OTLP receiver");
        Self {
            child,
            output,
            port,
        }
    }

    /// The spans printed so far.
    fn spans(&self) -> Vec<Span> {
        let text = std::fs::read_to_string(&self.output).expect("receiver output");
        parse_spans(&strip_colours(&text))
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn strip_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[derive(Debug, Default, Clone)]
struct Span {
    trace: String,
    parent: String,
    id: String,
    name: String,
    kind: String,
    attributes: HashMap<String, String>,
    links: Vec<(String, String)>,
}

/// Spans as the receiver prints them: a `Span #n` block of `Key : value`
/// lines, then `-> key: Type(value)` attributes and `SpanLink` blocks.
fn parse_spans(text: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    for block in text.split("Span #").skip(1) {
        let mut span = Span::default();
        let mut in_link: Option<(String, String)> = None;
        for line in block.lines() {
            let line = line.trim();
            if let Some((key, value)) = line.split_once(" : ").or_else(|| {
                line.split_once(':')
                    .filter(|(k, _)| !k.starts_with("->") && k.len() > 10)
            }) {
                let value = value.trim().to_string();
                match key.trim() {
                    "Trace ID" => span.trace = value,
                    "Parent ID" => span.parent = value,
                    "ID" => span.id = value,
                    "Name" => span.name = value,
                    "Kind" => span.kind = value,
                    _ => {}
                }
            } else if line.starts_with("SpanLink") {
                if let Some(link) = in_link.take() {
                    span.links.push(link);
                }
                in_link = Some(Default::default());
            } else if let Some(attr) = line.strip_prefix("-> ") {
                let Some((key, value)) = attr.split_once(": ") else {
                    continue;
                };
                match (&mut in_link, key) {
                    (Some(link), "Trace ID") => link.0 = value.to_string(),
                    (Some(link), "ID") => link.1 = value.to_string(),
                    (None, _) => {
                        span.attributes.insert(key.to_string(), value.to_string());
                    }
                    _ => {}
                }
            }
        }
        if let Some(link) = in_link.take() {
            span.links.push(link);
        }
        spans.push(span);
    }
    spans
}

#[actix_web::test]
async fn one_event_is_one_trace_from_http_through_kafka_to_the_aggregators() {
    let receiver = Receiver::start();
    let brokers = test_brokers();
    let prefix = random_prefix();
    let endpoint = format!("http://127.0.0.1:{}", receiver.port);
    let instance = format!("{prefix}traced");
    let arus = Process::start(
        &brokers,
        &prefix,
        &instance,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            ("ARUS__TELEMETRY__LOG_FORMAT", "json"),
        ],
    );
    let app = TestApp::remote(arus.address.clone(), &brokers, &prefix).await;

    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let (status, written) = app
        .post_with(
            "/events/user-event",
            &json!({"userId": "traced-user", "eventType": "login"}),
            ("traceparent", traceparent.as_str()),
        )
        .await;
    assert_eq!(status, 201, "{written}");
    app.wait_for("/events/analytics/event-counts", WAIT, |b| {
        b["total"] == json!(1)
    })
    .await;
    // SIGTERM flushes the spans still queued.
    let log_path = arus.log.clone();
    assert!(arus.terminate().success());

    let start = Instant::now();
    let spans = loop {
        let spans = receiver.spans();
        let commit_seen = spans
            .iter()
            .any(|s| s.links.iter().any(|(trace, _)| trace == TRACE_ID));
        if commit_seen
            && spans
                .iter()
                .filter(|s| s.name.starts_with("apply "))
                .count()
                >= 3
        {
            break spans;
        }
        assert!(
            start.elapsed() < WAIT,
            "the receiver did not get the whole trace; spans: {spans:#?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    };
    let trace: Vec<&Span> = spans.iter().filter(|s| s.trace == TRACE_ID).collect();
    let by_id: HashMap<&str, &Span> = trace.iter().map(|s| (s.id.as_str(), *s)).collect();
    let one = |name: &str| -> &Span {
        let found: Vec<&&Span> = trace.iter().filter(|s| s.name == name).collect();
        assert_eq!(
            found.len(),
            1,
            "spans named {name:?} in the trace: {trace:#?}"
        );
        found[0]
    };
    // Whether `ancestor` is `span`'s parent, or its parent's, ...
    let descends = |span: &Span, ancestor: &Span| {
        let mut at = span;
        for _ in 0..10 {
            if at.parent == ancestor.id {
                return true;
            }
            match by_id.get(at.parent.as_str()) {
                Some(parent) => at = parent,
                None => return false,
            }
        }
        false
    };

    let http = one("POST /events/user-event");
    assert_eq!(
        http.parent, CALLER_SPAN,
        "the caller's traceparent is honoured"
    );
    assert_eq!(http.kind, "SPAN_KIND_SERVER");
    assert_eq!(
        http.attributes
            .get("http.response.status_code")
            .map(String::as_str),
        Some("Str(201)")
    );

    let topic = format!("{prefix}user-events");
    let publish = one(&format!("{topic} publish"));
    assert_eq!(publish.kind, "SPAN_KIND_PRODUCER");
    assert!(descends(publish, http), "produce span under the HTTP span");
    assert_eq!(
        publish.attributes.get("messaging.kafka.offset"),
        Some(&format!("Int({})", written["offset"]))
    );

    let process = one(&format!("{topic} process"));
    assert_eq!(process.kind, "SPAN_KIND_CONSUMER");
    assert_eq!(
        process.parent, publish.id,
        "the consumer continues the record's trace"
    );

    let mut applied: Vec<&str> = trace
        .iter()
        .filter(|s| s.name.starts_with("apply "))
        .map(|s| {
            assert_eq!(s.parent, process.id, "{s:#?}");
            s.name.as_str()
        })
        .collect();
    applied.sort_unstable();
    // A user event counts in three metrics; top pages takes page views only.
    assert_eq!(
        applied,
        ["apply event-counts", "apply sessions", "apply users"]
    );

    let commits: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "changelog commit")
        .filter(|s| {
            s.links
                .contains(&(TRACE_ID.to_string(), process.id.clone()))
        })
        .collect();
    assert_eq!(
        commits.len(),
        1,
        "one commit links the consume span: {spans:#?}"
    );

    // Log lines are JSON objects.
    let log = std::fs::read_to_string(log_path).expect("arus log");
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with('{')).collect();
    assert!(lines.len() > 3, "{log}");
    for line in lines {
        let parsed: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
        assert!(
            parsed["level"].is_string() && parsed["timestamp"].is_string(),
            "{line}"
        );
    }
}
