"""Envelope encryption as composition: data keys unwrapped by a key wrapper, kept in a cache.

In the shape of Tink's ``KmsEnvelopeAead``: field values are encrypted locally with data keys
(``envelope``), and the data keys are stored wrapped by something else, the *key wrapper*: the
local master key, KeyManager, an HSM. A ``Keyring`` is given the wrapper (a function that unwraps
one key by id) and owns the cache of unwrapped data keys, so that a batch of N values costs at
most one unwrap per key id, and none once the key is cached in the process.

Decryption picks exactly the key a token names; it never tries keys one by one.
"""

import threading
import time

from . import envelope
from .errors import UnknownKeyError


class KeyCache:
    """Unwrapped keys of one process: ``{name: (key, expires at, uses left)}``.

    Safe to lose (a miss unwraps the key again). ``ttl`` bounds how long a key stays in memory
    after it was unwrapped, ``uses`` how many batches it serves before it is unwrapped again.
    """

    def __init__(self):
        self._entries = {}
        self._lock = threading.Lock()

    def get(self, name):
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                return None
            key, expires, uses = entry
            if expires <= time.monotonic() or uses <= 0:
                del self._entries[name]
                return None
            self._entries[name] = (key, expires, uses - 1)
            return key

    def put(self, name, key, ttl, uses):
        if ttl > 0 and uses > 0:
            with self._lock:
                self._entries[name] = (key, time.monotonic() + ttl, uses)

    def clear(self):
        with self._lock:
            self._entries.clear()


class Keyring:
    """The data keys of one key wrapper (a provider), by id.

    ``unwrap(key_id)`` returns the data key named ``key_id`` (unwrapping it from its stored form)
    or raises ``UnknownKeyError``; ``namespace`` separates the keys of several wrappers (and
    databases) in one ``cache``; ``ttl`` and ``uses`` bound how long a key is cached.
    """

    def __init__(self, unwrap, cache, namespace, ttl=3600.0, uses=10**9):
        self._unwrap = unwrap
        self._cache = cache
        self._namespace = namespace
        self._ttl = ttl
        self._uses = uses

    def key(self, key_id):
        name = (self._namespace, key_id)
        key = self._cache.get(name)
        if key is None:
            key = self._unwrap(key_id)
            if key is None:
                raise UnknownKeyError(f"no data key {key_id}")
            self._cache.put(name, key, self._ttl, self._uses)
        return key

    def encrypt(self, key_id, plaintexts, aads):
        """Tokens of ``plaintexts`` under the data key ``key_id``, each bound to its AAD."""
        return envelope.seal_many(key_id, self.key(key_id), plaintexts, aads)

    def decrypt(self, tokens, aads):
        """Plaintexts of ``tokens``; each key id is looked up once per batch."""
        return envelope.open_many(tokens, self.key, aads)
