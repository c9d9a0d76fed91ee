"""The faults: a seeded schedule of what the emulator does wrong, and the thread that applies it."""

import collections
import threading
import time

import requests


def fault_schedule(seconds, outage_seconds=0):
    """[(offset in seconds, label, fault description)]: a 30-second cycle, repeated, seeded.

    Events are left out of the last 3 seconds (so that every spike is switched off again within
    the run); ``outage_seconds`` adds, in the middle of the run, a KeyManager /decrypt that answers
    later than the provider's timeout for that long.
    """
    statuses = (503, 500, 502)
    events = []
    for cycle, start in enumerate(range(0, int(seconds), 30)):
        status = statuses[cycle % len(statuses)]
        cycle_events = [
            (
                0,
                f"failure_rate 10% HTTP {status}",
                {"failure_rate": {"p": 0.1, "seed": 42 + cycle, "status": status, "endpoint": "*"}},
            ),
            (0.5, "expire_tokens", {"expire_tokens": True}),
            (5, "latency 200 ms", {"latency": {"ms": 200, "endpoint": "*"}}),
            (7, "latency 800 ms", {"latency": {"ms": 800, "endpoint": "*"}}),
            (9, "latency off", {"latency": {"ms": 0, "endpoint": "*"}}),
            (10, "expire_tokens", {"expire_tokens": True}),
            (12, "down (503) 2 s", {"down": {"mode": "503", "seconds": 2}}),
            (
                16,
                "error_next 3x KER-CRY-010",
                {"error_next": {"n": 3, "code": "KER-CRY-010", "message": "Invalid data"}},
            ),
            (19, "latency 2500 ms on /decrypt", {"latency": {"ms": 2500, "endpoint": "/decrypt"}}),
            (20, "expire_tokens", {"expire_tokens": True}),
            (21.5, "latency off on /decrypt", {"latency": {"ms": 0, "endpoint": "/decrypt"}}),
            (24, "issue_expired_tokens on", {"issue_expired_tokens": True}),
            (26, "issue_expired_tokens off", {"issue_expired_tokens": False}),
            (27, "down (close) 1.5 s", {"down": {"mode": "close", "seconds": 1.5}}),
        ]
        events.extend(
            (start + offset, label, spec)
            for offset, label, spec in cycle_events
            if start + offset < seconds - 3
        )
    if outage_seconds:
        middle = seconds / 2
        # The outage replaces the cycle's own /decrypt spikes while it lasts.
        events = [
            event
            for event in events
            if not ("/decrypt" in event[1] and middle - 3 <= event[0] <= middle + outage_seconds)
        ]
        events += [
            (middle, f"outage: /decrypt times out for {outage_seconds} s", _decrypt_latency(2500)),
            (middle + outage_seconds, "outage over", _decrypt_latency(0)),
        ]
        events.sort(key=lambda event: event[0])
    return events


def _decrypt_latency(ms):
    return {"latency": {"ms": ms, "endpoint": "/decrypt"}}


class FaultDriver(threading.Thread):
    def __init__(self, control_url, started, seconds, outage_seconds=0):
        super().__init__(name="faults", daemon=True)
        self.control_url = control_url
        self.started = started
        self.seconds = seconds
        self.schedule = fault_schedule(seconds, outage_seconds)
        self.stop_event = threading.Event()
        self.applied = collections.Counter()
        self.failures = []

    def apply(self, spec):
        response = requests.post(self.control_url + "/_emulator/faults", json=spec, timeout=10)
        response.raise_for_status()
        return response.json()

    def run(self):
        for offset, label, spec in self.schedule:
            if self.stop_event.wait(max(0.0, self.started + offset - time.monotonic())):
                return
            try:
                self.apply(spec)
                self.applied[label.split(" ")[0]] += 1
            except requests.RequestException as error:
                self.failures.append(f"{label}: {error}")
        # The load ends healthy: calls still running finish against a working service.
        if not self.stop_event.wait(max(0.0, self.started + self.seconds - time.monotonic())):
            self.apply({"clear": True})
