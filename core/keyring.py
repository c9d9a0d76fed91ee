"""Envelope encryption as composition: data keys unwrapped by a key wrapper, kept in a cache.

In the shape of Tink's ``KmsEnvelopeAead``: field values are encrypted locally with data keys
(``envelope``), and the data keys are stored wrapped by something else, the *key wrapper*: the
local master key, KeyManager, an HSM. A ``Keyring`` is given the wrapper (a function that unwraps
one key by id) and owns the cache of unwrapped data keys, so that a batch of N values costs at
most one unwrap per key id, and none once the key is cached in the process.

Decryption picks exactly the key a token names; it never tries keys one by one.
"""

from . import envelope
from .errors import UnknownKeyError


class Keyring:
    """The data keys of one key wrapper (a provider), by id.

    ``unwrap(key_id)`` returns the data key named ``key_id`` (unwrapping it from its stored form)
    or raises ``UnknownKeyError``; ``cache`` is a ``core.cache.Cache`` (per process, safe to
    lose); ``namespace`` separates the keys of several wrappers (and databases) in it; ``ttl`` and
    ``uses`` bound how long (seconds) and for how many batches an unwrapped key stays there.
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
            self._cache.put(name, key, ttl=self._ttl, uses=self._uses)
        return key

    def encrypt(self, key_id, plaintexts, aads):
        """Tokens of ``plaintexts`` under the data key ``key_id``, each bound to its AAD."""
        return envelope.seal_many(key_id, self.key(key_id), plaintexts, aads)

    def decrypt(self, tokens, aads):
        """Plaintexts of ``tokens``; each key id is looked up once per batch."""
        return envelope.open_many(tokens, self.key, aads)
