"""The load: HTTP clients that create, edit and read registrants, each keeping a ledger."""

import collections
import random
import re
import threading
import time

from harness.rpc import OdooSession, RpcError

from .markers import FIELDS, UNREADABLE, create_values, next_number, write_values

_CAUSE_SERVICE = re.compile(r"\b(KeyManager|Keycloak) ?(/[\w.-]+|token)?")
_CAUSE_STATUS = re.compile(r"\(HTTP (\d{3})")
_CAUSE_CODE = re.compile(r"\b(KER-[A-Z]+-\d+)\b")


def classify(error):
    """A short cause of a failed call, from Odoo's error message."""
    if error.name == "transport":
        return "no answer from Odoo (transport)"
    message = error.message
    service = _CAUSE_SERVICE.search(message.split(": ", 1)[-1])
    if not service:
        if "serializ" in message or "concurrent update" in message:
            return "Odoo: serialization failure"
        return f"other ({error.name.rsplit('.', 1)[-1]})"
    parts = [service.group(1)]
    status, code = _CAUSE_STATUS.search(message), _CAUSE_CODE.search(message)
    if status:
        parts.append(f"HTTP {status.group(1)}")
    if code:
        parts.append(code.group(1))
    if "no answer from" in message:
        parts.append("timeout")
    elif "cannot reach" in message:
        parts.append("unreachable")
    if "HTTP 200" in parts and code:
        parts.remove("HTTP 200")
    if len(parts) == 1:
        parts.append("other")
    return " ".join(parts)


class Client(threading.Thread):
    """Creates, edits and reads its own registrants; remembers what it believes is committed."""

    def __init__(self, index, url, database, deadline, seed):
        super().__init__(name=f"client-{index}", daemon=True)
        self.url, self.database, self.deadline = url, database, deadline
        self.rng = random.Random(seed)
        self.ledger = {}  # record id -> {field: value} committed
        self.uncertain = {}  # record id -> [possible values]: a call whose outcome is unknown
        self.failed_creates = []  # values of creates that failed (must have left nothing)
        self.failed_writes = []  # (record id, values) of writes that failed (must not show)
        self.unknown_creates = []  # values of creates without an answer
        self.attempted = []  # every values dict sent (for the dump check)
        self.done = collections.Counter()  # kind -> successful operations
        self.errors = collections.Counter()  # cause -> count
        self.error_samples = {}
        self.latency = collections.defaultdict(list)  # kind -> seconds (success and failure)
        self.read_mismatches = []
        self.reads_unreadable = 0
        self.crashed = None

    def run(self):
        try:
            session = OdooSession(self.url, self.database)
            while time.monotonic() < self.deadline:
                roll = self.rng.random()
                if roll < 0.4 or not self.ledger:
                    self.create(session)
                elif roll < 0.75:
                    self.write(session)
                else:
                    self.read(session)
        # Whatever stops a client is reported as a failure of the suite.
        except Exception as error:  # noqa: BLE001  # pylint: disable=broad-exception-caught
            self.crashed = f"{type(error).__name__}: {error}"

    def timed(self, kind, function, *args, **kwargs):
        started = time.monotonic()
        try:
            result = function(*args, **kwargs)
        except RpcError as error:
            self.latency[kind].append(time.monotonic() - started)
            cause = classify(error)
            self.errors[cause] += 1
            self.error_samples.setdefault(cause, error.message[:300])
            raise
        self.latency[kind].append(time.monotonic() - started)
        self.done[kind] += 1
        return result

    def create(self, session):
        values = create_values(next_number())
        self.attempted.append(values)
        try:
            ids = self.timed(
                "create", session.call, "res.partner", "create", [dict(values, is_registrant=True)]
            )
        except RpcError as error:
            (self.unknown_creates if error.name == "transport" else self.failed_creates).append(values)
            return
        self.ledger[ids[0]] = dict(values)

    def write(self, session):
        record_id = self.rng.choice(sorted(self.ledger))
        values = write_values(next_number())
        self.attempted.append(values)
        try:
            self.timed("write", session.call, "res.partner", "write", [record_id], values)
        except RpcError as error:
            if error.name == "transport":
                old = self.ledger.pop(record_id)
                self.uncertain[record_id] = [old, dict(old, **values)]
            else:
                self.failed_writes.append((record_id, values))
            return
        self.ledger[record_id].update(values)

    def read(self, session):
        ids = self.rng.sample(sorted(self.ledger), min(5, len(self.ledger)))
        spec = {name: {} for name in FIELDS}
        try:
            result = self.timed(
                "read", session.call, "res.partner", "web_search_read", [("id", "in", ids)], spec
            )
        except RpcError:
            return
        seen = {row["id"]: row for row in result["records"]}
        for record_id in ids:
            row = seen.get(record_id)
            if row is None:
                self.read_mismatches.append((record_id, "missing"))
                continue
            got = {name: row.get(name) for name in FIELDS}
            if UNREADABLE in got.values():
                self.reads_unreadable += 1
            elif got != self.ledger[record_id]:
                self.read_mismatches.append(
                    (record_id, {k: v for k, v in got.items() if v != self.ledger[record_id][k]})
                )
