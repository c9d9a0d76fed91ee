# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The chunks of the registry jobs, and the runners that claim and convert them.

A runner **claims** a chunk with ``SELECT ... FOR UPDATE SKIP LOCKED``, converts its records
(``g2p.encryption.job._convert``) and marks it done in the same transaction, then commits: two
runners never take the same chunk, and a runner killed half way leaves its chunk to be claimed
again. Runners are chains of ``queue_job`` jobs when OCA's ``queue_job`` is installed, and the
``ir.cron`` of the jobs in any case (see ``encryption_job.py``).
"""

import logging
import os
import socket
import time

import psycopg2

from odoo import _, api, fields, models
from odoo.tools import SQL

from ..core import monitoring
from .encryption_job import MAX_REPORTED

_logger = logging.getLogger(__name__)

CRON_TIME_BUDGET = 50  # seconds per cron run; the cron triggers itself again to continue
PARAM_RUNNERS = "g2p_encryption.job_runners"
PARAM_CHANNEL = "g2p_encryption.job_channel"
DEFAULT_RUNNERS = 4
# A runner link of queue_job converts one chunk (seconds); one started this long ago is dead.
RUNNER_STALE_MINUTES = 10
RUNNER_METHOD = "_queue_run_chunk"
# A chunk whose transaction met another one (a person editing one of its records meanwhile, a
# deadlock) is claimed again in a new transaction: neither a failure of its job nor an attempt.
# queue_job retries a job that raises one of these as well.
CONCURRENCY_ERRORS = (psycopg2.errors.TransactionRollbackError, psycopg2.errors.LockNotAvailable)
# With queue_job's runners at work, the cron looks again this long after (replaces dead chains).
RUNNER_CHECK_SECONDS = 60


def claim_chunk(cr, job_ids=None):
    """Lock the next chunk to convert, of a running job (of ``job_ids`` when given), and return
    ``(chunk id, job id, start id, end id)``, or None when every chunk is done or taken.

    ``FOR UPDATE SKIP LOCKED``: a chunk that another transaction holds is skipped, never waited
    for and never taken twice; the lock lasts until the claiming transaction ends.
    """
    job_filter = SQL("AND c.job_id IN %s", tuple(job_ids)) if job_ids else SQL()
    cr.execute(
        SQL(
            """SELECT c.id, c.job_id, c.start_id, c.end_id
                 FROM g2p_encryption_job_chunk c
                 JOIN g2p_encryption_job j ON j.id = c.job_id
                WHERE c.state = 'todo' AND j.state = 'running' %s
                ORDER BY c.job_id, c.sequence
                LIMIT 1
                  FOR UPDATE OF c SKIP LOCKED""",
            job_filter,
        )
    )
    return cr.fetchone()


def _worker_name():
    return f"{socket.gethostname()}:{os.getpid()}"


class EncryptionJobChunk(models.Model):
    _name = "g2p.encryption.job.chunk"
    _description = "Chunk of a Registry Encryption Job"
    _order = "job_id, sequence"
    _log_access = False

    job_id = fields.Many2one("g2p.encryption.job", required=True, ondelete="cascade", index=True)
    sequence = fields.Integer(required=True)
    start_id = fields.Integer(required=True)
    end_id = fields.Integer(required=True)
    records = fields.Integer(help="Records to convert when the job was planned.")
    state = fields.Selection([("todo", "To do"), ("done", "Done")], default="todo", required=True, index=True)
    done = fields.Integer(help="Records looked at.")
    changed = fields.Integer()
    skipped_ids = fields.Text()
    attempts = fields.Integer(help="Runs of this chunk (a run that failed, or was killed, counts).")
    duration_ms = fields.Integer(string="Duration (ms)")
    worker = fields.Char(help="Host and process that converted it.")
    finished_at = fields.Datetime()
    error = fields.Text()


class EncryptionJobRunners(models.Model):
    """The runners of ``g2p.encryption.job``: queue_job chains and the cron, one chunk at a time."""

    _inherit = "g2p.encryption.job"

    # Runners: queue_job when installed, the cron in any case ----------------------------------------
    @api.model
    def _queue_available(self):
        """Whether OCA's queue_job is installed in this database (no dependency on it)."""
        return "queue.job" in self.env and hasattr(self, "with_delay")

    @api.model
    def _runner_count(self):
        param = self.env["ir.config_parameter"].sudo().get_param(PARAM_RUNNERS)
        try:
            return max(1, int(param)) if param else DEFAULT_RUNNERS
        except ValueError:
            return DEFAULT_RUNNERS

    def _schedule(self):
        """Have the jobs run: the cron, and with queue_job a planner job each."""
        self.env.ref("g2p_encryption.ir_cron_encryption_jobs")._trigger()
        if self._queue_available():
            channel = self.env["ir.config_parameter"].sudo().get_param(PARAM_CHANNEL) or "root"
            for job in self:
                job.sudo().with_delay(channel=channel, description=f"{job.name}: plan")._queue_plan()

    def _queue_plan(self):
        """queue_job: make the chunks, then start the chains of runners."""
        jobs = self.sudo()  # it runs as whoever started the job; the work is the server's
        for job in jobs.filtered(lambda j: j.state == "running"):
            job._plan()
        jobs.browse()._finish_jobs()  # a job with nothing to convert is done already
        jobs.browse()._ensure_runners()

    @api.model
    def _queue_run_chunk(self):
        """queue_job: one link of a chain of runners: one chunk, then the next link."""
        jobs = self.sudo()  # as _queue_plan
        if jobs._run_one_chunk(catch_errors=True) is None:
            jobs._finish_jobs()
            return "no chunk left"
        jobs._enqueue_runners(1)
        return "chunk done"

    @api.model
    def _ensure_runners(self):
        """Start chains of runners up to ``g2p_encryption.job_runners`` when chunks remain: the
        chains that died with their worker (a started link older than a few minutes) are replaced."""
        if not self._queue_available() or not self.search_count([("state", "=", "running")]):
            return 0
        stale = fields.Datetime.subtract(fields.Datetime.now(), minutes=RUNNER_STALE_MINUTES)
        alive = (
            self.env["queue.job"]
            .sudo()
            .search_count(
                [
                    ("model_name", "=", self._name),
                    ("method_name", "=", RUNNER_METHOD),
                    "|",
                    ("state", "in", ("pending", "enqueued", "wait_dependencies")),
                    "&",
                    ("state", "=", "started"),
                    ("date_started", ">=", stale),
                ]
            )
        )
        missing = self._runner_count() - alive
        if missing > 0:
            self._enqueue_runners(missing)
        return max(missing, 0)

    @api.model
    def _enqueue_runners(self, count):
        channel = self.env["ir.config_parameter"].sudo().get_param(PARAM_CHANNEL) or "root"
        for _runner in range(count):
            self.browse().sudo().with_delay(
                channel=channel, description="Registry encryption: a chunk"
            )._queue_run_chunk()

    @api.model
    def _cron_run_jobs(self, commit=True, time_budget=CRON_TIME_BUDGET):
        """Plan the jobs, run chunks until the time budget is spent (committing after each one),
        finish the jobs whose chunks are all done; with queue_job, start the missing runners."""
        deadline = time.monotonic() + time_budget
        for job in self.search([("state", "=", "running"), ("planned", "=", False)], order="id"):
            job._plan()
            if commit:
                self.env.cr.commit()  # pylint: disable=invalid-commit
        while time.monotonic() < deadline:
            try:
                chunk = self._run_one_chunk(catch_errors=commit)
            except CONCURRENCY_ERRORS:
                if not commit:
                    raise
                self.env.cr.rollback()  # another transaction changed what it read: claim again
                continue
            if commit:
                self.env.cr.commit()  # pylint: disable=invalid-commit
            if chunk is None:
                break
        self._finish_jobs()
        if self.search_count([("state", "=", "running")]):
            cron = self.env.ref("g2p_encryption.ir_cron_encryption_jobs")
            if self._queue_available():
                # The chains of runners convert the chunks: the cron only replaces dead ones (a
                # trigger due now would run it again at once, to find every chunk taken).
                self._ensure_runners()
                cron._trigger(fields.Datetime.add(fields.Datetime.now(), seconds=RUNNER_CHECK_SECONDS))
            else:
                cron._trigger()

    # Running ---------------------------------------------------------------------------------------
    def _run_batch(self):
        """Do one chunk of this job; return whether chunks remain."""
        self.ensure_one()
        if not self.planned:
            self._plan()
        self._run_one_chunk(job_ids=self.ids)
        self._finish_jobs()
        return self.state == "running"

    @api.model
    def _run_one_chunk(self, catch_errors=False, job_ids=None):
        """Claim a chunk, convert its records and mark it done, in this transaction. Returns the
        chunk (None when none was left to claim). With ``catch_errors``, a failure rolls the
        chunk's work back (the chunk stays to do) and marks its job failed, with the cause;
        without, it raises."""
        claimed = claim_chunk(self.env.cr, job_ids)
        if not claimed:
            return None
        chunk_id, job_id, start_id, end_id = claimed
        chunk = self.env["g2p.encryption.job.chunk"].browse(chunk_id)
        job = self.browse(job_id)
        started = time.monotonic()
        try:
            with self.env.cr.savepoint():
                done, changed, skipped = job._convert(start_id, end_id)
        except CONCURRENCY_ERRORS:
            raise  # the caller rolls back and claims the chunk again (CONCURRENCY_ERRORS)
        except Exception as error:  # pylint: disable=broad-except
            if not catch_errors:
                raise
            self.env.cr.execute(
                "UPDATE g2p_encryption_job_chunk SET attempts = attempts + 1, error = %s WHERE id = %s",
                (str(error)[:2000], chunk_id),
            )
            monitoring.count_job(job.kind, job.res_model, 0, 0, failed=True)
            job.write(
                {
                    "state": "failed",
                    "message": _(
                        "Records %(start)s to %(end)s: %(error)s", start=start_id, end=end_id, error=error
                    ),
                }
            )
            _logger.exception("Encryption job %s failed on records %s to %s", job_id, start_id, end_id)
            return chunk
        elapsed_ms = (time.monotonic() - started) * 1000
        self.env.cr.execute(
            """UPDATE g2p_encryption_job_chunk
                  SET state = 'done', done = %s, changed = %s, skipped_ids = %s, attempts = attempts + 1,
                      duration_ms = %s, worker = %s, finished_at = now() AT TIME ZONE 'UTC', error = NULL
                WHERE id = %s""",
            (
                done,
                changed,
                ",".join(map(str, skipped[:MAX_REPORTED])),
                int(elapsed_ms),
                _worker_name(),
                chunk_id,
            ),
        )
        monitoring.count_job(job.kind, job.res_model, done, changed)
        self.env.invalidate_all()  # bounded memory: nothing of the chunk stays in the cache
        _logger.info(
            "Encryption job %s: records %s to %s (%s, %s changed) in %.0f ms",
            job_id,
            start_id,
            end_id,
            done,
            changed,
            elapsed_ms,
        )
        return chunk
