"""What a run builds and finds: its processes, clients and faults, the checks and their findings."""

import os

from harness.odoo import OdooServer


class SuiteState:
    """The state shared by the suite's steps (``suite``, ``checks``, ``report``)."""

    def __init__(self, args):
        self.args = args
        self.database = args.database
        self.work_dir = os.path.join(args.work_dir, "fault_suite")
        os.makedirs(self.work_dir, exist_ok=True)
        self.odoo_log = os.path.join(self.work_dir, "odoo.log")
        self.emulator_log = os.path.join(self.work_dir, "emulator.log")
        self.odoo_stderr = os.path.join(self.work_dir, "odoo.stderr")
        self.odoo = OdooServer(args.python, args.odoo_bin, args.odoo_conf, args.database)
        self.emulator = None
        self.emulator_url = None
        self.provider_id = None
        self.canary = {}  # an ordinary contact's values, stored in the clear
        self.clients = []
        self.faults = None
        self.scraper = None  # the metrics endpoint, scraped during the load
        self.metrics_token = None
        self.metrics_rows = []  # (endpoint, counted by Odoo, unreached, reached, received by the emulator)
        self.metrics_processes = 0
        self.metrics_causes = {}  # {cause: failed requests}, from the endpoint
        self.load_seconds = 0.0
        self.stats = {}  # the emulator's counters after the load
        # Findings of the checks.
        self.checks = []  # (label, value, passed)
        self.corrupted_examples = []
        self.mismatch_examples = []
        self.crashes = []
        self.unknown_found = 0
        self.dump_size = 0
        self.marker_count = 0
        self.log_errors = 0
        self.log_tracebacks = 0
        self.gevent_crashes = 0
        self.slowest = 0.0
