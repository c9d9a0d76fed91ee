"""One measured run: a copy of the template, a prefork Odoo with N workers, "Encrypt registry" on."""

import os
import signal
import statistics
import subprocess
import time

import psutil
import psycopg2
from harness.odoo import OdooServer, drop_database
from harness.rpc import OdooSession, grant_addon_groups

POLL_SECONDS = 0.5
TIMEOUT_SECONDS = 3600


def sql(database, query, params=()):
    with psycopg2.connect(dbname=database) as connection, connection.cursor() as cr:
        cr.execute(query, params)
        return cr.fetchall()


class Run:
    def __init__(self, args, conf, workers, kill_at=None):
        self.args, self.conf, self.workers, self.kill_at = args, conf, workers, kill_at
        self.database = args.database
        self.log = os.path.join(args.work_dir, "job_scale", f"odoo-{workers}{'-kill' if kill_at else ''}.log")
        self.server = OdooServer(args.python, args.odoo_bin, conf, self.database)
        self.rss = {}  # pid: [first MB, max MB]
        self.killed = None
        self.timeline = []  # (fraction of the chunks done, largest worker RSS in MB)
        self.result = {}

    # -- processes ---------------------------------------------------------------------------------
    def start(self):
        drop_database(self.database)
        subprocess.run(["createdb", "-T", self.args.template, self.database], check=True)
        os.environ["ODOO_QUEUE_JOB_CHANNELS"] = f"root:{self.workers}"
        self.server.start(
            self.workers,
            self.log + ".out",
            f"--logfile={self.log}",
            "--log-level=info",
            "--limit-time-real=1200",
            "--limit-time-cpu=1200",
            "--limit-memory-soft=4294967296",
            "--limit-memory-hard=5368709120",
        )

    def stop(self):
        self.server.stop()
        drop_database(self.database)

    def processes(self):
        try:
            master = psutil.Process(self.server.process.pid)
            return [master, *master.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def sample_memory(self):
        largest = 0.0
        for process in self.processes()[1:]:
            try:
                megabytes = process.memory_info().rss / 2**20
            except psutil.NoSuchProcess:
                continue
            first_max = self.rss.setdefault(process.pid, [megabytes, megabytes])
            first_max[1] = max(first_max[1], megabytes)
            largest = max(largest, megabytes)
        return largest

    def kill_a_busy_worker(self):
        """SIGKILL the worker busiest converting a chunk: the child of the server that used the most
        CPU in the last 0.3 s (the job runner and the gevent process are mostly idle)."""
        children = [p for p in self.processes()[1:] if "gevent" not in p.cmdline()[1:3]]  # odoo-bin gevent
        before = {p.pid: sum(p.cpu_times()[:2]) for p in children}
        time.sleep(0.3)
        used = {}
        for process in children:
            try:
                used[process.pid] = sum(process.cpu_times()[:2]) - before[process.pid]
            except psutil.NoSuchProcess:
                continue
        pid, cpu = max(used.items(), key=lambda item: item[1], default=(None, 0.0))
        if pid is None or cpu < 0.05:
            return None
        os.kill(pid, signal.SIGKILL)
        return pid

    # -- the run -----------------------------------------------------------------------------------
    def turn_encryption_on(self):
        session = OdooSession(self.server.url, self.database)
        grant_addon_groups(session, "crypto_admin")
        session.call("ir.config_parameter", "set_param", "g2p_encryption.job_runners", str(self.workers))
        started = time.monotonic()
        settings = session.call("res.config.settings", "create", {"encrypt_registry": True})
        session.call("res.config.settings", "execute", [settings])
        return started

    def progress(self):
        rows = sql(
            self.database,
            """SELECT count(*) FILTER (WHERE j.state = 'running'), count(*) FILTER (WHERE j.state = 'failed'),
                      (SELECT count(*) FROM g2p_encryption_job_chunk c
                         JOIN g2p_encryption_job r ON r.id = c.job_id WHERE r.res_model = 'res.partner'),
                      (SELECT count(*) FROM g2p_encryption_job_chunk c
                         JOIN g2p_encryption_job r ON r.id = c.job_id
                        WHERE r.res_model = 'res.partner' AND c.state = 'done')
                 FROM g2p_encryption_job j""",
        )
        return rows[0]

    def measure(self):
        self.start()
        try:
            self.sample_memory()
            started = self.turn_encryption_on()
            deadline = started + TIMEOUT_SECONDS
            while time.monotonic() < deadline:
                running, failed, chunks, done = self.progress()
                largest = self.sample_memory()
                if chunks:
                    self.timeline.append((done / chunks, largest))
                if self.kill_at and not self.killed and chunks and done >= self.kill_at * chunks:
                    pid = self.kill_a_busy_worker()  # none busy this instant: the next poll tries again
                    self.killed = (pid, done, chunks) if pid else None
                if not running and chunks:
                    break
                time.sleep(POLL_SECONDS)
            elapsed = time.monotonic() - started
            self.sample_memory()
            self.result = self.outcome(elapsed, failed)
        finally:
            self.stop()
        return self.result

    def outcome(self, elapsed, failed):
        (registrants,) = sql(self.database, "SELECT count(*) FROM res_partner WHERE is_registrant")[0]
        (clear,) = sql(
            self.database,
            """SELECT count(*) FROM res_partner
                WHERE is_registrant
                  AND (name NOT LIKE 'g2pe%%' OR email NOT LIKE 'g2pe%%' OR phone NOT LIKE 'g2pe%%')""",
        )[0]
        (job_total, job_state) = sql(
            self.database, "SELECT total, state FROM g2p_encryption_job WHERE res_model = 'res.partner'"
        )[0]
        chunks = sql(
            self.database,
            """SELECT c.sequence, c.state, c.done, c.changed, c.attempts, c.duration_ms, c.worker
                 FROM g2p_encryption_job_chunk c JOIN g2p_encryption_job j ON j.id = c.job_id
                WHERE j.res_model = 'res.partner' ORDER BY c.sequence""",
        )
        full = max((row[2] or 0 for row in chunks), default=0)
        durations = [row[5] for row in chunks if row[5] is not None and row[2] == full]  # whole chunks
        tenth = max(1, len(durations) // 10)
        by_worker = {}
        for row in chunks:
            by_worker[row[6]] = by_worker.get(row[6], 0) + 1
        workers_rss = list(self.rss.values())
        early = [rss for fraction, rss in self.timeline if 0.05 <= fraction <= 0.15]
        late = [rss for fraction, rss in self.timeline if fraction >= 0.9]
        return {
            "workers": self.workers,
            "registrants": registrants,
            "job_total": job_total,
            "job_state": job_state,
            "failed_jobs": failed,
            "seconds": elapsed,
            "rate": registrants / elapsed if elapsed else 0.0,
            "left_in_clear": clear,
            "chunks": len(chunks),
            "chunks_not_done": sum(1 for row in chunks if row[1] != "done"),
            "changed": sum(row[3] or 0 for row in chunks),
            "max_attempts": max((row[4] or 0 for row in chunks), default=0),
            "chunk_ms_first": statistics.median(durations[:tenth]) if durations else 0,
            "chunk_ms_last": statistics.median(durations[-tenth:]) if durations else 0,
            "chunks_by_worker": sorted(by_worker.values(), reverse=True),
            "rss_first_max": max((values[0] for values in workers_rss), default=0.0),
            "rss_early": max(early, default=0.0),
            "rss_late": max(late, default=0.0),
            "rss_max": max((values[1] for values in workers_rss), default=0.0),
            "killed": self.killed,
        }
