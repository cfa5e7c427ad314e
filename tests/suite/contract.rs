//! The contract: `/openapi.json` is valid OpenAPI 3.1 (openapi-spec-validator
//! accepts it), names every route, and a live instance on the real broker
//! answers as it says — schemathesis, a property-based fuzzer, sends it
//! generated requests for every operation (the event stream excluded: it
//! never ends) and finds no 5xx, no status, content type or body the
//! document does not describe. `/docs` serves Swagger UI from the binary.

use std::collections::BTreeSet;

use crate::helpers::spawn_app;

/// Every route the server answers (routes.rs), as the document must list it.
const ROUTES: [(&str, &str); 32] = [
    ("post", "/events/user-event"),
    ("post", "/events/page-view"),
    ("post", "/events/batch-events"),
    ("get", "/events/stats"),
    ("get", "/events/analytics"),
    ("get", "/events/analytics/event-counts"),
    ("get", "/events/analytics/active-users"),
    ("get", "/events/analytics/top-pages"),
    ("get", "/events/analytics/sessions"),
    ("get", "/events/analytics/users/{user_id}"),
    ("get", "/v1/top-pages"),
    ("post", "/v1/query"),
    ("get", "/v1/stream"),
    ("get", "/"),
    ("get", "/arus.js"),
    ("post", "/v1/track"),
    ("get", "/v1/dead-letters"),
    ("post", "/v1/dead-letters/replay"),
    ("post", "/v1/chaos/shard-outage"),
    ("post", "/v1/chaos/panic"),
    ("post", "/v1/chaos/shard-stop"),
    ("get", "/v1/lag"),
    ("get", "/v1/schemas"),
    ("get", "/v1/schemas/{kind}/{version}"),
    ("get", "/v1/consumer-groups/{group}/offsets"),
    ("post", "/v1/consumer-groups/{group}/reset"),
    ("post", "/v1/consumer/pause"),
    ("post", "/v1/consumer/resume"),
    ("get", "/metrics"),
    ("get", "/health/live"),
    ("get", "/health/ready"),
    ("get", "/openapi.json"),
];

fn tools() -> String {
    std::env::var("ARUS_TEST_API_TOOLS").unwrap_or_else(|_| {
        panic!(
            "ARUS_TEST_API_TOOLS is not set: run the tests with scripts/test.sh, \
             which installs schemathesis and openapi-spec-validator"
        )
    })
}

#[actix_web::test]
async fn the_document_is_valid_names_every_route_and_a_fuzzer_finds_nothing_off_it() {
    let tools = tools();
    let app = spawn_app(&[]).await;
    let (status, doc) = app.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    let listed: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .expect("operations")
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(listed, routes);
    // Every operation answers errors in the one error shape.
    for ((method, path), op) in listed.iter().map(|k| (k, &doc["paths"][&k.1][&k.0])) {
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path}"
        );
    }

    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("contract");
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).expect("JSON")).expect("written");
    let validated = std::process::Command::new(format!("{tools}/openapi-spec-validator"))
        .arg(&file)
        .output()
        .expect("openapi-spec-validator runs");
    assert!(
        validated.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );

    let (status, page) = app.get_text("/docs/").await;
    assert_eq!(status, 200);
    assert!(page.contains("swagger"), "{page}");

    let url = app.url("/openapi.json");
    let run = move || {
        std::process::Command::new(format!("{tools}/schemathesis"))
            .args(["run", &url])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                "--exclude-path",
                "/v1/stream",
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                "15",
                "--seed",
                "20261201",
                "--request-timeout",
                "10",
                "--generation-deterministic",
            ])
            .env("NO_COLOR", "1")
            .output()
    };
    let out = actix_web::rt::task::spawn_blocking(run)
        .await
        .expect("joined")
        .expect("schemathesis runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}"
    );
    // It did test the operations: "N generated, N passed", N in the hundreds.
    let generated: u64 = report
        .lines()
        .find_map(|l| {
            let (n, rest) = l.trim().split_once(" generated, ")?;
            let passed = rest.strip_suffix(" passed")?;
            (n == passed).then(|| n.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no \"N generated, N passed\" line:\n{report}"));
    assert!(generated >= 500, "only {generated} cases:\n{report}");
    app.stop().await;
}
