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

from odoo import _, api, fields, models
from odoo.tools import SQL

from ..core import envelope
from .encrypted_field import Unreadable, decrypt_stored, is_ciphertext
from .encryption_provider import SKIP_UNREADABLE

_logger = logging.getLogger(__name__)

MAX_REPORTED = 200


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
    total = fields.Integer(readonly=True, help="Records to convert when the job was planned.")
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
        # Counted when planned, in the background: counting here would read the whole table
        # within the request that starts the job (Settings).
        job = self.create({"provider_id": provider.id, "kind": kind, "res_model": res_model})
        job._schedule()
        return job

    @api.model
    def _start_again(self, provider, kind, res_model):
        """``_start`` with a new plan: a job already running for the model, planned for fewer
        encrypted fields (by an earlier version: its chunks hold only the records it found then),
        is superseded by a new one, which plans every record afresh; one not planned yet will
        plan with today's fields."""
        running = self.search(
            [
                ("provider_id", "=", provider.id),
                ("kind", "=", kind),
                ("res_model", "=", res_model),
                ("state", "=", "running"),
            ]
        )
        if running and not all(running.mapped("planned")):
            return running.filtered(lambda job: not job.planned)[:1]  # it plans with today's fields
        job = self.create({"provider_id": provider.id, "kind": kind, "res_model": res_model})
        running.chunk_ids.filtered(lambda chunk: chunk.state != "done").unlink()
        running.write(
            {
                "state": "done",
                "finished_at": fields.Datetime.now(),
                "message": _("Superseded by job %(job)s, planned for more encrypted fields.", job=job.id),
            }
        )
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
        self.env.cr.execute(
            """UPDATE g2p_encryption_job
                  SET planned = true,
                      total = (SELECT coalesce(sum(records), 0)
                                 FROM g2p_encryption_job_chunk WHERE job_id = %s)
                WHERE id = %s""",
            (self.id, self.id),
        )
        self.invalidate_recordset(["planned", "total", "chunk_ids"])
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

    # Converting ------------------------------------------------------------------------------------
    def _convert(self, start_id, end_id):
        """Convert the records of ids ``start_id``..``end_id``: (records looked at, records
        changed, ids skipped)."""
        self.ensure_one()
        model = self.env[self.res_model].sudo().with_context(active_test=False, **{SKIP_UNREADABLE: True})
        candidates = self._candidates_sql(start_id, end_id)
        if candidates is None:
            return 0, 0, []
        self.env.cr.execute(candidates)
        records = model.browse([row[0] for row in self.env.cr.fetchall()])
        if self.kind == "migrate_openg2p":
            # The job's provider is the one that reads OpenG2P's blobs (KeyManager, direct).
            records._migrate_openg2p_blobs(self.provider_id)
            return len(records), len(records), []
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
        rows = records._g2p_stored_rows(columns)
        values_by_id, skipped = {}, set()
        for position, name in enumerate(columns, start=1):
            pending = [(row[0], row[position]) for row in rows if is_ciphertext(row[position])]
            if not pending:
                continue
            opened = decrypt_stored(records.env, model._fields[name], pending)
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
            count = self.env.ref("g2p_encryption.ir_cron_count_registry", raise_if_not_found=False)
            if count:
                # Settings and the keys' forms show the registry's last count: a new one, in the
                # background.
                count.sudo()._trigger()
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
