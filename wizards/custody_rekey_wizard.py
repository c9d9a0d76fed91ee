# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Rekey: custodians enter k current shares, then a Crypto Admin starts the rekey ceremony."""

from odoo import _, fields, models

from ..models.rpc_guard import CRYPTO_ADMIN, CUSTODY_GROUPS, requires


class CustodyRekeyWizard(models.TransientModel):
    _name = "g2p.encryption.custody.rekey.wizard"
    _inherit = "g2p.encryption.custody.share.dialog"
    _share_kind = "rekey"
    _description = "Rekey an Encryption Provider"

    mode = fields.Selection(
        [("shares", "New shares for the same master key"), ("master", "New master key and new shares")],
        required=True,
        default="shares",
        help="New shares: the custodians change (or their number, or the threshold); the master key stays. "
        "New master key: the provider's keys are re-wrapped under a new master key (the data is not "
        "re-encrypted), and every server must be unsealed again with the new shares.",
    )
    new_threshold = fields.Integer(string="New shares needed", required=True, default=3)
    new_share_count = fields.Integer(string="New shares issued", required=True, default=5)

    @requires(CRYPTO_ADMIN, identity=True)
    def action_rekey(self):
        """Start the rekey ceremony: new shares are shown, and take over once confirmed."""
        self.ensure_one()
        ceremony, reason = self.custody_id.sudo()._start_rekey(
            self.mode, self.new_threshold, self.new_share_count
        )
        if ceremony is None:
            self._write_outcome(
                {"message": _("Rekey refused: %(reason)s", reason=reason), "message_type": "danger"}
            )
            return self._reopen()
        return ceremony._dialog_action()

    @requires(*CUSTODY_GROUPS)
    def action_abandon(self):
        """Forget the shares entered towards this rekey."""
        for wizard in self:
            wizard.custody_id.sudo()._forget_rekey()
        return {"type": "ir.actions.act_window_close"}
