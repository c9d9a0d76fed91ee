# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Audit trail of key custody: initialise, shares entered or rejected, unseal, seal, rekey, rotation.

Records are written by the custody code only (through ``sudo``), never changed and never deleted.
They name the event, the user, the server instance and the time; they never hold a share, a key or
a check value.
"""

from odoo import _, api, fields, models
from odoo.exceptions import AccessError

EVENTS = [
    ("initialise", "Sealed custody initialised"),
    ("unseal_share", "Unseal: share accepted"),
    ("unseal_rejected", "Unseal: share rejected"),
    ("unseal", "Unsealed"),
    ("seal", "Sealed"),
    ("rekey_share", "Rekey: share accepted"),
    ("rekey_rejected", "Rekey: share rejected"),
    ("rekey", "Rekeyed: new shares"),
    ("rekey_master", "Rekeyed: new master key"),
    ("rotation", "Keys rotated"),
    ("rotation_failed", "Key rotation postponed"),
]


class CustodyLog(models.Model):
    _name = "g2p.encryption.custody.log"
    _description = "Key Custody Audit Log"
    _order = "date desc, id desc"
    _rec_name = "event"

    date = fields.Datetime(required=True, readonly=True, default=fields.Datetime.now, index=True)
    provider_id = fields.Many2one("g2p.encryption.provider", readonly=True, ondelete="cascade", index=True)
    event = fields.Selection(EVENTS, required=True, readonly=True)
    success = fields.Boolean(readonly=True, default=True)
    user_id = fields.Many2one("res.users", readonly=True, default=lambda self: self.env.uid)
    automatic = fields.Boolean(readonly=True, help="Done by a scheduled action, not by a person.")
    hostname = fields.Char(string="Server", readonly=True)
    instance_id = fields.Char(string="Server instance", readonly=True)
    detail = fields.Char(readonly=True)

    def write(self, vals):  # pylint: disable=method-required-super
        # Append-only: no code path changes an audit record, not even through sudo.
        raise AccessError(_("The key custody audit log cannot be changed."))

    @api.ondelete(at_uninstall=False)
    def _unlink_never(self):
        raise AccessError(_("The key custody audit log cannot be deleted."))
