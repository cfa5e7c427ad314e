//! `GET /metrics`: Prometheus text format (version 0.0.4) of what this
//! instance counts.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};
use arus_actors::{ConsumerStats, HistogramSnapshot};

use super::AppState;
use crate::lag::{LagView, PartitionLag};

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// One sample per hop, labelled by metric and shard.
fn labelled(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl Iterator<Item = (arus_actors::MetricKind, usize, u64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (metric, shard, value) in samples {
        let _ = writeln!(
            out,
            "{name}{{metric=\"{metric}\",shard=\"{shard}\"}} {value}"
        );
    }
}

/// One histogram family: HELP and TYPE, then for each series (its labels
/// written as `key="value",`) the buckets, `+Inf`, sum and count.
fn histograms<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (String, &'a HistogramSnapshot)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (labels, h) in series {
        for (bound, n) in &h.cumulative {
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {}", h.count);
        let bare = labels.trim_end_matches(',');
        let labels = if bare.is_empty() {
            String::new()
        } else {
            format!("{{{bare}}}")
        };
        let _ = writeln!(out, "{name}_sum{labels} {}", h.sum_seconds);
        let _ = writeln!(out, "{name}_count{labels} {}", h.count);
    }
}

fn latency_histograms(out: &mut String, state: &AppState) {
    let single = [
        (
            "arus_produce_acknowledged_seconds",
            "Time from handing an ingested record to the producer to Kafka's acknowledgement.",
            state.producer.acknowledged_seconds.snapshot(),
        ),
        (
            "arus_commit_seconds",
            "Time one commit's transaction (state, offsets, commit) took.",
            state.stats.commit_seconds.snapshot(),
        ),
        (
            "arus_batch_process_seconds",
            "Time the partition consumers took with one poll's records.",
            state.stats.batch_seconds.snapshot(),
        ),
    ];
    for (name, help, h) in &single {
        histograms(out, name, help, [(String::new(), h)]);
    }
    let requests = state.requests.snapshot();
    histograms(
        out,
        "arus_http_request_duration_seconds",
        "HTTP requests by route pattern, method and status, and how long they took.",
        requests.iter().map(|((route, method, status), h)| {
            (
                format!(
                    "route=\"{}\",method=\"{method}\",status=\"{status}\",",
                    label_value(route)
                ),
                h,
            )
        }),
    );
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The lag monitor's latest reading of the whole group, per partition, and
/// its alert counters.
fn lag_samples(out: &mut String, lag: &LagView) {
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
        metric(out, name, "counter", help, value.load(Ordering::Relaxed));
    }
    let Some(snapshot) = lag.latest() else {
        return;
    };
    type Value = fn(&PartitionLag) -> String;
    let series: [(&str, &str, Value); 2] = [
        (
            "arus_consumer_group_lag_records",
            "Records of each input partition the group has not committed.",
            |p| p.offsets.lag.to_string(),
        ),
        (
            "arus_consumer_group_lag_seconds",
            "Age of the first record of each input partition the group has not committed.",
            |p| p.lag_seconds.to_string(),
        ),
    ];
    for (name, help, value) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for p in &snapshot.partitions {
            let _ = writeln!(
                out,
                "{name}{{group=\"{}\",topic=\"{}\",partition=\"{}\"}} {}",
                label_value(&snapshot.group),
                p.offsets.topic,
                p.offsets.partition,
                value(p)
            );
        }
    }
}

pub async fn scrape(state: web::Data<AppState>) -> HttpResponse {
    let s = &state.stats;
    let get = ConsumerStats::get;
    let mut out = String::with_capacity(2048);
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
            "arus_records_consumed_total",
            "Input records this instance polled.",
            get(&s.records_consumed),
        ),
        (
            "arus_records_invalid_total",
            "Input records that could not be decoded or validated.",
            get(&s.records_invalid),
        ),
        (
            "arus_dead_letters_total",
            "Records this instance sent to the dead-letter topic.",
            get(&s.dead_letters),
        ),
        (
            "arus_duplicates_dropped_total",
            "Client retries dropped by eventId.",
            get(&s.duplicates_dropped),
        ),
        (
            "arus_retries_scheduled_total",
            "Event hops (one per event and metric) sent to the retry topic.",
            get(&s.retries_scheduled),
        ),
        (
            "arus_retries_applied_total",
            "Retried event hops applied.",
            get(&s.retries_applied),
        ),
        (
            "arus_retries_exhausted_total",
            "Retried events whose attempts ran out (sent to the dead-letter topic).",
            get(&s.retries_exhausted),
        ),
        (
            "arus_events_applied_total",
            "Events the aggregators applied.",
            get(&s.events_applied),
        ),
        (
            "arus_replayed_hops_skipped_total",
            "Event hops (one per event and metric) skipped because the state already included them (replays).",
            get(&s.replayed_hops_skipped),
        ),
        (
            "arus_transactions_committed_total",
            "Transactions of state and offsets committed.",
            get(&s.commits),
        ),
        (
            "arus_rollbacks_total",
            "Aborted transactions rolled back to the last commit.",
            get(&s.rollbacks),
        ),
        (
            "arus_actor_restarts_total",
            "Aggregator shards and partition consumers that stopped and were restarted by their supervisor (each rolls back to the last commit).",
            state.router.restarts().total(),
        ),
        (
            "arus_producer_recreated_total",
            "Times the fenced transactional producer was recreated.",
            get(&s.producer_recreated),
        ),
        (
            "arus_rebalances_total",
            "Rebalance callbacks (assignments and revocations).",
            get(&s.rebalances),
        ),
    ];
    for (name, help, value) in counters {
        metric(&mut out, name, "counter", help, value);
    }
    metric(
        &mut out,
        "arus_assigned_partitions",
        "gauge",
        "Input partitions this instance holds.",
        state.assignment.partitions().len(),
    );
    metric(
        &mut out,
        "arus_read_model_lag_records",
        "gauge",
        "Changelog records not yet in the read model.",
        state.read_model.lag(),
    );
    metric(
        &mut out,
        "arus_read_model_updates_total",
        "counter",
        "Changelog entries applied to the read model.",
        state.read_model.updates_applied(),
    );
    metric(
        &mut out,
        "arus_ready",
        "gauge",
        "1 when the instance is ready for traffic.",
        u8::from(state.health.ready()),
    );
    let breakers = state.router.breakers();
    labelled(
        &mut out,
        "arus_breaker_state",
        "gauge",
        "Circuit breaker of each hop: 0 closed, 1 open, 2 half open.",
        breakers
            .iter()
            .map(|b| (b.metric, b.shard, u64::from(b.state))),
    );
    labelled(
        &mut out,
        "arus_breaker_opened_total",
        "counter",
        "Times each hop's circuit breaker opened.",
        breakers.iter().map(|b| (b.metric, b.shard, b.times_opened)),
    );
    labelled(
        &mut out,
        "arus_shard_mailbox_depth",
        "gauge",
        "Apply messages queued at or being applied by each aggregator shard.",
        breakers.iter().map(|b| (b.metric, b.shard, b.in_flight)),
    );
    metric(
        &mut out,
        "arus_consumer_paused",
        "gauge",
        "1 while this instance's consumption is paused (POST /v1/consumer/pause).",
        u8::from(state.consumption.paused()),
    );
    lag_samples(&mut out, &state.lag);
    latency_histograms(&mut out, &state);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out)
}

#[cfg(test)]
mod tests {
    use super::label_value;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value("plain-group"), "plain-group");
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
