"""The one place where ``core`` talks HTTP: pooled sessions, timing, logging, transport errors.

``core.keycloak`` and ``core.keymanager`` send every request through :func:`send` and report its
outcome with :func:`report`, so each exchange is timed, logged on one line
("KeyManager /encrypt answered 200 in 12 ms (request 3f2a...)") and counted in
``core.monitoring``. Nothing here logs bodies, headers, tokens or secrets.
"""

import http.cookiejar
import logging
import random
import time
import uuid
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from . import monitoring
from .cache import Cache
from .errors import RemoteServiceError, ServiceUnavailableError

_logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"

# One session per server and process: sessions hold sockets, so a forked worker gets its own.
_sessions = Cache("HTTP sessions")


def new_request_id():
    return uuid.uuid4().hex


def pooled_session(base_url):
    """The ``requests.Session`` of this process for the server at ``base_url``.

    One session per server keeps connections alive between calls.
    """
    parts = urlsplit(base_url)
    return _sessions.setdefault((parts.scheme, parts.netloc), _new_session)


def _new_session():
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=2, pool_maxsize=16, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # The token travels in a Cookie header set per request; cookies set by a server must not be
    # kept and sent along with later calls of other tokens.
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return session


def send(session, method, url, *, service, endpoint, stats_key, request_id, timeout, **kwargs):
    """Send one request; return ``(response, elapsed_ms)`` whatever its status.

    A request that gets no answer (connection refused or reset, timeout) is logged, counted and
    raised as :class:`ServiceUnavailableError`.
    """
    started = time.monotonic()
    try:
        response = session.request(method, url, timeout=timeout, allow_redirects=False, **kwargs)
    except requests.RequestException as exc:
        error = _transport_error(exc, url, timeout, service=service, endpoint=endpoint, request_id=request_id)
    else:
        return response, _elapsed_ms(started)
    report(service, stats_key, endpoint, None, _elapsed_ms(started), request_id, error)
    raise error


def _transport_error(exc, url, timeout, **where):
    """The error of a request that got no usable answer; ``where`` names service, endpoint, id."""
    host = urlsplit(url).netloc
    if isinstance(exc, requests.Timeout):
        return ServiceUnavailableError(f"no answer from {host} within {timeout} s", **where)
    if isinstance(exc, requests.ConnectionError):
        return ServiceUnavailableError(f"cannot reach {host}: {_connection_failure(exc)}", **where)
    # Invalid URL, unsupported scheme...: a configuration error, not worth retrying.
    return RemoteServiceError(f"cannot send the request: {type(exc).__name__}", **where)


def report(service, stats_key, endpoint, status, elapsed_ms, request_id, error=None):
    """Log the one line of an exchange and count it in ``core.monitoring``."""
    monitoring.record(service, stats_key, endpoint, elapsed_ms, error)
    if status is None:
        _logger.warning(
            "%s %s failed in %d ms: %s (request %s)",
            service,
            endpoint,
            elapsed_ms,
            error.detail,
            request_id,
        )
    elif error is None:
        _logger.info(
            "%s %s answered %s in %d ms (request %s)", service, endpoint, status, elapsed_ms, request_id
        )
    else:
        _logger.warning(
            "%s %s answered %s in %d ms with %s (request %s)",
            service,
            endpoint,
            status,
            elapsed_ms,
            error.error_code or type(error).__name__,
            request_id,
        )


def backoff_delay(attempt, backoff):
    """Seconds to wait before retry number ``attempt + 1``: exponential, with jitter.

    The jitter spreads the retries of many workers that failed at the same moment.
    """
    return backoff * (2**attempt) * random.uniform(0.5, 1.0)


def json_body(response):
    """The decoded JSON body, or ``None`` when there is none or it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def _elapsed_ms(started):
    return (time.monotonic() - started) * 1000.0


def _connection_failure(exc):
    # requests wraps urllib3 wraps socket errors; their texts hold object reprs and URLs. Say the
    # cause in a few words instead.
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    if "RemoteDisconnected" in text or "Connection aborted" in text or "Connection reset" in text:
        return "connection closed without an answer"
    if "Name or service not known" in text or "Temporary failure in name resolution" in text:
        return "unknown host name"
    return "connection failed"
