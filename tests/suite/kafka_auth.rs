//! Kafka authentication from settings: against a broker that requires
//! SASL/SCRAM, arus logs in with the credentials passed through
//! `kafka.client` (from the environment here, as a deployment would) and
//! counts exactly; a wrong password stops startup with an error that says
//! what to check, within the admin timeout, instead of hanging.

use crate::helpers;

use std::time::{Duration, Instant};

use arus::startup::Application;
use arus_config::Loader;
use helpers::broker::OwnBroker;
use helpers::workload::{assert_counted_exactly, send};
use helpers::{random_prefix, spawn_app_on, test_env};

const USER: &str = "svc-arus";
const PASSWORD: &str = "scram-password-0123";

fn login(password: &str) -> [(&'static str, String); 4] {
    [
        (
            "ARUS__KAFKA__CLIENT__SECURITY_PROTOCOL",
            "SASL_PLAINTEXT".into(),
        ),
        (
            "ARUS__KAFKA__CLIENT__SASL_MECHANISM",
            "SCRAM-SHA-512".into(),
        ),
        ("ARUS__KAFKA__CLIENT__SASL_USERNAME", USER.into()),
        ("ARUS__KAFKA__CLIENT__SASL_PASSWORD", password.into()),
    ]
}

#[actix_web::test]
async fn arus_logs_in_with_scram_and_counts_exactly_and_a_wrong_password_stops_startup() {
    let broker = OwnBroker::start_authenticated("sasl", &[(USER, PASSWORD)]);

    let good = login(PASSWORD);
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = spawn_app_on(&broker.address(), &random_prefix(), &good).await;
    send(&app, 0, 1_000, 250).await;
    assert_counted_exactly(&app, 1_000).await;
    app.stop().await;

    let bad = login("not-the-password");
    let mut bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    bad.push(("ARUS__KAFKA__ADMIN_TIMEOUT_MS", "3000"));
    let settings = Loader::new()
        .env(test_env(&broker.address(), &random_prefix(), &bad))
        .load()
        .expect("settings load");
    let started = Instant::now();
    let error = match Application::build(settings).await {
        Ok(_) => panic!("arus started with a wrong password"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains("does it accept user \"svc-arus\"?"),
        "{error}"
    );
    assert!(
        !error.contains("not-the-password"),
        "the password is in the error: {error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "startup took {:?} to give up",
        started.elapsed()
    );
}
