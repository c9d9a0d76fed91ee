"""TokenFetcher against the emulator's Keycloak realm, over real HTTP on 127.0.0.1."""

import json
import logging
import re
import threading
import time

import pytest

from ...emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from ..encoding import b64url_decode
from ..errors import AuthenticationError, RemoteServiceError, ServiceUnavailableError
from ..keycloak import FAILURE_MEMORY_SECONDS, TokenFetcher, _renewal_delay
from .remote_helpers import (
    READER_CLIENT_ID,
    SPECIAL_CLIENT_ID,
    SPECIAL_SECRET,
    token_fetcher,
)

pytestmark = pytest.mark.usefixtures("healthy_emulator")


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def claims_of(token):
    return json.loads(b64url_decode(token.split(".")[1]))


def test_token_is_cached_for_many_calls(emulator):
    fetcher = token_fetcher(emulator)
    tokens = {fetcher.get_token() for _ in range(20)}
    # Another fetcher of the same client in the same process shares the cache.
    tokens.add(token_fetcher(emulator).get_token())
    assert len(tokens) == 1
    assert emulator.token_requests == 1
    claims = claims_of(tokens.pop())
    assert claims["azp"] == DEFAULT_CLIENT_ID
    assert claims["preferred_username"] == f"service-account-{DEFAULT_CLIENT_ID}"
    assert "KEYMANAGER_ADMIN" in claims["realm_access"]["roles"]


def test_token_is_renewed_ahead_of_expiry(emulator):
    clock = FakeClock()
    fetcher = token_fetcher(emulator, clock=clock)
    first = fetcher.get_token()
    clock.now += 239  # lifetime 300 s: renewal due at 80 %, 240 s
    assert fetcher.get_token() == first
    assert emulator.token_requests == 1
    clock.now += 2
    assert fetcher.get_token() != first
    assert emulator.token_requests == 2


def test_a_server_clock_ahead_of_keycloaks_keeps_the_token_cached(emulator, monkeypatch):
    # Keycloak's clock ten minutes behind this server's (a 300 s token has "expired" by this
    # server's clock as it arrives): its lifetime is read from its own claims, iat to exp.
    monkeypatch.setattr(emulator.realm, "clock", lambda: time.time() - 600)
    fetcher = token_fetcher(emulator)
    tokens = {fetcher.get_token() for _ in range(5)}
    assert len(tokens) == 1
    assert emulator.token_requests == 1
    claims = claims_of(tokens.pop())
    assert claims["exp"] < time.time()


@pytest.mark.parametrize(
    ("lifetime", "renew_after"),
    [(300, 240), (60, 30), (10, 5), (0, 0), (-5, 0)],
)
def test_renewal_delay(lifetime, renew_after):
    # 80 % of the lifetime or 30 s before expiry, whichever first, never before half-life.
    assert _renewal_delay(lifetime) == pytest.approx(renew_after)


def test_force_refresh_and_invalidate(emulator):
    fetcher = token_fetcher(emulator)
    first = fetcher.get_token()
    second = fetcher.get_token(force_refresh=True)
    assert second != first
    fetcher.invalidate(first)  # a stale token: the fresh one stays cached
    assert fetcher.get_token() == second
    fetcher.invalidate(second)
    assert fetcher.get_token() not in (first, second)
    assert emulator.token_requests == 3


def test_concurrent_callers_share_one_fetch(emulator):
    emulator.faults.set_latency(200, endpoint="token")
    fetcher = token_fetcher(emulator)
    start = threading.Barrier(8)
    tokens = []

    def worker():
        start.wait()
        tokens.append(fetcher.get_token())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert len(tokens) == 8 and len(set(tokens)) == 1
    assert emulator.token_requests == 1


def test_bad_secret_is_an_authentication_error_not_retried(emulator):
    fetcher = token_fetcher(emulator, secret="wrong-secret", retries=3)
    with pytest.raises(AuthenticationError) as caught:
        fetcher.get_token()
    error = caught.value
    assert (error.service, error.http_status, error.error_code) == ("Keycloak", 401, "unauthorized_client")
    assert "Keycloak rejected the client credentials" in str(error)
    assert "wrong-secret" not in str(error)
    assert emulator.token_requests == 1


def test_unknown_client_and_rejected_secret(emulator):
    with pytest.raises(AuthenticationError) as caught:
        token_fetcher(emulator, client_id="nobody").get_token()
    assert caught.value.error_code == "invalid_client"
    emulator.faults.reject_secret(True)
    with pytest.raises(AuthenticationError):
        token_fetcher(emulator).get_token()
    assert emulator.token_requests == 2


def test_changed_secret_is_not_served_the_cached_token(emulator):
    token_fetcher(emulator).get_token()
    with pytest.raises(AuthenticationError):
        token_fetcher(emulator, secret="edited-by-admin").get_token()


def test_unknown_realm_names_the_realm(emulator):
    token_url = emulator.url + "/realms/nowhere/protocol/openid-connect/token"
    fetcher = TokenFetcher(token_url, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, timeout=1)
    with pytest.raises(RemoteServiceError) as caught:
        fetcher.get_token()
    assert caught.value.http_status == 404
    assert not caught.value.retryable
    assert emulator.url + "/realms/nowhere" in str(caught.value)
    assert emulator.token_requests == 1


def test_5xx_is_retried_then_succeeds(emulator):
    emulator.faults.fail_next(2, status=503, endpoint="token")
    assert token_fetcher(emulator, retries=2).get_token()
    assert emulator.token_requests == 3


def test_persistent_5xx_is_service_unavailable(emulator):
    emulator.faults.fail_next(10, status=500, endpoint="token")
    with pytest.raises(ServiceUnavailableError) as caught:
        token_fetcher(emulator, retries=2).get_token()
    assert caught.value.http_status == 500
    assert emulator.token_requests == 3


def test_keycloak_down_fails_within_bounded_time(emulator):
    emulator.faults.go_down("refuse")
    clock = FakeClock()
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError) as caught:
        token_fetcher(emulator, retries=2, clock=clock).get_token()
    assert time.monotonic() - started < 1.5
    assert "connection refused" in str(caught.value)
    emulator.faults.come_up()
    # The failure is remembered a moment: the next caller is not made to wait for it again.
    with pytest.raises(ServiceUnavailableError, match="not tried again yet"):
        token_fetcher(emulator, clock=clock).get_token()
    clock.now += FAILURE_MEMORY_SECONDS
    assert token_fetcher(emulator, clock=clock).get_token()


def test_threads_waiting_for_a_failing_fetch_fail_with_it_at_once(emulator):
    # Keycloak answers nothing within the timeout: one thread waits for it, the seven others
    # that queued behind it get its error then, without a request (and a timeout) each.
    emulator.faults.set_latency(1000, endpoint="token")
    fetcher = token_fetcher(emulator, timeout=0.3, retries=0)
    start = threading.Barrier(8)
    errors = []

    def worker():
        start.wait()
        try:
            fetcher.get_token()
        except ServiceUnavailableError as error:
            errors.append(error)

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(errors) == 8
    assert emulator.token_requests == 1
    assert time.monotonic() - started < 2.0
    assert sum("not tried again yet" in str(error) for error in errors) == 7


def test_timeout_is_service_unavailable(emulator):
    emulator.faults.set_latency(1000, endpoint="token")
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError) as caught:
        token_fetcher(emulator, timeout=0.2, retries=1).get_token()
    assert time.monotonic() - started < 1.5
    assert "within 0.2 s" in str(caught.value)
    assert emulator.token_requests == 2


def test_client_secret_basic(emulator):
    # A client id and secret with characters that must be form-urlencoded inside the header.
    fetcher = token_fetcher(emulator, SPECIAL_CLIENT_ID, SPECIAL_SECRET, auth_method="client_secret_basic")
    assert claims_of(fetcher.get_token())["azp"] == SPECIAL_CLIENT_ID
    assert emulator.requests[-1]["client_auth"] == "basic"
    assert emulator.requests[-1]["authorization_header"]
    post = token_fetcher(emulator, READER_CLIENT_ID, "reader-secret")
    assert claims_of(post.get_token())["azp"] == READER_CLIENT_ID
    assert emulator.requests[-1]["client_auth"] == "post"
    assert not emulator.requests[-1]["authorization_header"]


def test_secret_and_token_never_logged(emulator, caplog):
    caplog.set_level(logging.DEBUG)
    token = token_fetcher(emulator).get_token()
    with pytest.raises(AuthenticationError):
        token_fetcher(emulator, READER_CLIENT_ID, "a-wrong-reader-secret").get_token()
    assert re.search(r"Keycloak token answered 200 in \d+ ms \(request [0-9a-f]{32}\)", caplog.text)
    assert re.search(r"Keycloak token answered 401 in \d+ ms with unauthorized_client", caplog.text)
    for secret in (DEFAULT_CLIENT_SECRET, "a-wrong-reader-secret", token, token.split(".")[2]):
        assert secret not in caplog.text
    assert DEFAULT_CLIENT_SECRET not in repr(token_fetcher(emulator))
