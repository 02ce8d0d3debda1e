"""Shared by the helpers of tests/compose/chaos (Python 3 standard library only).

A round lives in one run directory (RUN). The helpers talk to each other only through files
in it:

    run.json            written by `discover`: nodes (name, role, url, container), network,
                        the round's settings and its time origin t0 (epoch seconds)
    state/<node>        one word per node, written by the nemesis (see NODE_STATES)
    stop-writes         created by the entry when the workload must stop
    heal-now            created by the entry when the nemesis may do the final heal
    writes-<level>.jsonl  every write attempt of a driver, one JSON object a line
    faults.jsonl        every fault the nemesis injected, when it ended (a leader kill with
                        its measured failover)
    strong-history.jsonl  every strong operation, for the linearizability checker
    reads-bounded.jsonl every bounded read, with its times and response headers
    minority-writes.jsonl every strong write sent through a cut-off voter
    image.json          the image's build time and size (scripts/cluster up)
    *.json              each helper's summary: nemesis, anytime, converge, verify, strong,
                        bounded, minority, driver-*

Every time in these files is epoch seconds (float); reports show them relative to t0.
"""

import http.client as httpclient
import json
import os
import subprocess
import sys
import threading
import time

NS = "chaos"
# The strong level's namespace (declared strong in docker/config/node.yaml) and its registers.
STRONG_NS = "chaos-strong"
# Strong writes that only probe whether a new leader commits (an eventual namespace).
FAILOVER_NS = "chaos-failover"
PROJECT = "statemesh"
# The services of docker-compose.yml.
NODES = ("node1", "node2", "node3", "node4", "node5")

# What the nemesis says about a node. Only `up` promises that the node answers from the
# host; `partitioned` promises that it answers from inside its container (docker exec).
NODE_STATES = (
    "up",           # connected, published port reachable
    "partitioned",  # cut off the compose network (and so its published port); alive
    "healing",      # reconnected, not yet answering on the host port
    "killed",       # SIGKILLed, not started yet
    "restarting",   # started again, not ready yet
)

_print_lock = threading.Lock()
_T0 = None


def now():
    return time.time()


def registers(count):
    """The strong registers driver-strong writes and driver-reads reads at `bounded`."""
    return [f"reg-{i}" for i in range(count)]


def url_of(node):
    # docker-compose.yml publishes nodeN on 127.0.0.1:771N.
    return f"http://127.0.0.1:771{node[-1]}"


def role_of(node):
    return "voter" if node in ("node1", "node2", "node3") else "edge"


def load_run(run):
    with open(os.path.join(run, "run.json")) as f:
        return json.load(f)


def set_t0(t0):
    global _T0
    _T0 = t0


def rel(t, t0=None):
    """A time relative to the round's origin, as text: t+12.3s."""
    base = t0 if t0 is not None else _T0
    if t is None:
        return "-"
    if base is None:
        return f"{t:.1f}"
    return f"t+{t - base:.1f}s"


def say(who, msg):
    with _print_lock:
        stamp = f"{rel(now())} " if _T0 is not None else ""
        print(f"==> chaos {who}: {stamp}{msg}", file=sys.stderr, flush=True)


# ---- node state files --------------------------------------------------------------------

def set_state(run, node, state):
    assert state in NODE_STATES, state
    d = os.path.join(run, "state")
    os.makedirs(d, exist_ok=True)
    tmp = os.path.join(d, f".{node}.{os.getpid()}.{threading.get_ident()}")
    with open(tmp, "w") as f:
        # The second word changes with every change of state, so that readers can tell
        # "up before and after" from "up, then a fault, then up again".
        f.write(f"{state} {time.time_ns()}\n")
    os.replace(tmp, os.path.join(d, node))


def get_state_mark(run, node):
    """The node's state and the mark of its last change: ("up", "1795...")."""
    try:
        with open(os.path.join(run, "state", node)) as f:
            words = f.read().split()
    except FileNotFoundError:
        words = []
    return (words[0] if words else "up", words[1] if len(words) > 1 else "")


def get_state(run, node):
    return get_state_mark(run, node)[0]


# ---- files -------------------------------------------------------------------------------

class JsonlWriter:
    """Appends JSON lines from several threads; every line is flushed at once."""

    def __init__(self, path):
        self._f = open(path, "a", buffering=1)
        self._lock = threading.Lock()

    def write(self, obj):
        line = json.dumps(obj, sort_keys=True, separators=(",", ":"))
        with self._lock:
            self._f.write(line + "\n")

    def close(self):
        with self._lock:
            self._f.close()


def read_jsonl(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    out.append(json.loads(line))
    except FileNotFoundError:
        pass
    return out


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def read_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


# ---- HTTP --------------------------------------------------------------------------------

class HttpResult:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def etag(self):
        tag = self.headers.get("etag")
        return tag.strip().strip('"') if tag else None

    def json(self):
        return json.loads(self.body) if self.body else None

    def error_code(self):
        """The API's error code (`{"error": {"code": ...}}`), None for anything else."""
        try:
            return ((self.json() or {}).get("error") or {}).get("code")
        except (ValueError, AttributeError):
            return None


# The compose cluster's API wants a bearer token on every route but /healthz and /readyz.
# The scripts that start the helpers export it (docker/cluster-workload.token, a `write`
# token) under the name the node's CLI reads as well.
TOKEN_VAR = "STATEMESH_TOKEN"


def require_token(who):
    """Exits with a clear message when no token was given: every request would be a 401."""
    if not os.environ.get(TOKEN_VAR):
        raise SystemExit(f"{who}: {TOKEN_VAR} is not set; the compose cluster's API needs a token "
                         f"(export {TOKEN_VAR}=$(cat docker/cluster-workload.token))")


def http(url, method, path, body=None, headers=None, timeout=10.0):
    """One request on a fresh connection, with the bearer token of $STATEMESH_TOKEN. Raises
    ConnectionRefusedError when nothing listens (the request certainly did not reach the
    node), and other OSError / http.client exceptions when the outcome is unknown."""
    host_port = url.split("://", 1)[1].rstrip("/")
    host, port = host_port.rsplit(":", 1)
    conn = httpclient.HTTPConnection(host, int(port), timeout=timeout)
    try:
        data = None
        hdrs = dict(headers or {})
        token = os.environ.get(TOKEN_VAR)
        if token:
            hdrs.setdefault("Authorization", f"Bearer {token}")
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        return HttpResult(resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw)
    finally:
        conn.close()


# ---- docker ------------------------------------------------------------------------------

def docker(*args, timeout=30.0):
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def address(container):
    """The container's address on its networks ("" while it has none, "?" if unknown)."""
    try:
        out = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                     container, timeout=15)
        return out.stdout.strip() if out.returncode == 0 else "?"
    except Exception:  # noqa: BLE001
        return "?"


def docker_op(*args, timeout=60.0):
    """A docker command run for its effect: None if it succeeded, else what went wrong (text)."""
    try:
        out = docker(*args, timeout=timeout)
    except Exception as e:  # noqa: BLE001
        return f"docker {' '.join(args)}: {e}"
    if out.returncode != 0:
        return f"docker {' '.join(args)}: {out.stderr.strip() or out.stdout.strip()}"
    return None


# The nemesis's faults, shared with scripts/cluster (partition, heal, kill, restart through the
# `fault` helper). Each returns None, or what went wrong. A node taken off the compose network
# has no network at all: it is cut off from every other node, and its published API port goes
# with the network. Docker keeps that across a kill and a start, and allows both operations on
# a stopped container. A `docker kill` is a manual stop: whatever the restart policy of
# docker-compose.yml, docker does not start the container again; only start_container does.

def cut_off(network, container):
    return docker_op("network", "disconnect", network, container)


def reconnect(network, container, alias):
    # --alias: the service name, under which the other nodes (re)dial this one.
    return docker_op("network", "connect", "--alias", alias, network, container)


def kill_container(container):
    return docker_op("kill", container)


def start_container(container):
    return docker_op("start", container)


def compose_containers(who):
    """{service: container name} of the compose project's containers, running or not."""
    out = docker("ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}",
                 "--format", '{{.Names}}\t{{.Label "com.docker.compose.service"}}')
    if out.returncode != 0:
        raise SystemExit(f"{who}: docker ps failed: {out.stderr.strip()}")
    found = {}
    for line in out.stdout.splitlines():
        name, _, service = line.partition("\t")
        found[service] = name
    return found


def compose_network(who):
    """The name of the project's network `mesh` (statemesh_mesh)."""
    out = docker("network", "ls", "--filter", f"label=com.docker.compose.project={PROJECT}",
                 "--filter", "label=com.docker.compose.network=mesh", "--format", "{{.Name}}")
    names = out.stdout.split()
    if len(names) != 1:
        raise SystemExit(f"{who}: expected one compose network 'mesh', found {names}")
    return names[0]


def in_container(container, *args, timeout=15.0):
    """Runs the node binary inside its container as a client of its own API: the way to
    reach a node whose published port went with its network. `-e STATEMESH_TOKEN` without a
    value hands it the token from this process's environment, so the token is on no command
    line."""
    env = ["-e", TOKEN_VAR] if os.environ.get(TOKEN_VAR) else []
    return docker("exec", *env, container, "/statemesh", "--node", "http://127.0.0.1:7700", *args,
                  timeout=timeout)


# ---- the strong path's leader ------------------------------------------------------------
# Shared by the nemesis (leader kills in the chaos round) and scripts/bench-failover (through
# the `leader` helper), so that both measure a failover the same way.

def cluster_view(node, timeout=2.0):
    """A voter's GET /v1/cluster (id, role, term, leader, members); None if it does not answer."""
    try:
        r = http(node["url"], "GET", "/v1/cluster", timeout=timeout)
        return r.json() if r.status == 200 else None
    except Exception:  # noqa: BLE001 (a voter down or cut off: no view)
        return None


def peer_names(nodes, timeout=2.0):
    """{peer id: node name} of the nodes that answer /v1/status."""
    out = {}
    for n in nodes:
        try:
            status = http(n["url"], "GET", "/v1/status", timeout=timeout).json() or {}
        except Exception:  # noqa: BLE001
            continue
        if status.get("node_id"):
            out[status["node_id"]] = n["name"]
    return out


def leader_name(view, names):
    """The node name of the leader a /v1/cluster view reports (None: no leader, or unknown)."""
    leader = (view or {}).get("leader")
    if leader is None:
        return None
    for m in view.get("members") or []:
        if m.get("id") == leader:
            return names.get((m.get("info") or {}).get("peer_id"))
    return None


def find_leader(voters, timeout=10.0):
    """The voter that leads, by its own view (role leader, leader = itself): {"node", "term"},
    or None if none does within `timeout` seconds."""
    deadline = now() + timeout
    while True:
        for v in voters:
            view = cluster_view(v)
            if view and view.get("role") == "leader" and view.get("leader") == view.get("id"):
                return {"node": v["name"], "term": view.get("term")}
        if now() >= deadline:
            return None
        time.sleep(0.2)


def await_failover(survivors, term, since, tag, limit=30.0, every=0.2, request_timeout=2.0):
    """After the leader of `term` died at `since` (epoch seconds): how long until a surviving
    voter reports a leader of a later term AND a strong write through a survivor is
    acknowledged (the failover time is the later of the two).

    A probe starts every `every` seconds on the survivors in turn, each in its own thread: a
    GET /v1/cluster, then a strong PUT of FAILOVER_NS/<tag>. A probe stuck on a request (a
    follower still forwarding to the dead leader) does not delay the next one, so the
    resolution is `every`, not the request timeout; at most request_timeout / every + 1
    probes are in flight. Gives up `limit` seconds after `since`. Returns a dict of
    milliseconds from `since` (None for what did not happen)."""
    names = peer_names(survivors)
    lock = threading.Lock()
    done = threading.Event()
    seen = {"leader_at": None, "leader": None, "term": None, "write_at": None, "write_via": None}

    def probe(i):
        node = survivors[i % len(survivors)]
        view = cluster_view(node, timeout=request_timeout)
        if view and view.get("leader") is not None and (view.get("term") or 0) > term:
            t = now()
            with lock:
                if seen["leader_at"] is None:
                    seen.update(leader_at=t, leader=leader_name(view, names), term=view.get("term"))
        try:
            r = http(node["url"], "PUT", f"/v1/docs/{FAILOVER_NS}/{tag}?consistency=strong",
                     body={"v": f"{tag}-{i}"}, headers={"content-type": "application/json"},
                     timeout=request_timeout)
            acked = 200 <= r.status < 300
        except Exception:  # noqa: BLE001 (refused, timed out: not yet)
            acked = False
        with lock:
            if acked and seen["write_at"] is None:
                seen.update(write_at=now(), write_via=node["name"])
            if seen["leader_at"] is not None and seen["write_at"] is not None:
                done.set()

    running, probes = [], 0
    while not done.is_set() and now() < since + limit:
        t = threading.Thread(target=probe, args=(probes,), daemon=True)
        t.start()
        running.append(t)
        probes += 1
        done.wait(every)
        running = [t for t in running if t.is_alive()]
    for t in running:
        t.join(request_timeout + 1)
    with lock:
        def ms(t):
            return None if t is None else round((t - since) * 1000)
        both = done.is_set()
        return {
            "old_term": term, "new_leader": seen["leader"], "new_term": seen["term"],
            "leader_after_ms": ms(seen["leader_at"]), "write_after_ms": ms(seen["write_at"]),
            "failover_ms": max(ms(seen["leader_at"]), ms(seen["write_at"])) if both else None,
            "write_via": seen["write_via"], "probes": probes,
        }


def median(values):
    """The median of a non-empty list of numbers (the mean of the middle two for an even count)."""
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2
