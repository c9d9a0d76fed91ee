# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
from odoo import api, fields, models


class DecryptionLog(models.Model):
    """Who read which encrypted values in the clear, and when: one row per request."""

    _name = "g2p.decryption.log"
    _description = "Decryption Audit Log"
    _order = "create_date desc, id desc"

    user_id = fields.Many2one("res.users", required=True, readonly=True, ondelete="restrict", index=True)
    res_model = fields.Char(string="Model", required=True, readonly=True, index=True)
    res_ids = fields.Text(string="Record IDs", readonly=True)
    record_count = fields.Integer(string="Records", readonly=True)
    field_names = fields.Char(string="Fields", readonly=True)

    @api.model
    def _log_read(self, records, res_ids, field_names):
        self.sudo().create(
            {
                "user_id": self.env.uid,
                "res_model": records._name,
                "res_ids": ",".join(map(str, res_ids)),
                "record_count": len(res_ids),
                "field_names": ",".join(sorted(set(field_names) or {"display_name"})),
            }
        )
