#!/usr/bin/env bash
# The JavaScript the black-box suite runs (tests/js: kafkajs, the seed's
# Kafka client, to check partitioning against), installed from the npm
# registry into target/node-tools with the lockfile's exact versions.
#   scripts/node-tools.sh install   install unless current; print the directory
set -euo pipefail
cd "$(dirname "$0")/.."
dir="target/node-tools"

install() {
  mkdir -p "$dir"
  # The scripts are copied every time (cheap); packages only when the
  # lockfile changed, so ESM imports resolve from the scripts' folder.
  cp tests/js/*.mjs tests/js/package.json tests/js/package-lock.json "$dir/"
  if ! cmp -s tests/js/package-lock.json "$dir/node_modules/.installed-lock" 2>/dev/null; then
    echo "node tools: installing $(cd tests/js && node -e 'console.log(Object.entries(require("./package.json").dependencies).map(([n, v]) => n + "@" + v).join(" "))')" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
    cp tests/js/package-lock.json "$dir/node_modules/.installed-lock"
  fi
  echo "$PWD/$dir"
}

case "${1:-}" in
  install) install ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
