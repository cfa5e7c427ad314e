#!/usr/bin/env bash
# What the contract test needs: openapi-spec-validator (is the document
# valid OpenAPI 3.1?) and schemathesis (does a live instance answer as the
# document says?), from the Python package registry into a virtual
# environment under target/api-tools, at pinned versions.
#   scripts/api-tools.sh install   install unless present; print the venv's bin directory
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGES=("schemathesis==4.32.5" "openapi-spec-validator==0.9.0")
dir="target/api-tools"
stamp="$dir/venv/.installed"

install() {
  if [ -x "$dir/venv/bin/schemathesis" ] && [ "$(cat "$stamp" 2>/dev/null)" = "${PACKAGES[*]}" ]; then
    echo "$PWD/$dir/venv/bin"
    return
  fi
  echo "api tools: installing ${PACKAGES[*]}" >&2
  rm -rf "$dir"
  python3 -m venv "$dir/venv" >&2
  "$dir/venv/bin/pip" install -q "${PACKAGES[@]}" >&2
  echo "${PACKAGES[*]}" > "$stamp"
  echo "$PWD/$dir/venv/bin"
}

case "${1:-}" in
  install) install ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
