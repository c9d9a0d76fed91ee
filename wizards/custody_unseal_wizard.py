# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Unseal: custodians enter their shares, one at a time, on this server."""

from odoo import _, fields, models


class CustodyUnsealWizard(models.TransientModel):
    _name = "g2p.encryption.custody.unseal.wizard"
    _inherit = "g2p.encryption.custody.share.dialog"
    _share_kind = "unseal"
    _description = "Unseal an Encryption Provider"

    custody_state = fields.Selection(related="custody_id.state")

    def _after_share(self):
        self.ensure_one()
        if self.custody_id.sudo()._unsealed_here():
            return {
                "type": "ir.actions.client",
                "tag": "display_notification",
                "params": {
                    "title": _("Unsealed"),
                    "message": _(
                        "%(provider)s is unsealed on this server: its keys can be used again.",
                        provider=self.custody_id.sudo().name,
                    ),
                    "type": "success",
                    "sticky": False,
                    "next": {"type": "ir.actions.client", "tag": "reload"},
                },
            }
        return super()._after_share()
