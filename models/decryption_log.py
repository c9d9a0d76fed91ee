# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Who received or used plaintext of encrypted fields, and where.

Two kinds of rows:

* ``exit``: plaintext left the server towards a person (an RPC read, an export, a report, the
  chatter...): who, through which entry point, which model, fields and records. One row per exit
  and model.
* ``server``: server code decrypted values (a constraint, a voucher run, a cron, a job): who,
  which entry point (request, cron, job), which model and fields, how many records. One row per
  transaction and model, written just before it commits.

Rows are written by the addon's code only and never changed or deleted; each one is chained to
the previous one (``g2p.audit.chain``), so that a row changed or deleted with SQL is reported by
the integrity check.
"""

from odoo import _, api, fields, http, models
from odoo.exceptions import AccessError, UserError

from ..core import monitoring
from . import audit_chain

MAX_IDS_KEPT = 5000


class DecryptionLog(models.Model):
    _name = "g2p.decryption.log"
    _inherit = ["g2p.audit.chain"]
    _description = "Decryption Audit Log"
    _order = "create_date desc, id desc"
    _audit_chain_fields = (
        "create_date",
        "user_id",
        "kind",
        "entry_point",
        "res_model",
        "res_ids",
        "record_count",
        "field_names",
    )

    user_id = fields.Many2one("res.users", required=True, readonly=True, ondelete="restrict", index=True)
    kind = fields.Selection(
        [("exit", "Shown to a person"), ("server", "Used by server code")],
        required=True,
        readonly=True,
        default="exit",
    )
    entry_point = fields.Char(readonly=True, help="The request, scheduled action or job.")
    res_model = fields.Char(string="Model", required=True, readonly=True, index=True)
    res_ids = fields.Text(string="Record IDs", readonly=True)
    record_count = fields.Integer(string="Records", readonly=True)
    field_names = fields.Char(string="Fields", readonly=True)

    @api.depends("user_id", "res_model", "record_count", "create_date")
    def _compute_display_name(self):
        for log in self:
            log.display_name = _(
                "%(user)s: %(count)s %(model)s (%(when)s)",
                user=log.user_id.name or "?",
                count=log.record_count,
                model=log.res_model,
                when=fields.Datetime.to_string(log.create_date) if log.create_date else "",
            )

    def action_open_records(self):
        """The records a row names (what was shown to the person, as they are now)."""
        self.ensure_one()
        if not self.env.user.has_group("g2p_encryption.crypto_admin"):
            raise AccessError(_("Only a Crypto Admin reads the decryption log."))
        ids = [int(part) for part in (self.res_ids or "").split(",") if part.isdigit()]
        if self.res_model not in self.env or not ids:
            raise UserError(_("This row names no records that can be opened."))
        return {
            "type": "ir.actions.act_window",
            "name": _("Records of %(log)s", log=self.display_name),
            "res_model": self.res_model,
            "view_mode": "tree,form",
            "domain": [("id", "in", ids)],
        }

    # Writing rows (the addon's code only) --------------------------------------------------------
    @api.model
    def _log_exposed(self, state):
        """Rows of an exit that let plaintext through (``encryption_exits.ExitState``)."""
        for model_name, (field_names, ids) in sorted(state.exposed.items()):
            self._write_row("exit", state.entry_point, model_name, field_names, sorted(ids))

    @api.model
    def _log_values(self, entry_point, count):
        """A row for ``count`` stored values handed out by another public method."""
        self._write_row("exit", entry_point, "(values)", {"(returned values)"}, [], count)

    @api.model
    def _log_exit(self, records, ids, field_names):
        self._write_row("exit", f"{records._name}.{field_names[0]}", records._name, set(field_names), ids)

    @api.model
    def _note_decrypted(self, field, ids):
        """Remember that server code decrypted ``field`` of ``ids``; one row per model at commit."""
        if self.env.transaction.__dict__.get("g2p_exit") is not None:
            return  # the exit's own row says it
        # Kept with the pre-commit hooks: dropped with them when the transaction rolls back.
        precommit = self.env.cr.precommit
        pending = precommit.data.get("g2p_decrypted")
        if pending is None:
            pending = precommit.data["g2p_decrypted"] = {}
            precommit.add(self._flush_decrypted)
        field_names, seen = pending.setdefault(field.model_name, (set(), set()))
        field_names.add(field.name)
        seen.update(ids)

    def _flush_decrypted(self):
        pending = self.env.cr.precommit.data.pop("g2p_decrypted", None) or {}
        entry_point = _entry_point(self.env)
        for model_name, (field_names, ids) in sorted(pending.items()):
            self._write_row("server", entry_point, model_name, field_names, [], len(ids))

    def _write_row(self, kind, entry_point, model_name, field_names, ids, count=None):
        monitoring.count_exit(kind, model_name, len(ids) if count is None else count)
        row = {
            "user_id": self.env.uid,
            "kind": kind,
            "entry_point": entry_point,
            "res_model": model_name,
            "field_names": ",".join(sorted(field_names)),
            "record_count": len(ids) if count is None else count,
            "res_ids": ",".join(map(str, ids[:MAX_IDS_KEPT])),
        }
        self._append_at_commit([row])


def _entry_point(env):
    """The request path, scheduled action or job that runs in this transaction."""
    named = env.transaction.__dict__.get("g2p_entry_point")
    if named:
        return named
    request = http.request
    if request:  # a proxy: false outside a request
        return request.httprequest.path
    return "server"


class IrCron(models.Model):
    _inherit = "ir.cron"

    def _callback(self, cron_name, server_action_id, job_id):
        # The decryption log names the scheduled action that decrypted, not a bare "server"; the
        # job's cursor (and its transaction) ends with the job.
        self.env.transaction.g2p_entry_point = f"cron: {cron_name}"
        # It runs beside requests that log: its rows join the chains when it commits.
        setattr(self.env.transaction, audit_chain.SCHEDULED, True)
        return super()._callback(cron_name, server_action_id, job_id)
