# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Resumable registry jobs, in chunks that every worker can take.

* ``encrypt``: encrypt the values of records in scope still stored in the clear (existing
  registrants when "Encrypt registry" is turned on, and their chatter history);
* ``reencrypt``: move values to the registry provider's active data key, in the current format:
  after a key rotation, after a change of registry provider, and for values written by 1.x;
* ``migrate_openg2p``: read what OpenG2P's ``g2p_registry_encryption`` stored (``encrypted_val``)
  and store it encrypted the way this addon does.

A job is planned once into **chunks**: contiguous id ranges of its model holding ``batch_size``
records to convert each (one SQL statement numbers the candidates; nothing is loaded into
memory). A runner **claims** a chunk with ``SELECT ... FOR UPDATE SKIP LOCKED``, converts its
records and marks it done in the same transaction, then commits: two runners never take the
same chunk, and a runner killed half way leaves its chunk to be claimed again (its transaction,
the chunk's lock with it, is gone). Progress is what the chunks say.

Runners: with OCA's ``queue_job`` installed (OpenG2P installs it), a planner job and
``g2p_encryption.job_runners`` (default 4) chains of runner jobs on the channel
``g2p_encryption.job_channel`` (default ``root``), each link one chunk, spread over every worker
of every server as the channel's capacity allows; without it, the ``ir.cron`` of the jobs. The
cron runs chunks in either case (so a queue without its job runner still progresses) and starts
new chains when chains died with their worker.

Values are moved with SQL (they do not change, so nothing is validated, tracked or recomputed): a
record that a constraint dislikes cannot stop a job. A record whose value does not decrypt is
reported on the job and skipped.
"""

import logging
import os
import socket
import time

import psycopg2

from odoo import _, api, fields, models
from odoo.exceptions import AccessError
from odoo.tools import SQL

from ..core import envelope, monitoring
from .encrypted_field import Unreadable, decrypt_stored, is_ciphertext

_logger = logging.getLogger(__name__)

CRON_TIME_BUDGET = 50  # seconds per cron run; the cron triggers itself again to continue
MAX_REPORTED = 200
PARAM_RUNNERS = "g2p_encryption.job_runners"
PARAM_CHANNEL = "g2p_encryption.job_channel"
DEFAULT_RUNNERS = 4
# A runner link of queue_job converts one chunk (seconds); one started this long ago is dead.
RUNNER_STALE_MINUTES = 10
RUNNER_METHOD = "_queue_run_chunk"


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


class EncryptionJob(models.Model):
    _name = "g2p.encryption.job"
    _description = "Registry Encryption Job"
    _order = "id desc"

    name = fields.Char(compute="_compute_name")
    provider_id = fields.Many2one("g2p.encryption.provider", required=True, ondelete="cascade", index=True)
    res_model = fields.Char(string="Model", required=True, default="res.partner")
    kind = fields.Selection(
        [
            ("encrypt", "Encrypt values stored in the clear"),
            ("reencrypt", "Re-encrypt under the active key"),
            ("migrate_openg2p", "Migrate OpenG2P encrypted values"),
        ],
        required=True,
    )
    state = fields.Selection(
        [("running", "Running"), ("done", "Done"), ("failed", "Failed")], default="running", required=True
    )
    batch_size = fields.Integer(
        default=1000, required=True, help="Records per chunk: what one runner converts in one transaction."
    )
    planned = fields.Boolean(readonly=True, help="Its chunks are made.")
    chunk_ids = fields.One2many("g2p.encryption.job.chunk", "job_id", string="Chunks", readonly=True)
    total = fields.Integer(readonly=True, help="Records to convert when the job started.")
    done = fields.Integer(compute="_compute_progress", help="Records looked at by the chunks done.")
    changed = fields.Integer(
        compute="_compute_progress", help="Records whose values were encrypted or moved."
    )
    last_id = fields.Integer(compute="_compute_progress", help="Records up to this id are done.")
    chunk_count = fields.Integer(compute="_compute_progress", string="Number of chunks")
    chunks_done = fields.Integer(compute="_compute_progress")
    skipped_ids = fields.Text(
        string="Skipped records",
        compute="_compute_progress",
        help="Records whose values do not decrypt, left as they are.",
    )
    progress = fields.Float(compute="_compute_progress")
    message = fields.Text(readonly=True)
    finished_at = fields.Datetime(readonly=True)

    @api.depends("kind", "res_model")
    def _compute_name(self):
        labels = dict(self._fields["kind"]._description_selection(self.env))
        for job in self:
            job.name = f"{labels.get(job.kind, '')} ({job.res_model})"

    def _compute_progress(self):
        """From the chunks (one query for all jobs): concurrent runners never update the job row."""
        stats = {}
        if self.ids:
            self.env.cr.execute(
                """SELECT job_id, count(*), count(*) FILTER (WHERE state = 'done'),
                          coalesce(sum(done) FILTER (WHERE state = 'done'), 0),
                          coalesce(sum(changed) FILTER (WHERE state = 'done'), 0),
                          min(start_id) FILTER (WHERE state <> 'done'), max(end_id),
                          string_agg(skipped_ids, ',' ORDER BY sequence) FILTER (WHERE skipped_ids <> '')
                     FROM g2p_encryption_job_chunk WHERE job_id IN %s GROUP BY job_id""",
                (tuple(self.ids),),
            )
            stats = {row[0]: row[1:] for row in self.env.cr.fetchall()}
        for job in self:
            count, done_chunks, done, changed, first_todo, last_end, skipped = stats.get(
                job.id, (0, 0, 0, 0, None, 0, None)
            )
            job.chunk_count = count
            job.chunks_done = done_chunks
            job.done = done
            job.changed = changed
            job.last_id = (first_todo - 1) if first_todo is not None else (last_end or 0)
            job.skipped_ids = ",".join((skipped or "").split(",")[:MAX_REPORTED]) or False
            if job.state == "done":
                job.progress = 100.0
            elif count:
                job.progress = 100.0 * done_chunks / count
            else:
                job.progress = 0.0

    # Starting ------------------------------------------------------------------------------------
    @api.model
    def _start(self, provider, kind, res_model):
        running = self.search(
            [
                ("provider_id", "=", provider.id),
                ("kind", "=", kind),
                ("res_model", "=", res_model),
                ("state", "=", "running"),
            ],
            limit=1,
        )
        if running:
            return running
        job = self.create({"provider_id": provider.id, "kind": kind, "res_model": res_model})
        job.total = job._count_remaining()
        job._schedule()
        return job

    @api.model
    def _start_registry(self, kind):
        """One job of ``kind`` per model with encrypted fields."""
        provider = self.env["g2p.encryption.provider"]._get_registry_provider()
        return self.browse().union(
            *(self._start(provider, kind, model_name) for model_name in self._registry_models())
        )

    @api.model
    def _start_registry_encryption(self):
        return self._start_registry("encrypt")

    @api.model
    def _registry_models(self):
        """Names of the models with stored encrypted fields, in a stable order."""
        return sorted(
            name
            for name, model in self.env.registry.models.items()
            if model._g2p_encrypted and not model._abstract and model._auto
        )

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
            except psycopg2.errors.SerializationFailure:
                if not commit:
                    raise
                self.env.cr.rollback()  # another runner just finished the chunk read: claim again
                continue
            if commit:
                self.env.cr.commit()  # pylint: disable=invalid-commit
            if chunk is None:
                break
        self._finish_jobs()
        if self.search_count([("state", "=", "running")]):
            if not self._ensure_runners():
                self.env.ref("g2p_encryption.ir_cron_encryption_jobs")._trigger()

    # Planning ------------------------------------------------------------------------------------------
    def _plan(self):
        """Make the chunks of the job: ``batch_size`` candidates each, contiguous id ranges (one
        statement: PostgreSQL numbers the candidates, nothing comes into memory)."""
        self.ensure_one()
        self.env.cr.execute(
            """SELECT planned FROM g2p_encryption_job WHERE id = %s AND state = 'running'
               FOR UPDATE SKIP LOCKED""",
            (self.id,),
        )
        row = self.env.cr.fetchone()
        if not row or row[0]:
            return  # done, failed, planned, or being planned by another runner
        # The keys the chunks need exist before runners race for them.
        target = self.env["g2p.encryption.provider"]._get_registry_provider()
        target._active_key("encrypt")
        target._blind_index_key()
        candidates = self._candidates_sql()
        if candidates is not None:
            self.env.cr.execute(
                SQL(
                    """INSERT INTO g2p_encryption_job_chunk
                              (job_id, sequence, start_id, end_id, records, state, done, changed, attempts)
                       SELECT %s, bucket, coalesce(lag(last_id) OVER (ORDER BY bucket), 0) + 1, last_id,
                              records, 'todo', 0, 0, 0
                         FROM (SELECT bucket, max(id) AS last_id, count(*) AS records
                                 FROM (SELECT id, (row_number() OVER (ORDER BY id) - 1) / %s AS bucket
                                         FROM (%s) AS candidates) AS numbered
                                GROUP BY bucket) AS buckets""",
                    self.id,
                    max(1, self.batch_size),
                    candidates,
                )
            )
        self.env.cr.execute("UPDATE g2p_encryption_job SET planned = true WHERE id = %s", (self.id,))
        self.invalidate_recordset(["planned", "chunk_ids"])
        _logger.info(
            "Encryption job %s planned: %s chunks of %s records", self.id, self.chunk_count, self.batch_size
        )

    def _columns(self):
        model = self.env[self.res_model]
        return [name for name in model._g2p_encrypted if model._fields[name].store]

    def _candidates_sql(self, start_id=None, end_id=None):
        """Ids (in ``start_id``..``end_id`` when given) whose columns hold what this job converts,
        in id order; None when the model has nothing to convert."""
        model = self.env[self.res_model]
        columns = self._columns()
        in_range = SQL("id BETWEEN %s AND %s", start_id, end_id) if start_id is not None else SQL("true")
        if self.kind == "migrate_openg2p":
            self.env.cr.execute(
                """SELECT 1 FROM information_schema.columns
                   WHERE table_name = %s AND column_name = 'encrypted_val'""",
                (model._table,),
            )
            if not self.env.cr.fetchone():
                return None
            condition = SQL("encrypted_val IS NOT NULL")
        elif not columns:
            return None
        elif self.kind == "encrypt":
            condition = SQL(" OR ").join(
                SQL(
                    "(%s <> '' AND %s NOT LIKE %s AND %s NOT LIKE %s)",
                    *(SQL.identifier(c), SQL.identifier(c), "g2pe%", SQL.identifier(c), "g2pkm%"),
                )
                for c in columns
            )
        else:
            current = f"{envelope.PREFIX_V2}{self.provider_id._active_key('encrypt').key_id}.%"
            condition = SQL(" OR ").join(
                SQL("(%s LIKE %s AND %s NOT LIKE %s)", SQL.identifier(c), "g2p%", SQL.identifier(c), current)
                for c in columns
            )
        return SQL(
            "SELECT id FROM %s WHERE %s AND (%s) ORDER BY id",
            SQL.identifier(model._table),
            in_range,
            condition,
        )

    def _count_remaining(self):
        candidates = self._candidates_sql()
        if candidates is None:
            return 0
        self.env.cr.execute(SQL("SELECT count(*) FROM (%s) AS candidates", candidates))
        return self.env.cr.fetchone()[0]

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

    def _convert(self, start_id, end_id):
        """Convert the records of ids ``start_id``..``end_id``: (records looked at, records
        changed, ids skipped)."""
        self.ensure_one()
        model = self.env[self.res_model].sudo().with_context(active_test=False)
        if self.kind == "migrate_openg2p":
            # The job's provider is the one that reads OpenG2P's blobs (KeyManager, direct).
            ids = [i for i in model._openg2p_blob_ids(start_id - 1, self.batch_size * 2) if i <= end_id]
            records = model.browse(ids)
            records._migrate_openg2p_blobs(self.provider_id)
            return len(records), len(records), []
        candidates = self._candidates_sql(start_id, end_id)
        if candidates is None:
            return 0, 0, []
        self.env.cr.execute(candidates)
        records = model.browse([row[0] for row in self.env.cr.fetchall()])
        if self.kind == "encrypt":
            scope_field = model._fields.get((model._g2p_scope_path or "").partition(".")[0])
            if scope_field is not None and scope_field.store:
                records.fetch([scope_field.name])  # that column only, not every prefetched one
            return len(records), records._g2p_in_scope()._g2p_encrypt_in_place(), []
        changed, skipped = self._reencrypt(records)
        return len(records), changed, skipped

    def _reencrypt(self, records):
        """Decrypt the values of ``records`` not under the active key and store them again."""
        model = records.browse()
        columns = self._columns()
        records.flush_recordset(columns)
        self.env.cr.execute(
            SQL(
                "SELECT id, %s FROM %s WHERE id IN %s",
                SQL(", ").join(map(SQL.identifier, columns)),
                SQL.identifier(model._table),
                tuple(records.ids) or (0,),
            )
        )
        rows = self.env.cr.fetchall()
        values_by_id, skipped = {}, set()
        for position, name in enumerate(columns, start=1):
            pending = [(row[0], row[position]) for row in rows if is_ciphertext(row[position])]
            if not pending:
                continue
            opened = decrypt_stored(self.env, model._fields[name], pending)
            for record_id, value in opened.items():
                if isinstance(value, Unreadable):
                    skipped.add(record_id)
                else:
                    values_by_id.setdefault(record_id, {})[name] = str(value)
        for record_id in skipped:
            values_by_id.pop(record_id, None)
        if values_by_id:
            model.browse(list(values_by_id))._g2p_store(values_by_id)
            model.browse(list(values_by_id)).invalidate_recordset(columns)
        return len(values_by_id), sorted(skipped)

    @api.model
    def _finish_jobs(self):
        """Mark done the running jobs that are planned and have no chunk left to do."""
        self.env.cr.execute(
            """SELECT j.id FROM g2p_encryption_job j
                WHERE j.state = 'running' AND j.planned
                  AND NOT EXISTS (SELECT 1 FROM g2p_encryption_job_chunk c
                                   WHERE c.job_id = j.id AND c.state <> 'done')
                  FOR UPDATE OF j SKIP LOCKED"""
        )
        finished = self.browse([row[0] for row in self.env.cr.fetchall()])
        if finished:
            finished.write({"state": "done", "finished_at": fields.Datetime.now(), "message": _("Done.")})
        self.invalidate_model(
            ["done", "changed", "last_id", "chunk_count", "chunks_done", "skipped_ids", "progress"]
        )
        return finished

    def action_resume(self):
        """Run a failed job again from where it stopped (its chunks done stay done)."""
        self.env["g2p.encryption.provider"]._check_crypto_admin()
        jobs = self.sudo().filtered(lambda job: job.state == "failed")
        jobs.write({"state": "running", "message": False})
        jobs._schedule()
        return True


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


class EncryptionProviderJobs(models.Model):
    _inherit = "g2p.encryption.provider"

    job_ids = fields.One2many("g2p.encryption.job", "provider_id", string="Registry jobs")

    def action_encrypt_registry(self):
        """Encrypt, in chunks, the values of records in scope still stored in the clear."""
        self._check_crypto_admin()
        self.env["g2p.encryption.job"].sudo()._start_registry("encrypt")
        return True

    def action_reencrypt_registry(self):
        """Move every encrypted value to the registry provider's active key, in chunks."""
        self._check_crypto_admin()
        self.env["g2p.encryption.job"].sudo()._start_registry("reencrypt")
        return True

    def action_migrate_openg2p_registry(self):
        """Read registrants encrypted by OpenG2P's g2p_registry_encryption with this provider and
        store them encrypted by the registry provider, in chunks."""
        self.ensure_one()
        self._check_crypto_admin()
        self.env["g2p.encryption.job"].sudo()._start(self, "migrate_openg2p", "res.partner")
        return True

    @api.model
    def _check_crypto_admin(self):
        if not self.env.user.has_group("g2p_encryption.crypto_admin"):
            raise AccessError(_("Only a Crypto Admin starts registry jobs."))
