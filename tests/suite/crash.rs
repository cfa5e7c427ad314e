//! `kill -9` of an instance mid-stream: nothing lost, nothing counted twice.

use crate::helpers;

use helpers::process::Process;
use helpers::workload::{assert_counted_exactly, send, WAIT};
use helpers::{random_prefix, test_brokers, TestApp};
use serde_json::json;

#[actix_web::test]
async fn kill_9_mid_stream_then_restart_counts_exactly() {
    let brokers = test_brokers();
    let prefix = random_prefix();
    let extra = [("ARUS__KAFKA__PARTITIONS", "6")];
    let (a_id, b_id) = (format!("{prefix}a"), format!("{prefix}b"));
    let a = Process::start(&brokers, &prefix, &a_id, &extra);
    let b = Process::start(&brokers, &prefix, &b_id, &extra);
    let a_http = TestApp::remote(a.address.clone(), &brokers, &prefix).await;
    let b_http = TestApp::remote(b.address.clone(), &brokers, &prefix).await;

    send(&a_http, 0, 6_000, 500).await;
    // b holds partitions and is consuming when it is killed.
    let stats = b_http
        .wait_for("/events/stats", WAIT, |s| {
            s["consumer"]["recordsConsumed"].as_u64() > Some(0)
        })
        .await;
    assert!(
        stats["consumer"]["assignedPartitions"]
            .as_array()
            .is_some_and(|p| !p.is_empty()),
        "{stats}"
    );
    let more = send(&a_http, 6_000, 10_000, 250);
    let kill = async {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(300)).await;
        b.kill();
    };
    futures::join!(more, kill);
    send(&a_http, 10_000, 12_000, 500).await;
    // The survivor takes the partitions over and counts everything once.
    assert_counted_exactly(&a_http, 12_000).await;

    // The killed instance comes back under its name (fencing its old
    // transactional producer) and agrees.
    let b = Process::start(&brokers, &prefix, &b_id, &extra);
    let b_http = TestApp::remote(b.address.clone(), &brokers, &prefix).await;
    send(&b_http, 12_000, 13_000, 500).await;
    let on_a = assert_counted_exactly(&a_http, 13_000).await;
    let on_b = assert_counted_exactly(&b_http, 13_000).await;
    assert_eq!(on_a["eventCounts"], on_b["eventCounts"]);
    assert_eq!(on_b["totalEvents"], json!(13_000));

    // SIGTERM: a clean exit.
    assert!(b.terminate().success());
    assert!(a.terminate().success());
}

/// A panic anywhere ends the process with status 70 (actix would leave the
/// panicked actor's arbiter dead and the process looking alive); the restart
/// counts exactly.
#[actix_web::test]
async fn a_panic_ends_the_process_with_a_non_zero_status_and_the_restart_counts_exactly() {
    const ADMIN: &str = "admin-token-0123456789";
    let brokers = test_brokers();
    let prefix = random_prefix();
    let id = format!("{prefix}p");
    let extra = [
        ("ARUS__CHAOS__ENABLED", "true"),
        ("ARUS__SECURITY__ADMIN_TOKEN", ADMIN),
    ];
    let mut first = Process::start(&brokers, &prefix, &id, &extra);
    let http = TestApp::remote(first.address.clone(), &brokers, &prefix).await;
    send(&http, 0, 2_000, 500).await;
    let (status, body) = http
        .post_with(
            "/v1/chaos/panic",
            &json!({"metric": "users", "shard": 1}),
            ("x-admin-token", ADMIN),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let exit = first
        .wait_exit(std::time::Duration::from_secs(30))
        .expect("the process ends after a panic");
    assert_eq!(exit.code(), Some(70), "{exit:?}");
    let log = std::fs::read_to_string(&first.log).expect("log");
    assert!(log.contains("injected panic in shard 1 of users"), "{log}");
    drop(first);

    let second = Process::start(&brokers, &prefix, &id, &extra);
    let http = TestApp::remote(second.address.clone(), &brokers, &prefix).await;
    send(&http, 2_000, 4_000, 500).await;
    assert_counted_exactly(&http, 4_000).await;
}
