//! What every handler may use.

use std::sync::Arc;

use arus_actors::{ConsumerStats, ReadModel, Router};

use super::{rate_limit, request_metrics};
use crate::health::Health;
use crate::kafka::consumer::driver::{Assignment, Consumption};
use crate::kafka::producer::EventProducer;

/// Everything a handler may use.
pub struct AppState {
    pub settings: Arc<arus_config::Settings>,
    pub brokers: String,
    pub instance_id: String,
    /// Partitions of the user-events topic (a user's partition number).
    pub user_partitions: i32,
    pub group_id: String,
    pub user_topic: String,
    pub page_topic: String,
    pub max_body_bytes: usize,
    pub max_batch_size: usize,
    /// The largest record the ingest producer takes (librdkafka's
    /// `message.max.bytes`, 1,000,000 unless set in `[kafka.client]`),
    /// read once at startup.
    pub max_record_bytes: usize,
    pub active_window_seconds: u64,
    pub top_pages_limit: usize,
    pub events_by_user_limit: usize,
    pub producer: Arc<EventProducer>,
    pub read_model: Arc<ReadModel>,
    pub stats: Arc<ConsumerStats>,
    pub health: Arc<Health>,
    pub assignment: Assignment,
    pub consumption: Consumption,
    pub router: Arc<Router>,
    pub lag: Arc<crate::lag::LagView>,
    pub requests: request_metrics::RequestMetrics,
    /// `None` when off.
    pub rate_limiter: Option<rate_limit::RateLimiter>,
    /// `http.trusted_proxies`, parsed.
    pub trusted_proxies: Vec<arus_config::IpRange>,
    /// Events this instance's ingest endpoints wrote (acknowledged by Kafka).
    pub ingested: std::sync::atomic::AtomicU64,
}

impl AppState {
    /// The ingest topic named `name` (full name), as the consumer knows it.
    pub fn input_topic(&self, name: &str) -> Option<arus_actors::model::source::InputTopic> {
        use arus_actors::model::source::InputTopic;
        if name == self.user_topic {
            Some(InputTopic::UserEvents)
        } else if name == self.page_topic {
            Some(InputTopic::PageViews)
        } else {
            None
        }
    }
}
