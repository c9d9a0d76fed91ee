# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
from odoo import _, fields, models

from .custody_shares_wizard import shares_display_action


class CustodyRekeyWizard(models.TransientModel):
    _name = "g2p.encryption.custody.rekey.wizard"
    _inherit = "g2p.encryption.custody.share.entry"
    _description = "Rekey an Encryption Provider"
    _share_kind = "rekey"

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

    def action_rekey(self):
        self.ensure_one()
        share_set, reason = self.provider_id._custody_rekey(
            self.mode, self.new_threshold, self.new_share_count
        )
        if share_set is None:
            self.write({"message": _("Rekey refused: %(reason)s", reason=reason), "message_type": "danger"})
            return self._reopen()
        return shares_display_action(self.provider_id, share_set, _("New shares: hand each to its custodian"))

    def action_abandon(self):
        """Forget the shares entered towards this rekey."""
        for wizard in self:
            wizard.provider_id._custody_forget_rekey()
        return {"type": "ir.actions.act_window_close"}
