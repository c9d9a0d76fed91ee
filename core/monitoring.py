"""What the addon counts: calls to Keycloak and KeyManager, values, plaintext exits, caches, jobs.

The one place where events are counted. Every HTTP exchange of ``core.keycloak`` and
``core.keymanager`` is recorded here (:func:`record`), per service, base URL and endpoint: how
many calls, how many failed and why, how long they took, and the last error. Two views of it:

* this worker's own counters, in memory, read by :func:`keymanager_stats` and
  :func:`keycloak_stats` so that a provider form can show them;
* the server's, summed over all its workers, for Prometheus (``core.metrics``): the calls, errors
  by cause and latency histograms, and the other events counted here (:func:`count_values`,
  :func:`count_exit`, :func:`count_cache`, :func:`count_job`).
"""

import os
import time
from datetime import datetime, timezone

from . import cache, metrics
from .cache import Cache
from .errors import AuthenticationError, KeyManagerError, RemoteServiceError, ServiceUnavailableError

# (service, base URL) -> {endpoint: _EndpointStats}; updated under the key's lock.
_stats = Cache("KeyManager and Keycloak call counters")


class _EndpointStats:
    __slots__ = ("calls", "errors", "total_ms", "max_ms", "last_error", "last_error_at")

    def __init__(self):
        self.calls = 0
        self.errors = {}
        self.total_ms = 0.0
        self.max_ms = 0.0
        self.last_error = None
        self.last_error_at = None

    def as_dict(self):
        failed = sum(self.errors.values())
        return {
            "calls": self.calls,
            "ok": self.calls - failed,
            "errors": dict(self.errors),
            "error_count": failed,
            "total_ms": round(self.total_ms, 1),
            "avg_ms": round(self.total_ms / self.calls, 1) if self.calls else 0.0,
            "max_ms": round(self.max_ms, 1),
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }


def error_kind(error):
    """The short name under which an exception is counted."""
    if isinstance(error, ServiceUnavailableError):
        return "unavailable"
    if isinstance(error, AuthenticationError):
        return "authentication"
    if isinstance(error, KeyManagerError):
        return "keymanager"
    return "other"


def error_cause(error, transport=None):
    """The cause under which a failed exchange is counted for Prometheus.

    ``transport`` is how a request without an answer failed (``timeout``, ``connect_timeout``,
    ``refused``, ``closed``, ``connection``); otherwise the answer says: ``authentication``,
    ``keymanager`` (an error code in a KeyManager answer), ``http_<status>``, or ``other``.
    """
    if transport:
        return transport
    if isinstance(error, AuthenticationError):
        return "authentication"
    if isinstance(error, KeyManagerError):
        return "keymanager"
    status = getattr(error, "http_status", None)
    if isinstance(error, RemoteServiceError) and status:
        return f"http_{status}"
    if isinstance(error, ServiceUnavailableError):
        return "unavailable"
    return "other"


def record(service, base_url, endpoint, elapsed_ms, error=None, transport=None):
    """Count one HTTP exchange; ``error`` is the exception it ended in, if any, and ``transport``
    how it failed when no answer came (see :func:`error_cause`)."""
    labels = (service.lower(), endpoint)
    metrics.inc("remote_requests", labels)
    metrics.observe("remote_request_seconds", labels, elapsed_ms / 1000.0)
    if error is not None:
        metrics.inc("remote_errors", (*labels, error_cause(error, transport)))
    key = (service, base_url)
    endpoints = _stats.setdefault(key, dict)
    with _stats.key_lock(key):
        stats = endpoints.get(endpoint)
        if stats is None:
            stats = endpoints[endpoint] = _EndpointStats()
        stats.calls += 1
        stats.total_ms += elapsed_ms
        stats.max_ms = max(stats.max_ms, elapsed_ms)
        if error is not None:
            kind = error_kind(error)
            stats.errors[kind] = stats.errors.get(kind, 0) + 1
            stats.last_error = str(error)
            stats.last_error_at = datetime.fromtimestamp(time.time(), timezone.utc).isoformat(
                timespec="seconds"
            )


def service_stats(service, base_url):
    """``{"calls", "errors", "endpoints": {endpoint: {...}}}`` of one service at one URL."""
    key = (service, base_url)
    with _stats.key_lock(key):
        endpoints = {name: stats.as_dict() for name, stats in _stats.setdefault(key, dict).items()}
    return {
        "service": service,
        "base_url": base_url,
        "pid": os.getpid(),
        "calls": sum(stats["calls"] for stats in endpoints.values()),
        "errors": sum(stats["error_count"] for stats in endpoints.values()),
        "endpoints": endpoints,
    }


def keymanager_stats(base_url):
    """Counters of this worker's calls to the KeyManager at ``base_url``."""
    return service_stats("KeyManager", base_url.rstrip("/"))


def keycloak_stats(token_url):
    """Counters of this worker's calls to the Keycloak token endpoint ``token_url``."""
    return service_stats("Keycloak", token_url)


def table_rows(*sections):
    """One row per service and endpoint of ``service_stats`` results, for a monitoring table.

    A service without calls gives one row whose ``endpoint`` is None.
    """
    rows = []
    for section in sections:
        endpoints = section["endpoints"] or {}
        if not endpoints:
            rows.append({"service": section["service"], "endpoint": None})
        for name, stats in sorted(endpoints.items()):
            errors = ", ".join(f"{kind}: {count}" for kind, count in sorted(stats["errors"].items()))
            last_error = f"{stats['last_error_at']}: {stats['last_error']}" if stats["last_error"] else ""
            rows.append(
                dict(
                    stats,
                    service=section["service"],
                    endpoint=name,
                    errors=errors or "0",
                    last_error=last_error,
                )
            )
    return rows


def reset_stats(service=None, base_url=None):
    """Forget the counters (all of them, or those of one service and URL)."""
    if service is None:
        _stats.clear()
    else:
        _stats.pop((service, base_url))


def count_values(operation, model, count):
    """``count`` field values of ``model`` encrypted (``operation="encrypt"``) or decrypted."""
    metrics.inc("values", (operation, model), count)


def count_exit(kind, model, records):
    """A decryption log row: plaintext of ``records`` records of ``model`` shown to a person
    (``kind="exit"``) or used by server code (``kind="server"``)."""
    metrics.inc("plaintext_exits", (kind, model))
    metrics.inc("plaintext_exit_records", (kind, model), records)


def count_cache(name, hit):
    """A look-up in the cache ``name`` (``core.cache``): found, or not."""
    metrics.inc("cache_lookups", (name, "hit" if hit else "miss"))


def count_job(kind, model, done, changed, failed=False):
    """A chunk of a registry job: records looked at and converted, or a failure."""
    if failed:
        metrics.inc("job_chunks", (kind, model, "failed"))
        return
    metrics.inc("job_chunks", (kind, model, "done"))
    metrics.inc("job_records", (kind, model, "done"), done)
    metrics.inc("job_records", (kind, model, "changed"), changed)


cache.observe(count_cache)
