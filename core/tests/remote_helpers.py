"""Helpers of the Keycloak and KeyManager client tests: an emulator, clients with short timeouts.

Imported by ``conftest.py`` (the ``emulator`` and ``healthy_emulator`` fixtures) and by the tests
of the Keycloak and KeyManager clients.
"""

import contextlib

import requests

from ...emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Emulator
from .. import cache, monitoring
from ..keycloak import TokenFetcher
from ..keymanager import KeyManagerClient

READER_CLIENT_ID = "registry-reader"
READER_SECRET = "reader-secret"
SPECIAL_CLIENT_ID = "client with:colon"
SPECIAL_SECRET = "s3cr:t/+%&= é"
# Short bounds keep every failing test under a couple of seconds.
TIMEOUT = 1.0
BACKOFF = 0.02

CLIENTS = {
    DEFAULT_CLIENT_ID: {"secret": DEFAULT_CLIENT_SECRET, "roles": ["KEYMANAGER_ADMIN", "offline_access"]},
    READER_CLIENT_ID: {"secret": READER_SECRET, "roles": ["REGISTRATION_OFFICER"]},
    SPECIAL_CLIENT_ID: {"secret": SPECIAL_SECRET, "roles": ["KEYMANAGER_ADMIN"]},
}


@contextlib.contextmanager
def running_emulator(**kwargs):
    kwargs.setdefault("clients", CLIENTS)
    with Emulator(**kwargs).start() as emulator:
        yield emulator


def reset(emulator):
    """A healthy emulator with zero counts, empty caches and zero call counters, before each test."""
    emulator.faults.clear()
    emulator.reset_counts()
    cache.clear_all()
    monitoring.reset_stats()


def token_fetcher(emulator, client_id=DEFAULT_CLIENT_ID, secret=DEFAULT_CLIENT_SECRET, **kwargs):
    kwargs.setdefault("timeout", TIMEOUT)
    kwargs.setdefault("backoff", BACKOFF)
    return TokenFetcher(emulator.token_url, client_id, secret, **kwargs)


def keymanager_client(emulator, fetcher=None, **kwargs):
    kwargs.setdefault("timeout", TIMEOUT)
    kwargs.setdefault("backoff", BACKOFF)
    return KeyManagerClient(emulator.keymanager_url, fetcher or token_fetcher(emulator), **kwargs)


class RecordingSession(requests.Session):
    """A real session that remembers the requests it sent (to check what goes on the wire)."""

    def __init__(self):
        super().__init__()
        self.sent = []

    def send(self, request, **kwargs):
        self.sent.append(request)
        return super().send(request, **kwargs)
