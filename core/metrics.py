"""Prometheus metrics summed over every process of a server: ``prometheus_client`` in multi-process mode.

Each process of a server (the workers of a prefork Odoo, its cron workers, a queue_job runner)
writes its counters and histograms into memory-mapped files of one directory; a scrape, served by
any one of them, adds up the files of all. The directory is the server's own:
``<base>/<host>/<pid>-<start>`` of the server's main process, so that servers sharing a data dir
(one volume for several pods) keep theirs apart, and a restarted server starts from new files;
directories of servers that no longer run on this host are removed when a new one starts.

:mod:`core.monitoring` decides what is counted; this module only keeps and exposes it. Without
``prometheus_client``, or before :func:`use_directory`, counting does nothing. Labels never carry
data, tokens or secrets: services, endpoints, causes, model names, provider ids.
"""

import contextlib
import os
import shutil
import socket
import threading

try:
    import prometheus_client
    from prometheus_client import multiprocess, values
except ImportError:  # pragma: no cover - the addon works without it, without metrics
    prometheus_client = None

PREFIX = "g2p_encryption"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_lock = threading.Lock()
_directory = None
_metrics = {}
_children = {}  # (name, labels): the labelled child, looked up once

# name: (kind, help, label names)
DEFINITIONS = {
    "remote_requests": (
        "counter",
        "HTTP requests to KeyManager and Keycloak, by service and endpoint (retries count one each).",
        ("service", "endpoint"),
    ),
    "remote_errors": (
        "counter",
        "Failed requests to KeyManager and Keycloak, by cause: timeout, connect_timeout, refused, closed, "
        "connection, http_<status>, authentication, keymanager (an error code in the answer), other.",
        ("service", "endpoint", "cause"),
    ),
    "remote_request_seconds": (
        "histogram",
        "Time of the requests to KeyManager and Keycloak, answered or not.",
        ("service", "endpoint"),
    ),
    "values": (
        "counter",
        "Field values encrypted (operation=encrypt) or decrypted (operation=decrypt), by model.",
        ("operation", "model"),
    ),
    "plaintext_exits": (
        "counter",
        "Decryption log rows: plaintext shown to a person (kind=exit) or used by server code (kind=server).",
        ("kind", "model"),
    ),
    "plaintext_exit_records": (
        "counter",
        "Records whose plaintext the decryption log rows cover.",
        ("kind", "model"),
    ),
    "cache_lookups": (
        "counter",
        "Look-ups in the per-worker caches (data keys, tokens, certificates...), hit or miss.",
        ("cache", "result"),
    ),
    "job_records": (
        "counter",
        "Records looked at (state=done) and converted (state=changed) by the registry jobs' chunks.",
        ("kind", "model", "state"),
    ),
    "job_chunks": (
        "counter",
        "Chunks of the registry jobs run, by outcome (done, failed).",
        ("kind", "model", "outcome"),
    ),
}


def available():
    return prometheus_client is not None


def directory():
    """The directory of this server's metrics, or None when they are not kept."""
    return _directory


def process_start(pid):
    """The start time of process ``pid`` (clock ticks since boot), or None when it does not run."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def server_directory(base, server_pid):
    """``<base>/<host>/<pid>-<start>`` of the server whose main process is ``server_pid``."""
    start = process_start(server_pid) or "0"
    return os.path.join(base, socket.gethostname(), f"{server_pid}-{start}")


def use_directory(base, server_pid):
    """Keep this process's metrics in the directory of the server ``server_pid`` under ``base``,
    made if needed; directories of servers of this host that no longer run are removed.

    Idempotent; call it in every process before anything is counted (a forked worker inherits
    it). Returns the directory, or None without ``prometheus_client``.
    """
    global _directory  # noqa: PLW0603 - one directory per process
    if prometheus_client is None:
        return None
    path = server_directory(base, server_pid)
    with _lock:
        if _directory == path:
            return path
        os.makedirs(path, mode=0o700, exist_ok=True)
        _remove_stale(os.path.dirname(path), keep=os.path.basename(path))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
        # prometheus_client chose its value class when imported: multi-process from now on.
        values.ValueClass = values.MultiProcessValue()
        _metrics.clear()
        _children.clear()
        _directory = path
    return path


def _remove_stale(host_dir, keep):
    for name in os.listdir(host_dir):
        if name == keep:
            continue
        pid, _dash, start = name.partition("-")
        if pid.isdigit() and process_start(int(pid)) == start:
            continue  # another server of this host that runs
        shutil.rmtree(os.path.join(host_dir, name), ignore_errors=True)


def _metric(name):
    metric = _metrics.get(name)
    if metric is None:
        kind, documentation, labels = DEFINITIONS[name]
        full_name = f"{PREFIX}_{name}"
        if kind == "counter":
            metric = prometheus_client.Counter(full_name, documentation, labels, registry=None)
        else:
            metric = prometheus_client.Histogram(
                full_name, documentation, labels, registry=None, buckets=LATENCY_BUCKETS
            )
        metric = _metrics.setdefault(name, metric)
    return metric


def _child(name, labels):
    child = _children.get((name, labels))
    if child is None:
        child = _children.setdefault((name, labels), _metric(name).labels(*labels))
    return child


def inc(name, labels, amount=1):
    """Add ``amount`` to the counter ``name`` of ``labels`` (a tuple in the definition's order)."""
    if _directory is None or not amount:
        return
    with contextlib.suppress(OSError):  # a full disk must not fail a request
        _child(name, labels).inc(amount)


def observe(name, labels, value):
    if _directory is None:
        return
    with contextlib.suppress(OSError):
        _child(name, labels).observe(value)


def exposition(collectors=()):
    """(body, content type) of a scrape: this server's processes' metrics, and ``collectors``'."""
    registry = prometheus_client.CollectorRegistry()
    if _directory is not None:
        multiprocess.MultiProcessCollector(registry, path=_directory)
    for collector in collectors:
        registry.register(collector)
    return prometheus_client.generate_latest(registry), prometheus_client.CONTENT_TYPE_LATEST


def processes():
    """How many processes of this server have counted something (one file each)."""
    if _directory is None:
        return 0
    return len({name.rsplit("_", 1)[-1] for name in os.listdir(_directory) if name.endswith(".db")})
