"""The per-process cache: expiry by age and by use, single-flight locks, clear_all, fork reset."""

import os
import threading

import pytest

from .. import cache
from ..cache import Cache


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_entries_expire_by_age():
    clock = FakeClock()
    box = Cache("test age", ttl=10, clock=clock)
    box.put("a", 1)
    box.put("b", 2, ttl=None)
    clock.now += 9.9
    assert box.get("a") == 1
    clock.now += 0.1
    assert box.get("a") is None and box.get("b") == 2
    assert box.get("a", "gone") == "gone"
    assert box.put("c", 3, ttl=0) == 3 and box.get("c") is None  # a ttl of 0 stores nothing


def test_entries_expire_by_use():
    box = Cache("test uses", uses=2)
    box.put("k", "v")
    assert [box.get("k"), box.get("k"), box.get("k")] == ["v", "v", None]
    box.put("k", "v", uses=None)
    assert all(box.get("k") == "v" for _ in range(10))


def test_explicit_now_for_callers_with_their_own_clock():
    box = Cache("test now")
    box.put("k", "v", ttl=5, now=1000.0)
    assert box.get("k", now=1004.0) == "v"
    assert box.get("k", now=1005.0) is None


def test_pop_only_the_given_value():
    box = Cache("test pop")
    first, second = object(), object()
    box.put("k", first)
    assert box.pop("k", only=second) is None and box.get("k") is first
    assert box.pop("k", only=first) is first and len(box) == 0


def test_key_lock_lets_one_thread_fetch():
    box = Cache("test single flight")
    fetches = []

    def fetch():
        with box.key_lock("k"):
            if box.get("k") is None:
                fetches.append(1)
                box.put("k", "fetched")

    threads = [threading.Thread(target=fetch) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fetches == [1]


def test_clear_all_empties_every_cache():
    first, second = Cache("test all 1"), Cache("test all 2")
    first.put("a", 1)
    second.setdefault("b", dict)
    cache.clear_all()
    assert len(first) == len(second) == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_empty():
    box = Cache("test fork")
    box.put("k", "parent's")
    box.key_lock("k").acquire()  # held by the parent at fork time
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it sees, never return into pytest
        ok = box.get("k") is None and box.key_lock("k").acquire(timeout=1)
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert box.get("k") == "parent's"
