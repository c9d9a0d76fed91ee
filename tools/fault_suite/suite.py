"""The run: a throwaway database, the emulator and a multi-worker Odoo, the set-up, then the load."""

import os
import re
import subprocess
import threading
import time

import requests
from harness.odoo import drop_database, stop_process
from harness.rpc import OdooSession, grant_addon_groups

from .checks import CLIENT_SECRET, SuiteChecks
from .clients import Client
from .faults import FaultDriver
from .markers import FIELDS, create_values, next_number
from .metrics import MetricsScraper, config_with_token
from .report import SuiteReport, out

PROVIDER_NAME = "KeyManager (fault suite)"


class Suite(SuiteChecks, SuiteReport):
    """The run, from a fresh database to the verdict (``run``); ``cleanup`` stops and drops it all."""

    # -- processes -------------------------------------------------------------------------------
    def start_emulator(self):
        command = [os.path.join(self.args.tools_dir, "emulator"), "--port", "0"]
        command += ["--token-lifetime", str(self.args.token_lifetime)]
        env = dict(os.environ, PYTHON=self.args.python)
        with open(self.emulator_log, "w", encoding="utf-8") as log:  # the child keeps its own descriptor
            self.emulator = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=log, env=env, text=True, start_new_session=True
            )
        line = self.emulator.stdout.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if not match:
            raise RuntimeError(f"the emulator did not start: {line!r} (see {self.emulator_log})")
        self.emulator_url = match.group(1)
        threading.Thread(target=self.emulator.stdout.read, daemon=True).start()

    def start_odoo(self):
        if os.path.exists(self.odoo_log):
            os.remove(self.odoo_log)
        self.odoo.start(
            self.args.workers,
            self.odoo_stderr,
            f"--limit-time-real={self.args.limit_time_real}",
            f"--logfile={self.odoo_log}",
            "--log-level=info",
        )

    def cleanup(self):
        self.odoo.stop()
        stop_process(self.emulator, timeout=5)
        if self.args.keep_db:
            out(f"[fault_suite] kept the database {self.database}")
            return
        drop_database(self.database)

    # -- set-up ----------------------------------------------------------------------------------
    def configure(self):
        session = OdooSession(self.odoo.url, self.database)
        # The checks find records by exact values, many at once: an operator's lookups, uncapped.
        grant_addon_groups(session, "crypto_admin", "registry_searcher")
        session.call("ir.config_parameter", "set_param", "g2p_encryption.search_max_values", "500")
        session.call("ir.config_parameter", "set_param", "g2p_encryption.search_max_per_minute", "100000")
        self.provider_id = session.call(
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
        settings = session.call(
            "res.config.settings",
            "create",
            {
                "registry_encryption_provider_id": self.provider_id,
                "encrypt_registry": True,
                "decrypt_registry": True,
            },
        )
        action = session.call("res.config.settings", "execute", [settings])
        if isinstance(action, dict) and action.get("res_model") == "res.users.identitycheck":
            # Turning decryption on asks for the password, as the web client's dialog does.
            check = action["res_id"]
            session.call("res.users.identitycheck", "write", [check], {"password": "admin"})
            session.call("res.users.identitycheck", "run_check", [check])
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
            Client(i, self.odoo.url, self.database, deadline, seed=1000 + i) for i in range(self.args.clients)
        ]
        self.scraper = MetricsScraper(self.odoo.url, self.metrics_token)
        self.faults.start()
        self.scraper.start()
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
        self.scraper.stop_event.set()
        self.scraper.join(35)
        self.load_seconds = time.monotonic() - started
        self.faults.apply({"clear": True})

    # -- the run ---------------------------------------------------------------------------------
    def run(self):
        out(f"[fault_suite] creating the database {self.database} with g2p_encryption")
        self.odoo.create_database("--no-http")
        # The metrics endpoint opened with a token of this run (a copy of the configuration).
        self.odoo.odoo_conf, self.metrics_token = config_with_token(self.args.odoo_conf, self.work_dir)
        self.start_emulator()
        self.start_odoo()
        out(
            f"[fault_suite] Odoo ({self.args.workers} workers) on {self.odoo.url}, emulator on "
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
        self.check_metrics()
        self.report(committed)
        return all(passed for _label, _value, passed in self.checks)
