//! `arus config check` and `arus config print`: a configuration judged as
//! `serve` would judge it, without starting anything.

use std::process::{Command, Output};

fn arus(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_arus"));
    command.args(args).env_remove("RUST_BACKTRACE");
    for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("ARUS__")) {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command.output().expect("arus runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_accepts_what_serve_accepts_and_names_the_bad_key_otherwise() {
    let ok = arus(
        &["config", "check"],
        &[("ARUS__KAFKA__BROKERS", "k1:9092,k2:9092")],
    );
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(
        text(&ok.stdout).starts_with("configuration valid:")
            && text(&ok.stdout).contains("k1:9092,k2:9092"),
        "{}",
        text(&ok.stdout)
    );

    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("config-cli");
    std::fs::create_dir_all(&dir).expect("dir");
    let typo = dir.join("typo.toml");
    std::fs::write(&typo, "[kafka]\nbrokerz = \"k1:9092\"\n").expect("file");
    // (extra arguments, environment, what the error must name)
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 5] = [
        (
            vec![],
            vec![("ARUS__KAFKA__PARTITIONS", "three")],
            "ARUS__KAFKA__PARTITIONS",
        ),
        (vec![], vec![("ARUS__KAFKA__NO_SUCH", "1")], "kafka.no_such"),
        (
            vec![],
            vec![("ARUS__KAFKA__PARTITIONER", "crc32")],
            "kafka.partitioner",
        ),
        (
            vec![],
            vec![("ARUS__SHUTDOWN__DRAIN_DELAY_MS", "40000")],
            "shutdown.drain_delay_ms",
        ),
        (
            vec!["--config", typo.to_str().expect("utf-8")],
            vec![],
            "brokerz",
        ),
    ];
    for (extra, env, named) in cases {
        let mut args = vec!["config", "check"];
        args.extend(extra);
        let bad = arus(&args, &env);
        assert!(!bad.status.success(), "{env:?} passed");
        assert!(
            text(&bad.stderr).contains(named),
            "{env:?}: {}",
            text(&bad.stderr)
        );
    }
}

#[test]
fn print_shows_the_effective_configuration_with_secrets_redacted() {
    let token = "an-admin-token-of-some-length";
    let key = "an-ingest-key-0123456789";
    let out = arus(
        &["config", "print"],
        &[
            ("ARUS__SECURITY__ADMIN_TOKEN", token),
            ("ARUS__SECURITY__INGEST_API_KEYS", key),
            ("ARUS__SECURITY__VISITOR_SALT", "a-salt-of-the-visitor-ids"),
            ("ARUS__KAFKA__CLIENT__SASL_PASSWORD", "hunter2"),
            ("ARUS__KAFKA__CLIENT__SASL_USERNAME", "arus"),
            ("ARUS__KAFKA__PARTITIONS", "12"),
            ("ARUS__INSTANCE_ID", "arus-2"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    for secret in [token, key, "hunter2", "a-salt-of-the-visitor-ids"] {
        assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
    }
    let table: toml::Table = printed.parse().expect("the output is TOML");
    assert_eq!(table["instance_id"].as_str(), Some("arus-2"));
    assert_eq!(table["kafka"]["partitions"].as_integer(), Some(12));
    assert_eq!(
        table["kafka"]["client"]["sasl.username"].as_str(),
        Some("arus")
    );
    assert_eq!(
        table["kafka"]["client"]["sasl.password"].as_str(),
        Some("[redacted]")
    );
    assert_eq!(
        table["security"]["admin_token"].as_str(),
        Some("[redacted]")
    );
    assert_eq!(
        table["security"]["visitor_salt"].as_str(),
        Some("[redacted]")
    );
    assert_eq!(
        table["security"]["ingest_api_keys"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // Without secrets, what it prints is a configuration file that loads
    // to the same thing.
    let plain = arus(&["config", "print"], &[("ARUS__KAFKA__PARTITIONS", "12")]);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("config-cli");
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("printed.toml");
    std::fs::write(&file, &plain.stdout).expect("file");
    let file = file.to_str().expect("utf-8");
    let again = arus(&["config", "print", "--config", file], &[]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(text(&again.stdout), text(&plain.stdout));
}

/// A port in use: `serve` ends with that error, exit status 1, not a
/// panic of the actors it had started (on the in-memory broker, no setup).
#[test]
fn serve_on_a_port_in_use_says_so_and_exits_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let bind = taken.local_addr().expect("address").to_string();
    let out = arus(&["serve"], &[("ARUS__HTTP__BIND", bind.as_str())]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Address already in use"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
