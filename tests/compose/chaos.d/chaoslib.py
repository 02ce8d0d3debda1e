"""Shared by the helpers of tests/compose/chaos (Python 3 standard library only).

A round lives in one run directory (RUN). The helpers talk to each other only through files
in it:

    run.json            written by `discover`: nodes (name, role, url, container), network,
                        the round's settings and its time origin t0 (epoch seconds)
    state/<node>        one word per node, written by the nemesis (see NODE_STATES)
    stop-writes         created by the entry when the workload must stop
    heal-now            created by the entry when the nemesis may do the final heal
    writes-<level>.jsonl  every write attempt of a driver, one JSON object a line
    faults.jsonl        every fault the nemesis injected, when it ended
    *.json              each helper's summary: nemesis, anytime, converge, verify, strong

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


def http(url, method, path, body=None, headers=None, timeout=10.0):
    """One request on a fresh connection. Raises ConnectionRefusedError when nothing
    listens (the request certainly did not reach the node), and other OSError /
    http.client exceptions when the outcome is unknown."""
    host_port = url.split("://", 1)[1].rstrip("/")
    host, port = host_port.rsplit(":", 1)
    conn = httpclient.HTTPConnection(host, int(port), timeout=timeout)
    try:
        data = None
        hdrs = dict(headers or {})
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


def in_container(container, *args, timeout=15.0):
    """Runs the node binary inside its container as a client of its own API: the way to
    reach a node whose published port went with its network."""
    return docker("exec", container, "/statemesh", "--node", "http://127.0.0.1:7700", *args,
                  timeout=timeout)
