"""The one place where ``core`` talks HTTP: :func:`exchange` sends a request and its retries.

An exchange builds the request (a request id in ``X-Request-ID``), sends it on the pooled session
of its server, times it, logs one line ("KeyManager /encrypt answered 200 in 12 ms (request
3f2a...)"), counts it in ``core.monitoring``, retries what is transient with an exponential,
jittered backoff, and maps the answer to a result or to an exception naming its cause. What an
answer *means* is the caller's: ``core.keycloak`` and ``core.keymanager`` pass an ``interpret``
function that reads an :class:`Answer`. Nothing here logs bodies, headers, tokens or secrets.
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


class Answer:
    """An HTTP answer as ``interpret`` functions see it: status, decoded JSON body, and where it
    came from. :meth:`error` builds the exception of a failed answer with all of that."""

    __slots__ = ("service", "endpoint", "status", "body", "request_id")

    def __init__(self, service, endpoint, status, body, request_id):
        self.service = service
        self.endpoint = endpoint
        self.status = status
        self.body = body
        self.request_id = request_id

    def error(self, cls, detail, error_code=None):
        """An exception of class ``cls`` naming this answer (service, endpoint, status, id)."""
        return cls(
            detail,
            service=self.service,
            endpoint=self.endpoint,
            http_status=self.status,
            error_code=error_code,
            request_id=self.request_id,
        )


def exchange(
    service,
    method,
    url,
    *,
    endpoint,
    interpret,
    timeout,
    stats_key=None,
    retries=0,
    backoff=0.2,
    idempotent=True,
    session=None,
    headers=None,
    **kwargs,
):
    """Send ``method url`` and return ``interpret(answer)``; retry what is transient.

    ``service`` and ``endpoint`` name the call in logs, errors and counters (``stats_key``, the
    server's base URL, groups the counters). ``interpret(answer)`` returns the result or raises a
    :class:`RemoteServiceError` built with ``answer.error``. A request that gets no answer
    (refused, reset, timeout) raises :class:`ServiceUnavailableError`. Errors whose ``retryable``
    is set are tried again up to ``retries`` times, waiting ``backoff`` seconds, doubling; never
    when ``idempotent`` is false (a request that timed out may have been carried out).
    ``kwargs`` (``json``, ``data``, ``params``) go to ``requests``.
    """
    session = session or pooled_session(url)
    stats_key = stats_key or url
    attempt = 0
    while True:
        try:
            return _exchange_once(
                session, service, method, url, endpoint, interpret, timeout, stats_key, headers, kwargs
            )
        except RemoteServiceError as error:
            if not (error.retryable and idempotent and attempt < retries):
                raise
        time.sleep(backoff_delay(attempt, backoff))
        attempt += 1


def _exchange_once(session, service, method, url, endpoint, interpret, timeout, stats_key, headers, kwargs):
    request_id = uuid.uuid4().hex
    where = {"service": service, "endpoint": endpoint, "request_id": request_id}
    headers = dict(headers or {}, **{REQUEST_ID_HEADER: request_id})
    started = time.monotonic()
    try:
        response = session.request(
            method, url, timeout=timeout, allow_redirects=False, headers=headers, **kwargs
        )
    except requests.RequestException as exc:
        error = _transport_error(exc, url, timeout, **where)
        elapsed_ms = _elapsed_ms(started)
        _report(service, stats_key, endpoint, None, elapsed_ms, request_id, error, _transport_cause(exc))
        raise error from None
    elapsed_ms = _elapsed_ms(started)
    answer = Answer(service, endpoint, response.status_code, _json_body(response), request_id)
    try:
        result = interpret(answer)
    except RemoteServiceError as error:
        _report(service, stats_key, endpoint, answer.status, elapsed_ms, request_id, error)
        raise
    _report(service, stats_key, endpoint, answer.status, elapsed_ms, request_id)
    return result


def pooled_session(url):
    """The ``requests.Session`` of this process for the server of ``url``.

    One session per server keeps connections alive between calls.
    """
    parts = urlsplit(url)
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


def backoff_delay(attempt, backoff):
    """Seconds to wait before retry number ``attempt + 1``: exponential, with jitter.

    The jitter spreads the retries of many workers that failed at the same moment.
    """
    return backoff * (2**attempt) * random.uniform(0.5, 1.0)


# An answer whose body broke off: not a ConnectionError for requests, but worth retrying as one.
CUT_ANSWERS = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)


def _transport_error(exc, url, timeout, **where):
    """The error of a request that got no usable answer; ``where`` names service, endpoint, id."""
    host = urlsplit(url).netloc
    if isinstance(exc, requests.Timeout):
        return ServiceUnavailableError(f"no answer from {host} within {timeout} s", **where)
    if isinstance(exc, requests.ConnectionError):
        return ServiceUnavailableError(f"cannot reach {host}: {_connection_failure(exc)}", **where)
    if isinstance(exc, CUT_ANSWERS):  # a proxy or the server went away half way through
        return ServiceUnavailableError(f"{host} closed the connection in the middle of its answer", **where)
    # Invalid URL, unsupported scheme...: a configuration error, not worth retrying.
    return RemoteServiceError(f"cannot send the request: {type(exc).__name__}", **where)


def _report(service, stats_key, endpoint, status, elapsed_ms, request_id, error=None, transport=None):
    """Log the one line of an exchange and count it in ``core.monitoring``."""
    monitoring.record(service, stats_key, endpoint, elapsed_ms, error, transport)
    if status is None:
        _logger.warning(
            "%s %s failed in %d ms: %s (request %s)", service, endpoint, elapsed_ms, error.detail, request_id
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


def _json_body(response):
    """The decoded JSON body, or ``None`` when there is none or it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def _elapsed_ms(started):
    return (time.monotonic() - started) * 1000.0


def _transport_cause(exc):
    """How a request without an answer failed, for the counters: whether it reached the server
    (``timeout``: no answer in time; ``closed``: the connection closed without an answer) or not
    (``connect_timeout``, ``refused``, ``connection``)."""
    if isinstance(exc, requests.ConnectTimeout):
        return "connect_timeout"
    if isinstance(exc, requests.Timeout):
        return "timeout"
    if isinstance(exc, CUT_ANSWERS):
        return "closed"
    failure = _connection_failure(exc) if isinstance(exc, requests.ConnectionError) else ""
    return {"connection refused": "refused", "connection closed without an answer": "closed"}.get(
        failure, "connection"
    )


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
