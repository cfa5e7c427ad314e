//! The Kubernetes manifests and the image, checked against the binary:
//! `scripts/check-k8s.py` renders each overlay with `kubectl kustomize`,
//! validates every kind (kubernetes-validate --strict, KEDA's schemas,
//! Strimzi's documented fields) and cross-checks them with `arus config
//! check`, a running arus and BENCHMARKS.md; the Dockerfile's runtime
//! packages with `ldd`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tools(var: &str, installer: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the tests with scripts/test.sh, which runs {installer}")
    })
}

fn check(root: &Path) -> Output {
    let venv = tools("ARUS_TEST_K8S_TOOLS", "scripts/k8s-tools.sh");
    let node = tools("ARUS_TEST_NODE_TOOLS", "scripts/node-tools.sh");
    Command::new(format!("{venv}/python"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check-k8s.py"))
        .args(["--arus", env!("CARGO_BIN_EXE_arus")])
        .args(["--node-tools", &node])
        .args(["--validator", &format!("{venv}/kubernetes-validate")])
        .arg("--root")
        .arg(root)
        .output()
        .expect("the checker runs")
}

#[test]
fn the_manifests_validate_and_agree_with_the_binary_and_the_image() {
    let out = check(Path::new(env!("CARGO_MANIFEST_DIR")));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "dev: 19 resources (10 built-in, 2 KEDA, 6 Strimzi)",
        "prod: 19 resources (10 built-in, 2 KEDA, 6 Strimzi)",
        "manifests, configuration and image agree",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from:\n{stdout}");
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// A copy of the tree with the prod overlay patched by `patch` and the
/// Dockerfile's runtime packages without `drop`: what the checker says.
fn refused(name: &str, patch: &str, drop: &str) -> String {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&root);
    copy_tree(&source.join("k8s"), &root.join("k8s"));
    for file in ["Dockerfile", "BENCHMARKS.md"] {
        std::fs::copy(source.join(file), root.join(file)).expect("copy");
    }
    let overlay = root.join("k8s/overlays/prod/kustomization.yaml");
    let text = std::fs::read_to_string(&overlay).expect("overlay");
    std::fs::write(&overlay, text + patch).expect("overlay");
    let dockerfile = root.join("Dockerfile");
    let text = std::fs::read_to_string(&dockerfile).expect("Dockerfile");
    std::fs::write(&dockerfile, text.replace(&format!(" {drop} "), " ")).expect("Dockerfile");
    let out = check(&root);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "passed:\n{stderr}");
    stderr
}

/// The checker is no rubber stamp: copies of the tree with mistakes an
/// operator could make are refused, each mistake named.
#[test]
fn the_checker_names_each_mistake() {
    let stderr = refused(
        "k8s-mistakes-manifests",
        "  - target: {kind: ScaledObject, name: arus}
    patch: |
      - op: replace
        path: /spec/maxReplicaCount
        value: 9
  - target: {kind: StatefulSet, name: arus}
    patch: |
      - op: replace
        path: /spec/template/spec/terminationGracePeriodSeconds
        value: 20
      - op: replace
        path: /spec/template/spec/containers/0/resources/limits/memory
        value: 1Gi
      - op: add
        path: /spec/template/spec/containers/0/ports/-
        value: {name: extra, containerPort: 9000, protocl: TCP}
  - target: {kind: KafkaUser, name: arus}
    patch: |
      - op: add
        path: /spec/authorization/acls/0/operation
        value: Read
",
        "no-such-package",
    );
    for named in [
        "kubernetes-validate --strict",
        "unknown field operation (v1 has operations only)",
        "maxReplicaCount 9 > partitions 6",
        "terminationGracePeriodSeconds 20 is not longer than shutdown.timeout_ms 30000",
        "memory limit 1Gi is not 25% above the 1129 MiB measured at 1000000 users",
    ] {
        assert!(stderr.contains(named), "{named:?} not named in:\n{stderr}");
    }

    let stderr = refused(
        "k8s-mistakes-config",
        "  - target: {kind: StatefulSet, name: arus}
    patch: |
      - op: add
        path: /spec/template/spec/containers/0/env/-
        value: {name: ARUS__KAFKA__PARTITIONR, value: murmur2}
",
        "libssl3",
    );
    for named in [
        "arus config check refuses the manifests' environment",
        "ARUS__KAFKA__PARTITIONR",
        "Dockerfile: runtime stage lacks ['libssl3']",
    ] {
        assert!(stderr.contains(named), "{named:?} not named in:\n{stderr}");
    }
}
