# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Resumable batch jobs over the registry: encrypt records stored in plaintext, and re-encrypt
records under the active data key after a rotation.

A job walks the records in id order, one batch at a time, and remembers the last id done. The
cron commits after each batch, so a job stopped half way (a restart, a killed worker) resumes
where it was and loses nothing: each batch is all or nothing.
"""

import logging
import time

from odoo import _, api, fields, models

_logger = logging.getLogger(__name__)

CRON_TIME_BUDGET = 50  # seconds per cron run; the cron triggers itself again to continue


class EncryptionJob(models.Model):
    _name = "g2p.encryption.job"
    _description = "Registry Encryption Job"
    _order = "id desc"

    name = fields.Char(compute="_compute_name")
    provider_id = fields.Many2one("g2p.encryption.provider", required=True, ondelete="cascade", index=True)
    res_model = fields.Char(string="Model", required=True, default="res.partner")
    kind = fields.Selection(
        [
            ("encrypt", "Encrypt plaintext records"),
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
    def _start(self, provider, kind, res_model="res.partner"):
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
        if kind == "migrate_openg2p":
            job.total = len(self.env[res_model]._openg2p_blob_ids(0, None))
        else:
            job.total = self.env[res_model].sudo().search_count(job._remaining_domain())
        self.env.ref("g2p_encryption.ir_cron_encryption_jobs")._trigger()
        return job

    @api.model
    def _start_registry_encryption(self):
        provider = self.env["g2p.encryption.provider"]._get_registry_provider()
        return self._start(provider, "encrypt")

    # Running -------------------------------------------------------------------------------------
    def _remaining_domain(self):
        self.ensure_one()
        model = self.env[self.res_model]
        domain = [("id", ">", self.last_id)]
        if self.kind == "encrypt":
            return domain + [("is_encrypted", "=", False)] + model._encryptable_domain()
        return domain + [("is_encrypted", "=", True)]

    def _run_batch(self):
        """Do one batch; return whether records remain."""
        self.ensure_one()
        model = self.env[self.res_model].sudo().with_context(active_test=False)
        if self.kind == "migrate_openg2p":
            # The job's provider is the one that reads OpenG2P's blobs (KeyManager, direct).
            records = model.browse(model._openg2p_blob_ids(self.last_id, self.batch_size))
            records._migrate_openg2p_blobs(self.provider_id)
        else:
            records = model.search(self._remaining_domain(), order="id", limit=self.batch_size)
            if self.kind == "encrypt":
                records._encrypt_existing()
            else:
                records._reencrypt()
        values = {"done": self.done + len(records)}
        if records:
            values["last_id"] = records[-1].id
        if len(records) < self.batch_size:
            values.update(state="done", finished_at=fields.Datetime.now(), message=_("Done."))
        self.write(values)
        return self.state == "running"

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
