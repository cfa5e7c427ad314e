//! With no broker configured, arus runs on the embedded mock cluster and the
//! seed's curl session works with no other setup.

use crate::helpers;

#[actix_web::test]
async fn seed_session_works_on_the_embedded_broker() {
    let app = helpers::spawn_app_on(
        "",
        &helpers::random_prefix(),
        &helpers::MOCK_CLUSTER_TIMEOUTS,
    )
    .await;
    helpers::seed::session_counts_exactly(&app).await;
    app.stop().await;
}
