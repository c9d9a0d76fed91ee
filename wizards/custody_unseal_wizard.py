# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
from odoo import _, fields, models


class CustodyUnsealWizard(models.TransientModel):
    _name = "g2p.encryption.custody.unseal.wizard"
    _inherit = "g2p.encryption.custody.share.entry"
    _description = "Unseal an Encryption Provider"
    _share_kind = "unseal"

    custody_state = fields.Selection(related="provider_id.custody_state")

    def action_enter_share(self):
        self.ensure_one()
        if self.provider_id.custody_state != "unsealed":
            return super().action_enter_share()
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "title": _("Unsealed"),
                "message": _(
                    "%(provider)s is unsealed on this server: its keys can be used again.",
                    provider=self.provider_id.display_name,
                ),
                "type": "success",
                "sticky": False,
                "next": {"type": "ir.actions.act_window_close"},
            },
        }
