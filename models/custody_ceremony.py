# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Key ceremonies: initialise and rekey in two phases, so that no ceremony can lose the key.

1. *Shares shown*: the new shares are made and shown to the Crypto Admin who started the
   ceremony, and to nobody else, in the ceremony's dialog (a computed field, read by the web
   client like any other: ``web_read``). They wait in a sealed box in the memory of the server
   that made them, whose key is the ceremony's ``box_key`` in the database: neither alone holds a
   share, and nothing of them is stored in the clear.
2. *Confirming*: once the shares are handed out, they are hidden for good, and custodians enter
   *k* of them back. The new key takes over only when they rebuild it: the provider's keys are
   re-wrapped under it (initialise, new master key) or the new share set replaces the old one.

Until then the current key stays in force and the current shares keep working; an abandoned
ceremony (or one whose server stopped) changes nothing.
"""

import logging
import socket
from datetime import timedelta

from markupsafe import Markup

from odoo import _, api, fields, models
from odoo.exceptions import UserError

from ..core import custody
from ..core.errors import DecryptionError
from . import custody_server
from .custody_server import ServerMemory
from .custody_takeover import KeyTakeover
from .rpc_guard import CRYPTO_ADMIN, internal, requires

_logger = logging.getLogger(__name__)

PENDING = ("shown", "confirming")
# A ceremony left pending longer than this is abandoned by the daily clean-up.
PENDING_DAYS = 1


class CustodyCeremony(models.Model):
    _name = "g2p.encryption.custody.ceremony"
    _inherit = ["g2p.encryption.custody.share.entry", "g2p.internal.records"]
    _description = "Key Ceremony"
    _order = "id desc"
    _share_progress_depends = ("state",)
    _person_fields = frozenset({"share"})

    name = fields.Char(compute="_compute_name")
    provider_id = fields.Many2one(
        "g2p.encryption.provider",
        string="Encryption provider",
        help="The provider whose master key the ceremony puts in custody or replaces.",
        required=True,
        readonly=True,
        ondelete="cascade",
    )
    provider_name = fields.Char(related="provider_id.name", string="Provider")
    custody_id = fields.Many2one("g2p.encryption.custody", readonly=True, ondelete="cascade")
    kind = fields.Selection(
        [
            ("initialise", "Initialise sealed custody"),
            ("rekey", "Rekey: new shares, same master key"),
            ("rekey_master", "Rekey: new master key"),
        ],
        required=True,
        readonly=True,
    )
    state = fields.Selection(
        [
            ("shown", "Shares shown"),
            ("confirming", "Confirming shares"),
            ("done", "Done"),
            ("abandoned", "Abandoned"),
        ],
        required=True,
        readonly=True,
        default="shown",
    )
    threshold = fields.Integer(string="Shares needed", readonly=True)
    share_count = fields.Integer(string="Shares issued", readonly=True)
    share_set_id = fields.Integer(string="Share set", readonly=True)
    user_id = fields.Many2one("res.users", string="Started by", readonly=True)
    hostname = fields.Char(string="Server", readonly=True)
    instance_id = fields.Char(string="Server instance", readonly=True)
    date_done = fields.Datetime(string="Ended", readonly=True)
    outcome = fields.Char(readonly=True)
    # Check value of the new key, the custody's check value when the ceremony started, and the key
    # of the sealed box in the server's memory: nobody reads them through the ORM.
    check_value = fields.Char(groups=fields.NO_ACCESS, copy=False)
    base_check_value = fields.Char(groups=fields.NO_ACCESS, copy=False)
    box_key = fields.Char(groups=fields.NO_ACCESS, copy=False)
    is_initiator = fields.Boolean(compute="_compute_is_initiator")
    shares_html = fields.Html(string="Shares", compute="_compute_shares_html", sanitize=False)
    shown_share_count = fields.Integer(compute="_compute_shares_html")

    # Written by the ceremony only --------------------------------------------------------------
    def _internal_steps(self):
        return _("the ceremony's own steps (started by the initialise or rekey wizard)")

    @api.ondelete(at_uninstall=False)
    def _unlink_never(self):
        raise UserError(_("Key ceremonies are kept: they are part of the custody's history."))

    def _write_outcome(self, vals):
        internal(self.sudo()).write(vals)

    # Display -----------------------------------------------------------------------------------
    @api.depends("kind", "provider_id")
    def _compute_name(self):
        labels = dict(self._fields["kind"]._description_selection(self.env))
        for ceremony in self:
            ceremony.name = _(
                "%(kind)s: %(provider)s",
                kind=labels.get(ceremony.kind, ""),
                provider=ceremony.provider_name or "",
            )

    def _compute_is_initiator(self):
        for ceremony in self:
            ceremony.is_initiator = ceremony.user_id.id == self.env.uid

    def _compute_shares_html(self):
        """The new shares, for the person who started the ceremony only, while they are shown."""
        for ceremony in self:
            shares = []
            if ceremony.state == "shown" and ceremony.user_id.id == self.env.uid:
                try:
                    shares = ceremony._pending().shares
                except UserError as error:
                    ceremony.shares_html = Markup("<p class='text-danger'>%s</p>") % error.args[0]
                    ceremony.shown_share_count = 0
                    continue
            ceremony.shares_html = (
                self.env["ir.qweb"]._render("g2p_encryption.ceremony_shares", {"shares": shares})
                if shares
                else False
            )
            ceremony.shown_share_count = len(shares)

    def _share_progress(self):
        self.ensure_one()
        if self.state in ("done", "abandoned") or not self.id:
            return (self.threshold if self.state == "done" else 0), self.threshold
        header = ServerMemory(self.env, self.provider_id.id).progress("confirm", self.share_set_id)
        return header.get("count", 0), self.threshold

    def _progress_text(self, entered, needed):
        return _("%(entered)s of %(threshold)s new shares confirmed", entered=entered, threshold=needed)

    # Start -------------------------------------------------------------------------------------
    @api.model
    def _pending_for(self, provider):
        return self.sudo().search([("provider_id", "=", provider.id), ("state", "in", PENDING)], limit=1)

    @api.model
    def _start_initialise(self, provider, threshold, share_count):
        """Start moving a key-file provider to sealed custody under a new master key."""
        provider = provider.sudo()
        if provider.type != "local":
            raise UserError(_("Only a local provider has a master key to put in custody."))
        if provider.custody_ids:
            raise UserError(
                _("%(provider)s is already in sealed custody: use Rekey.", provider=provider.display_name)
            )
        return self._start(provider, "initialise", threshold, share_count)

    def _dialog_action(self):
        """The dialog that shows this ceremony (its shares, to the person who started it)."""
        action = self._reopen()
        action["name"] = self.name
        action["views"] = [(self.env.ref("g2p_encryption.custody_ceremony_view_form_dialog").id, "form")]
        return action

    @api.model
    def _start(self, provider, kind, threshold, share_count, new_key=None, old_key=None):
        """Make the new shares and keep them, sealed, in this server's memory; return the ceremony."""
        provider = provider.sudo()
        try:
            custody.check_split_parameters(threshold, share_count)
        except custody.CustodyError as error:
            raise UserError(_("Cannot split the master key: %(cause)s.", cause=error)) from None
        pending = self._pending_for(provider)
        if pending:
            if pending._server_alive():
                raise UserError(
                    _(
                        "A key ceremony is already in progress for %(provider)s (started by %(user)s on "
                        "%(host)s): finish or abandon it first.",
                        provider=provider.display_name,
                        user=pending.user_id.name,
                        host=pending.hostname,
                    )
                )
            pending._abandon(_("its server stopped before it was confirmed"))
        ceremony_data, new_check = custody.PendingCeremony.start(threshold, share_count, new_key, old_key)
        custody_record = provider.custody_id
        box_key = custody.new_box_key()
        ceremony = internal(self.sudo()).create(
            {
                "provider_id": provider.id,
                "custody_id": custody_record.id or False,
                "kind": kind,
                "threshold": threshold,
                "share_count": share_count,
                "share_set_id": ceremony_data.identifier,
                "check_value": new_check,
                "base_check_value": custody_record.check_value if custody_record else False,
                "box_key": box_key.hex(),
                "user_id": self.env.uid,
                "hostname": socket.gethostname(),
                "instance_id": custody_server.current_instance_id(),
            }
        )
        self.env["g2p.encryption.custody"]._changed()
        ceremony = self.browse(ceremony.id)  # the caller's environment, not the internal one
        memory = ServerMemory(self.env, provider.id)
        memory.remove("confirm")
        memory.put("ceremony", ceremony_data.seal(box_key))
        ceremony._log(
            "rekey_started" if custody_record else "initialise_started",
            _(
                "%(kind)s: %(threshold)s of %(count)s new shares shown to %(user)s; the current key stays "
                "in force until %(threshold)s of them are confirmed",
                kind=dict(self._fields["kind"]._description_selection(self.env))[kind],
                threshold=threshold,
                count=share_count,
                user=self.env.user.name,
            ),
        )
        return ceremony

    def _log(self, event, detail="", success=True):
        self.ensure_one()
        return self.env["g2p.encryption.event"]._record(
            self.provider_id, event, detail, success, instance=custody_server.current_instance_id()
        )

    def _server_alive(self):
        """Whether the server instance that holds this ceremony's box may still be running."""
        self.ensure_one()
        if self.instance_id == custody_server.current_instance_id():
            return True
        if self.hostname != socket.gethostname():
            return True  # another machine: we cannot tell
        return custody.instance_alive(self.instance_id)

    def _pending(self):
        """The ceremony's sealed box, opened; ``UserError`` naming the server when it is not here."""
        self.ensure_one()
        ceremony = self.sudo()
        if ceremony.state not in PENDING:
            raise UserError(_("This key ceremony is over (%(state)s).", state=ceremony.state))
        if ceremony.instance_id != custody_server.current_instance_id():
            raise UserError(
                _(
                    "This key ceremony was started on the server %(host)s (instance %(instance)s): its new "
                    "shares are only in that server's memory. Open Odoo through that server, or abandon the "
                    "ceremony and start again.",
                    host=ceremony.hostname,
                    instance=ceremony.instance_id,
                )
            )
        blob = ServerMemory(self.env, ceremony.provider_id.id).get("ceremony")
        try:
            if not blob or not ceremony.box_key:
                raise DecryptionError("no sealed box")
            return custody.PendingCeremony.unseal(blob, bytes.fromhex(ceremony.box_key))
        except (DecryptionError, custody.CustodyError, ValueError):
            raise UserError(
                _(
                    "The new shares of this key ceremony are gone from this server's memory (the server "
                    "was sealed or restarted). Abandon the ceremony and start again: nothing was changed."
                )
            ) from None

    # Confirm -----------------------------------------------------------------------------------
    @requires(CRYPTO_ADMIN)
    def action_confirm_start(self):
        """The shares are handed out: hide them for good and ask for k of them back."""
        self.ensure_one()
        ceremony = self.sudo()
        if ceremony.state != "shown":
            raise UserError(_("The shares of this ceremony are no longer shown."))
        pending = ceremony._pending()
        pending.hide_shares()
        ServerMemory(self.env, ceremony.provider_id.id).put(
            "ceremony", pending.seal(bytes.fromhex(ceremony.box_key))
        )
        internal(ceremony).write({"state": "confirming", "message": False})
        return self._after_share()

    def _take_share(self, share):
        """Check one of the new shares; when k are in and rebuild the new key, complete."""
        self.ensure_one()
        ceremony = self.sudo()
        ceremony._pending()  # a ceremony in progress whose box is here, or a clear error
        if ceremony.state != "confirming":
            raise UserError(_("Press 'Shares handed out: confirm them' first; then enter the shares."))
        memory = ServerMemory(self.env, ceremony.provider_id.id)
        server = memory.server(lock=True)
        collector = memory.collector("confirm", server, ceremony.share_set_id, ceremony.threshold)
        number = None
        if not collector.complete:  # complete already: a completion that failed, tried again
            try:
                number = collector.add(share)
            except custody.ShareRejected as error:
                memory.keep_collector("confirm", server, collector)
                ceremony._log("ceremony_rejected", str(error), success=False)
                return {
                    "status": "rejected",
                    "reason": str(error),
                    "count": collector.count,
                    "threshold": ceremony.threshold,
                    "rejected": collector.rejected,
                }
            memory.keep_collector("confirm", server, collector)
            ceremony._log(
                "ceremony_share",
                _(
                    "new share %(number)s confirmed: %(count)s of %(threshold)s",
                    number=number,
                    count=collector.count,
                    threshold=ceremony.threshold,
                ),
            )
        if collector.complete:
            return ceremony._complete(memory, collector)
        return {
            "status": "accepted",
            "number": number,
            "count": collector.count,
            "threshold": ceremony.threshold,
            "rejected": collector.rejected,
        }

    def _complete(self, memory, collector):
        """The confirmed shares rebuild the new key: it takes over now."""
        try:
            new_key = collector.combine(self.check_value)
        except custody.CustodyError as error:
            memory.remove("confirm")
            reason = _("%(cause)s; enter the shares again.", cause=error)
            self._log("ceremony_rejected", reason, success=False)
            return {
                "status": "rejected",
                "reason": reason,
                "count": 0,
                "threshold": self.threshold,
                "rejected": 1,
            }
        takeover = KeyTakeover(self, memory)
        if self.kind == "initialise":
            message = takeover.initialise(new_key)
        else:
            message = takeover.rekey(new_key, self._pending().old_key)
        memory.remove("confirm")
        memory.remove("ceremony")
        internal(self).write(
            {"state": "done", "date_done": fields.Datetime.now(), "box_key": False, "outcome": message}
        )
        _logger.info("Key ceremony %s of encryption provider %s done", self.id, self.provider_id.id)
        self.env["g2p.encryption.custody"]._changed()
        return {"status": "done", "message": message, "count": self.threshold, "threshold": self.threshold}

    # Abandon -----------------------------------------------------------------------------------
    def _abandon(self, reason):
        for ceremony in self.sudo().filtered(lambda record: record.state in PENDING):
            if ceremony.instance_id == custody_server.current_instance_id():
                memory = ServerMemory(self.env, ceremony.provider_id.id)
                memory.remove("ceremony")
                memory.remove("confirm")
            internal(ceremony).write(
                {
                    "state": "abandoned",
                    "date_done": fields.Datetime.now(),
                    "box_key": False,
                    "outcome": reason,
                }
            )
            ceremony._log("ceremony_abandoned", _("nothing changed: %(reason)s", reason=reason))
        self.env["g2p.encryption.custody"]._changed()

    @requires(CRYPTO_ADMIN)
    def action_abandon(self):
        """Abandon the ceremony: the current key and shares stay in force, the new shares are void."""
        self._abandon(_("abandoned by %(user)s", user=self.env.user.name))
        return {"type": "ir.actions.act_window_close"}

    @api.autovacuum
    def _gc_stale_ceremonies(self):
        """Abandon ceremonies left pending for more than a day."""
        limit = fields.Datetime.now() - timedelta(days=PENDING_DAYS)
        self.sudo().search([("state", "in", PENDING), ("create_date", "<", limit)])._abandon(
            _("left pending for more than %(days)s day(s)", days=PENDING_DAYS)
        )

    # Dialog ------------------------------------------------------------------------------------
    def _after_share(self):
        self.ensure_one()
        in_dialog = self.env.context.get("g2p_dialog")
        if self.state == "done" and in_dialog:
            return {
                "type": "ir.actions.client",
                "tag": "display_notification",
                "params": {
                    "title": _("Key ceremony done"),
                    "message": self.outcome,
                    "type": "success",
                    "sticky": False,
                    "next": {"type": "ir.actions.act_window_close"},
                },
            }
        if not in_dialog:
            return False  # the ceremony's own page: the web client reads it again
        return self._dialog_action()
