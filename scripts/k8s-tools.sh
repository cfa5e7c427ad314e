#!/usr/bin/env bash
# What the manifest check needs beyond kubectl: kubernetes-validate (the
# built-in kinds' schemas; it brings PyYAML), from the Python package
# registry into a virtual environment under target/k8s-tools.
#   scripts/k8s-tools.sh install   install unless present; print the venv's bin directory
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="1.37.0"
dir="target/k8s-tools"

install() {
  local shown=""
  [ -x "$dir/venv/bin/pip" ] && shown=$("$dir/venv/bin/pip" show kubernetes-validate 2>/dev/null || true)
  if [ -x "$dir/venv/bin/kubernetes-validate" ] && grep -qx "Version: $VERSION" <<<"$shown"; then
    echo "$PWD/$dir/venv/bin"
    return
  fi
  echo "k8s tools: installing kubernetes-validate $VERSION" >&2
  rm -rf "$dir"
  python3 -m venv "$dir/venv" >&2
  "$dir/venv/bin/pip" install -q "kubernetes-validate==$VERSION" >&2
  echo "$PWD/$dir/venv/bin"
}

case "${1:-}" in
  install) install ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
