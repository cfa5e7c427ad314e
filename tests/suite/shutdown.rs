//! SIGTERM behind a load balancer: not ready first, still serving for
//! `shutdown.drain_delay_ms` while the balancer notices, then intake stops.
//! What is accepted in that time is counted like anything else.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers;

use helpers::process::Process;
use helpers::workload::{assert_counted_exactly, send};
use helpers::{random_prefix, test_brokers, TestApp};

const DRAIN_MS: u64 = 3_000;

#[actix_web::test]
async fn after_sigterm_it_serves_not_ready_for_the_drain_delay_then_exits() {
    let brokers = test_brokers();
    let prefix = random_prefix();
    let drain = DRAIN_MS.to_string();
    let extra = [("ARUS__SHUTDOWN__DRAIN_DELAY_MS", drain.as_str())];
    let mut a = Process::start(&brokers, &prefix, &format!("{prefix}a"), &extra);
    let a_http = TestApp::remote(a.address.clone(), &brokers, &prefix).await;
    send(&a_http, 0, 100, 100).await;

    a.send_terminate();
    let signalled = Instant::now();
    let (status, body) = loop {
        let (status, body) = a_http.get("/health/ready").await;
        if status != 200 || signalled.elapsed() > Duration::from_millis(DRAIN_MS / 2) {
            break (status, body);
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status, 503, "not ready soon after SIGTERM: {body}");
    // Still taking events while not ready: a balancer that has not looked
    // yet sends them here, and they must not fail.
    send(&a_http, 100, 200, 25).await;
    // Each answer now closes its connection, so a keep-alive client's next
    // request opens one that the balancer sends elsewhere.
    let resp = a_http
        .client
        .get(a_http.url("/events/stats"))
        .send()
        .await
        .expect("answered while draining");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()
            .get("connection")
            .and_then(|v| v.to_str().ok()),
        Some("close"),
        "{:?}",
        resp.headers()
    );
    assert!(
        signalled.elapsed() < Duration::from_millis(DRAIN_MS),
        "the requests above did not all fall inside the drain delay ({:?}); \
         the test proves nothing on a machine this slow",
        signalled.elapsed()
    );
    let exit = a.wait_exit(Duration::from_secs(20)).expect("exits");
    assert!(exit.success(), "{exit:?}");
    assert!(
        signalled.elapsed() >= Duration::from_millis(DRAIN_MS),
        "exited after {:?}, before the drain delay",
        signalled.elapsed()
    );

    // The next instance of the group counts everything accepted, the
    // events taken while draining included, exactly once.
    let b = Process::start(&brokers, &prefix, &format!("{prefix}b"), &[]);
    let b_http = TestApp::remote(b.address.clone(), &brokers, &prefix).await;
    let counted = assert_counted_exactly(&b_http, 200).await;
    assert_eq!(counted["totalEvents"], json!(200));
    assert!(b.terminate().success());
}
