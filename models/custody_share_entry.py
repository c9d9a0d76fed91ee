# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Entering shares, one at a time: what the unseal and rekey dialogs and key ceremonies share.

The share is a non-stored field with an inverse: the value typed reaches the server when the web
client saves the dialog (``web_save``, before it calls the button), is checked and kept
(encrypted) only in the server's memory store. The record keeps nothing of it, only the outcome
("share 2 accepted", "share rejected: ...").

A dialog bound to a custody (a ``custody_id`` field) names the kind of shares it collects in
``_share_kind`` (``unseal``, ``rekey``); another model implements ``_take_share(share)`` (returns
the outcome dict of ``g2p.encryption.custody._enter_share``) and ``_share_progress()`` (returns
``(entered, needed)``). Only Crypto Admins and Key Custodians enter shares.
"""

from odoo import _, api, fields, models

from .rpc_guard import CUSTODY_GROUPS, check_groups, internal, requires


class CustodyShareEntry(models.AbstractModel):
    _name = "g2p.encryption.custody.share.entry"
    _description = "Entry of Key Custody Shares"
    # Fields the progress follows: without them a new dialog (``onchange``) would show none.
    _share_progress_depends = ()

    share = fields.Char(
        compute="_compute_share",
        inverse="_inverse_share",
        help="The words of one custodian's share, in order. Checked when entered, kept nowhere.",
    )
    message = fields.Char(readonly=True)
    message_type = fields.Selection(
        [("info", "Info"), ("success", "Success"), ("danger", "Error")], readonly=True, default="info"
    )
    shares_entered = fields.Integer(compute="_compute_share_progress")
    shares_needed = fields.Integer(compute="_compute_share_progress")
    progress = fields.Char(compute="_compute_share_progress")

    def _compute_share(self):
        for record in self:
            record.share = False

    def _inverse_share(self):
        check_groups(self, CUSTODY_GROUPS, _("Entering a share"))
        for record in self:
            if record.share:
                result = record._take_share(record.share)
                message, message_type = record._describe_result(result)
                record._write_outcome({"message": message, "message_type": message_type})
        # Not even the answer to this request carries the share back.
        self.invalidate_recordset(["share"])

    def _write_outcome(self, vals):
        """Store the outcome shown in the dialog (never the share)."""
        internal(self.sudo()).write(vals)

    @api.depends(lambda self: self._share_progress_depends)
    def _compute_share_progress(self):
        for record in self:
            entered, needed = record._share_progress()
            record.shares_entered = entered
            record.shares_needed = needed
            record.progress = record._progress_text(entered, needed)

    def _progress_text(self, entered, needed):
        return _("%(entered)s of %(threshold)s shares entered", entered=entered, threshold=needed)

    # Shares of a custody (``custody_id``), of the kind ``_share_kind`` ----------------------------
    _share_kind = None

    def _take_share(self, share):
        return self.custody_id._enter_share(share, self._share_kind)

    def _share_progress(self):
        self.ensure_one()
        custody_record = self.custody_id
        if not custody_record:
            return 0, 0
        return custody_record._progress(self._share_kind).get("count", 0), custody_record.sudo().threshold

    def _describe_result(self, result):
        if result["status"] == "rejected":
            return (
                _(
                    "Share rejected: %(reason)s. %(count)s of %(threshold)s shares entered; %(rejected)s "
                    "rejected so far.",
                    reason=result["reason"],
                    count=result["count"],
                    threshold=result["threshold"],
                    rejected=result["rejected"],
                ),
                "danger",
            )
        if result["status"] == "unsealed":
            return _("The provider is unsealed on this server."), "success"
        if result["status"] == "done":
            return result["message"], "success"
        return (
            _(
                "Share %(number)s accepted: %(count)s of %(threshold)s shares entered.",
                number=result["number"],
                count=result["count"],
                threshold=result["threshold"],
            ),
            "success" if result["status"] == "complete" else "info",
        )

    def _reopen(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": self._description,
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "views": [(False, "form")],
            "target": "new",
            "context": {"g2p_dialog": True},
        }

    def _after_share(self):
        """What the dialog does once a share was taken: open again for the next one."""
        return self._reopen()

    @requires(*CUSTODY_GROUPS)
    def action_enter_share(self):
        """The share was taken when the dialog was saved; show the outcome and wait for the next."""
        self.ensure_one()
        if not self.message:
            self._write_outcome(
                {"message": _("Type a share, then press Enter share."), "message_type": "danger"}
            )
        return self._after_share()
