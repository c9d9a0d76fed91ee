# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The Odoo server instances that hold, or wait for, a provider's sealed master key.

Each Odoo server (one machine, or one container) unseals on its own: the rebuilt key lives in its
memory only. One record per (provider, server instance) says whether that instance is sealed or
unsealed, how many shares were entered there and when it last changed, so that a multi-server
deployment shows which servers are still sealed. Records are written when something happens
(a share entered, unseal, seal, rekey), never on a read path. A restarted server is a new
instance: the record of the old one is marked stopped when this machine notices.
"""

import socket

from odoo import fields, models

from ..core import custody


class CustodyServer(models.Model):
    _name = "g2p.encryption.custody.server"
    _description = "Server Instance of a Sealed Provider"
    _order = "last_change desc, id desc"
    _rec_name = "hostname"

    provider_id = fields.Many2one("g2p.encryption.provider", required=True, readonly=True, ondelete="cascade")
    hostname = fields.Char(string="Server", required=True, readonly=True)
    instance_id = fields.Char(string="Server instance", required=True, readonly=True)
    state = fields.Selection(
        [("sealed", "Sealed"), ("unsealed", "Unsealed"), ("stopped", "Stopped")],
        required=True,
        readonly=True,
        default="sealed",
    )
    shares_entered = fields.Integer(readonly=True)
    rejected_shares = fields.Integer(readonly=True)
    threshold = fields.Integer(related="provider_id.custody_threshold", string="Shares needed")
    last_change = fields.Datetime(readonly=True, default=fields.Datetime.now)
    is_this_server = fields.Boolean(compute="_compute_is_this_server")
    # Opens the shares entered so far, which are kept encrypted in the server's memory store; the
    # two together never outlive the unsealing. Nobody reads it through the ORM.
    progress_key = fields.Char(groups=fields.NO_ACCESS, copy=False)

    _sql_constraints = [
        (
            "instance_unique",
            "unique(provider_id, instance_id)",
            "One record per provider and server instance.",
        ),
    ]

    def _compute_is_this_server(self):
        from .key_custody import current_instance_id

        here = current_instance_id()
        for record in self:
            record.is_this_server = record.instance_id == here

    def _mark_stopped_here(self, current_instance):
        """Mark stopped the records of this machine's instances that no longer run."""
        hostname = socket.gethostname()
        candidates = self.sudo().search(
            [("hostname", "=", hostname), ("state", "!=", "stopped"), ("instance_id", "!=", current_instance)]
        )
        stopped = candidates.filtered(lambda record: not custody.instance_alive(record.instance_id))
        if stopped:
            stopped.write(
                {
                    "state": "stopped",
                    "last_change": fields.Datetime.now(),
                    "progress_key": False,
                    "shares_entered": 0,
                }
            )
        return stopped
