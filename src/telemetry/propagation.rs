//! W3C trace context (`traceparent`, `tracestate`) into and out of HTTP
//! request headers and Kafka record headers.

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt as _};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The headers that carry `span`'s context to whoever reads the record.
pub fn headers_of(span: &tracing::Span) -> Vec<(String, String)> {
    let mut out = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut out);
    let mut out: Vec<(String, String)> = out.into_iter().collect();
    out.sort();
    out
}

/// Makes `span` continue the trace the headers carry, if they carry one.
pub fn continue_trace(span: &tracing::Span, headers: &dyn Extractor) {
    let parent = TraceContextPropagator::new().extract(headers);
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// `span`'s own context, for links.
pub fn span_context(span: &tracing::Span) -> SpanContext {
    span.context().span().span_context().clone()
}

/// An empty context: a root span.
pub fn none() -> Context {
    Context::new()
}

/// An HTTP request's headers.
pub struct HttpHeaders<'a>(pub &'a actix_web::http::header::HeaderMap);

impl Extractor for HttpHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// A Kafka record's headers.
pub struct RecordHeaders<'a>(pub &'a [(String, Option<Vec<u8>>)]);

impl Extractor for RecordHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| std::str::from_utf8(v.as_deref()?).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_is_read_from_record_headers() {
        let headers = vec![
            ("schema-version".to_string(), Some(b"1".to_vec())),
            (
                "traceparent".to_string(),
                Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_vec()),
            ),
        ];
        let cx = TraceContextPropagator::new().extract(&RecordHeaders(&headers));
        let span = cx.span();
        let sc = span.span_context();
        assert!(sc.is_valid());
        assert!(sc.is_sampled());
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        let none: Vec<(String, Option<Vec<u8>>)> = vec![("traceparent".into(), None)];
        let cx = TraceContextPropagator::new().extract(&RecordHeaders(&none));
        assert!(!cx.span().span_context().is_valid());
    }
}
