//! The lag monitor: every `lag.interval_ms` an actor reads the whole
//! group's lag (every input partition, not only this instance's), keeps the
//! latest reading for `GET /v1/lag` and `/metrics`, logs when a partition
//! crosses `lag.alert_threshold`, and tells a webhook: one `firing` when
//! some partition is over, one `resolved` when all are back under.
//!
//! ```text
//! tick ─▶ OffsetReader::read (blocking pool) ─▶ snapshot (+ age of the first unread record)
//!                                              └─▶ alerting: due? ─▶ breaker permits? ─▶ POST webhook
//! ```
//!
//! Only the instance that holds partition 0 of the user-events topic sends,
//! so a group of many pods sends one alert. The webhook sits behind a
//! circuit breaker, and at most one call is in flight: a receiver that is
//! down gets one call per interval at most, then none while the breaker is
//! open; the alert stays due and goes out once a call succeeds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::prelude::*;
use arus_actors::aggregate::breaker::{Breaker, Permit, TokioClock};
use arus_actors::model::source::InputTopic;
use arus_config::Settings;
use serde::Serialize;
use serde_json::json;
use tracing::{info, warn};

use super::alert::{AlertStatus, Alerting};
use super::history::OffsetHistory;
use crate::kafka::consumer::driver::Assignment;
use crate::kafka::offsets::{OffsetReader, PartitionOffsets};

/// One partition's lag: in records, and in seconds (how long ago the first
/// record the group has not read was appended, estimated from when the
/// monitor saw the partition's end offsets move).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionLag {
    #[serde(flatten)]
    pub offsets: PartitionOffsets,
    pub lag_seconds: f64,
}

/// One reading of the group's lag.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LagSnapshot {
    pub group: String,
    pub threshold: i64,
    pub total_lag: i64,
    /// Partitions whose lag is above the threshold.
    pub over_threshold: usize,
    /// Whether the webhook was told of high lag and not yet of its end.
    pub alert_firing: bool,
    pub measured_at: String,
    pub partitions: Vec<PartitionLag>,
}

/// What the monitor shares with the HTTP handlers.
#[derive(Default)]
pub struct LagView {
    latest: RwLock<Option<LagSnapshot>>,
    pub alerts_sent: AtomicU64,
    pub resolves_sent: AtomicU64,
    pub webhook_failures: AtomicU64,
    pub read_failures: AtomicU64,
}

impl LagView {
    /// The latest reading; `None` before the first one.
    pub fn latest(&self) -> Option<LagSnapshot> {
        self.latest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn publish(&self, snapshot: LagSnapshot) {
        *self.latest.write().unwrap_or_else(|p| p.into_inner()) = Some(snapshot);
    }
}

struct Webhook {
    url: String,
    timeout: Duration,
    client: awc::Client,
    breaker: Breaker<TokioClock>,
    in_flight: bool,
}

pub struct LagMonitor {
    reader: Arc<OffsetReader>,
    view: Arc<LagView>,
    assignment: Assignment,
    instance: String,
    threshold: i64,
    interval: Duration,
    histories: HashMap<(String, i32), OffsetHistory>,
    alerting: Alerting,
    over: bool,
    webhook: Option<Webhook>,
    reading: bool,
}

impl LagMonitor {
    /// Must be called on the arbiter the monitor is to run on (the webhook
    /// client belongs to its thread).
    pub fn new(
        settings: &Settings,
        reader: OffsetReader,
        view: Arc<LagView>,
        assignment: Assignment,
    ) -> Self {
        let lag = &settings.lag;
        let webhook = (!lag.webhook_url.is_empty()).then(|| Webhook {
            url: lag.webhook_url.clone(),
            timeout: Duration::from_millis(lag.webhook_timeout_ms),
            client: awc::Client::default(),
            breaker: Breaker::new(
                "lag-webhook",
                arus_actors::aggregate::breaker::BreakerConfig {
                    failure_threshold: lag.webhook_failure_threshold,
                    open_for: Duration::from_millis(lag.webhook_open_ms),
                },
                TokioClock,
            ),
            in_flight: false,
        });
        Self {
            reader: Arc::new(reader),
            view,
            assignment,
            instance: settings.instance_id.clone(),
            threshold: lag.alert_threshold,
            interval: Duration::from_millis(lag.interval_ms),
            histories: HashMap::new(),
            alerting: Alerting::default(),
            over: false,
            webhook,
            reading: false,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.reading {
            // The last read is still running (a slow broker): skip a beat.
            return;
        }
        self.reading = true;
        let reader = Arc::clone(&self.reader);
        let read = actix_web::rt::task::spawn_blocking(move || reader.read());
        ctx.spawn(read.into_actor(self).map(|result, act, ctx| {
            act.reading = false;
            match result {
                Ok(Ok(offsets)) => act.measured(offsets, ctx),
                Ok(Err(error)) => {
                    act.view.read_failures.fetch_add(1, Ordering::Relaxed);
                    warn!(error = %format!("{error:#}"), "cannot read the group's lag");
                }
                Err(error) => warn!(%error, "lag read task failed"),
            }
        }));
    }

    fn measured(&mut self, offsets: Vec<PartitionOffsets>, ctx: &mut Context<Self>) {
        let now = chrono::Utc::now();
        let now_ms = now.timestamp_millis();
        let partitions: Vec<PartitionLag> = offsets
            .into_iter()
            .map(|o| {
                let history = self
                    .histories
                    .entry((o.topic.clone(), o.partition))
                    .or_default();
                history.record(o.end, now_ms);
                let next = o.committed.map_or(o.start, |c| c.max(o.start));
                let age = if o.lag > 0 {
                    history.age_ms(next, now_ms)
                } else {
                    0
                };
                PartitionLag {
                    offsets: o,
                    lag_seconds: age as f64 / 1000.0,
                }
            })
            .collect();
        let over: Vec<&PartitionLag> = partitions
            .iter()
            .filter(|p| p.offsets.lag > self.threshold)
            .collect();
        let total_lag = partitions.iter().map(|p| p.offsets.lag).sum();
        if !over.is_empty() && !self.over {
            warn!(
                group = %self.reader.group(),
                threshold = self.threshold,
                partitions = ?over.iter().map(|p| format!("{}/{}={}", p.offsets.topic, p.offsets.partition, p.offsets.lag)).collect::<Vec<_>>(),
                "consumer lag above the threshold"
            );
        } else if over.is_empty() && self.over {
            info!(group = %self.reader.group(), total_lag, "consumer lag back under the threshold");
        }
        self.over = !over.is_empty();
        let leader = self.assignment.holds(InputTopic::UserEvents, 0);
        if !leader {
            self.alerting.forget();
        } else if let Some(status) = self.alerting.due(self.over) {
            let body = json!({
                "status": status,
                "alert": "ArusConsumerLagHigh",
                "group": self.reader.group(),
                "instance": self.instance,
                "threshold": self.threshold,
                "totalLag": total_lag,
                "partitions": over,
                "at": now.to_rfc3339(),
            });
            self.notify(status, body, ctx);
        }
        let over_threshold = over.len();
        self.view.publish(LagSnapshot {
            group: self.reader.group().to_string(),
            threshold: self.threshold,
            total_lag,
            over_threshold,
            alert_firing: self.alerting.firing(),
            measured_at: now.to_rfc3339(),
            partitions,
        });
    }

    fn notify(&mut self, status: AlertStatus, body: serde_json::Value, ctx: &mut Context<Self>) {
        let Some(webhook) = self.webhook.as_mut() else {
            return;
        };
        if webhook.in_flight {
            return;
        }
        if webhook.breaker.permit() == Permit::Refused {
            // The receiver failed too often: the alert stays due, untried.
            return;
        }
        webhook.in_flight = true;
        let request = webhook
            .client
            .post(&webhook.url)
            .timeout(webhook.timeout)
            .send_json(&body);
        let sent = async move { request.await.map(|response| response.status()) };
        ctx.spawn(sent.into_actor(self).map(move |result, act, _| {
            let Some(webhook) = act.webhook.as_mut() else {
                return;
            };
            webhook.in_flight = false;
            match result {
                Ok(code) if code.is_success() => {
                    webhook.breaker.success();
                    act.alerting.delivered(status);
                    let counter = match status {
                        AlertStatus::Firing => &act.view.alerts_sent,
                        AlertStatus::Resolved => &act.view.resolves_sent,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    info!(?status, "lag alert delivered to the webhook");
                }
                failed => {
                    webhook.breaker.failure();
                    act.view.webhook_failures.fetch_add(1, Ordering::Relaxed);
                    let reason = match failed {
                        Ok(code) => format!("answered {code}"),
                        Err(error) => error.to_string(),
                    };
                    warn!(?status, %reason, "lag alert not delivered; tried again next interval");
                }
            }
        }));
    }
}

impl Actor for LagMonitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.tick(ctx);
        ctx.run_interval(self.interval, Self::tick);
    }
}
