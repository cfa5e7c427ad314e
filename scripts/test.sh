#!/usr/bin/env bash
# Everything the tests need, then the tests: build dependencies, the test
# broker (installed once per machine, started on a free loopback port and
# stopped afterwards), formatting and lint gates, and the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
# A one-shot build gains nothing from incremental state, which is about as
# large as the build itself.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

scripts/install-deps.sh
scripts/test-broker.sh install
ARUS_TEST_OTLP_RECEIVER=$(scripts/otlp-receiver.sh install)
export ARUS_TEST_OTLP_RECEIVER
ARUS_TEST_NODE_TOOLS=$(scripts/node-tools.sh install)
export ARUS_TEST_NODE_TOOLS
ARUS_TEST_K8S_TOOLS=$(scripts/k8s-tools.sh install)
export ARUS_TEST_K8S_TOOLS
ARUS_TEST_API_TOOLS=$(scripts/api-tools.sh install)
export ARUS_TEST_API_TOOLS

echo "== cargo fmt --check" >&2
cargo fmt --all --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets -- -D warnings

broker=$(scripts/test-broker.sh start)
trap 'scripts/test-broker.sh stop' EXIT
export ARUS_TEST_BROKERS="$broker"

echo "== tests (broker $broker)" >&2
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
