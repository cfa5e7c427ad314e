#!/usr/bin/env bash
# The OTLP receiver the tracing test sends spans to: rotel (a small
# OpenTelemetry collector; its package carries the binary), installed once
# into target/otlp-receiver from the Python package registry.
#   scripts/otlp-receiver.sh install   install unless present; print the binary's path
set -euo pipefail
cd "$(dirname "$0")/.."
ROTEL_VERSION="0.0.1a15"
dir="target/otlp-receiver"

install() {
  local bin
  bin=$(find "$dir" -name rotel-agent -type f 2>/dev/null | head -n1 || true)
  if [ -n "$bin" ] && "$bin" --version >/dev/null 2>&1; then
    echo "$PWD/$bin"
    return
  fi
  echo "otlp receiver: installing rotel $ROTEL_VERSION" >&2
  rm -rf "$dir"
  python3 -m venv "$dir/venv" >&2
  "$dir/venv/bin/pip" install -q "rotel==$ROTEL_VERSION" >&2
  bin=$(find "$dir" -name rotel-agent -type f | head -n1)
  chmod +x "$bin"
  "$bin" --version >&2
  echo "$PWD/$bin"
}

case "${1:-}" in
  install) install ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
