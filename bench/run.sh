#!/usr/bin/env bash
# Runs every benchmark against the test broker and writes BENCHMARKS.md:
#   bash bench/run.sh [--events N] [--runs R]
# Builds release binaries, starts the test broker if needed, and reports each
# arus figure as a ratio to the raw broker measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/install-deps.sh
# wrk, for the single-event ingest benchmark (Debian's package).
if ! command -v wrk >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >/dev/null
fi
scripts/test-broker.sh install
cargo build --release -p arus -p arus-bench
# A fresh broker: its in-memory storage slows it as it fills (a broker that
# held earlier runs' events measured batch ingest at two thirds of the rate).
scripts/test-broker.sh stop >/dev/null 2>&1 || true
broker=$(scripts/test-broker.sh start)
table=$(mktemp)
cmd="target/release/arus-bench --brokers $broker --arus target/release/arus --out $table $*"
echo "== $cmd" >&2
$cmd >&2
{
  echo "# arus benchmarks"
  echo
  echo "Produced by \`bash bench/run.sh $*\` on $(date -u +%Y-%m-%d)."
  echo "Each arus figure is measured side by side with the raw broker baseline in the same run"
  echo "(median of the runs, min–max in brackets); these shared machines are noisy, so the ratio"
  echo "is the figure to read."
  echo
  echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
  echo "- toolchain: $(rustc --version)"
  echo "- arus: $(git rev-parse --short HEAD 2>/dev/null || echo unknown), release build"
  echo "- broker: $(nisshi --version 2>&1 | head -n1), memory storage, one broker, 3 partitions, on loopback"
  echo "- events: ~200-byte user events (JSON), keyed by userId, lz4, idempotent, acks=all"
  echo
  cat "$table"
  echo
  # The analysis is written by hand (profiles, what was tried); it follows
  # the figures of every run.
  cat bench/NOTES.md
} > BENCHMARKS.md
rm -f "$table"
echo "wrote BENCHMARKS.md" >&2
