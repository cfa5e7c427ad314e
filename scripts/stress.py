#!/usr/bin/env python3
"""Kill/restart stress test of arus's exactly-once counting.

Starts a test broker and INSTANCES arus processes in one group, sends events
over HTTP without pause, and every few seconds kills one instance with
SIGKILL (no shutdown, transactions left open) and starts it again under its
name. At the end it compares what every instance counts with what was
accepted with a 2xx:

    events=N counted=N lost=0 duplicated=0

Usage: scripts/stress.py [--cycles 10] [--instances 3] [--partitions 6]
                         [--batch 200] [--release]
Needs the test broker (scripts/test-broker.sh install) and a built arus.
Longer than CI allows; not part of the test suite.
"""

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")
    except (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout):
        return None, None


class Instance:
    def __init__(self, binary, name, env, logdir):
        self.binary, self.name, self.env, self.logdir = binary, name, env, logdir
        self.proc = None
        self.port = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.port = free_port()
        env = dict(os.environ, **self.env, ARUS__INSTANCE_ID=self.name, ARUS__HTTP__BIND=f"127.0.0.1:{self.port}")
        log = open(os.path.join(self.logdir, f"{self.name}.log"), "ab")
        self.proc = subprocess.Popen([self.binary, "serve"], env=env, stdout=log, stderr=log)

    def wait_ready(self, limit=120):
        deadline = time.time() + limit
        while time.time() < deadline:
            status, _ = http("GET", self.url + "/health/ready", timeout=2)
            if status == 200:
                return
            if self.proc.poll() is not None:
                sys.exit(f"{self.name} exited with {self.proc.returncode}; see its log")
            time.sleep(0.2)
        sys.exit(f"{self.name} not ready within {limit}s")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=10)
    ap.add_argument("--instances", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--interval", type=float, default=4.0, help="seconds between kills")
    ap.add_argument("--release", action="store_true")
    args = ap.parse_args()

    profile = "release" if args.release else "debug"
    binary = os.path.join(ROOT, "target", profile, "arus")
    if not os.path.exists(binary):
        sys.exit(f"{binary} missing: cargo build {'--release' if args.release else ''}")
    pidfile = os.path.join(os.environ.get("ARUS_BROKER_DIR", os.path.join(ROOT, "target", "test-broker")), "pid")
    broker_was_running = os.path.exists(pidfile)
    broker = subprocess.run([os.path.join(ROOT, "scripts", "test-broker.sh"), "start"],
                            check=True, capture_output=True, text=True).stdout.strip()
    prefix = f"stress{uuid.uuid4().hex[:8]}-"
    logdir = os.path.join(ROOT, "target", "stress", prefix.rstrip("-"))
    os.makedirs(logdir, exist_ok=True)
    env = {
        "ARUS__KAFKA__BROKERS": broker,
        "ARUS__KAFKA__TOPIC_PREFIX": prefix,
        "ARUS__KAFKA__GROUP_ID": prefix + "group",
        "ARUS__KAFKA__PARTITIONS": str(args.partitions),
        "ARUS__KAFKA__SESSION_TIMEOUT_MS": "2000",
        "ARUS__KAFKA__HEARTBEAT_INTERVAL_MS": "500",
        "ARUS__KAFKA__MAX_POLL_INTERVAL_MS": "2000",
        "ARUS__HTTP__WORKERS": "1",
        "RUST_LOG": "info",
    }
    instances = [Instance(binary, f"{prefix}i{n}", env, logdir) for n in range(args.instances)]
    for inst in instances:
        inst.start()
    for inst in instances:
        inst.wait_ready()

    accepted = 0
    rejected = 0
    stop = threading.Event()
    lock = threading.Lock()

    def load():
        nonlocal accepted, rejected
        i = 0
        while not stop.is_set():
            with lock:
                alive = [x for x in instances if x.proc.poll() is None]
            if not alive:
                time.sleep(0.05)
                continue
            target = random.choice(alive)
            events = [{"userId": f"user-{(i + k) % 5000}", "eventType": ["login", "view", "purchase", "logout"][(i + k) % 4],
                       "eventId": str(uuid.uuid4())} for k in range(args.batch)]
            status, _ = http("POST", target.url + "/events/batch-events", events, timeout=15)
            if status == 201:
                accepted += len(events)
                i += len(events)
            else:
                # Not acknowledged: maybe written, maybe not. The same events
                # (same eventIds) are retried, as a client would, until a 2xx.
                rejected += 1
                while not stop.is_set():
                    with lock:
                        alive = [x for x in instances if x.proc.poll() is None]
                    if alive:
                        status, _ = http("POST", random.choice(alive).url + "/events/batch-events", events, timeout=15)
                        if status == 201:
                            accepted += len(events)
                            i += len(events)
                            break
                    time.sleep(0.1)

    loader = threading.Thread(target=load)
    loader.start()
    for cycle in range(1, args.cycles + 1):
        time.sleep(args.interval)
        victim = random.choice(instances)
        with lock:
            victim.kill()
        print(f"cycle {cycle}: killed {victim.name} (accepted so far {accepted})", flush=True)
        time.sleep(random.uniform(0.5, 2.0))
        with lock:
            victim.start()
        victim.wait_ready()
    stop.set()
    loader.join()

    deadline = time.time() + 180
    counted = {}
    while time.time() < deadline:
        counted = {}
        for inst in instances:
            status, body = http("GET", inst.url + "/events/analytics")
            counted[inst.name] = body["totalEvents"] if status == 200 and body.get("lag") == 0 else None
        if all(c == accepted for c in counted.values()):
            break
        time.sleep(1)
    for inst in instances:
        inst.terminate()
    if not broker_was_running:
        subprocess.run([os.path.join(ROOT, "scripts", "test-broker.sh"), "stop"], capture_output=True)

    values = [c for c in counted.values() if c is not None]
    total = values[0] if values and all(v == values[0] for v in values) else None
    if total is None:
        print(f"instances disagree or are behind: {counted}")
        print(f"events={accepted} counted=? lost=? duplicated=?")
        return 1
    lost = max(accepted - total, 0)
    duplicated = max(total - accepted, 0)
    print(f"instances={args.instances} cycles={args.cycles} retried_batches={rejected} logs={logdir}")
    print(f"events={accepted} counted={total} lost={lost} duplicated={duplicated}")
    return 0 if lost == 0 and duplicated == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
