# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Key and custody events: one tamper-evident log of what happened to the keys and their custody.

Key ceremonies (initialise, rekey, shares confirmed), shares entered or rejected, unseal, seal,
key rotations (by hand, scheduled, postponed). Rows are appended by the addon only
(``g2p.audit.chain``): never changed, never deleted, each hash chained to the one before. They
name the event, the user, the server instance and the time; they never hold a share, a key or a
check value.
"""

import socket

from odoo import api, fields, models

EVENTS = [
    ("initialise_started", "Sealed custody: ceremony started"),
    ("initialise", "Sealed custody initialised"),
    ("rekey_started", "Rekey: ceremony started"),
    ("ceremony_share", "Ceremony: new share confirmed"),
    ("ceremony_rejected", "Ceremony: share rejected"),
    ("ceremony_abandoned", "Ceremony abandoned"),
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


class EncryptionEvent(models.Model):
    _name = "g2p.encryption.event"
    _inherit = ["g2p.audit.chain"]
    _description = "Key and Custody Event"
    _order = "date desc, id desc"
    _rec_name = "event"
    _audit_chain_fields = (
        "date",
        "provider_id",
        "event",
        "success",
        "user_id",
        "automatic",
        "hostname",
        "instance_id",
        "detail",
    )

    date = fields.Datetime(required=True, readonly=True, default=fields.Datetime.now, index=True)
    # Restrict: a row referring to a deleted record would change under the chain's feet.
    provider_id = fields.Many2one("g2p.encryption.provider", readonly=True, ondelete="restrict", index=True)
    event = fields.Selection(EVENTS, required=True, readonly=True)
    success = fields.Boolean(readonly=True, default=True)
    user_id = fields.Many2one(
        "res.users", readonly=True, ondelete="restrict", default=lambda self: self.env.uid
    )
    automatic = fields.Boolean(readonly=True, help="Done by a scheduled action, not by a person.")
    hostname = fields.Char(string="Server", readonly=True)
    instance_id = fields.Char(string="Server instance", readonly=True)
    detail = fields.Char(readonly=True)

    @api.model
    def _record(self, provider, event, detail="", success=True, automatic=False, instance=None):
        """Append one event about ``provider`` (a record, or an empty recordset)."""
        return self._append(
            [
                {
                    "provider_id": provider.id or False,
                    "event": event,
                    "detail": detail,
                    "success": success,
                    "automatic": automatic,
                    "user_id": self.env.uid,
                    "hostname": socket.gethostname(),
                    "instance_id": instance,
                }
            ]
        )
