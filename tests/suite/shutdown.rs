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
    let (status, body) = a_http.get("/events/stats").await;
    assert_eq!(status, 200, "{body}");
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

/// Static membership: an instance restarted under its name within the
/// session timeout gets its partitions back, and the other member never
/// rebalances. Nothing is lost or counted twice across the restart.
#[actix_web::test]
async fn a_static_member_restarts_without_moving_a_partition() {
    let brokers = test_brokers();
    let prefix = random_prefix();
    let extra = [
        ("ARUS__KAFKA__STATIC_MEMBERSHIP", "true"),
        // Longer than the restart below; the poll interval is the join's
        // rebalance timeout, and may not be shorter.
        ("ARUS__KAFKA__SESSION_TIMEOUT_MS", "8000"),
        ("ARUS__KAFKA__MAX_POLL_INTERVAL_MS", "8000"),
        ("ARUS__KAFKA__PARTITIONS", "4"),
        // With cooperative-sticky the test broker never completes the
        // second, incremental round for static members (the revoked
        // partitions are assigned to nobody), so this is rehearsed with the
        // eager protocol, as the Kubernetes manifests configure it.
        ("ARUS__KAFKA__ASSIGNMENT_STRATEGY", "range"),
    ];
    let (a_id, b_id) = (format!("{prefix}a"), format!("{prefix}b"));
    let a = Process::start(&brokers, &prefix, &a_id, &extra);
    let a_http = TestApp::remote(a.address.clone(), &brokers, &prefix).await;
    let b = Process::start(&brokers, &prefix, &b_id, &extra);
    let b_http = TestApp::remote(b.address.clone(), &brokers, &prefix).await;
    let partitions = |s: &serde_json::Value| {
        let mut p: Vec<String> = s["consumer"]["assignedPartitions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| p.to_string())
            .collect();
        p.sort();
        p
    };
    // Both members hold partitions of every input topic.
    let wait = Duration::from_secs(30);
    a_http
        .wait_for("/events/stats", wait, |s| partitions(s).len() == 6)
        .await;
    let b_before = b_http
        .wait_for("/events/stats", wait, |s| partitions(s).len() == 6)
        .await;
    send(&a_http, 0, 400, 100).await;
    assert_counted_exactly(&b_http, 400).await;
    let a_before = a_http.get("/events/stats").await.1;

    assert!(b.terminate().success());
    let b = Process::start(&brokers, &prefix, &b_id, &extra);
    let b_http = TestApp::remote(b.address.clone(), &brokers, &prefix).await;
    send(&a_http, 400, 800, 100).await;
    assert_counted_exactly(&b_http, 800).await;
    assert_counted_exactly(&a_http, 800).await;
    let (_, a_after) = a_http.get("/events/stats").await;
    let (_, b_after) = b_http.get("/events/stats").await;
    assert_eq!(
        partitions(&b_after),
        partitions(&b_before),
        "b got other partitions"
    );
    assert_eq!(
        partitions(&a_after),
        partitions(&a_before),
        "a's partitions moved"
    );
    assert_eq!(
        a_after["consumer"]["rebalances"], a_before["consumer"]["rebalances"],
        "the other member rebalanced"
    );
    assert!(b.terminate().success());
    assert!(a.terminate().success());
}
