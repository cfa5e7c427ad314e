//! Holes in an input partition's offsets: arus fetches a hole again before
//! it believes it, and a real hole (a transactional producer's commit
//! markers) is accepted: nothing stalls, everything counts once. (Aborted
//! transactions are not tried: the test broker shows their records to
//! `read_committed` readers.)

use std::time::Duration;

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use serde_json::json;

use crate::helpers::{spawn_app, workload::WAIT};

#[actix_web::test]
async fn records_behind_commit_markers_are_counted_exactly() {
    let app = spawn_app(&[]).await;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &app.brokers)
        .set("transactional.id", format!("{}other-producer", app.prefix))
        .create()
        .expect("producer");
    producer
        .init_transactions(Duration::from_secs(10))
        .expect("transactions");
    let topic = app.topic("user-events");
    let mut committed = 0;
    // Eight transactions of 25 events, one user (one partition): every
    // transaction leaves a marker, a hole in the offsets.
    for t in 0..8 {
        producer.begin_transaction().expect("begins");
        for i in 0..25 {
            let value =
                json!({"userId": "tx-user", "eventType": "purchase", "metadata": {"t": t, "i": i}})
                    .to_string();
            producer
                .send(BaseRecord::to(&topic).key("tx-user").payload(&value))
                .expect("queued");
        }
        producer.flush(Duration::from_secs(10)).expect("flushed");
        producer
            .commit_transaction(Duration::from_secs(10))
            .expect("commits");
        committed += 25;
        // Between transactions, arus's own ingest to the same partition.
        let (status, answer) = app
            .post(
                "/events/user-event",
                &json!({"userId": "tx-user", "eventType": "view"}),
            )
            .await;
        assert_eq!(status, 201, "{answer}");
        committed += 1;
    }
    app.wait_for("/events/stats", WAIT, |s| {
        s["totalEvents"] == json!(committed) && s["lag"] == json!(0)
    })
    .await;
    // And it stays there.
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    let (_, stats) = app.get("/events/stats").await;
    assert_eq!(stats["totalEvents"], json!(committed), "{stats}");
    assert_eq!(stats["eventsByType"]["view"], json!(8), "{stats}");
    assert_eq!(
        stats["eventsByType"]["purchase"],
        json!(committed - 8),
        "{stats}"
    );
    app.stop().await;
}
