#!/usr/bin/env bash
# The test broker: a real Kafka-protocol broker process (Nisshi) on loopback.
#
#   scripts/test-broker.sh install   install it unless `nisshi --version` answers
#   scripts/test-broker.sh start     start it on a free 127.0.0.1 port, wait until it
#                                    answers, print its address (127.0.0.1:PORT)
#   scripts/test-broker.sh stop      stop the broker this script started
#
# State (pid, port, log) lives in ${ARUS_BROKER_DIR:-target/test-broker}.
set -euo pipefail

NISSHI_VERSION=0.7.0-pre.2
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${ARUS_BROKER_DIR:-$root/target/test-broker}
export PATH="$HOME/.cargo/bin:$PATH"

install() {
  if nisshi --version >/dev/null 2>&1; then
    echo "test broker: $(nisshi --version 2>&1 | head -n1) already installed" >&2
    return
  fi
  echo "test broker: installing nisshi $NISSHI_VERSION (10-20 minutes on 2 cores, once per machine)" >&2
  # Its own target dir, so the project's build cache is not disturbed.
  CARGO_TARGET_DIR="${NISSHI_BUILD_DIR:-/tmp/nisshi-build/target}" \
    cargo install nisshi --version "$NISSHI_VERSION" --locked \
      --no-default-features --features dynostore,libsql >&2
  nisshi --version >&2
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
  mkdir -p "$dir"
  if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    echo "127.0.0.1:$(cat "$dir/port")"
    return
  fi
  local port
  port=$(free_port)
  nohup nisshi broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://nisshi/ >"$dir/broker.log" 2>&1 &
  echo $! >"$dir/pid"
  echo "$port" >"$dir/port"
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "test broker: listening on 127.0.0.1:$port (log: $dir/broker.log)" >&2
      echo "127.0.0.1:$port"
      return
    fi
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
      echo "test broker: exited at start; its log:" >&2
      cat "$dir/broker.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  echo "test broker: no answer on 127.0.0.1:$port after 30 s; its log:" >&2
  tail -n 50 "$dir/broker.log" >&2
  exit 1
}

stop() {
  if [ -f "$dir/pid" ]; then
    kill "$(cat "$dir/pid")" 2>/dev/null || true
    rm -f "$dir/pid" "$dir/port"
    echo "test broker: stopped" >&2
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
