#!/usr/bin/env python3
"""Checks the Kubernetes manifests: each overlay renders (kubectl kustomize),
every built-in kind passes kubernetes-validate --strict, KEDA's resources pass
KEDA's schemas, Strimzi's resources hold only the fields kafka.strimzi.io/v1
documents, and the manifests agree with the binary: every ARUS__ variable they
set passes `arus config check`, probe paths answer on a running arus, the
grace period exceeds the shutdown timeout, KEDA never wants more members than
partitions, topics and ACLs match the configuration, and the memory limit
exceeds what BENCHMARKS.md measured for the users an overlay is sized for.
Also checks the Dockerfile's runtime packages against `ldd` of the binary.

  check-k8s.py --arus BIN --node-tools DIR --validator BIN [--root DIR]

Exits non-zero listing every problem found."""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request

import yaml

BUILTIN = {"v1", "apps/v1", "policy/v1", "networking.k8s.io/v1"}
KUBERNETES_VERSION = "1.32.0"
OVERLAYS = ["dev", "prod"]
# Placeholders for values the cluster fills in (pod name, Secrets).
POD_NAME = "arus-0"
SECRET_VALUE = "a-secret-value-from-the-cluster-0123456789"

problems = []


def problem(where, text):
    problems.append(f"{where}: {text}")


def render(root, overlay):
    out = subprocess.run(
        ["kubectl", "kustomize", os.path.join(root, "k8s", "overlays", overlay)],
        capture_output=True, text=True)
    if out.returncode != 0:
        problem(overlay, f"kubectl kustomize failed: {out.stderr.strip()}")
        return []
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return found[0] if len(found) == 1 else None


def validate_builtin(overlay, docs, validator):
    builtin = [d for d in docs if d["apiVersion"] in BUILTIN]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump_all(builtin, f)
    out = subprocess.run([validator, "--strict", "--quiet", "-k", KUBERNETES_VERSION, f.name],
                         capture_output=True, text=True)
    os.unlink(f.name)
    if out.returncode != 0:
        problem(overlay, f"kubernetes-validate --strict: {out.stdout}{out.stderr}".strip())
    return len(builtin)


def validate_keda(overlay, docs, node_tools):
    keda = [d for d in docs if d["apiVersion"].startswith("keda.sh/")]
    out = subprocess.run(["node", os.path.join(node_tools, "validate-keda.mjs")],
                         input=json.dumps(keda), capture_output=True, text=True)
    if out.returncode != 0:
        problem(overlay, f"KEDA schema: {out.stderr.strip()}")
    return len(keda)


# The fields kafka.strimzi.io/v1 documents for the two kinds arus uses.
TOPIC_SPEC = {"partitions", "replicas", "config", "topicName"}
USER_SPEC = {"authentication", "authorization", "quotas", "template"}
AUTHENTICATION = {"tls", "tls-external", "scram-sha-512"}
ACL_RULE = {"type", "resource", "host", "operations"}
ACL_RESOURCE = {"type", "name", "patternType"}
RESOURCE_TYPES = {"topic", "group", "cluster", "transactionalId"}
OPERATIONS = {"Read", "Write", "Create", "Delete", "Alter", "Describe", "ClusterAction",
              "AlterConfigs", "DescribeConfigs", "IdempotentWrite", "All"}


def validate_strimzi(overlay, docs):
    count = 0
    for d in docs:
        if not d["apiVersion"].startswith("kafka.strimzi.io/"):
            continue
        count += 1
        where = f"{overlay} {d['kind']}/{d['metadata']['name']}"
        if d["apiVersion"] != "kafka.strimzi.io/v1":
            problem(where, f"apiVersion {d['apiVersion']}, not kafka.strimzi.io/v1")
        if not d["metadata"].get("labels", {}).get("strimzi.io/cluster"):
            problem(where, "no strimzi.io/cluster label: no operator would pick it up")
        spec = d.get("spec", {})
        if d["kind"] == "KafkaTopic":
            for key in set(spec) - TOPIC_SPEC:
                problem(where, f"unknown field spec.{key}")
            for key in ("partitions", "replicas"):
                if not (isinstance(spec.get(key), int) and spec[key] >= 1):
                    problem(where, f"spec.{key} must be a positive integer")
            for key, value in spec.get("config", {}).items():
                if isinstance(value, (dict, list)):
                    problem(where, f"config {key} must be a scalar")
        elif d["kind"] == "KafkaUser":
            for key in set(spec) - USER_SPEC:
                problem(where, f"unknown field spec.{key}")
            if spec.get("authentication", {}).get("type") not in AUTHENTICATION:
                problem(where, "spec.authentication.type must be one of " + ", ".join(sorted(AUTHENTICATION)))
            authz = spec.get("authorization", {})
            if authz.get("type") != "simple":
                problem(where, "spec.authorization.type must be simple")
            for i, rule in enumerate(authz.get("acls", [])):
                at = f"{where} acls[{i}]"
                for key in set(rule) - ACL_RULE:
                    problem(at, f"unknown field {key}" + (" (v1 has operations only)" if key == "operation" else ""))
                resource = rule.get("resource", {})
                for key in set(resource) - ACL_RESOURCE:
                    problem(at, f"unknown field resource.{key}")
                if resource.get("type") not in RESOURCE_TYPES:
                    problem(at, f"resource.type {resource.get('type')!r}")
                if resource.get("type") != "cluster" and not resource.get("name"):
                    problem(at, "resource.name is required but for the cluster")
                if resource.get("patternType", "literal") not in ("literal", "prefix"):
                    problem(at, f"patternType {resource.get('patternType')!r}")
                ops = rule.get("operations", [])
                if not ops or set(ops) - OPERATIONS:
                    problem(at, f"operations {ops}")
                if rule.get("type", "allow") not in ("allow", "deny"):
                    problem(at, f"type {rule.get('type')!r}")
        else:
            problem(where, "a Strimzi kind this checker does not know")
    return count


def container_env(docs, overlay):
    """The arus container's environment as the cluster would give it."""
    sts = one(docs, "StatefulSet", "arus")
    container = sts["spec"]["template"]["spec"]["containers"][0]
    env = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef", {}).get("name")
        cm = one(docs, "ConfigMap", ref)
        if cm is None:
            problem(overlay, f"envFrom names ConfigMap {ref!r}, which the overlay does not hold")
            continue
        env.update(cm.get("data", {}))
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[item["name"]] = POD_NAME
        else:
            env[item["name"]] = SECRET_VALUE
    return sts, container, env


def arus_env(env):
    base = {k: v for k, v in os.environ.items() if not k.startswith("ARUS__")}
    base.update(env)
    return base


def effective_config(arus, env, where):
    check = subprocess.run([arus, "config", "check"], env=arus_env(env), capture_output=True, text=True)
    if check.returncode != 0:
        problem(where, f"arus config check refuses the manifests' environment: {check.stderr.strip()}")
        return None
    out = subprocess.run([arus, "config", "print"], env=arus_env(env), capture_output=True, text=True)
    return tomllib.loads(out.stdout)


def benchmarked_mib(root, users):
    """Resident MiB at `users` users, from BENCHMARKS.md's memory table."""
    text = open(os.path.join(root, "BENCHMARKS.md"), encoding="utf-8").read()
    m = re.search(r"^\| " + str(users) + r" \| \d+ \| (\d+) \| \d+ \|$", text, re.M)
    return int(m.group(1)) if m else None


def mib(quantity):
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    for unit, factor in units.items():
        if quantity.endswith(unit):
            return float(quantity[: -len(unit)]) * factor
    raise ValueError(quantity)


def cross_check(root, overlay, docs, arus):
    sts, container, env = container_env(docs, overlay)
    where = f"{overlay} StatefulSet/arus"
    cfg = effective_config(arus, env, where)
    if cfg is None:
        return set()
    k = cfg["kafka"]
    # Ports: the container's, the bind address's, the probes' and Services'.
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    bind_port = int(cfg["http"]["bind"].rsplit(":", 1)[1])
    if ports.get("http") != bind_port:
        problem(where, f"containerPort http {ports.get('http')} is not arus's http.bind port {bind_port}")
    paths = set()
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container.get(probe, {}).get("httpGet")
        if not get:
            problem(where, f"no {probe}")
            continue
        if get["port"] not in ports and get["port"] != bind_port:
            problem(where, f"{probe} port {get['port']!r} is no port of the container")
        paths.add(get["path"])
    if container.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/health/ready":
        problem(where, "readiness is not /health/ready")
    for svc in (d for d in docs if d["kind"] == "Service" and d["spec"].get("selector") == {"app.kubernetes.io/name": "arus"}):
        for port in svc["spec"]["ports"]:
            if port["targetPort"] not in ports and port["targetPort"] != bind_port:
                problem(f"{overlay} Service/{svc['metadata']['name']}", f"targetPort {port['targetPort']!r} is no port of the pod")
    governing = one(docs, "Service", sts["spec"]["serviceName"])
    if governing is None or governing["spec"].get("clusterIP") != "None":
        problem(where, f"serviceName {sts['spec']['serviceName']!r} is not a headless Service: pods get no DNS names")
    # Shutdown: the grace period is longer than arus's whole shutdown.
    grace = sts["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
    if grace * 1000 <= cfg["shutdown"]["timeout_ms"]:
        problem(where, f"terminationGracePeriodSeconds {grace} is not longer than shutdown.timeout_ms {cfg['shutdown']['timeout_ms']}")
    readiness = container.get("readinessProbe", {})
    noticed_ms = 1000 * readiness.get("periodSeconds", 10) * readiness.get("failureThreshold", 3)
    if cfg["shutdown"]["drain_delay_ms"] <= noticed_ms:
        problem(where, f"shutdown.drain_delay_ms {cfg['shutdown']['drain_delay_ms']} is not longer than the "
                       f"{noticed_ms} ms the readiness probe takes to see the pod go")
    # Static membership: the pod name, and a session outliving a restart.
    if not k["static_membership"] or env.get("ARUS__INSTANCE_ID") != POD_NAME:
        problem(where, "static membership wants kafka.static_membership and the pod name as instance id")
    # Autoscaling: never more members than partitions.
    so = one(docs, "ScaledObject", "arus")
    if so is None:
        problem(overlay, "no ScaledObject arus")
    else:
        if so["spec"]["maxReplicaCount"] > k["partitions"]:
            problem(f"{overlay} ScaledObject/arus", f"maxReplicaCount {so['spec']['maxReplicaCount']} > partitions {k['partitions']}")
        if so["spec"]["scaleTargetRef"]["name"] != sts["metadata"]["name"]:
            problem(f"{overlay} ScaledObject/arus", "scales something else")
        for trigger in so["spec"]["triggers"]:
            if trigger["metadata"].get("consumerGroup") != k["group_id"]:
                problem(f"{overlay} ScaledObject/arus", f"watches group {trigger['metadata'].get('consumerGroup')!r}, not {k['group_id']!r}")
    # Topics: Strimzi's match arus's names, partitions and configs.
    prefix = k["topic_prefix"]
    for key, topic in k["topics"].items():
        name = prefix + topic["name"]
        kt = one(docs, "KafkaTopic", name)
        if kt is None:
            problem(overlay, f"no KafkaTopic {name}")
            continue
        spec, at = kt["spec"], f"{overlay} KafkaTopic/{name}"
        if spec["partitions"] != k["partitions"]:
            problem(at, f"{spec['partitions']} partitions, arus is configured for {k['partitions']}")
        if spec["replicas"] != k["replication_factor"]:
            problem(at, f"{spec['replicas']} replicas, arus is configured for {k['replication_factor']}")
        for setting, value in (("retention.ms", topic["retention_ms"]), ("cleanup.policy", topic["cleanup_policy"]),
                               ("compression.type", topic["compression"])):
            if str(spec.get("config", {}).get(setting)) != str(value):
                problem(at, f"{setting} {spec.get('config', {}).get(setting)!r}, arus creates it with {value!r}")
    # The user: allowed exactly what arus does.
    user = one(docs, "KafkaUser", k["client"].get("sasl.username", ""))
    if user is None:
        problem(overlay, f"no KafkaUser named like sasl.username {k['client'].get('sasl.username')!r}")
    else:
        acls = user["spec"]["authorization"]["acls"]

        def allowed(rtype, name, ops):
            for rule in acls:
                r = rule["resource"]
                if r["type"] != rtype:
                    continue
                pattern = r.get("patternType", "literal")
                matches = rtype == "cluster" or (name == r["name"] if pattern == "literal" else name.startswith(r["name"]))
                if matches and set(ops) <= set(rule["operations"]):
                    return True
            return False
        for topic in k["topics"].values():
            name = prefix + topic["name"]
            if not allowed("topic", name, ["Read", "Write", "Describe", "Create"]):
                problem(f"{overlay} KafkaUser", f"cannot read, write and create topic {name}")
        if not allowed("group", k["group_id"], ["Read", "Describe"]):
            problem(f"{overlay} KafkaUser", f"cannot join group {k['group_id']}")
        transactional = f"arus-{k['group_id']}-{POD_NAME}"
        if not allowed("transactionalId", transactional, ["Write", "Describe"]):
            problem(f"{overlay} KafkaUser", f"cannot use transactional.id {transactional}")
        if not allowed("cluster", None, ["IdempotentWrite"]):
            problem(f"{overlay} KafkaUser", "no IdempotentWrite on the cluster")
    # Memory: above what was measured for the users it is sized for.
    users = sts["metadata"].get("annotations", {}).get("arus.dev/sized-for-users")
    limit = container.get("resources", {}).get("limits", {}).get("memory")
    if not users or not limit:
        problem(where, "no arus.dev/sized-for-users annotation or no memory limit")
    else:
        need = benchmarked_mib(root, int(users))
        if need is None:
            problem(where, f"BENCHMARKS.md has no memory figure for {users} users")
        elif mib(limit) < 1.25 * need:
            problem(where, f"memory limit {limit} is not 25% above the {need} MiB measured at {users} users")
    return paths


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe_paths(arus, paths):
    """Starts arus (embedded broker) and asks each probe path: it must exist."""
    port = free_port()
    env = arus_env({"ARUS__HTTP__BIND": f"127.0.0.1:{port}", "ARUS__INSTANCE_ID": "k8s-check", "RUST_LOG": "warn"})
    proc = subprocess.Popen([arus, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            problem("probes", "arus did not listen within 60 s")
            return
        for path in sorted(paths):
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).status
            except urllib.error.HTTPError as e:
                status = e.code
            if status not in (200, 503):
                problem("probes", f"GET {path} answered {status}: not a health route")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def check_dockerfile(root, arus):
    """The runtime stage installs exactly the packages of the libraries the
    binary links, plus ca-certificates (TLS to brokers; no library)."""
    text = open(os.path.join(root, "Dockerfile"), encoding="utf-8").read()
    stages = re.split(r"^FROM ", text, flags=re.M)
    runtime = stages[-1]
    m = re.search(r"apt-get install[^\n]*?--no-install-recommends((?:[^\n&]|\\\n)*)", runtime)
    if not m:
        problem("Dockerfile", "the runtime stage installs no packages with apt-get")
        return
    installed = {t for t in m.group(1).split() if t != "\\"}
    ldd = subprocess.run(["ldd", arus], capture_output=True, text=True, check=True).stdout
    libs = [line.split("=>")[1].split()[0] for line in ldd.splitlines() if "=>" in line]
    needed = set()
    for lib in libs:
        owner = subprocess.run(["dpkg", "-S", os.path.realpath(lib)], capture_output=True, text=True)
        if owner.returncode != 0:
            owner = subprocess.run(["dpkg", "-S", lib], capture_output=True, text=True)
        if owner.returncode != 0:
            problem("Dockerfile", f"no package owns {lib}")
            continue
        needed.add(owner.stdout.split(":")[0])
    extra = installed - needed - {"ca-certificates"}
    missing = needed - installed
    if missing:
        problem("Dockerfile", f"runtime stage lacks {sorted(missing)} (ldd: {sorted(libs)})")
    if extra:
        problem("Dockerfile", f"runtime stage installs {sorted(extra)}, which the binary does not link")
    if not re.search(r"^USER (?!0\b|root\b)", runtime, re.M):
        problem("Dockerfile", "the runtime stage runs as root")
    print(f"Dockerfile: runtime packages {sorted(needed)} + ca-certificates match ldd")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arus", required=True)
    parser.add_argument("--node-tools", required=True)
    parser.add_argument("--validator", required=True)
    parser.add_argument("--root", default=os.path.join(os.path.dirname(__file__), ".."))
    args = parser.parse_args()
    root = os.path.abspath(args.root)
    paths = set()
    for overlay in OVERLAYS:
        docs = render(root, overlay)
        if not docs:
            continue
        counts = (validate_builtin(overlay, docs, args.validator), validate_keda(overlay, docs, args.node_tools),
                  validate_strimzi(overlay, docs))
        paths |= cross_check(root, overlay, docs, args.arus)
        print(f"{overlay}: {len(docs)} resources ({counts[0]} built-in, {counts[1]} KEDA, {counts[2]} Strimzi)")
    probe_paths(args.arus, paths)
    check_dockerfile(root, args.arus)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)
    print("manifests, configuration and image agree")


if __name__ == "__main__":
    main()
