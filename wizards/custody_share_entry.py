# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Entering shares, one at a time: what the unseal and rekey wizards share.

The share is a non-stored field with an inverse: the value typed is handed to the provider when
the dialog is saved, checked and kept (encrypted) only in the server's memory store. The wizard
row keeps nothing of it, only the outcome ("share 2 accepted", "share rejected: ...").
"""

from odoo import _, api, fields, models


class CustodyShareEntry(models.AbstractModel):
    _name = "g2p.encryption.custody.share.entry"
    _description = "Entry of Key Custody Shares"
    _share_kind = "unseal"

    provider_id = fields.Many2one(
        "g2p.encryption.provider",
        required=True,
        ondelete="cascade",
        domain=[("type", "=", "local"), ("custody_mode", "=", "sealed")],
    )
    share = fields.Char(
        compute="_compute_share",
        inverse="_inverse_share",
        help="The words of one custodian's share, in order. Checked when entered, kept nowhere.",
    )
    message = fields.Char(readonly=True)
    message_type = fields.Selection(
        [("info", "Info"), ("success", "Success"), ("danger", "Error")], readonly=True, default="info"
    )
    threshold = fields.Integer(related="provider_id.custody_threshold", string="Shares needed")
    shares_entered = fields.Integer(compute="_compute_shares_entered")
    progress = fields.Char(compute="_compute_shares_entered")

    def _compute_share(self):
        for wizard in self:
            wizard.share = False

    def _inverse_share(self):
        for wizard in self:
            if wizard.share:
                result = wizard.provider_id._custody_enter_share(wizard.share, self._share_kind)
                wizard.message, wizard.message_type = wizard._describe_result(result)
        # Not even the answer to this request carries the share back.
        self.invalidate_recordset(["share"])

    @api.depends("provider_id")
    def _compute_shares_entered(self):
        for wizard in self:
            provider = wizard.provider_id
            entered = provider._custody_progress(self._share_kind).get("count", 0) if provider.id else 0
            wizard.shares_entered = entered
            wizard.progress = _(
                "%(entered)s of %(threshold)s shares entered",
                entered=entered,
                threshold=provider.custody_threshold,
            )

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
            "target": "new",
        }

    def action_enter_share(self):
        """The share was taken when the dialog was saved; show the outcome and wait for the next."""
        self.ensure_one()
        if not self.message:
            self.write({"message": _("Type a share, then press Enter share."), "message_type": "danger"})
        return self._reopen()
