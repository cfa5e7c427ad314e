//! `GET /metrics`: Prometheus text format (version 0.0.4) of what this
//! instance counts, gathered by one registry of the `prometheus` crate and
//! encoded (names, label escaping, histograms) by it. The consumer's
//! counters and every latency histogram are the library's own types; the
//! values that live elsewhere (the read model, health, breakers, the lag
//! monitor's last reading) are read into families here at scrape time,
//! each declared once below.

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};
use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder as _, Registry, TextEncoder};

use super::AppState;
use crate::error::ApiError;
use crate::lag::LagView;

/// Families whose values are read from their owners when scraped.
struct Sampled {
    families: Vec<MetricFamily>,
    descs: Vec<Desc>,
}

impl Sampled {
    fn new() -> Self {
        Self {
            families: Vec::new(),
            descs: Vec::new(),
        }
    }

    /// A family of `kind` with one sample per `(labels, value)`.
    fn family<'a>(
        &mut self,
        name: &str,
        kind: MetricType,
        help: &str,
        samples: impl IntoIterator<Item = (Vec<(&'a str, String)>, f64)>,
    ) {
        let mut family = MetricFamily::default();
        family.set_name(name.to_string());
        family.set_help(help.to_string());
        family.set_field_type(kind);
        let mut label_names = Vec::new();
        for (labels, value) in samples {
            let mut metric = Metric::default();
            label_names = labels.iter().map(|(n, _)| n.to_string()).collect();
            let pairs: Vec<LabelPair> = labels
                .into_iter()
                .map(|(n, v)| {
                    let mut pair = LabelPair::default();
                    pair.set_name(n.to_string());
                    pair.set_value(v);
                    pair
                })
                .collect();
            metric.set_label(pairs);
            match kind {
                MetricType::COUNTER => {
                    let mut c = Counter::default();
                    c.set_value(value);
                    metric.set_counter(c);
                }
                _ => {
                    let mut g = Gauge::default();
                    g.set_value(value);
                    metric.set_gauge(g);
                }
            }
            family.mut_metric().push(metric);
        }
        if let Ok(desc) = Desc::new(
            name.to_string(),
            help.to_string(),
            label_names,
            Default::default(),
        ) {
            self.descs.push(desc);
        }
        self.families.push(family);
    }

    fn single(&mut self, name: &str, kind: MetricType, help: &str, value: f64) {
        self.family(name, kind, help, [(Vec::new(), value)]);
    }
}

impl Collector for Sampled {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.families.clone()
    }
}

const COUNTER: MetricType = MetricType::COUNTER;
const GAUGE: MetricType = MetricType::GAUGE;

fn sampled(state: &AppState) -> Sampled {
    let mut s = Sampled::new();
    let counters = [
        (
            "arus_events_ingested_total",
            "Events written to Kafka by this instance's ingest endpoints.",
            state.ingested.load(Ordering::Relaxed),
        ),
        (
            "arus_produce_failures_total",
            "Ingested records Kafka did not take or acknowledge in time (answered 503).",
            state.producer.failed.load(Ordering::Relaxed),
        ),
        (
            "arus_changelog_unreadable_records_total",
            "Changelog records the read model could not decode (each also makes the instance not ready).",
            state.health.unreadable_changelog_records(),
        ),
        (
            "arus_http_stream_errors_unlogged_total",
            "Malformed connections (not HTTP) whose error line was held back (one a minute is logged).",
            crate::telemetry::stream_errors_held(),
        ),
        (
            "arus_actor_restarts_total",
            "Aggregator shards and partition consumers that stopped and were restarted by their supervisor (each rolls back to the last commit).",
            state.router.restarts().total(),
        ),
        (
            "arus_read_model_updates_total",
            "Changelog entries applied to the read model.",
            state.read_model.updates_applied(),
        ),
    ];
    for (name, help, value) in counters {
        s.single(name, COUNTER, help, value as f64);
    }
    let gauges = [
        (
            "arus_assigned_partitions",
            "Input partitions this instance holds.",
            state.assignment.partitions().len() as f64,
        ),
        (
            "arus_read_model_lag_records",
            "Changelog records not yet in the read model.",
            state.read_model.lag() as f64,
        ),
        (
            "arus_ready",
            "1 when the instance is ready for traffic.",
            f64::from(u8::from(state.health.ready())),
        ),
        (
            "arus_consumer_paused",
            "1 while this instance's consumption is paused (POST /v1/consumer/pause).",
            f64::from(u8::from(state.consumption.paused())),
        ),
    ];
    for (name, help, value) in gauges {
        s.single(name, GAUGE, help, value);
    }
    let breakers = state.router.breakers();
    let per_hop = |value: fn(&arus_actors::BreakerView) -> u64| {
        breakers
            .iter()
            .map(move |b| {
                (
                    vec![
                        ("metric", b.metric.to_string()),
                        ("shard", b.shard.to_string()),
                    ],
                    value(b) as f64,
                )
            })
            .collect::<Vec<_>>()
    };
    s.family(
        "arus_breaker_state",
        GAUGE,
        "Circuit breaker of each hop: 0 closed, 1 open, 2 half open.",
        per_hop(|b| u64::from(b.state)),
    );
    s.family(
        "arus_breaker_opened_total",
        COUNTER,
        "Times each hop's circuit breaker opened.",
        per_hop(|b| b.times_opened),
    );
    s.family(
        "arus_shard_mailbox_depth",
        GAUGE,
        "Apply messages queued at or being applied by each aggregator shard.",
        per_hop(|b| b.in_flight),
    );
    let late = state.read_model.windows().late_events();
    if !late.is_empty() {
        let samples: Vec<_> = late
            .into_iter()
            .map(|(source, count)| {
                let topic = match source.topic {
                    arus_actors::model::source::InputTopic::PageViews => &state.page_topic,
                    _ => &state.user_topic,
                };
                (
                    vec![
                        ("topic", topic.clone()),
                        ("partition", source.partition.to_string()),
                    ],
                    count as f64,
                )
            })
            .collect();
        s.family(
            "arus_late_events_total",
            COUNTER,
            "Events of each input partition that arrived after their minute closed (watermark minus windows.grace_ms): in the all-time totals, in no time bucket. From the changelog: the same on every instance.",
            samples,
        );
    }
    lag_families(&mut s, &state.lag);
    s
}

/// The lag monitor's alert counters and its latest reading of the whole
/// group, per partition.
fn lag_families(s: &mut Sampled, lag: &LagView) {
    let counters = [
        (
            "arus_lag_alerts_sent_total",
            "Lag alerts (firing) delivered to the webhook.",
            &lag.alerts_sent,
        ),
        (
            "arus_lag_resolves_sent_total",
            "Lag alert resolves delivered to the webhook.",
            &lag.resolves_sent,
        ),
        (
            "arus_lag_webhook_failures_total",
            "Webhook calls that failed or were refused.",
            &lag.webhook_failures,
        ),
        (
            "arus_lag_read_failures_total",
            "Lag readings that failed (broker unreachable, timeouts).",
            &lag.read_failures,
        ),
    ];
    for (name, help, value) in counters {
        s.single(name, COUNTER, help, value.load(Ordering::Relaxed) as f64);
    }
    let Some(snapshot) = lag.latest() else {
        return;
    };
    let per_partition = |value: fn(&crate::lag::PartitionLag) -> f64| {
        snapshot
            .partitions
            .iter()
            .map(|p| {
                (
                    vec![
                        ("group", snapshot.group.clone()),
                        ("topic", p.offsets.topic.clone()),
                        ("partition", p.offsets.partition.to_string()),
                    ],
                    value(p),
                )
            })
            .collect::<Vec<_>>()
    };
    s.family(
        "arus_consumer_group_lag_records",
        GAUGE,
        "Records of each input partition the group has not committed.",
        per_partition(|p| p.offsets.lag as f64),
    );
    s.family(
        "arus_consumer_group_lag_seconds",
        GAUGE,
        "Age of the first record of each input partition the group has not committed.",
        per_partition(|p| p.lag_seconds),
    );
}

/// Everything this instance serves, in one registry.
fn registry(state: &AppState) -> Result<Registry, prometheus::Error> {
    let registry = Registry::new();
    for collector in state.stats.collectors() {
        registry.register(collector)?;
    }
    registry.register(state.producer.acknowledged_seconds.collector())?;
    registry.register(state.requests.collector())?;
    registry.register(Box::new(sampled(state)))?;
    Ok(registry)
}

#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String)))]
pub async fn scrape(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let failed = |e: prometheus::Error| ApiError::Internal(format!("cannot gather metrics: {e}"));
    let families = registry(&state).map_err(failed)?.gather();
    let mut out = Vec::with_capacity(8192);
    TextEncoder::new()
        .encode(&families, &mut out)
        .map_err(failed)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_families_are_encoded_by_the_library_with_labels_escaped() {
        let mut s = Sampled::new();
        s.family(
            "arus_consumer_group_lag_records",
            GAUGE,
            "Records behind.",
            [(vec![("group", "a\"b\\c\nd".to_string())], 7.0)],
        );
        s.single("arus_ready", GAUGE, "Ready.", 1.0);
        let registry = Registry::new();
        registry.register(Box::new(s)).expect("registered");
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .expect("encoded");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "# HELP arus_consumer_group_lag_records Records behind.\n\
             # TYPE arus_consumer_group_lag_records gauge\n\
             arus_consumer_group_lag_records{group=\"a\\\"b\\\\c\\nd\"} 7\n\
             # HELP arus_ready Ready.\n\
             # TYPE arus_ready gauge\n\
             arus_ready 1\n"
        );
    }
}
