"""The checks after the load: what was committed reads back, what failed left nothing, nothing leaked."""

import collections
import re
import subprocess
import time

import requests
from harness.rpc import OdooSession, RpcError

from .markers import FIELDS, UNREADABLE, fragments, fragments_in
from .metrics import error_causes, metric_processes, reconcile
from .state import SuiteState

CLIENT_SECRET = "emulator-client-secret"  # the emulator's default client


class SuiteChecks(SuiteState):
    """The checks of :class:`fault_suite.suite.Suite` (a mixin: they read the suite's state)."""

    def check(self, label, value, passed=None):
        self.checks.append((label, value, value == 0 if passed is None else passed))

    def verify(self, setup_records):
        session = OdooSession(self.odoo.url, self.database)
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
        found = fragments_in(text)
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
        in_log = fragments_in(log.replace(" ", "")) & wanted
        secrets_in_log = log.count(CLIENT_SECRET) + len(re.findall(r"eyJ[\w-]{10,}\.eyJ", log))
        self.check("plaintext markers, secrets or tokens in Odoo's log", len(in_log) + secrets_in_log)
        self.log_errors = len(re.findall(r"^\S+ \S+ \d+ (?:ERROR|CRITICAL) ", log, re.MULTILINE))
        self.log_tracebacks = log.count("Traceback (most recent call last)")
        return log

    def check_metrics(self):
        """The endpoint, scraped during the load, and its sums against what the emulator received."""
        scraper = self.scraper
        self.check(
            f"metrics endpoint scraped during the load ({scraper.scrapes} scrapes, "
            f"{len(scraper.failures)} failed)",
            len(scraper.failures),
            passed=scraper.scrapes > 0 and not scraper.failures,
        )
        scraped = scraper.scrape()  # after every call of the run and of its checks
        received = requests.get(self.emulator_url + "/_emulator/stats", timeout=10).json()["received"]
        self.metrics_rows = reconcile(scraped, received)
        self.metrics_causes = error_causes(scraped)
        mismatched = [row for row in self.metrics_rows if row[3] != row[4]]
        self.check(
            "KeyManager and Keycloak requests summed over the workers (minus those that never reached it) "
            "= requests the emulator received, per endpoint",
            len(mismatched),
        )
        data_dir = None
        with open(self.odoo.odoo_conf, encoding="utf-8") as handle:
            for line in handle:
                name, _equals, value = line.partition("=")
                if name.strip() == "data_dir":
                    data_dir = value.strip()
        self.metrics_processes = metric_processes(data_dir, self.odoo.process.pid) if data_dir else 0
        self.check(
            f"Odoo processes whose counts the endpoint summed ({self.metrics_processes})",
            self.metrics_processes,
            passed=self.metrics_processes >= min(2, self.args.workers),
        )

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
            session = OdooSession(self.odoo.url, self.database)
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
