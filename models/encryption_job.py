# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Resumable batch jobs over the registry.

* ``encrypt``: encrypt the values of records in scope still stored in the clear (existing
  registrants when "Encrypt registry" is turned on, and their chatter history);
* ``reencrypt``: move values to the registry provider's active data key, in the current format:
  after a key rotation, after a change of registry provider, and for values written by 1.x;
* ``migrate_openg2p``: read what OpenG2P's ``g2p_registry_encryption`` stored (``encrypted_val``)
  and store it encrypted the way this addon does.

A job walks one model's rows in id order, one batch at a time, remembers the last id done and
commits after each batch, so a job stopped half way (a restart, a killed worker) resumes where it
was. Values are moved with SQL (they do not change, so nothing is validated, tracked or
recomputed): a record that a constraint dislikes cannot stop a job. A record whose value does not
decrypt is reported on the job and skipped.
"""

import logging
import time

from odoo import _, api, fields, models
from odoo.exceptions import AccessError
from odoo.tools import SQL

from ..core import envelope
from .encrypted_field import Unreadable, decrypt_stored, is_ciphertext

_logger = logging.getLogger(__name__)

CRON_TIME_BUDGET = 50  # seconds per cron run; the cron triggers itself again to continue
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
    batch_size = fields.Integer(default=500, required=True)
    last_id = fields.Integer(help="Records up to this id are done.", readonly=True)
    total = fields.Integer(readonly=True)
    done = fields.Integer(readonly=True)
    changed = fields.Integer(readonly=True, help="Records whose values were encrypted or moved.")
    skipped_ids = fields.Text(
        string="Skipped records", readonly=True, help="Records whose values do not decrypt, left as they are."
    )
    progress = fields.Float(compute="_compute_progress")
    message = fields.Text(readonly=True)
    finished_at = fields.Datetime(readonly=True)

    @api.depends("kind", "res_model")
    def _compute_name(self):
        labels = dict(self._fields["kind"]._description_selection(self.env))
        for job in self:
            job.name = f"{labels.get(job.kind, '')} ({job.res_model})"

    @api.depends("total", "done", "state")
    def _compute_progress(self):
        for job in self:
            job.progress = (
                100.0 if job.state == "done" else (100.0 * job.done / job.total if job.total else 0.0)
            )

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
        self.env.ref("g2p_encryption.ir_cron_encryption_jobs")._trigger()
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

    # Running -------------------------------------------------------------------------------------
    def _columns(self):
        model = self.env[self.res_model]
        return [name for name in model._g2p_encrypted if model._fields[name].store]

    def _candidates_sql(self, limit):
        """Ids after ``last_id`` whose columns hold what this job converts, in id order."""
        model = self.env[self.res_model]
        columns = self._columns()
        if self.kind == "encrypt":
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
            "SELECT id FROM %s WHERE id > %s AND (%s) ORDER BY id %s",
            SQL.identifier(model._table),
            self.last_id,
            condition,
            SQL("LIMIT %s", limit) if limit else SQL(""),
        )

    def _count_remaining(self):
        if self.kind == "migrate_openg2p":
            return len(self.env["res.partner"]._openg2p_blob_ids(0, None))
        if not self._columns():
            return 0
        self.env.cr.execute(SQL("SELECT count(*) FROM (%s) AS candidates", self._candidates_sql(None)))
        return self.env.cr.fetchone()[0]

    def _run_batch(self):
        """Do one batch; return whether records remain."""
        self.ensure_one()
        model = self.env[self.res_model].sudo().with_context(active_test=False)
        if self.kind == "migrate_openg2p":
            # The job's provider is the one that reads OpenG2P's blobs (KeyManager, direct).
            records = model.browse(model._openg2p_blob_ids(self.last_id, self.batch_size))
            records._migrate_openg2p_blobs(self.provider_id)
            changed, skipped = len(records), []
        else:
            self.env.cr.execute(self._candidates_sql(self.batch_size))
            records = model.browse([row[0] for row in self.env.cr.fetchall()])
            if self.kind == "encrypt":
                changed, skipped = records._g2p_in_scope()._g2p_encrypt_in_place(), []
            else:
                changed, skipped = self._reencrypt(records)
        values = {"done": self.done + len(records), "changed": self.changed + changed}
        if skipped:
            reported = [part for part in (self.skipped_ids or "").split(",") if part] + list(
                map(str, skipped)
            )
            values["skipped_ids"] = ",".join(reported[:MAX_REPORTED])
        if records:
            values["last_id"] = records[-1].id
        if len(records) < self.batch_size:
            values.update(state="done", finished_at=fields.Datetime.now(), message=_("Done."))
        self.write(values)
        return self.state == "running"

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
    def _cron_run_jobs(self, commit=True, time_budget=CRON_TIME_BUDGET):
        deadline = time.monotonic() + time_budget
        for job in self.search([("state", "=", "running")], order="id"):
            while time.monotonic() < deadline:
                started = time.monotonic()
                try:
                    more = job._run_batch()
                except Exception as error:  # pylint: disable=broad-except
                    if not commit:
                        raise
                    self.env.cr.rollback()
                    job.write({"state": "failed", "message": str(error)})
                    self.env.cr.commit()  # pylint: disable=invalid-commit
                    _logger.exception("Encryption job %s failed", job.id)
                    break
                _logger.info(
                    "Encryption job %s: %s of %s records in %.0f ms",
                    job.id,
                    job.done,
                    job.total,
                    (time.monotonic() - started) * 1000,
                )
                if commit:
                    self.env.cr.commit()  # pylint: disable=invalid-commit
                if not more:
                    break
        if self.search_count([("state", "=", "running")]):
            self.env.ref("g2p_encryption.ir_cron_encryption_jobs")._trigger()


class EncryptionProviderJobs(models.Model):
    _inherit = "g2p.encryption.provider"

    job_ids = fields.One2many("g2p.encryption.job", "provider_id", string="Registry jobs")

    def action_encrypt_registry(self):
        """Encrypt, in batches, the values of records in scope still stored in the clear."""
        self._check_crypto_admin()
        self.env["g2p.encryption.job"].sudo()._start_registry("encrypt")
        return True

    def action_reencrypt_registry(self):
        """Move every encrypted value to the registry provider's active key, in batches."""
        self._check_crypto_admin()
        self.env["g2p.encryption.job"].sudo()._start_registry("reencrypt")
        return True

    def action_migrate_openg2p_registry(self):
        """Read registrants encrypted by OpenG2P's g2p_registry_encryption with this provider and
        store them encrypted by the registry provider, in batches."""
        self.ensure_one()
        self._check_crypto_admin()
        self.env["g2p.encryption.job"].sudo()._start(self, "migrate_openg2p", "res.partner")
        return True

    def _check_crypto_admin(self):
        if not self.env.user.has_group("g2p_encryption.crypto_admin"):
            raise AccessError(_("Only a Crypto Admin starts registry jobs."))
