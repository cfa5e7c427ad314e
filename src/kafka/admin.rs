//! Topic provisioning at startup.

use std::time::Duration;

use anyhow::Context as _;
use arus_config::Settings;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use tracing::{info, warn};

use super::client_config;

/// What provisioning found for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicStatus {
    Created,
    Existing { partitions: i32 },
}

/// Creates the five topics with their configs; existing topics are kept. An
/// existing topic with fewer partitions than configured is warned about: it
/// limits how many instances can share the work, and keys would hash
/// differently if it were grown later.
pub async fn provision_topics(
    settings: &Settings,
    brokers: &str,
) -> anyhow::Result<Vec<(String, TopicStatus)>> {
    let k = &settings.kafka;
    let admin: AdminClient<DefaultClientContext> = client_config::admin(settings, brokers)
        .create()
        .context("creating the Kafka admin client")?;
    let timeout = Duration::from_millis(k.admin_timeout_ms);
    let names: Vec<String> = k
        .topics
        .all()
        .iter()
        .map(|(_, t)| k.topic_name(t))
        .collect();
    let retention: Vec<String> = k
        .topics
        .all()
        .iter()
        .map(|(_, t)| t.retention_ms.to_string())
        .collect();
    let new_topics: Vec<NewTopic<'_>> = k
        .topics
        .all()
        .iter()
        .zip(names.iter().zip(&retention))
        .map(|((_, topic), (name, retention))| {
            NewTopic::new(
                name,
                k.partitions,
                TopicReplication::Fixed(k.replication_factor),
            )
            .set("retention.ms", retention)
            .set("cleanup.policy", &topic.cleanup_policy)
            .set("compression.type", &topic.compression)
        })
        .collect();
    // The request timeout too: without it, a broker that refuses the login
    // keeps startup waiting for librdkafka's default of a minute.
    let options = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    let results = admin
        .create_topics(new_topics.iter(), &options)
        .await
        .with_context(|| {
            // A broker that refuses the login answers nothing the request
            // can report but the timeout.
            let login = match k.client.get("sasl.username") {
                Some(user) => format!(" (is the broker up, and does it accept user {user:?}?)"),
                None => " (is the broker up?)".to_string(),
            };
            format!("creating topics on {brokers}{login}")
        })?;

    let mut statuses = Vec::new();
    let mut existing = Vec::new();
    for result in results {
        match result {
            Ok(name) => {
                info!(topic = %name, partitions = k.partitions, "topic created");
                statuses.push((name, TopicStatus::Created));
            }
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => existing.push(name),
            Err((name, code)) => anyhow::bail!("cannot create topic {name}: {code}"),
        }
    }
    if !existing.is_empty() {
        let metadata = admin
            .inner()
            .fetch_metadata(None, timeout)
            .context("reading topic metadata")?;
        for name in existing {
            let partitions = metadata
                .topics()
                .iter()
                .find(|t| t.name() == name)
                .map_or(0, |t| t.partitions().len() as i32);
            if partitions < k.partitions {
                warn!(
                    topic = %name,
                    partitions,
                    configured = k.partitions,
                    "existing topic has fewer partitions than configured; \
                     at most that many instances share its work"
                );
            } else {
                info!(topic = %name, partitions, "topic exists");
            }
            statuses.push((name, TopicStatus::Existing { partitions }));
        }
    }
    co_partitioned(settings, &statuses)?;
    Ok(statuses)
}

/// The two input topics must have the same number of partitions: both are
/// keyed by `userId`, and a user's visits are built from partition *p* of
/// both (the group assigns them together, see the consumer's rebalance).
fn co_partitioned(settings: &Settings, statuses: &[(String, TopicStatus)]) -> anyhow::Result<()> {
    let k = &settings.kafka;
    let count = |topic| {
        let name = k.topic_name(topic);
        statuses
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, status)| match status {
                TopicStatus::Created => k.partitions,
                TopicStatus::Existing { partitions } => *partitions,
            })
            .map(|n| (name, n))
    };
    if let (Some((users, u)), Some((pages, p))) =
        (count(&k.topics.user_events), count(&k.topics.page_views))
    {
        anyhow::ensure!(
            u == p,
            "topics {users} ({u} partitions) and {pages} ({p} partitions) must have the same \
             number of partitions: a user's events and page views are counted together, \
             partition by partition"
        );
    }
    Ok(())
}
