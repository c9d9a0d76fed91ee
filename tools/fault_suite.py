"""Load and fault suite of registry encryption with the KeyManager provider (run by ``tools/fault_suite``).

Everything runs on 127.0.0.1 and is thrown away at the end:

1. a fresh database with ``g2p_encryption`` installed, a KeyManager provider (envelope mode, short
   timeouts, one retry, a data-key cache of a few uses so that workers call KeyManager often)
   chosen as registry provider, "Encrypt registry" and "Decrypt registry" on;
2. the KeyManager + Keycloak emulator (``tools/emulator``, short token lifetime) and a
   multi-worker (prefork) Odoo;
3. ``--clients`` HTTP clients (JSON-RPC, one session each, logged in as admin) create, edit and
   read registrants for ``--seconds`` while a fault thread drives the emulator: 10 % of 5xx,
   latency spikes, token expiry, expired tokens, KeyManager error codes, a timeout spike and
   short downtimes. Each client keeps a ledger: a create or write whose call succeeded is
   committed, one that failed is not;
4. then, faults cleared, a fresh session checks that every committed record decrypts to what was
   written last, that nothing a failed call wrote survives (searched through the blind index),
   that the blind index matches, that no plaintext is in a ``pg_dump`` nor in Odoo's log, and
   that no worker is stuck.

It prints a summary and exits 1 when a check fails (2 when the set-up fails).
"""

import argparse
import collections
import contextlib
import itertools
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import requests

FIELDS = ("name", "email", "phone", "mobile", "street", "street2", "city", "zip")
UNREADABLE = "[unreadable]"
PROVIDER_NAME = "KeyManager (fault suite)"
CLIENT_SECRET = "emulator-client-secret"  # the emulator's default client
RPC_TIMEOUT = 120  # seconds; longer than --limit-time-real, so Odoo's own answer always arrives
MARKER_PATTERNS = (re.compile(r"zflt\d{7}"), re.compile(r"z\d{7}q"), re.compile(r"7[0-2]\d{7}"))


def out(text=""):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values, fraction):
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


# ----------------------------------------------------------------------------------------------
# Marker values: unique per operation, so that each one can be found (or not) in a dump
# ----------------------------------------------------------------------------------------------
_numbers = itertools.count(1001)
_numbers_lock = threading.Lock()


def next_number():
    with _numbers_lock:
        return next(_numbers)


def create_values(number):
    return {
        "name": f"Zflt{number:07d} Name",
        "email": f"zflt{number:07d}@example.org",
        "phone": f"+254 70{number:07d}",
        "mobile": f"+254 71{number:07d}",
        "street": f"Zflt{number:07d} Street",
        "street2": f"Zflt{number:07d} Block",
        "city": f"Zflt{number:07d}ville",
        "zip": f"Z{number:07d}Q",
    }


def write_values(number):
    return {"city": f"Zflt{number:07d}town", "phone": f"+254 72{number:07d}"}


def fragments(values):
    """The lower-case substrings of ``values`` that MARKER_PATTERNS find in a text."""
    found = set()
    for value in values.values():
        for pattern in MARKER_PATTERNS:
            found.update(pattern.findall(value.lower().replace(" ", "")))
    return found


# ----------------------------------------------------------------------------------------------
# JSON-RPC
# ----------------------------------------------------------------------------------------------
class RpcError(Exception):
    def __init__(self, message, name):
        super().__init__(message)
        self.message = message
        self.name = name


class OdooSession:
    """One logged-in JSON-RPC session (its own cookie jar and connection)."""

    def __init__(self, url, database, login="admin", password="admin"):
        self.url = url
        self.http = requests.Session()
        self._ids = itertools.count(1)
        uid = self.post("/web/session/authenticate", {"db": database, "login": login, "password": password})
        if not uid or not uid.get("uid"):
            raise RpcError(f"cannot log in as {login}", "login")

    def post(self, path, params):
        payload = {"jsonrpc": "2.0", "method": "call", "params": params, "id": next(self._ids)}
        try:
            response = self.http.post(self.url + path, json=payload, timeout=RPC_TIMEOUT)
            response.raise_for_status()
            body = response.json()
        except (requests.RequestException, ValueError) as error:
            raise RpcError(f"{type(error).__name__}: {error}", "transport") from error
        if "error" in body:
            data = body["error"].get("data") or {}
            raise RpcError(data.get("message") or body["error"].get("message", "?"), data.get("name", "?"))
        return body.get("result")

    def call(self, model, method, *args, **kwargs):
        params = {"model": model, "method": method, "args": list(args), "kwargs": kwargs}
        return self.post(f"/web/dataset/call_kw/{model}/{method}", params)


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


# ----------------------------------------------------------------------------------------------
# Load: clients with ledgers
# ----------------------------------------------------------------------------------------------
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
        except Exception as error:  # noqa: BLE001 - reported as a failure of the suite
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


# ----------------------------------------------------------------------------------------------
# Faults
# ----------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------
# The suite
# ----------------------------------------------------------------------------------------------
class Suite:
    def __init__(self, args):
        self.args = args
        self.database = args.database
        self.work_dir = os.path.join(args.work_dir, "fault_suite")
        os.makedirs(self.work_dir, exist_ok=True)
        self.odoo_log = os.path.join(self.work_dir, "odoo.log")
        self.emulator_log = os.path.join(self.work_dir, "emulator.log")
        self.odoo_stderr = os.path.join(self.work_dir, "odoo.stderr")
        self.odoo = self.emulator = None
        self.provider_id = None
        self.odoo_url = self.emulator_url = None
        self.checks = []  # (label, value, passed)
        self.clients = []
        self.faults = None
        self.load_seconds = 0.0

    # -- processes -------------------------------------------------------------------------------
    def odoo_command(self, *extra):
        return [self.args.python, self.args.odoo_bin, "-c", self.args.odoo_conf, "-d", self.database, *extra]

    def create_database(self):
        out(f"[fault_suite] creating the database {self.database} with g2p_encryption")
        subprocess.run(["dropdb", "--if-exists", "--force", self.database], check=True)
        subprocess.run(
            self.odoo_command(
                "-i",
                "g2p_encryption",
                "--without-demo=all",
                "--stop-after-init",
                "--no-http",
                "--log-level=warn",
            ),
            check=True,
        )

    def start_emulator(self):
        command = [os.path.join(self.args.tools_dir, "emulator"), "--port", "0"]
        command += ["--token-lifetime", str(self.args.token_lifetime)]
        env = dict(os.environ, PYTHON=self.args.python)
        self.emulator = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=open(self.emulator_log, "w"),
            env=env,
            text=True,  # noqa: SIM115
            start_new_session=True,
        )
        line = self.emulator.stdout.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if not match:
            raise RuntimeError(f"the emulator did not start: {line!r} (see {self.emulator_log})")
        self.emulator_url = match.group(1)
        threading.Thread(target=self.emulator.stdout.read, daemon=True).start()

    def start_odoo(self):
        port, gevent_port = free_port(), free_port()
        command = self.odoo_command(
            f"--workers={self.args.workers}",
            f"--http-port={port}",
            f"--gevent-port={gevent_port}",
            "--http-interface=127.0.0.1",
            "--max-cron-threads=0",
            f"--limit-time-real={self.args.limit_time_real}",
            f"--logfile={self.odoo_log}",
            "--log-level=info",
        )
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.odoo_log)
        self.odoo = subprocess.Popen(
            command,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=open(self.odoo_stderr, "w"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.STDOUT,
        )
        self.odoo_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.odoo.poll() is not None:
                raise RuntimeError(f"Odoo stopped at start (see {self.odoo_log})")
            with contextlib.suppress(requests.RequestException):
                if requests.post(self.odoo_url + "/web/webclient/version_info", json={}, timeout=5).ok:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"Odoo does not answer on {self.odoo_url} (see {self.odoo_log})")

    @staticmethod
    def stop_process(process, timeout=20):
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)

    def cleanup(self):
        self.stop_process(self.odoo)
        self.stop_process(self.emulator, timeout=5)
        if self.args.keep_db:
            out(f"[fault_suite] kept the database {self.database}")
            return
        subprocess.run(["dropdb", "--if-exists", "--force", self.database], check=False)

    # -- set-up ----------------------------------------------------------------------------------
    def configure(self):
        session = OdooSession(self.odoo_url, self.database)
        group = session.call(
            "ir.model.data",
            "search_read",
            [("module", "=", "g2p_encryption"), ("name", "=", "crypto_admin")],
            ["res_id"],
        )[0]["res_id"]
        admin = session.call(
            "ir.model.data", "search_read", [("module", "=", "base"), ("name", "=", "user_admin")], ["res_id"]
        )
        session.call("res.users", "write", [admin[0]["res_id"]], {"groups_id": [(4, group)]})
        provider_id = session.call(
            "g2p.encryption.provider",
            "create",
            {
                "name": PROVIDER_NAME,
                "type": "keymanager",
                "keymanager_mode": "envelope",
                "keymanager_api_base_url": self.emulator_url + "/v1/keymanager",
                "keymanager_auth_url": self.emulator_url + "/realms/openg2p/protocol/openid-connect/token",
                "keymanager_auth_client_id": "openg2p-admin-client",
                "keymanager_auth_client_secret": CLIENT_SECRET,
                "keymanager_api_timeout": 2,
                "keymanager_api_retries": 1,
                "keymanager_api_retry_backoff": 0.05,
                # A few uses per unwrapped data key: workers go back to KeyManager all the time.
                "keymanager_data_key_cache_uses": self.args.key_cache_uses,
                "keymanager_data_key_cache_seconds": 5,
            },
        )
        self.provider_id = provider_id
        settings = session.call(
            "res.config.settings",
            "create",
            {
                "registry_encryption_provider_id": provider_id,
                "encrypt_registry": True,
                "decrypt_registry": True,
            },
        )
        session.call("res.config.settings", "execute", [settings])
        # A canary: an ordinary contact (not a registrant) is stored in the clear, so the dump scan
        # must find its markers; otherwise the scan itself is broken.
        self.canary = create_values(next_number())
        session.call("res.partner", "create", [dict(self.canary, is_registrant=False)])
        if self.args.cold_start:
            return {}
        # The first registrant makes the provider's data key and blind-index key (wrapped by
        # KeyManager) before the clients race for them (--cold-start lets them race).
        values = create_values(next_number())
        ids = session.call("res.partner", "create", [dict(values, is_registrant=True)])
        row = session.call("res.partner", "read", ids, list(FIELDS))[0]
        if {name: row[name] for name in FIELDS} != values:
            raise RuntimeError(f"the set-up registrant does not read back: {row}")
        return {ids[0]: values}

    # -- load ------------------------------------------------------------------------------------
    def drive_load(self):
        started = time.monotonic()
        deadline = started + self.args.seconds
        self.faults = FaultDriver(self.emulator_url, started, self.args.seconds, self.args.outage_seconds)
        self.clients = [
            Client(i, self.odoo_url, self.database, deadline, seed=1000 + i) for i in range(self.args.clients)
        ]
        self.faults.start()
        for client in self.clients:
            client.start()
        next_report = started + 15
        while any(client.is_alive() for client in self.clients):
            time.sleep(0.5)
            elapsed = time.monotonic() - started
            if time.monotonic() >= next_report:
                next_report += 15
                ops = sum(sum(c.done.values()) for c in self.clients)
                errs = sum(sum(c.errors.values()) for c in self.clients)
                out(f"[fault_suite] {elapsed:5.0f} s: {ops} operations, {errs} errors")
        self.faults.stop_event.set()
        self.faults.join(5)
        self.load_seconds = time.monotonic() - started
        self.faults.apply({"clear": True})

    # -- checks ----------------------------------------------------------------------------------
    def check(self, label, value, passed=None):
        self.checks.append((label, value, value == 0 if passed is None else passed))

    def verify(self, setup_records):
        session = OdooSession(self.odoo_url, self.database)
        committed = dict(setup_records)
        uncertain = {}
        for client in self.clients:
            committed.update(client.ledger)
            uncertain.update(client.uncertain)
        rows = self.read_back(session, list(committed) + list(uncertain))
        lost = [record_id for record_id in list(committed) + list(uncertain) if record_id not in rows]
        corrupted = [rid for rid, values in committed.items() if rid in rows and rows[rid] != values]
        corrupted += [rid for rid, options in uncertain.items() if rid in rows and rows[rid] not in options]
        self.check("committed records lost", len(lost))
        self.check("committed records corrupted (not what was written last)", len(corrupted))
        self.corrupted_examples = [
            (rid, rows[rid], committed.get(rid) or uncertain.get(rid)) for rid in corrupted[:3]
        ]

        failed_creates = [v for c in self.clients for v in c.failed_creates]
        found = self.search_ids(session, "email", [v["email"] for v in failed_creates])
        found |= self.search_ids(session, "phone", [v["phone"] for v in failed_creates])
        self.check("records left by failed creates (blind-index search)", len(found))
        failed_writes = [w for c in self.clients for w in c.failed_writes]
        found = self.search_ids(session, "phone", [values["phone"] for _rid, values in failed_writes])
        self.check("records showing a failed write (blind-index search)", len(found))

        expected = {rid: values["phone"] for rid, values in committed.items()}
        found = self.search_ids(session, "phone", list(expected.values()))
        found_email = self.search_ids(session, "email", [values["email"] for values in committed.values()])
        missing = (set(expected) - found) | (set(committed) - found_email)
        self.check("committed records the blind index does not find", len(missing))

        keys = session.call(
            "g2p.encryption.key",
            "search_read",
            [("provider_id", "=", self.provider_id), ("state", "=", "active")],
            ["usage"],
        )
        usages = collections.Counter(key["usage"] for key in keys)
        self.check(
            f"extra active keys per usage of the provider ({dict(usages)})",
            sum(count - 1 for count in usages.values()),
        )

        unknown = [v for c in self.clients for v in c.unknown_creates]
        self.unknown_found = len(self.search_ids(session, "email", [v["email"] for v in unknown]))
        return committed

    def read_back(self, session, ids):
        """{id: {field: value}} as admin with decryption on; retried while a value is unreadable."""
        rows = {}
        for start in range(0, len(ids), 200):
            chunk = ids[start : start + 200]
            for _attempt in range(3):
                result = session.call("res.partner", "search_read", [("id", "in", chunk)], list(FIELDS))
                if not any(UNREADABLE in row.values() for row in result):
                    break
                time.sleep(1)
            rows.update({row["id"]: {name: row[name] for name in FIELDS} for row in result})
        return rows

    @staticmethod
    def search_ids(session, field, values):
        ids = set()
        for start in range(0, len(values), 500):
            chunk = values[start : start + 500]
            if chunk:
                domain = [("is_registrant", "=", True), (field, "in", chunk)]
                ids.update(session.call("res.partner", "search", domain))
        return ids

    def check_dump(self, setup_records):
        attempted = [values for c in self.clients for values in c.attempted] + list(setup_records.values())
        wanted = set()
        for values in attempted:
            wanted |= fragments(values)
        dump = subprocess.run(["pg_dump", "-d", self.database], capture_output=True, check=True).stdout
        text = dump.decode("utf-8", "replace").lower()
        found = {frag for pattern in MARKER_PATTERNS for frag in pattern.findall(text)}
        canary = fragments(self.canary)
        self.check(
            "dump scan finds the canary (an ordinary contact, stored in the clear)",
            f"{len(found & canary)}/{len(canary)} fragments",
            found >= canary,
        )
        leaked = found & wanted
        self.dump_size = len(dump)
        self.marker_count = len(wanted)
        self.check(
            f"plaintext markers in pg_dump ({len(dump) / 1e6:.1f} MB, {len(wanted)} markers)", len(leaked)
        )
        with open(self.odoo_log, encoding="utf-8", errors="replace") as handle:
            log = handle.read()
        log_lower = log.lower().replace(" ", "")
        in_log = {frag for pattern in MARKER_PATTERNS for frag in pattern.findall(log_lower)} & wanted
        secrets_in_log = log.count(CLIENT_SECRET) + len(re.findall(r"eyJ[\w-]{10,}\.eyJ", log))
        self.check("plaintext markers, secrets or tokens in Odoo's log", len(in_log) + secrets_in_log)
        self.log_errors = len(re.findall(r"^\S+ \S+ \d+ (?:ERROR|CRITICAL) ", log, re.MULTILINE))
        self.log_tracebacks = log.count("Traceback (most recent call last)")
        return log

    def check_workers(self, log):
        limit = self.args.limit_time_real
        slowest = max((s for c in self.clients for values in c.latency.values() for s in values), default=0)
        killed = len(
            re.findall(r"WorkerHTTP \(\d+\) timeout after|virtual real time limit|CPU time limit", log)
        )
        transport = sum(
            count for c in self.clients for cause, count in c.errors.items() if "transport" in cause
        )
        try:
            session = OdooSession(self.odoo_url, self.database)
            started = time.monotonic()
            session.call("res.partner", "search_count", [("is_registrant", "=", True)])
            answer = time.monotonic() - started
        except RpcError:
            answer = float("inf")
        with open(self.odoo_stderr, encoding="utf-8", errors="replace") as handle:
            # The longpolling (gevent) process of a prefork Odoo dies at start in some
            # environments (see the README); the master starts it again and again.
            self.gevent_crashes = handle.read().count("gevent.monkey.patch_all()")
        query = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = :'db' AND pid <> pg_backend_pid() "
            "AND state <> 'idle' AND now() - state_change > interval '10 seconds'"
        )
        stuck_sql = subprocess.run(
            ["psql", "-d", "postgres", "-v", f"db={self.database}", "-At"],
            input=query + ";\n",
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        self.slowest = slowest
        self.check(
            f"calls slower than --limit-time-real ({limit} s); slowest {slowest:.1f} s", int(slowest >= limit)
        )
        self.check("workers killed for time limits (Odoo log)", killed)
        self.check("calls without an answer from Odoo", transport)
        self.check(f"fresh request after the run answered in {answer:.2f} s (< 5 s)", int(answer >= 5))
        self.check("transactions busy for > 10 s after the run (pg_stat_activity)", int(stuck_sql or 0))

    def check_run(self):
        crashed = [f"{c.name}: {c.crashed}" for c in self.clients if c.crashed]
        self.crashes = crashed
        self.check("clients that crashed", len(crashed))
        mismatches = [m for c in self.clients for m in c.read_mismatches]
        self.mismatch_examples = mismatches[:3]
        self.check("reads during the load that differed from the ledger", len(mismatches))
        ops = sum(sum(c.done.values()) for c in self.clients)
        self.check(f"operations done ({ops} > 0)", ops, passed=ops > 0)
        km_errors = sum(
            count for c in self.clients for cause, count in c.errors.items() if cause.startswith("Key")
        )
        self.check(
            f"faults reached the clients ({km_errors} KeyManager/Keycloak errors > 0)",
            km_errors,
            km_errors > 0,
        )

    # -- the run ---------------------------------------------------------------------------------
    def run(self):
        self.create_database()
        self.start_emulator()
        self.start_odoo()
        out(
            f"[fault_suite] Odoo ({self.args.workers} workers) on {self.odoo_url}, emulator on "
            f"{self.emulator_url} (tokens live {self.args.token_lifetime} s); log {self.odoo_log}"
        )
        setup_records = self.configure()
        out(f"[fault_suite] {self.args.clients} clients for {self.args.seconds} s, faults injected")
        self.drive_load()
        self.stats = requests.get(self.emulator_url + "/_emulator/stats", timeout=10).json()
        out("[fault_suite] load done; verifying")
        self.check_run()
        committed = self.verify(setup_records)
        log = self.check_dump(setup_records)
        self.check_workers(log)
        self.report(committed)
        return all(passed for _label, _value, passed in self.checks)

    def report(self, committed):
        done = collections.Counter()
        errors = collections.Counter()
        samples = {}
        latency = collections.defaultdict(list)
        for client in self.clients:
            done.update(client.done)
            errors.update(client.errors)
            samples.update(client.error_samples)
            for kind, values in client.latency.items():
                latency[kind].extend(values)
        total_ok = sum(done.values())
        total_err = sum(errors.values())
        out()
        out("=" * 100)
        out(
            f"Load and fault suite: {self.args.clients} clients, {self.args.workers} Odoo workers, "
            f"{self.load_seconds:.0f} s, token lifetime {self.args.token_lifetime} s"
        )
        out(f"Machine: {machine_description()}")
        rate = total_ok / max(self.load_seconds, 1)
        out(f"Operations: {total_ok} succeeded, {total_err} failed ({rate:.1f} successful operations/s)")
        out(f"  {'kind':<8} {'ok':>6} {'failed':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        for kind in ("create", "write", "read"):
            values = latency.get(kind, [])
            failed = len(values) - done[kind]
            out(
                f"  {kind:<8} {done[kind]:>6} {failed:>7} {percentile(values, 0.5) * 1000:>8.0f} "
                f"{percentile(values, 0.95) * 1000:>8.0f} {max(values, default=0) * 1000:>8.0f}"
            )
        all_latency = [s for values in latency.values() for s in values]
        out(
            f"  {'all':<8} {total_ok:>6} {total_err:>7} {percentile(all_latency, 0.5) * 1000:>8.0f} "
            f"{percentile(all_latency, 0.95) * 1000:>8.0f} {max(all_latency, default=0) * 1000:>8.0f}"
        )
        out("Errors by cause:")
        for cause, count in errors.most_common():
            out(f"  {count:>5}  {cause}")
            if cause.startswith("other") or cause.endswith(" other"):
                out(f"         e.g. {samples[cause]}")
        unreadable = sum(c.reads_unreadable for c in self.clients)
        out(f"Reads that showed {UNREADABLE} while KeyManager failed: {unreadable}")
        out(
            f"Faults applied: {dict(self.faults.applied)}"
            + (f"; not applied: {self.faults.failures}" if self.faults.failures else "")
        )
        counts = self.stats.get("counts", {})
        per_endpoint = ", ".join(f"{name} {count}" for name, count in sorted(counts.items()))
        out(f"Emulator calls: {sum(counts.values())} ({per_endpoint})")
        uncertain = sum(len(c.uncertain) for c in self.clients) + sum(
            len(c.unknown_creates) for c in self.clients
        )
        out(
            f"Ledger: {len(committed)} committed records checked; "
            f"{sum(len(c.failed_creates) for c in self.clients)} failed creates and "
            f"{sum(len(c.failed_writes) for c in self.clients)} failed writes checked absent; "
            f"{uncertain} outcomes unknown"
        )
        out(f"Odoo log: {self.log_errors} ERROR lines, {self.log_tracebacks} tracebacks ({self.odoo_log})")
        if self.gevent_crashes:
            out(
                f"Odoo's longpolling (gevent) process crashed at start {self.gevent_crashes} times and was "
                f"restarted by the master (environment; see {self.odoo_stderr})"
            )
        out("Checks:")
        for label, value, passed in self.checks:
            out(f"  {'PASS' if passed else 'FAIL'}  {label}: {value}")
        for example in self.corrupted_examples + self.mismatch_examples + self.crashes:
            out(f"  example: {example}")
        verdict = "PASS" if all(passed for _l, _v, passed in self.checks) else "FAIL"
        out(f"Result: {verdict}")
        out("=" * 100)


def machine_description():
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "?"
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo", encoding="utf-8") as handle:
        memory = f"{int(handle.readline().split()[1]) / 1024 / 1024:.0f} GB RAM"
    postgres = subprocess.run(
        ["psql", "-d", "postgres", "-Atc", "SHOW server_version"], capture_output=True, text=True
    )
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {memory}, Python {sys.version.split()[0]}, "
        f"PostgreSQL {postgres.stdout.strip() or '?'}"
    )


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="tools/fault_suite", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60, help="duration of the load (default 60)")
    parser.add_argument("--workers", type=int, default=2, help="Odoo HTTP workers (default 2)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients (default 4)")
    parser.add_argument(
        "--token-lifetime", type=int, default=20, help="Keycloak token lifetime, s (default 20)"
    )
    parser.add_argument(
        "--key-cache-uses", type=int, default=16, help="uses of a cached data key (default 16)"
    )
    parser.add_argument(
        "--limit-time-real", type=int, default=60, help="Odoo's --limit-time-real (default 60)"
    )
    parser.add_argument(
        "--outage-seconds",
        type=int,
        default=0,
        help="also make KeyManager /decrypt time out for this long in the middle of the run (default 0)",
    )
    parser.add_argument(
        "--cold-start",
        action="store_true",
        help="let the clients' first creates make the provider's keys (no registrant made at set-up)",
    )
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database at the end")
    # Given by tools/fault_suite from tools/setup.sh:
    parser.add_argument("--python", required=True)
    parser.add_argument("--odoo-bin", required=True)
    parser.add_argument("--odoo-conf", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--tools-dir", default=os.path.dirname(os.path.abspath(__file__)))
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    suite = Suite(args)
    started = time.monotonic()
    try:
        try:
            passed = suite.run()
        except (RuntimeError, RpcError, subprocess.CalledProcessError, requests.RequestException) as error:
            out(f"[fault_suite] ERROR: {type(error).__name__}: {error}")
            return 2
    finally:
        suite.cleanup()
        out(f"[fault_suite] finished in {time.monotonic() - started:.0f} s")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
