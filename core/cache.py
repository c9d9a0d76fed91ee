"""Per-process caches: entries that expire by age or by use, emptied in a forked child and by tests.

Every cache of the addon (Keycloak tokens, KeyManager certificates, HTTP sessions, unwrapped data
keys, master keys) is a :class:`Cache`. Caches live in the memory of one worker process and are
safe to lose: a miss fetches or unwraps again. They register themselves here so that

* a forked worker starts with empty caches and fresh locks (``os.register_at_fork``): it must not
  share the parent's sockets, nor inherit a lock held by a thread that does not exist in it;
* tests start cold with one call, :func:`clear_all`.
"""

import os
import threading
import time
import weakref

_caches = weakref.WeakSet()
_MISSING = object()
_observer = None  # called (cache name, hit) on every get: core.monitoring counts it


def observe(function):
    """Have ``function(cache name, hit)`` called on every :meth:`Cache.get` (``core.monitoring``)."""
    global _observer  # noqa: PLW0603 - one observer for the process
    _observer = function


class Cache:
    """A dictionary whose entries expire after ``ttl`` seconds and/or ``uses`` reads.

    ``ttl`` and ``uses`` are the defaults of :meth:`put` (``None``: no limit). ``clock`` is the
    monotonic clock of expiry; :meth:`get` and :meth:`put` take ``now`` for callers with their
    own clock (tests move it).
    """

    def __init__(self, name, *, ttl=None, uses=None, clock=time.monotonic):
        self.name = name
        self.ttl = ttl
        self.uses = uses
        self._clock = clock
        self._lock = threading.Lock()
        self._entries = {}  # key -> [value, expires at or None, uses left or None]
        self._key_locks = {}
        _caches.add(self)

    def __repr__(self):
        return f"<Cache {self.name}: {len(self._entries)} entries>"

    def __len__(self):
        return len(self._entries)

    def get(self, key, default=None, *, now=None):
        """The value of ``key``, counting one use; ``default`` when absent, expired or used up."""
        now = self._clock() if now is None else now
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                value, expires_at, uses_left = entry
                expired = expires_at is not None and expires_at <= now
                if expired or (uses_left is not None and uses_left <= 0):
                    del self._entries[key]
                    entry = None
                elif uses_left is not None:
                    entry[2] = uses_left - 1
        if _observer is not None:
            _observer(self.name, entry is not None)
        return default if entry is None else value

    def put(self, key, value, *, ttl=_MISSING, uses=_MISSING, now=None):
        """Store ``value`` under ``key`` and return it. A ``ttl`` of 0 or less stores nothing."""
        ttl = self.ttl if ttl is _MISSING else ttl
        uses = self.uses if uses is _MISSING else uses
        if (ttl is not None and ttl <= 0) or (uses is not None and uses <= 0):
            self.pop(key)
            return value
        now = self._clock() if now is None else now
        with self._lock:
            self._entries[key] = [value, None if ttl is None else now + ttl, uses]
        return value

    def setdefault(self, key, factory):
        """The value of ``key`` (without counting a use), stored from ``factory()`` when absent."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = [factory(), None, None]
            return entry[0]

    def pop(self, key, default=None, *, only=_MISSING):
        """Remove ``key`` and return its value; with ``only``, only when that is its value."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or (only is not _MISSING and entry[0] is not only):
                return default
            del self._entries[key]
            return entry[0]

    def key_lock(self, key):
        """A lock of ``key``, for a fetch that only one thread at a time should make."""
        with self._lock:
            lock = self._key_locks.get(key)
            if lock is None:
                lock = self._key_locks[key] = threading.Lock()
            return lock

    def values(self):
        """The values held now (expired ones included), without counting uses."""
        with self._lock:
            return [entry[0] for entry in self._entries.values()]

    def items(self):
        with self._lock:
            return [(key, entry[0]) for key, entry in self._entries.items()]

    def clear(self):
        with self._lock:
            self._entries.clear()

    def _reset_in_child(self):
        self._lock = threading.Lock()
        self._key_locks = {}
        self._entries = {}


def clear_all():
    """Empty every cache of this process (tests start cold, as a new worker would)."""
    for cache in list(_caches):
        cache.clear()


def _after_fork_in_child():
    for cache in list(_caches):
        cache._reset_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
