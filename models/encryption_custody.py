# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Sealed key custody of a local provider: its master key held by custodians as Shamir shares.

One record per provider in sealed custody. The master key is written nowhere on disk: it was
split into shares handed to custodians (``core/custody``), and only a check value is kept. After a
restart the provider is sealed on that server: every operation that needs a key fails with a
clear error until enough custodians have entered their shares; the rebuilt key is then kept in
the server's memory (``/dev/shm``, one file per server instance, mode 0600) where all its worker
processes read it (``models/custody_server.py``).

Custody is made and changed only by key ceremonies (``models/custody_ceremony.py``), and written
only through ``internal()`` (``models/rpc_guard.py``): no RPC call writes it, whatever its context.
"""

import logging
import os
import socket

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools.sql import table_exists

from ..core import custody
from ..core.master_key import MasterKey
from . import custody_server
from .custody_server import ServerMemory
from .encryption_provider import clear_data_key_cache
from .rpc_guard import CRYPTO_ADMIN, CUSTODY_GROUPS, requires

_logger = logging.getLogger(__name__)

# Associated data of the probe values of ``action_check``: no registry value (bound to its model
# and field) can be opened with it.
PROBE_AAD = b"g2p_encryption custody probe"


class EncryptionCustody(models.Model):
    _name = "g2p.encryption.custody"
    _inherit = ["g2p.internal.records"]
    _description = "Sealed Key Custody"
    _order = "id"

    provider_id = fields.Many2one(
        "g2p.encryption.provider",
        string="Encryption provider",
        required=True,
        readonly=True,
        ondelete="cascade",
        index=True,
    )
    name = fields.Char(related="provider_id.name", string="Provider")
    threshold = fields.Integer(string="Shares needed", readonly=True)
    share_count = fields.Integer(string="Shares issued", readonly=True)
    # HMAC of a fixed label under the master key: verifies a rebuilt key, reveals nothing.
    check_value = fields.Char(readonly=True, groups=fields.NO_ACCESS)
    master_key_id = fields.Char(string="Master key", readonly=True)
    share_set_id = fields.Integer(string="Share set", readonly=True)
    initialised_date = fields.Datetime(string="Custody since", readonly=True)
    rekeyed_date = fields.Datetime(string="Last rekey", readonly=True)
    state = fields.Selection(
        [("sealed", "Sealed"), ("unsealed", "Unsealed")],
        string="On this server",
        compute="_compute_state",
    )
    shares_entered = fields.Integer(compute="_compute_state")
    status = fields.Char(compute="_compute_state")
    server_ids = fields.Many2many(
        "g2p.encryption.custody.server", compute="_compute_server_ids", string="Servers"
    )
    ceremony_ids = fields.One2many("g2p.encryption.custody.ceremony", "custody_id", string="Ceremonies")
    pending_ceremony_id = fields.Many2one(
        "g2p.encryption.custody.ceremony", compute="_compute_pending_ceremony"
    )

    _sql_constraints = [
        ("provider_unique", "unique(provider_id)", "One custody per provider."),
        ("threshold_valid", "CHECK(threshold >= 2 AND threshold <= share_count)", "k of n, 2 <= k <= n."),
    ]

    # Written by ceremonies only --------------------------------------------------------------
    def _internal_steps(self):
        return _("its key ceremonies (initialise, rekey)")

    @api.model_create_multi
    def create(self, vals_list):
        self.env.registry.clear_cache()  # each worker caches which provider has custody
        return super().create(vals_list)

    @api.ondelete(at_uninstall=False)
    def _unlink_never(self):
        raise UserError(
            _("Sealed custody is never deleted: the provider's keys are wrapped by its master key.")
        )

    # State on this server --------------------------------------------------------------------
    def _memory(self):
        self.ensure_one()
        return ServerMemory(self.env, self.provider_id.id)

    def _compute_state(self):
        host = socket.gethostname()
        for record in self:
            entered = 0
            if record._unsealed_here():
                record.state = "unsealed"
                record.status = _("Unsealed on this server (%(host)s).", host=host)
            else:
                record.state = "sealed"
                entered = record._progress("unseal").get("count", 0)
                record.status = _(
                    "Sealed on this server (%(host)s): %(entered)s of %(threshold)s shares entered.",
                    host=host,
                    entered=entered,
                    threshold=record.threshold,
                )
            record.shares_entered = entered

    def _compute_server_ids(self):
        servers = self.env["g2p.encryption.custody.server"].sudo()
        for record in self:
            record.server_ids = servers.search([("provider_id", "=", record.provider_id.id)])

    def _compute_pending_ceremony(self):
        ceremonies = self.env["g2p.encryption.custody.ceremony"].sudo()
        for record in self:
            record.pending_ceremony_id = ceremonies._pending_for(record.provider_id)

    def _changed(self):
        """The state on this server changed: computed fields are to be read again."""
        self.env["g2p.encryption.custody"].invalidate_model(
            ["state", "shares_entered", "status", "pending_ceremony_id"]
        )
        self.env["g2p.encryption.provider"].invalidate_model(
            [
                "custody_ids",
                "custody_id",
                "custody_mode",
                "custody_state",
                "custody_status",
                "custody_pending_ceremony_id",
            ]
        )

    def _unsealed_here(self):
        """Cheap test (one stat) that this server holds the key; the key itself is checked on use."""
        self.ensure_one()
        return bool(self.id) and self._memory().has("key")

    def _progress(self, kind):
        """Clear header of the shares collected on this server (count, rejected), or {}."""
        self.ensure_one()
        return self._memory().progress(kind, self.sudo().share_set_id)

    def _sealed_error(self):
        record = self.sudo()
        return UserError(
            _(
                "Encryption provider %(provider)s is sealed: %(entered)s of %(threshold)s shares entered. "
                "Custodians must unseal it on this server (%(host)s) before anything can be encrypted, "
                "decrypted or signed with its keys. Nothing was saved.",
                provider=record.provider_id.display_name,
                entered=record._progress("unseal").get("count", 0),
                threshold=record.threshold,
                host=socket.gethostname(),
            )
        )

    def _master_key(self):
        """The unsealed master key of this server, checked; the sealed error when there is none."""
        self.ensure_one()
        record = self.sudo()
        key = record._memory().key(record.check_value)
        if key is None:
            clear_data_key_cache()
            self._changed()
            raise record._sealed_error()
        return MasterKey(key)

    def _log(self, event, detail="", success=True, automatic=False):
        return self.env["g2p.encryption.event"]._record(
            self.provider_id, event, detail, success, automatic, instance=custody_server.current_instance_id()
        )

    # Shares entered: unseal, and the current shares of a rekey -------------------------------
    def _enter_share(self, share, kind="unseal"):
        """Check one share and add it to those entered on this server.

        Never raises for a bad share (the rejection must be recorded): returns a dict with
        ``status`` (``accepted``, ``complete``, ``rejected``, ``unsealed``), ``count``,
        ``threshold``, ``rejected`` and, for a rejection, ``reason``.
        """
        self.ensure_one()
        try:
            return self.sudo()._enter_share_checked(share, kind)
        finally:
            self._changed()

    def _enter_share_checked(self, share, kind):
        memory = self._memory()
        server = memory.server(lock=True)
        threshold = self.threshold
        if kind == "unseal" and self._unsealed_here():
            return {"status": "unsealed", "count": threshold, "threshold": threshold, "rejected": 0}
        collector = memory.collector(kind, server, self.share_set_id, threshold)
        try:
            number = collector.add(share)
        except custody.ShareRejected as error:
            memory.keep_collector(kind, server, collector)
            memory.update_server(rejected_shares=server.rejected_shares + 1)
            self._log(f"{kind}_rejected", detail=str(error), success=False)
            return {
                "status": "rejected",
                "reason": str(error),
                "count": collector.count,
                "threshold": threshold,
                "rejected": collector.rejected,
            }
        if kind == "unseal" and collector.complete:
            return self._unseal_with(memory, server, collector)
        memory.keep_collector(kind, server, collector)
        if kind == "unseal":
            memory.update_server("sealed", shares_entered=collector.count)
        self._log(
            f"{kind}_share",
            detail=_(
                "share %(number)s accepted: %(count)s of %(threshold)s",
                number=number,
                count=collector.count,
                threshold=threshold,
            ),
        )
        return {
            "status": "complete" if collector.complete else "accepted",
            "number": number,
            "count": collector.count,
            "threshold": threshold,
            "rejected": collector.rejected,
        }

    def _unseal_with(self, memory, server, collector):
        threshold = self.threshold
        try:
            key = collector.combine(self.check_value)
        except custody.CustodyError as error:
            memory.remove("unseal")
            memory.update_server(shares_entered=0, rejected_shares=server.rejected_shares + 1)
            reason = _("%(cause)s; enter the shares again.", cause=error)
            self._log("unseal_rejected", detail=reason, success=False)
            return {"status": "rejected", "reason": reason, "count": 0, "threshold": threshold, "rejected": 1}
        memory.keep_key(key)
        memory.remove("unseal")
        memory.update_server("unsealed", shares_entered=0, progress_key=False)
        self._log(
            "unseal",
            detail=_("unsealed with shares %(numbers)s", numbers=", ".join(map(str, collector.numbers))),
        )
        _logger.info("Encryption provider %s unsealed on this server", self.provider_id.id)
        return {
            "status": "unsealed",
            "count": threshold,
            "threshold": threshold,
            "rejected": collector.rejected,
        }

    def _current_key_from_rekey_shares(self):
        """The current master key, rebuilt from the shares entered towards a rekey (then forgotten).

        Returns ``(key, None)``, or ``(None, reason)`` when the shares do not rebuild it (recorded).
        """
        self.ensure_one()
        record = self.sudo()
        memory = record._memory()
        server = memory.server(lock=True)
        collector = memory.collector("rekey", server, record.share_set_id, record.threshold)
        if not collector.complete:
            raise UserError(
                _(
                    "%(count)s of %(threshold)s current shares entered: a rekey needs %(threshold)s.",
                    count=collector.count,
                    threshold=record.threshold,
                )
            )
        memory.remove("rekey")
        try:
            return collector.combine(record.check_value), None
        except custody.CustodyError as error:
            reason = _("%(cause)s; enter the shares again.", cause=error)
            record._log("rekey_rejected", detail=reason, success=False)
            return None, reason

    def _start_rekey(self, mode, threshold, share_count):
        """With the current shares entered (kind ``rekey``), start a rekey ceremony.

        ``mode`` ``shares``: a new share set for the same master key. ``master``: a new master key,
        the provider's keys re-wrapped under it at confirmation. Returns ``(ceremony, None)``, or
        ``(None, reason)`` when the shares entered do not rebuild the key (recorded, not raised).
        """
        self.ensure_one()
        if mode not in ("shares", "master"):
            raise UserError(_("Unknown rekey mode %(mode)s.", mode=mode))
        try:
            custody.check_split_parameters(threshold, share_count)
        except custody.CustodyError as error:
            raise UserError(_("Cannot split the master key: %(cause)s.", cause=error)) from None
        key, reason = self._current_key_from_rekey_shares()
        if key is None:
            return None, reason
        ceremonies = self.env["g2p.encryption.custody.ceremony"]
        if mode == "master":
            ceremony = ceremonies._start(
                self.provider_id, "rekey_master", threshold, share_count, old_key=key
            )
        else:
            ceremony = ceremonies._start(self.provider_id, "rekey", threshold, share_count, new_key=key)
        self._changed()
        return ceremony, None

    def _forget_rekey(self):
        """Drop the shares entered towards a rekey on this server."""
        self.ensure_one()
        self._memory().remove("rekey")
        self._changed()

    def _seal_here(self):
        """Forget the master key on this server (and any shares entered): it is sealed."""
        for record in self.sudo():
            memory = record._memory()
            pending = record.pending_ceremony_id
            memory.forget()
            if pending and pending.instance_id == custody_server.current_instance_id():
                # Its sealed box was in this server's memory too: nothing of it can complete now.
                pending._abandon(_("the server that held it was sealed"))
            clear_data_key_cache()
            memory.update_server("sealed", shares_entered=0, progress_key=False)
            record._log("seal")
            _logger.info("Encryption provider %s sealed on this server", record.provider_id.id)
        self._changed()

    # Actions ---------------------------------------------------------------------------------
    @requires(CRYPTO_ADMIN, identity=True)
    def action_seal(self):
        """Seal now: this server forgets the master key until custodians unseal it again."""
        self._seal_here()
        return {"type": "ir.actions.client", "tag": "reload"}

    @requires(CRYPTO_ADMIN)
    def action_check(self, token=None):
        """Encrypt and decrypt a probe value here; tell which server and worker did it.

        ``token`` (a probe token returned by an earlier call, possibly served by another worker) is
        decrypted too. Only probe values open: they are bound to their own associated data.
        """
        self.ensure_one()
        provider = self.sudo().provider_id
        probe = f"custody probe {os.urandom(8).hex()}".encode()
        new_token = provider.encrypt_data(probe, aad=PROBE_AAD)
        round_trip = provider.decrypt_data(new_token, aad=PROBE_AAD) == probe
        decrypted = provider.decrypt_data(token.encode(), aad=PROBE_AAD).decode() if token else None
        message = _(
            "Keys usable on %(host)s (worker process %(pid)s): a probe value was encrypted and decrypted.",
            host=socket.gethostname(),
            pid=os.getpid(),
        )
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "title": provider.display_name,
                "message": message,
                "type": "success" if round_trip else "danger",
                "sticky": False,
                "pid": os.getpid(),
                "instance_id": custody_server.current_instance_id(),
                "round_trip": round_trip,
                "token": new_token.decode(),
                "probe": probe.decode(),
                "decrypted": decrypted,
            },
        }

    @api.model
    @requires(*CUSTODY_GROUPS)
    def seal_status(self):
        """Providers sealed on this server, for the banner: no secret, only counts."""
        return [
            {
                "id": record.id,
                "provider": record.provider_id.display_name,
                "entered": record._progress("unseal").get("count", 0),
                "threshold": record.threshold,
            }
            for record in self.sudo().search([])
            if not record._unsealed_here()
        ]

    @api.model
    def _seal_status_report(self):
        """Every custody of this database and its state on this server (the status endpoint)."""
        return [
            {
                "provider_id": record.provider_id.id,
                "provider": record.provider_id.name,
                "sealed": not record._unsealed_here(),
                "threshold": record.threshold,
                "shares_issued": record.share_count,
                "shares_entered": record._progress("unseal").get("count", 0),
            }
            for record in self.sudo().search([])
        ]

    # Housekeeping ----------------------------------------------------------------------------
    def _register_hook(self):
        super()._register_hook()
        custody_server.remove_files_at_exit()
        try:
            removed = custody_server.custody_store().remove_stale()
        except (custody.CustodyError, OSError) as error:
            _logger.debug("Stale custody files not checked: %s", error)
            return
        if removed:
            _logger.info("Removed %s custody files of stopped Odoo servers", removed)
        if table_exists(self.env.cr, self._table):
            self.sudo().search([])._warn_if_sealed()

    def _warn_if_sealed(self):
        """A WARNING for each of these providers that is sealed on this server (at start)."""
        for record in self.sudo():
            if record._unsealed_here():
                continue
            _logger.warning(
                "Encryption provider %s (id %s) is sealed on this server: %s of %s custodians must enter "
                "their shares (Key Custody > Unseal) before its keys can be used.",
                record.provider_id.name,
                record.provider_id.id,
                record.threshold,
                record.share_count,
            )
