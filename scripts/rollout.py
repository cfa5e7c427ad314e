#!/usr/bin/env python3
"""A StatefulSet rolling update, rehearsed on this machine with exact counts.

N arus instances (own names, ports and group membership) run behind haproxy,
which checks /health/ready every 500 ms in TCP mode with no retries of its
own, as kube-proxy forwards to a Service's ready endpoints. Clients post
batches through it continuously over keep-alive connections, retrying a
failed request with the same eventIds until it is accepted. Then, exactly as
a StatefulSet RollingUpdate does: highest ordinal first, SIGTERM, wait for the
exit, start the new binary under the same identity, wait for Ready, next.
Optionally a 3 → 5 → 3 scale as KEDA would do it.

Afterwards every instance must have counted every accepted event exactly once:

  instance=rollout-arus-0 accepted=80000 counted=80000 lost=0 duplicated=0

and the run reports client-visible failures before retry, partitions moved,
rebalances, the longest freshness (age of asOf seen through the balancer while
clients post) and the rollout's duration. Exits non-zero if anything was lost
or duplicated, or more requests failed than --max-failures.

  rollout.py --from BIN [--to BIN] --brokers HOST:PORT [--seconds-between 5] [--scale]
"""

import argparse
import datetime
import http.client
import json
import os
import random
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(port, path, timeout=5):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except OSError:
        return None, None


class Instance:
    def __init__(self, run, ordinal):
        self.run = run
        self.ordinal = ordinal
        self.name = f"{run.prefix}arus-{ordinal}"
        self.port = free_port()
        self.proc = None
        self.log = os.path.join(run.logs, f"{self.name}.log")

    def start(self, binary):
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARUS__")}
        env.update(self.run.env_for(binary))
        env.update({"ARUS__INSTANCE_ID": self.name, "ARUS__HTTP__BIND": f"127.0.0.1:{self.port}",
                    "RUST_LOG": "info"})
        out = open(self.log, "a")
        self.proc = subprocess.Popen([binary, "serve"], env=env, stdout=out, stderr=out)

    def terminate(self, timeout=60):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        if code != 0:
            raise SystemExit(f"{self.name} exited with {code} after SIGTERM (log: {self.log})")

    def wait_ready(self, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited while starting (log: {self.log})")
            if get_json(self.port, "/health/ready", timeout=2)[0] == 200:
                return
            time.sleep(0.2)
        raise SystemExit(f"{self.name} not ready within {timeout} s (log: {self.log})")

    def stats(self):
        return get_json(self.port, "/events/stats")[1]


class Balancer:
    """haproxy in TCP mode, health-checking /health/ready like a Service's
    endpoints: out after one failed check, back after one good one."""

    def __init__(self, run, haproxy):
        self.port = free_port()
        self.haproxy = haproxy
        self.run = run
        self.config = os.path.join(run.logs, "haproxy.cfg")
        self.proc = None
        self.retired = []

    def write(self, instances):
        servers = "\n".join(
            f"    server {i.name} 127.0.0.1:{i.port} check inter 500 fall 1 rise 1" for i in instances)
        with open(self.config, "w") as f:
            f.write(f"""global
    log stdout format raw local0 warning
defaults
    mode tcp
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 0
frontend arus
    bind 127.0.0.1:{self.port}
    default_backend arus
backend arus
    balance roundrobin
    option httpchk GET /health/ready
{servers}
""")

    def start(self, instances):
        self.write(instances)
        log = open(os.path.join(self.run.logs, "haproxy.log"), "a")
        self.proc = subprocess.Popen([self.haproxy, "-f", self.config, "-db"], stdout=log, stderr=log)

    def reload(self, instances):
        """A new endpoint list (a scale): a new haproxy takes the port over;
        the old one finishes the connections it holds (-sf), as an endpoint
        update leaves established connections alone."""
        self.write(instances)
        self.retired.append(self.proc)
        log = open(os.path.join(self.run.logs, "haproxy.log"), "a")
        self.proc = subprocess.Popen([self.haproxy, "-f", self.config, "-db", "-sf", str(self.proc.pid)],
                                     stdout=log, stderr=log)

    def kill(self):
        for proc in [self.proc, *self.retired]:
            if proc is not None and proc.poll() is None:
                proc.kill()


class Clients:
    def __init__(self, port, count, batch):
        self.port = port
        self.count = count
        self.batch = batch
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.accepted = 0
        self.failures = []
        self.threads = [threading.Thread(target=self.client, args=(c,), daemon=True) for c in range(count)]

    def client(self, c):
        conn = None
        sent = 0
        while not self.stop.is_set():
            events = [{"eventId": str(uuid.uuid4()), "userId": f"user-{c}-{(sent + i) % 997}",
                       "eventType": ("login", "view", "purchase", "logout")[(sent + i) % 4]}
                      for i in range(self.batch)]
            body = json.dumps(events)
            # The same body until it is accepted: a retry, same eventIds.
            while True:
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
                    conn.request("POST", "/events/batch-events", body, {"content-type": "application/json"})
                    resp = conn.getresponse()
                    resp.read()
                    if resp.getheader("connection", "").lower() == "close":
                        conn.close()
                        conn = None
                    if resp.status == 201:
                        break
                    failure = f"HTTP {resp.status}"
                except (OSError, http.client.HTTPException) as e:
                    failure = type(e).__name__
                    if conn is not None:
                        conn.close()
                    conn = None
                with self.lock:
                    self.failures.append((time.time(), failure))
                time.sleep(0.05)
            sent += self.batch
            with self.lock:
                self.accepted += self.batch

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


class Run:
    def __init__(self, args):
        self.args = args
        self.prefix = "rollout-" + "".join(random.choices(string.ascii_lowercase, k=6)) + "-"
        self.logs = tempfile.mkdtemp(prefix="arus-rollout-")
        self.env = {
            "ARUS__KAFKA__BROKERS": args.brokers,
            "ARUS__KAFKA__TOPIC_PREFIX": self.prefix,
            "ARUS__KAFKA__GROUP_ID": self.prefix + "group",
            "ARUS__KAFKA__PARTITIONS": str(args.partitions),
            "ARUS__HTTP__WORKERS": "1",
            "ARUS__AGGREGATOR__ARBITERS": "1",
            "ARUS__KAFKA__SESSION_TIMEOUT_MS": "3000",
            "ARUS__KAFKA__HEARTBEAT_INTERVAL_MS": "500",
            "ARUS__KAFKA__MAX_POLL_INTERVAL_MS": "3000",
            "ARUS__CONSUMER__COMMIT_INTERVAL_MS": "200",
            # The balancer checks every 500 ms and takes one failure: 1.5 s
            # of serving while not ready covers its next check with room.
            "ARUS__SHUTDOWN__DRAIN_DELAY_MS": str(args.drain_delay_ms),
            "ARUS__SHUTDOWN__TIMEOUT_MS": "20000",
        }
        self.known = {}

    def env_for(self, binary):
        """The settings for `binary`: without the drain delay for a build
        that predates it (it would refuse to start, and stops without one)."""
        if binary not in self.known:
            self.known[binary] = accepts_drain_delay(binary, self.env)
            if not self.known[binary]:
                print(f"rollout: {binary} predates shutdown.drain_delay_ms: it stops without draining",
                      flush=True)
        if self.known[binary]:
            return self.env
        return {k: v for k, v in self.env.items() if k != "ARUS__SHUTDOWN__DRAIN_DELAY_MS"}


def accepts_drain_delay(binary, env):
    """Whether `binary` knows shutdown.drain_delay_ms (builds before it
    refuse the setting, and have no `config check` either)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("ARUS__")}
    full.update(env)
    out = subprocess.run([binary, "config", "check"], env=full, capture_output=True)
    return out.returncode == 0


def assignment(instances):
    owners = {}
    for i in instances:
        stats = i.stats() or {}
        for p in stats.get("consumer", {}).get("assignedPartitions", []):
            owners[p] = i.name
    return owners


def rebalances(instances):
    return {i.name: ((i.stats() or {}).get("consumer", {}).get("rebalances", 0)) for i in instances}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="old", required=True, help="the binary running before the rollout")
    parser.add_argument("--to", dest="new", help="the binary rolled out (default: the same)")
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--haproxy", default="haproxy")
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--seconds-between", type=float, default=5.0,
                        help="clients posting before the rollout, between restarts and after")
    parser.add_argument("--drain-delay-ms", type=int, default=1500)
    parser.add_argument("--scale", action="store_true", help="also scale 3 → 5 → 3 as KEDA would")
    parser.add_argument("--max-failures", type=int, default=0)
    args = parser.parse_args()
    new = args.new or args.old
    run = Run(args)
    print(f"rollout: logs in {run.logs}", flush=True)
    instances = [Instance(run, i) for i in range(args.instances)]
    balancer = Balancer(run, args.haproxy)
    clients = None
    try:
        for i in instances:
            i.start(args.old)
        for i in instances:
            i.wait_ready()
        balancer.start(instances)
        time.sleep(1.5)
        clients = Clients(balancer.port, args.clients, args.batch)
        clients.start()
        freshness = [0.0]
        watching = threading.Event()

        def watch():
            while not watching.is_set():
                status, body = get_json(balancer.port, "/events/stats", timeout=2)
                if status == 200 and body and body.get("asOf"):
                    as_of = datetime.datetime.fromisoformat(body["asOf"].replace("Z", "+00:00")).timestamp()
                    freshness[0] = max(freshness[0], time.time() - as_of)
                time.sleep(0.2)
        watcher = threading.Thread(target=watch, daemon=True)
        time.sleep(args.seconds_between)
        before = assignment(instances)
        started = time.time()
        watcher.start()
        moved_rebalances = 0
        for i in reversed(instances):
            others = [o for o in instances if o is not i]
            counts = rebalances(others)
            i.terminate()
            i.start(new)
            i.wait_ready()
            after = rebalances(others)
            moved_rebalances += sum(max(0, after[o.name] - counts[o.name]) for o in others)
            print(f"rollout: {i.name} restarted on {os.path.basename(new)}", flush=True)
            time.sleep(args.seconds_between)
        duration = time.time() - started
        after = assignment(instances)
        moved = sum(1 for p, owner in before.items() if after.get(p) != owner)
        if args.scale:
            grown = [Instance(run, n) for n in range(args.instances, args.instances + 2)]
            for i in grown:
                i.start(new)
            for i in grown:
                i.wait_ready()
            balancer.reload(instances + grown)
            print(f"rollout: scaled to {args.instances + 2}", flush=True)
            time.sleep(args.seconds_between)
            for i in reversed(grown):
                i.terminate()
            balancer.reload(instances)
            print(f"rollout: scaled back to {args.instances}", flush=True)
            time.sleep(args.seconds_between)
        clients.finish()
        watching.set()
        failures = list(clients.failures)
        accepted = clients.accepted
        clean = True
        for i in instances:
            deadline = time.time() + 120
            counted = None
            while time.time() < deadline:
                stats = i.stats() or {}
                counted = stats.get("totalEvents")
                if counted is not None and counted >= accepted and stats.get("lag") == 0:
                    time.sleep(1.0)
                    counted = (i.stats() or {}).get("totalEvents")
                    break
                time.sleep(0.2)
            lost = max(0, accepted - (counted or 0))
            duplicated = max(0, (counted or 0) - accepted)
            clean &= lost == 0 and duplicated == 0
            print(f"instance={i.name} accepted={accepted} counted={counted} lost={lost} duplicated={duplicated}")
        kinds = {}
        for _, kind in failures:
            kinds[kind] = kinds.get(kind, 0) + 1
        print(f"client-visible failures before retry: {len(failures)} {json.dumps(kinds)}")
        print(f"partitions moved: {moved} of {len(before)}")
        print(f"rebalances seen by the members not restarted: {moved_rebalances}")
        print(f"longest freshness during the rollout: {freshness[0]:.1f} s")
        print(f"rollout duration: {duration:.1f} s")
        if not clean or len(failures) > args.max_failures:
            sys.exit(1)
    finally:
        if clients is not None:
            clients.stop.set()
        for i in instances:
            if i.proc is not None and i.proc.poll() is None:
                i.proc.kill()
        balancer.kill()


if __name__ == "__main__":
    main()
