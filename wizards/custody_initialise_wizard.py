# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
from odoo import _, api, fields, models

from .custody_shares_wizard import shares_display_action


class CustodyInitialiseWizard(models.TransientModel):
    _name = "g2p.encryption.custody.initialise.wizard"
    _description = "Initialise Sealed Key Custody"

    provider_id = fields.Many2one(
        "g2p.encryption.provider",
        required=True,
        ondelete="cascade",
        domain=[("type", "=", "local"), ("custody_mode", "=", "key_file")],
    )
    threshold = fields.Integer(string="Shares needed", required=True, default=3)
    share_count = fields.Integer(string="Shares issued", required=True, default=5)
    key_count = fields.Integer(string="Keys to re-wrap", compute="_compute_key_count")

    @api.depends("provider_id")
    def _compute_key_count(self):
        for wizard in self:
            wizard.key_count = len(wizard.provider_id.sudo().key_ids)

    def action_initialise(self):
        self.ensure_one()
        share_set = self.provider_id._custody_initialise(self.threshold, self.share_count)
        return shares_display_action(self.provider_id, share_set, _("Shares: hand each to its custodian"))
