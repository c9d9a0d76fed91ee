"""Metrics of a server: counted by each process, summed over all at a scrape, kept apart per server."""

import os

import pytest
import requests

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client import values  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from .. import cache, http, metrics, monitoring  # noqa: E402
from ..errors import (  # noqa: E402
    AuthenticationError,
    KeyManagerError,
    RemoteServiceError,
    ServiceUnavailableError,
)


@pytest.fixture()
def metrics_dir(tmp_path, monkeypatch):
    """A fresh base directory; the process's metrics state is put back afterwards."""
    saved = (metrics._directory, dict(metrics._metrics), values.ValueClass)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    yield tmp_path
    metrics._directory, metrics._metrics, values.ValueClass = saved[0], saved[1], saved[2]
    metrics._children.clear()
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


def samples(body):
    """{(name, sorted labels): value} of an exposition."""
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_nothing_is_counted_before_a_directory_is_chosen():
    if metrics.directory() is None:
        metrics.inc("values", ("encrypt", "res.partner"), 5)  # no error, no file
        assert metrics.processes() == 0


def test_counts_of_several_processes_add_up(metrics_dir):
    path = metrics.use_directory(str(metrics_dir), os.getpid())
    assert path.startswith(str(metrics_dir))
    children = []
    for _child in range(3):
        pid = os.fork()
        if pid == 0:  # a worker of the same server
            try:
                monitoring.count_values("decrypt", "res.partner", 7)
                monitoring.record("KeyManager", "http://km", "/decrypt", 12.0)
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    monitoring.count_values("decrypt", "res.partner", 1)
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    found = samples(body)
    assert found[("g2p_encryption_values_total", (("model", "res.partner"), ("operation", "decrypt")))] == 22
    key = ("g2p_encryption_remote_requests_total", (("endpoint", "/decrypt"), ("service", "keymanager")))
    assert found[key] == 3
    assert found[("g2p_encryption_remote_request_seconds_count", key[1])] == 3
    assert metrics.processes() == 4


def test_a_server_starts_from_new_files_and_removes_those_of_servers_gone(metrics_dir):
    host_dir = os.path.join(str(metrics_dir), os.uname().nodename)
    os.makedirs(os.path.join(host_dir, "999999999-1"))  # a server that no longer runs
    running = os.path.join(host_dir, f"{os.getpid()}-{metrics.process_start(os.getpid())}")
    path = metrics.use_directory(str(metrics_dir), os.getpid())
    assert path == running
    assert os.listdir(host_dir) == [os.path.basename(running)]


def test_errors_are_counted_by_cause(metrics_dir):
    metrics.use_directory(str(metrics_dir), os.getpid())
    where = {"service": "KeyManager", "endpoint": "/encrypt"}
    for error, transport in (
        (ServiceUnavailableError("no answer", **where), "timeout"),
        (ServiceUnavailableError("refused", **where), "refused"),
        (ServiceUnavailableError("503", http_status=503, **where), None),
        (AuthenticationError("401", http_status=401, **where), None),
        (KeyManagerError("KER-CRY-010", http_status=200, error_code="KER-CRY-010", **where), None),
        (RemoteServiceError("bad URL", **where), None),
    ):
        monitoring.record("KeyManager", "http://km", "/encrypt", 5.0, error, transport)
    found = samples(metrics.exposition()[0])
    causes = {
        dict(labels)["cause"]: value
        for (name, labels), value in found.items()
        if name == "g2p_encryption_remote_errors_total"
    }
    assert causes == {
        "timeout": 1,
        "refused": 1,
        "http_503": 1,
        "authentication": 1,
        "keymanager": 1,
        "other": 1,
    }


def test_cache_look_ups_are_counted(metrics_dir):
    metrics.use_directory(str(metrics_dir), os.getpid())
    keys = cache.Cache("metrics test")
    keys.get("a")
    keys.put("a", 1)
    keys.get("a")
    keys.get("a")
    found = samples(metrics.exposition()[0])
    assert found[("g2p_encryption_cache_lookups_total", (("cache", "metrics test"), ("result", "hit")))] == 2
    assert found[("g2p_encryption_cache_lookups_total", (("cache", "metrics test"), ("result", "miss")))] == 1


@pytest.mark.parametrize(
    "exc, cause",
    [
        (requests.ConnectTimeout(), "connect_timeout"),
        (requests.ReadTimeout(), "timeout"),
        (requests.ConnectionError("... [Errno 111] Connection refused"), "refused"),
        (requests.ConnectionError("Connection aborted. RemoteDisconnected(...)"), "closed"),
        (requests.ConnectionError("something else"), "connection"),
    ],
)
def test_how_a_request_without_an_answer_failed(exc, cause):
    assert http._transport_cause(exc) == cause
