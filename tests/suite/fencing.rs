//! A fenced transactional producer: another producer registers this
//! instance's transactional.id (as a zombie copy of the instance would). The
//! instance drops its partitions, recreates its producer, rejoins, and counts
//! exactly.

use crate::helpers;

use std::time::Duration;

use helpers::workload::{assert_counted_exactly, send, WAIT};
use helpers::{random_prefix, spawn_app_on, test_brokers};
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::ClientConfig;
use serde_json::json;

#[actix_web::test]
async fn a_fenced_instance_recreates_its_producer_and_counts_exactly() {
    let brokers = test_brokers();
    let prefix = random_prefix();
    let instance = format!("{prefix}z");
    let app = spawn_app_on(
        &brokers,
        &prefix,
        &[("ARUS__INSTANCE_ID", instance.as_str())],
    )
    .await;
    send(&app, 0, 1_000, 250).await;
    assert_counted_exactly(&app, 1_000).await;

    // The same transactional.id, registered anew: the instance's producer is
    // fenced from its next transaction on.
    let zombie: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("transactional.id", format!("arus-{prefix}group-{instance}"))
        .create()
        .expect("producer");
    zombie
        .init_transactions(Duration::from_secs(10))
        .expect("fences the instance");

    send(&app, 1_000, 2_000, 250).await;
    let stats = app
        .wait_for("/events/stats", WAIT, |s| {
            s["consumer"]["producerRecreated"].as_u64() >= Some(1)
        })
        .await;
    assert_eq!(stats["consumer"]["producerRecreated"], json!(1), "{stats}");
    assert_counted_exactly(&app, 2_000).await;
    send(&app, 2_000, 2_500, 250).await;
    assert_counted_exactly(&app, 2_500).await;
    drop(zombie);
    app.stop().await;
}
