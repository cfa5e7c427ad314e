//! A StatefulSet rolling update behind a readiness-checking balancer, the
//! short version of `scripts/rollout.py`: 3 instances, 4 clients posting
//! batches of 50 over keep-alive connections and retrying with the same
//! eventIds, haproxy (TCP mode, /health/ready every 500 ms, no retries),
//! highest ordinal first. No client may see a failure, and every instance
//! must count every accepted event exactly once.

use std::path::Path;
use std::process::Command;

use crate::helpers::test_brokers;

fn haproxy() -> String {
    ["haproxy", "/usr/sbin/haproxy"]
        .into_iter()
        .find(|bin| Command::new(bin).arg("-v").output().is_ok())
        .unwrap_or_else(|| panic!("haproxy is not installed: scripts/install-deps.sh installs it"))
        .to_string()
}

#[test]
fn a_rolling_restart_loses_nothing_and_no_client_notices() {
    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/rollout.py"))
        .args(["--from", env!("CARGO_BIN_EXE_arus")])
        .args(["--brokers", &test_brokers()])
        .args(["--haproxy", &haproxy()])
        .args(["--instances", "3", "--clients", "4", "--batch", "50"])
        .args(["--seconds-between", "3"])
        .output()
        .expect("the rehearsal runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    let counts: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("instance="))
        .collect();
    assert_eq!(counts.len(), 3, "{stdout}");
    let accepted: u64 = counts[0]
        .split_whitespace()
        .find_map(|f| f.strip_prefix("accepted="))
        .and_then(|n| n.parse().ok())
        .expect("accepted=N");
    assert!(
        accepted >= 1_000,
        "too few events to say anything: {stdout}"
    );
    for line in &counts {
        assert!(
            line.ends_with(&format!(
                "accepted={accepted} counted={accepted} lost=0 duplicated=0"
            )),
            "{line}\n{stdout}"
        );
    }
    assert!(
        stdout.contains("client-visible failures before retry: 0 {}"),
        "{stdout}"
    );
}
