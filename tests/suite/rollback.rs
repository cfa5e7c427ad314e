//! An aborted transaction rolls the partitions back to their last commit:
//! state restored from the changelog, input re-read from the committed
//! offsets, and nothing counted twice or lost. The embedded broker makes the
//! transaction's offset commit fail with an error that requires an abort.

use crate::helpers;

use helpers::workload::{assert_counted_exactly, send, WAIT};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use serde_json::json;

#[actix_web::test]
async fn an_aborted_transaction_rolls_back_and_counts_exactly() {
    let app = helpers::spawn_app_on(
        "",
        &helpers::random_prefix(),
        &helpers::MOCK_CLUSTER_TIMEOUTS,
    )
    .await;
    send(&app, 0, 1_000, 250).await;
    assert_counted_exactly(&app, 1_000).await;

    let broker = app.embedded.clone().expect("an embedded broker");
    broker.fail_next(
        RDKafkaApiKey::TxnOffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION],
    );
    send(&app, 1_000, 2_000, 250).await;
    let stats = app
        .wait_for("/events/stats", WAIT, |s| {
            s["consumer"]["rollbacks"].as_u64() >= Some(1)
        })
        .await;
    assert_eq!(stats["consumer"]["rollbacks"], json!(1), "{stats}");
    // The rolled-back records are read again, and skipped or re-applied
    // once. Waited for: queries may show the count before the re-read, since
    // the read model follows the changelog read uncommitted and the replay
    // writes the aborted entries again, identically.
    app.wait_for("/events/stats", WAIT, |s| {
        s["consumer"]["recordsConsumed"].as_u64() > Some(2_000)
    })
    .await;
    assert_counted_exactly(&app, 2_000).await;
    send(&app, 2_000, 2_500, 250).await;
    assert_counted_exactly(&app, 2_500).await;
    app.stop().await;
}

/// A transaction that keeps aborting the same way (here: the broker answers
/// every offset commit with the same error) makes the consumer recreate its
/// producer after 5 tries, and stop with that error after 5 more, instead of
/// rolling back forever.
#[actix_web::test]
async fn the_same_abort_ten_times_in_a_row_is_fatal() {
    let app = helpers::spawn_app_on(
        "",
        &helpers::random_prefix(),
        &helpers::MOCK_CLUSTER_TIMEOUTS,
    )
    .await;
    send(&app, 0, 500, 250).await;
    assert_counted_exactly(&app, 500).await;
    let broker = app.embedded.clone().expect("an embedded broker");
    broker.fail_next(
        RDKafkaApiKey::TxnOffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION; 10],
    );
    send(&app, 500, 600, 100).await;
    let error = app.failure(WAIT).await;
    assert!(
        error.contains("10 transactions in a row aborted with the same error"),
        "{error}"
    );
}
