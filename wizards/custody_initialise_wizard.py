# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Initialise sealed custody: choose k and n, then the ceremony shows the new shares."""

from odoo import api, fields, models

from ..models.rpc_guard import CRYPTO_ADMIN, requires


class CustodyInitialiseWizard(models.TransientModel):
    _name = "g2p.encryption.custody.initialise.wizard"
    _description = "Initialise Sealed Key Custody"

    provider_id = fields.Many2one(
        "g2p.encryption.provider",
        required=True,
        ondelete="cascade",
        domain=[("type", "=", "local"), ("custody_ids", "=", False)],
    )
    threshold = fields.Integer(string="Shares needed", required=True, default=3)
    share_count = fields.Integer(string="Shares issued", required=True, default=5)
    key_count = fields.Integer(string="Keys to re-wrap", compute="_compute_key_count")

    @api.depends("provider_id")
    def _compute_key_count(self):
        for wizard in self:
            wizard.key_count = len(wizard.provider_id.sudo().key_ids)

    @requires(CRYPTO_ADMIN, identity=True)
    def action_initialise(self):
        """Make the new shares and show them; the key file stays in force until they are confirmed."""
        self.ensure_one()
        ceremony = self.env["g2p.encryption.custody.ceremony"]._start_initialise(
            self.provider_id, self.threshold, self.share_count
        )
        return ceremony._dialog_action()
