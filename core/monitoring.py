"""Per-process counters of the calls made to Keycloak and KeyManager.

Every HTTP exchange of ``core.keycloak`` and ``core.keymanager`` is recorded here, per service,
base URL and endpoint: how many calls, how many failed and why, how long they took, and the last
error. The numbers live in the memory of one worker process (Odoo runs several: each shows its
own), cost a dictionary update per call, and are read by :func:`keymanager_stats` and
:func:`keycloak_stats` so that a provider form can show them.
"""

import os
import time
from datetime import datetime, timezone

from .cache import Cache
from .errors import AuthenticationError, KeyManagerError, ServiceUnavailableError

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


def record(service, base_url, endpoint, elapsed_ms, error=None):
    """Count one HTTP exchange; ``error`` is the exception it ended in, if any."""
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
