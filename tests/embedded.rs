//! With no broker configured, arus runs on the embedded mock cluster and the
//! seed's curl session works with no other setup.

mod helpers;

#[actix_web::test]
async fn seed_session_works_on_the_embedded_broker() {
    // The mock cluster refuses the short session timeouts the tests use
    // with the real test broker, like Kafka's group.min.session.timeout.ms.
    let app = helpers::spawn_app_on(
        "",
        &helpers::random_prefix(),
        &[
            ("ARUS__KAFKA__SESSION_TIMEOUT_MS", "10000"),
            ("ARUS__KAFKA__HEARTBEAT_INTERVAL_MS", "1000"),
            ("ARUS__KAFKA__MAX_POLL_INTERVAL_MS", "30000"),
        ],
    )
    .await;
    helpers::seed::session_counts_exactly(&app).await;
    app.stop().await;
}
