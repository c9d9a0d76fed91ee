# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""What the unseal and rekey dialogs share: the custody they collect shares for."""

from odoo import fields, models


class CustodyShareDialog(models.AbstractModel):
    _name = "g2p.encryption.custody.share.dialog"
    _inherit = "g2p.encryption.custody.share.entry"
    _description = "Dialog Collecting Shares of a Custody"
    _share_progress_depends = ("custody_id",)

    custody_id = fields.Many2one(
        "g2p.encryption.custody", string="Provider", required=True, ondelete="cascade"
    )
