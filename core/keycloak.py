"""Keycloak client-credentials tokens, cached in the memory of the worker process.

``TokenFetcher.get_token()`` returns an access token for a confidential client (KEYMANAGER_API.md
§13). Tokens are cached per process, keyed by (token URL, client id), shared by every fetcher of
the process, and renewed ahead of their expiry. When several threads need a token at the same
time, one of them fetches it and the others wait for its result. The token is never written
anywhere but memory, and neither it nor the secret is ever logged or put in an error message.
"""

import hashlib
import hmac
import json
import os
import time
from urllib.parse import quote

from . import http
from .cache import Cache
from .encoding import b64encode, b64url_decode
from .errors import AuthenticationError, RemoteServiceError, ServiceUnavailableError

SERVICE = "Keycloak"
ENDPOINT = "token"
AUTH_METHODS = ("client_secret_post", "client_secret_basic")
# The error codes with which Keycloak refuses a client's credentials (§13); not worth retrying.
CREDENTIAL_ERRORS = {"invalid_client", "unauthorized_client"}

# Renew a token after RENEW_FRACTION of its lifetime, or RENEW_MARGIN seconds before it expires,
# whichever comes first; but never before MIN_FRACTION of its lifetime, so that short-lived
# tokens (a realm configured with 30 s) are still reused.
RENEW_FRACTION = 0.8
RENEW_MARGIN = 30.0
MIN_FRACTION = 0.5
# Lifetime assumed when Keycloak states none (it always does; a proxy in between may not).
DEFAULT_LIFETIME = 60.0

# The per-process cache: (token URL, client id) -> _CachedToken, expiring when the token is due
# for renewal; its key locks let a single fetch run at a time for a client.
_tokens = Cache("Keycloak tokens")
# A fetch that failed after its retries (Keycloak down, slow or failing) is remembered this long:
# the threads that waited for it fail at once with its error instead of each trying again (and
# waiting as long) in turn, which would hold every worker of the server during an outage.
FAILURE_MEMORY_SECONDS = 2.0
_failures = Cache("Keycloak failures")
# Cache entries remember an HMAC of the secret that obtained them (keyed with a per-process
# random key), so that a changed secret is not served a token of the old one.
_secret_hmac_key = os.urandom(32)


class _CachedToken:
    __slots__ = ("token", "secret_digest")

    def __init__(self, token, secret_digest):
        self.token = token
        self.secret_digest = secret_digest


class TokenFetcher:
    """Gets and caches access tokens of one Keycloak client (client-credentials grant).

    ``token_url`` is the full token endpoint, ``{keycloak}/realms/{realm}/protocol/openid-connect/token``.
    ``auth_method`` says how the client authenticates: form fields (``client_secret_post``) or an
    HTTP Basic header (``client_secret_basic``). ``timeout`` bounds each HTTP request (seconds);
    5xx answers, timeouts and refused connections are retried ``retries`` times with exponential
    ``backoff``. ``clock`` is the monotonic clock of the cache (tests move it).
    """

    def __init__(
        self,
        token_url,
        client_id,
        client_secret,
        *,
        auth_method="client_secret_post",
        timeout=10,
        retries=2,
        backoff=0.2,
        session=None,
        clock=time.monotonic,
    ):
        if auth_method not in AUTH_METHODS:
            raise ValueError(f"auth_method must be one of {', '.join(AUTH_METHODS)}, not {auth_method!r}")
        if not token_url or not client_id:
            raise ValueError("token_url and client_id are required")
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret or ""
        self.auth_method = auth_method
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self._session = session
        self._clock = clock
        self._key = (token_url, client_id)
        self._secret_digest = hmac.new(
            _secret_hmac_key, self._client_secret.encode(), hashlib.sha256
        ).digest()

    def __repr__(self):
        # No secret, no token.
        return f"<TokenFetcher {self.client_id} at {self.token_url}>"

    @property
    def realm_url(self):
        """The realm's URL, as named in error messages."""
        return self.token_url.split("/protocol/openid-connect/", 1)[0]

    def get_token(self, force_refresh=False):
        """A valid access token, from the cache unless it is due for renewal or ``force_refresh``."""
        seen = self._cached()
        if not force_refresh and seen is not None:
            return seen.token
        with _tokens.key_lock(self._key):
            current = self._cached()
            # Another thread may have fetched a token while this one waited for the lock: that
            # one is fresh, also for a forced refresh (it replaced the entry this thread saw).
            if current is not None and (not force_refresh or current is not seen):
                return current.token
            failure_key = (*self._key, self._secret_digest)
            failed = _failures.get(failure_key, now=self._clock())
            if failed is not None:
                raise failed.remembered(FAILURE_MEMORY_SECONDS)
            try:
                token, lifetime = self._fetch()
            except RemoteServiceError as error:
                if error.retryable:
                    _failures.put(failure_key, error, ttl=FAILURE_MEMORY_SECONDS, now=self._clock())
                raise
            _tokens.put(
                self._key,
                _CachedToken(token, self._secret_digest),
                ttl=_renewal_delay(lifetime),
                now=self._clock(),
            )
            return token

    def invalidate(self, token=None):
        """Drop the cached token (only if it is ``token``, when given: e.g. one a server rejected).

        Passing the rejected token keeps a fresh token that another thread fetched meanwhile.
        """
        with _tokens.key_lock(self._key):
            current = _tokens.get(self._key)
            if current is not None and (token is None or hmac.compare_digest(current.token, token)):
                _tokens.pop(self._key, only=current)

    def _cached(self):
        """The cached token of this client, unless due for renewal or got with another secret."""
        entry = _tokens.get(self._key, now=self._clock())
        if entry is None or not hmac.compare_digest(entry.secret_digest, self._secret_digest):
            return None
        return entry

    def _fetch(self):
        """One token from Keycloak (transient failures retried); returns ``(token, lifetime_s)``."""
        form = {"grant_type": "client_credentials"}
        headers = {"Accept": "application/json"}
        if self.auth_method == "client_secret_basic":
            # RFC 6749 §2.3.1: id and secret are form-urlencoded before being joined.
            pair = f"{quote(self.client_id, safe='')}:{quote(self._client_secret, safe='')}"
            headers["Authorization"] = "Basic " + b64encode(pair.encode())
        else:
            form["client_id"] = self.client_id
            form["client_secret"] = self._client_secret
        return http.exchange(
            SERVICE,
            "POST",
            self.token_url,
            endpoint=ENDPOINT,
            interpret=self._interpret,
            timeout=self.timeout,
            retries=self.retries,
            backoff=self.backoff,
            session=self._session,
            headers=headers,
            data=form,
        )

    def _interpret(self, answer):
        """``(token, lifetime)`` of Keycloak's answer, or the exception it means (§13)."""
        body = answer.body if isinstance(answer.body, dict) else {}
        error_code = body.get("error") if isinstance(body.get("error"), str) else None
        status, realm = answer.status, self.realm_url
        if status == 200:
            token = body.get("access_token")
            token_type = str(body.get("token_type") or "bearer")
            if not isinstance(token, str) or not token or token_type.lower() != "bearer":
                raise answer.error(
                    RemoteServiceError, f"the answer of {self.token_url} holds no bearer access token"
                )
            return token, _lifetime(body.get("expires_in"), token)
        if status >= 500:
            raise answer.error(ServiceUnavailableError, f"Keycloak at {realm} is failing", error_code)
        if status == 404:
            raise answer.error(
                RemoteServiceError,
                f"no realm at {realm} (unknown realm, or a Keycloak 16 or older that needs "
                "/auth before /realms)",
                error_code,
            )
        if error_code in CREDENTIAL_ERRORS or status == 401:
            raise answer.error(
                AuthenticationError,
                f"Keycloak rejected the client credentials of {self.client_id!r} at {realm}",
                error_code,
            )
        if status == 403:
            raise answer.error(
                AuthenticationError, f"Keycloak refused access at {realm} (realm disabled?)", error_code
            )
        raise answer.error(RemoteServiceError, f"Keycloak refused the token request at {realm}", error_code)


def _lifetime(expires_in, token):
    """Seconds the token is good for: ``expires_in``, shortened by the token's own lifetime if
    shorter. That is ``exp`` − ``iat``, both read on Keycloak's clock: ``exp`` against this
    server's clock would make a token look expired on arrival when this server's clock is ahead
    (each call would then fetch a token). Without ``iat``, ``exp`` against this server's clock."""
    lifetimes = []
    if _is_number(expires_in):
        lifetimes.append(float(expires_in))
    claims = _jwt_claims(token)
    expiry, issued = claims.get("exp"), claims.get("iat")
    if _is_number(expiry):
        lifetimes.append(expiry - (issued if _is_number(issued) else time.time()))
    return min(lifetimes) if lifetimes else DEFAULT_LIFETIME


def _renewal_delay(lifetime):
    if lifetime <= 0:
        return 0.0
    return max(min(lifetime * RENEW_FRACTION, lifetime - RENEW_MARGIN), lifetime * MIN_FRACTION)


def _jwt_claims(token):
    """The claims of a JWT, read without verifying it (they only tune the cache); {} when it has
    none that can be read."""
    try:
        claims = json.loads(b64url_decode(token.split(".")[1]))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _is_number(value):
    return isinstance(value, int | float) and not isinstance(value, bool)
