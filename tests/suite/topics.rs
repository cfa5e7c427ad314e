//! Topic provisioning against the real test broker.

use crate::helpers;

use std::time::Duration;

use arus::kafka::admin::{provision_topics, TopicStatus};
use arus_config::Loader;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

#[actix_web::test]
async fn topics_are_created_with_their_configs_and_kept_when_they_exist() {
    let brokers = helpers::test_brokers();
    let prefix = helpers::random_prefix();
    let settings = Loader::new()
        .env([
            ("ARUS__KAFKA__BROKERS".to_string(), brokers.clone()),
            ("ARUS__KAFKA__TOPIC_PREFIX".to_string(), prefix.clone()),
            ("ARUS__KAFKA__PARTITIONS".to_string(), "4".to_string()),
        ])
        .load()
        .expect("settings");
    let first = provision_topics(&settings, &brokers)
        .await
        .expect("provisioned");
    let mut created: Vec<&str> = first
        .iter()
        .filter(|(_, s)| *s == TopicStatus::Created)
        .map(|(n, _)| n.as_str())
        .collect();
    created.sort();
    let expected: Vec<String> = [
        "analytics-events",
        "error-events",
        "page-views",
        "retry-events",
        "user-events",
    ]
    .iter()
    .map(|t| format!("{prefix}{t}"))
    .collect();
    assert_eq!(created, expected);

    // A second start keeps them, and sees their partitions.
    let second = provision_topics(&settings, &brokers)
        .await
        .expect("provisioned again");
    assert_eq!(second.len(), 5);
    assert!(
        second
            .iter()
            .all(|(_, s)| *s == TopicStatus::Existing { partitions: 4 }),
        "{second:?}"
    );

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("admin");
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let names = [
        (format!("{prefix}user-events"), "604800000", "delete"),
        (format!("{prefix}page-views"), "86400000", "delete"),
        (format!("{prefix}analytics-events"), "-1", "compact"),
    ];
    let specifiers: Vec<_> = names
        .iter()
        .map(|(n, _, _)| ResourceSpecifier::Topic(n))
        .collect();
    let described = admin
        .describe_configs(specifiers.iter(), &options)
        .await
        .expect("describe configs");
    for ((name, retention, policy), result) in names.iter().zip(described) {
        let resource = result.expect("config of topic");
        let get = |key: &str| {
            resource
                .get(key)
                .and_then(|e| e.value.clone())
                .unwrap_or_else(|| panic!("{name} has no {key}"))
        };
        assert_eq!(get("retention.ms"), *retention, "{name}");
        assert_eq!(get("cleanup.policy"), *policy, "{name}");
        assert_eq!(get("compression.type"), "producer", "{name}");
    }
}
