# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Key custody of the local provider: a key file, or a sealed master key held by custodians.

``key_file`` (the default) is the behaviour of ``encryption_provider_local``: the master key is
read from the server's key file. ``sealed`` keeps the master key nowhere on disk: it is split into
Shamir shares (``core/custody.py``) handed to custodians, and only a check value is stored. After
a restart the provider is sealed on that server: every operation that needs a key fails with a
clear error until enough custodians have entered their shares; the rebuilt key is then kept in the
server's memory (``/dev/shm``, one file per server instance, mode 0600) where all its worker
processes read it.

Custody fields are written only by this code (context marker ``g2p_custody``); the wizards in
``wizards/`` are the way in for people.
"""

import hashlib
import logging
import os
import socket

import odoo
from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tools import config

from ..core import custody
from ..core.errors import DecryptionError, G2PCryptoError
from ..core.master_key import MasterKey
from .encryption_provider import clear_data_key_cache

_logger = logging.getLogger(__name__)

# Server configuration option: another memory-backed directory than /dev/shm for unsealed keys.
CUSTODY_DIR_OPTION = "g2p_encryption_custody_dir"
CUSTODY_FIELDS = {
    "custody_mode",
    "custody_threshold",
    "custody_share_count",
    "custody_check_value",
    "custody_master_key_id",
    "custody_share_set_id",
    "custody_initialised_date",
}
# Associated data of the probe values of ``action_custody_check``: no registry value (bound to its
# model and field) can be opened with it.
PROBE_AAD = b"g2p_encryption custody probe"

_INSTANCE_IDS = {}


def server_master_pid():
    """Pid of this Odoo server's master process.

    In prefork mode (``--workers``) the HTTP and cron workers are forked from the master, and
    ``odoo.service.server.server`` (made before the fork) holds the master's pid; the gevent
    process is started by the master too. In threaded mode, and in ``odoo shell`` or a test run,
    the server is this process.
    """
    if odoo.evented:
        return os.getppid()
    from odoo.service import server as server_module

    return getattr(server_module.server, "pid", None) or os.getpid()


def current_instance_id():
    """Id of the running server instance (boot id, master pid and its start time)."""
    pid = server_master_pid()
    instance = _INSTANCE_IDS.get(pid)
    if instance is None:
        instance = _INSTANCE_IDS[pid] = custody.instance_id(pid)
    return instance


def custody_store():
    """The memory store of this server instance."""
    directory = config.get(CUSTODY_DIR_OPTION) or custody.SHM_DIR
    return custody.InstanceStore(current_instance_id(), directory)


class EncryptionProviderCustody(models.Model):
    _inherit = "g2p.encryption.provider"

    custody_mode = fields.Selection(
        [("key_file", "Key file"), ("sealed", "Sealed (custodians' shares)")],
        string="Key custody",
        default="key_file",
        required=True,
        readonly=True,
        copy=False,
        help="Key file: the master key is read from the server's key file. Sealed: the master key is "
        "split into shares held by custodians; after every restart enough of them must unseal the "
        "provider. Changed with the 'Initialise sealed custody' wizard.",
    )
    custody_threshold = fields.Integer(string="Shares needed", readonly=True, copy=False)
    custody_share_count = fields.Integer(string="Shares issued", readonly=True, copy=False)
    custody_check_value = fields.Char(
        readonly=True, copy=False, help="HMAC of a fixed label under the master key: verifies a rebuilt key."
    )
    custody_master_key_id = fields.Char(string="Sealed master key", readonly=True, copy=False)
    custody_share_set_id = fields.Integer(string="Share set", readonly=True, copy=False)
    custody_initialised_date = fields.Datetime(string="Custody since", readonly=True, copy=False)
    custody_state = fields.Selection(
        [("key_file", "Key file"), ("sealed", "Sealed"), ("unsealed", "Unsealed")],
        string="Custody state",
        compute="_compute_custody_state",
        help="On this server.",
    )
    custody_shares_entered = fields.Integer(compute="_compute_custody_state", string="Shares entered")
    custody_status = fields.Char(compute="_compute_custody_state")
    custody_server_ids = fields.One2many("g2p.encryption.custody.server", "provider_id", string="Servers")
    custody_log_ids = fields.One2many("g2p.encryption.custody.log", "provider_id", string="Custody log")

    _sql_constraints = [
        (
            "custody_threshold_valid",
            "CHECK(custody_threshold >= 0)",
            "The number of shares needed is positive.",
        ),
    ]

    # Protection ------------------------------------------------------------------------------
    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if vals.get("custody_mode", "key_file") != "key_file" or (
                CUSTODY_FIELDS - {"custody_mode"}
            ) & set(vals):
                if not self.env.context.get("g2p_custody"):
                    raise AccessError(
                        _("A provider starts with a key file; sealed custody is set up by its wizard.")
                    )
        return super().create(vals_list)

    def write(self, vals):
        if CUSTODY_FIELDS & set(vals) and not self.env.context.get("g2p_custody"):
            raise AccessError(_("Key custody is changed only through its wizards (initialise, rekey)."))
        if (
            vals.get("type")
            and vals["type"] != "local"
            and self.filtered(lambda p: p.custody_mode == "sealed")
        ):
            raise ValidationError(_("A provider in sealed custody stays a local provider."))
        return super().write(vals)

    # State on this server --------------------------------------------------------------------
    def _compute_custody_state(self):
        for provider in self:
            entered = 0
            if provider.type != "local":
                state = False
                status = _("Not applicable: this provider's keys are not wrapped by a local master key.")
            elif provider.custody_mode != "sealed" or not provider.id:
                state = "key_file"
                status = _("The master key is read from the server's key file.")
            elif provider._custody_unsealed_here():
                state = "unsealed"
                status = _("Unsealed on this server (%(host)s).", host=socket.gethostname())
            else:
                state = "sealed"
                entered = provider._custody_progress("unseal").get("count", 0)
                status = _(
                    "Sealed on this server (%(host)s): %(entered)s of %(threshold)s shares entered.",
                    host=socket.gethostname(),
                    entered=entered,
                    threshold=provider.custody_threshold,
                )
            provider.custody_state = state
            provider.custody_shares_entered = entered
            provider.custody_status = status

    def _custody_changed(self):
        """The state on this server changed: computed custody fields are to be read again."""
        self.env["g2p.encryption.provider"].invalidate_model(
            ["custody_state", "custody_shares_entered", "custody_status"]
        )
        for wizard in ("g2p.encryption.custody.unseal.wizard", "g2p.encryption.custody.rekey.wizard"):
            self.env[wizard].invalidate_model(["shares_entered", "progress"])

    def _custody_scope(self):
        """Names this database and provider in the memory store (no secret in it)."""
        self.ensure_one()
        database = hashlib.sha256(self.env.cr.dbname.encode()).hexdigest()[:12]
        return f"{database}-p{self.id}"

    def _custody_sealed_mode(self):
        provider = self.sudo()
        return provider.type == "local" and provider.custody_mode == "sealed"

    def _custody_unsealed_here(self):
        """Cheap test (one stat) that this server holds the key; the key itself is checked on use."""
        try:
            return custody_store().exists(self._custody_scope(), "key")
        except custody.CustodyError:
            return False

    def _custody_progress(self, kind):
        """Clear header of the shares collected on this server (count, rejected), or {}."""
        try:
            blob = custody_store().get(self._custody_scope(), kind)
            header = custody.ShareCollector.peek(blob) if blob else {}
        except G2PCryptoError:
            return {}
        provider = self.sudo()
        if header.get("identifier") != provider.custody_share_set_id:
            return {}  # shares of an older share set: they count for nothing
        return header

    def _custody_sealed_error(self):
        provider = self.sudo()
        return UserError(
            _(
                "Encryption provider %(provider)s is sealed: %(entered)s of %(threshold)s shares entered. "
                "Custodians must unseal it on this server (%(host)s) before anything can be encrypted, "
                "decrypted or signed with its keys. Nothing was saved.",
                provider=provider.display_name,
                entered=provider._custody_progress("unseal").get("count", 0),
                threshold=provider.custody_threshold,
                host=socket.gethostname(),
            )
        )

    # The master key --------------------------------------------------------------------------
    def _local_master_key(self):
        if not self._custody_sealed_mode():
            return super()._local_master_key()
        return self.sudo()._custody_master_key()

    def _custody_master_key(self):
        """The unsealed master key of this server, checked; the sealed error when there is none."""
        self.ensure_one()
        store, scope = custody_store(), self._custody_scope()
        try:
            data = store.get(scope, "key")
            key = custody.decode_key_file(data) if data is not None else None
        except custody.CustodyError as error:
            _logger.warning("Unsealed key of provider %s unusable on this server: %s", self.id, error)
            store.remove(scope, "key")
            key = None
        if key is not None and not custody.verify_check_value(key, self.custody_check_value):
            # The master key was rotated (rekeyed) elsewhere: this server must be unsealed again.
            _logger.warning("Unsealed key of provider %s is not its current master key: sealed", self.id)
            store.remove(scope, "key")
            key = None
        if key is None:
            clear_data_key_cache()
            self._custody_changed()
            raise self._custody_sealed_error()
        return MasterKey(key)

    def _data_keys(self, *args, **kwargs):
        # Data keys stay cached in each worker: a sealed server must not keep using them.
        if self._custody_sealed_mode() and not self._custody_unsealed_here():
            clear_data_key_cache()
            self._custody_changed()
            raise self._custody_sealed_error()
        return super()._data_keys(*args, **kwargs)

    # Server records and audit ----------------------------------------------------------------
    def _custody_server(self, lock=False):
        """This server's record for the provider (made on first use), locked when asked."""
        self.ensure_one()
        servers = self.env["g2p.encryption.custody.server"].sudo()
        instance = current_instance_id()
        server = servers.search([("provider_id", "=", self.id), ("instance_id", "=", instance)], limit=1)
        if not server:
            servers._mark_stopped_here(instance)
            server = servers.create(
                {"provider_id": self.id, "instance_id": instance, "hostname": socket.gethostname()}
            )
        if lock:
            self.env.cr.execute(
                "SELECT id FROM g2p_encryption_custody_server WHERE id = %s FOR UPDATE", [server.id]
            )
        return server

    def _custody_server_update(self, state=None, **vals):
        server = self._custody_server()
        if state:
            vals["state"] = state
        vals["last_change"] = fields.Datetime.now()
        server.write(vals)
        return server

    def _custody_log(self, event, detail="", success=True, automatic=False):
        return (
            self.env["g2p.encryption.custody.log"]
            .sudo()
            .create(
                {
                    "provider_id": self.id,
                    "event": event,
                    "detail": detail,
                    "success": success,
                    "automatic": automatic,
                    "user_id": self.env.uid,
                    "hostname": socket.gethostname(),
                    "instance_id": current_instance_id(),
                }
            )
        )

    # Share collection ------------------------------------------------------------------------
    def _custody_collector(self, kind, server):
        """Shares of ``kind`` (``unseal``/``rekey``) entered on this server so far."""
        collector = None
        blob = custody_store().get(self._custody_scope(), kind)
        progress_key = server.sudo().progress_key
        if blob and progress_key:
            try:
                collector = custody.ShareCollector.unseal(blob, bytes.fromhex(progress_key))
            except (DecryptionError, custody.CustodyError, ValueError):
                collector = None
        if collector is None or (collector.identifier, collector.threshold) != (
            self.custody_share_set_id,
            self.custody_threshold,
        ):
            collector = custody.ShareCollector(self.custody_share_set_id, self.custody_threshold)
        return collector

    def _custody_keep_collector(self, kind, server, collector):
        server = server.sudo()
        if not server.progress_key:
            server.progress_key = os.urandom(32).hex()
        custody_store().put(self._custody_scope(), kind, collector.seal(bytes.fromhex(server.progress_key)))

    def _custody_enter_share(self, share, kind="unseal"):
        """Check one share and add it to those entered on this server (see ``_enter_share``)."""
        try:
            return self._custody_enter_share_checked(share, kind)
        finally:
            self._custody_changed()

    def _custody_enter_share_checked(self, share, kind):
        """Check one share and add it to those entered on this server.

        Never raises for a bad share (the rejection must be recorded): returns a dict with
        ``status`` (``accepted``, ``complete``, ``rejected``, ``unsealed``), ``count``,
        ``threshold``, ``rejected`` and, for a rejection, ``reason``.
        """
        self.ensure_one()
        provider = self.sudo()
        if not provider._custody_sealed_mode():
            raise UserError(_("%(provider)s is not in sealed custody.", provider=provider.display_name))
        server = provider._custody_server(lock=True)
        store, scope = custody_store(), provider._custody_scope()
        threshold = provider.custody_threshold
        if kind == "unseal" and provider._custody_unsealed_here():
            return {"status": "unsealed", "count": threshold, "threshold": threshold, "rejected": 0}
        collector = provider._custody_collector(kind, server)
        try:
            number = collector.add(share)
        except custody.ShareRejected as error:
            provider._custody_keep_collector(kind, server, collector)
            provider._custody_server_update(rejected_shares=server.rejected_shares + 1)
            provider._custody_log(f"{kind}_rejected", detail=str(error), success=False)
            return {
                "status": "rejected",
                "reason": str(error),
                "count": collector.count,
                "threshold": threshold,
                "rejected": collector.rejected,
            }
        if kind == "unseal" and collector.complete:
            try:
                key = collector.combine(provider.custody_check_value)
            except custody.CustodyError as error:
                store.remove(scope, kind)
                provider._custody_server_update(shares_entered=0, rejected_shares=server.rejected_shares + 1)
                reason = _("%(cause)s; enter the shares again.", cause=error)
                provider._custody_log("unseal_rejected", detail=reason, success=False)
                return {
                    "status": "rejected",
                    "reason": reason,
                    "count": 0,
                    "threshold": threshold,
                    "rejected": 1,
                }
            store.remove_stale()
            store.put(scope, "key", custody.encode_key_file(key))
            store.remove(scope, kind)
            provider._custody_server_update("unsealed", shares_entered=0, progress_key=False)
            provider._custody_log(
                "unseal",
                detail=_("unsealed with shares %(numbers)s", numbers=", ".join(map(str, collector.numbers))),
            )
            _logger.info("Encryption provider %s unsealed on this server", provider.id)
            return {
                "status": "unsealed",
                "count": threshold,
                "threshold": threshold,
                "rejected": collector.rejected,
            }
        provider._custody_keep_collector(kind, server, collector)
        if kind == "unseal":
            provider._custody_server_update("sealed", shares_entered=collector.count)
        provider._custody_log(
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

    # Initialise, rekey, seal -----------------------------------------------------------------
    def _custody_check_parameters(self, threshold, share_count):
        try:
            custody.check_split_parameters(threshold, share_count)
        except custody.CustodyError as error:
            raise UserError(_("Cannot split the master key: %(cause)s.", cause=error)) from None

    def _custody_rewrap(self, old_master, new_master):
        """Re-wrap every key of the provider (all usages and states) under ``new_master``.

        The keys themselves do not change, so no data is re-encrypted.
        """
        keys = self.env["g2p.encryption.key"].sudo().search([("provider_id", "=", self.id)])
        for record in keys:
            purpose = record._wrap_purpose()
            try:
                secret = old_master.unwrap(record.key_id, record.wrapped_key, purpose)
            except G2PCryptoError as error:
                raise UserError(
                    _(
                        "%(provider)s: key %(key)s cannot be re-wrapped: %(cause)s",
                        provider=self.display_name,
                        key=record.key_id,
                        cause=error,
                    )
                ) from error
            record.with_context(g2p_key_material=True).write(
                {
                    "wrapped_key": new_master.wrap(record.key_id, secret, purpose),
                    "wrapped_by": new_master.key_id,
                }
            )
        return len(keys)

    def _custody_set_key(self, key, share_set, **extra):
        self.with_context(g2p_custody=True).write(
            {
                "custody_mode": "sealed",
                "custody_threshold": share_set.threshold,
                "custody_share_count": share_set.share_count,
                "custody_share_set_id": share_set.identifier,
                "custody_check_value": custody.check_value(key),
                "custody_master_key_id": MasterKey(key).key_id,
                **extra,
            }
        )

    def _custody_initialise(self, threshold, share_count):
        """Move a key-file provider to sealed custody under a new master key; return the shares.

        The provider's keys are re-wrapped under the new master key (the data is not touched), and
        this server is left unsealed. The shares are returned to be shown once, and kept nowhere.
        """
        self.ensure_one()
        provider = self.sudo()
        if provider.type != "local":
            raise UserError(_("Only a local provider has a master key to put in custody."))
        if provider.custody_mode == "sealed":
            raise UserError(
                _("%(provider)s is already in sealed custody: use Rekey.", provider=provider.display_name)
            )
        provider._custody_check_parameters(threshold, share_count)
        old_master = provider._local_master_key()
        key = os.urandom(custody.KEY_SIZE)
        share_set = custody.split_key(key, threshold, share_count)
        rewrapped = provider._custody_rewrap(old_master, MasterKey(key))
        provider._custody_set_key(key, share_set, custody_initialised_date=fields.Datetime.now())
        store, scope = custody_store(), provider._custody_scope()
        store.remove_stale()
        store.remove_scope(scope)
        store.put(scope, "key", custody.encode_key_file(key))
        provider._custody_server_update("unsealed", shares_entered=0, rejected_shares=0, progress_key=False)
        provider._custody_log(
            "initialise",
            detail=_(
                "%(threshold)s of %(count)s shares; master key %(key_id)s replaces key file %(old)s; "
                "%(keys)s keys re-wrapped",
                threshold=threshold,
                count=share_count,
                key_id=provider.custody_master_key_id,
                old=old_master.key_id,
                keys=rewrapped,
            ),
        )
        _logger.info(
            "Encryption provider %s moved to sealed custody (%s of %s)", provider.id, threshold, share_count
        )
        provider._custody_changed()
        return share_set

    def _custody_rekey(self, mode, threshold, share_count):
        """With the current shares entered (kind ``rekey``), issue new shares.

        ``mode`` ``shares``: a new share set for the same master key. ``master``: a new master key,
        the provider's keys re-wrapped under it. Returns ``(share_set, None)``, or ``(None, reason)``
        when the shares entered do not rebuild the key (recorded, so this does not raise).
        """
        self.ensure_one()
        provider = self.sudo()
        if not provider._custody_sealed_mode():
            raise UserError(_("%(provider)s is not in sealed custody.", provider=provider.display_name))
        if mode not in ("shares", "master"):
            raise UserError(_("Unknown rekey mode %(mode)s.", mode=mode))
        provider._custody_check_parameters(threshold, share_count)
        server = provider._custody_server(lock=True)
        store, scope = custody_store(), provider._custody_scope()
        collector = provider._custody_collector("rekey", server)
        if not collector.complete:
            raise UserError(
                _(
                    "%(count)s of %(threshold)s current shares entered: a rekey needs %(threshold)s.",
                    count=collector.count,
                    threshold=provider.custody_threshold,
                )
            )
        try:
            key = collector.combine(provider.custody_check_value)
        except custody.CustodyError as error:
            store.remove(scope, "rekey")
            reason = _("%(cause)s; enter the shares again.", cause=error)
            provider._custody_log("rekey_rejected", detail=reason, success=False)
            return None, reason
        store.remove(scope, "rekey")
        old_key_id, rewrapped = provider.custody_master_key_id, 0
        if mode == "master":
            new_key = os.urandom(custody.KEY_SIZE)
            rewrapped = provider._custody_rewrap(MasterKey(key), MasterKey(new_key))
        else:
            new_key = key
        share_set = custody.split_key(new_key, threshold, share_count)
        provider._custody_set_key(new_key, share_set)
        # Shares entered towards an unseal belong to the old share set.
        store.remove(scope, "unseal")
        if mode == "master" and store.exists(scope, "key"):
            store.put(scope, "key", custody.encode_key_file(new_key))
        provider._custody_server_update(shares_entered=0)
        if mode == "master":
            detail = _(
                "new master key %(key_id)s replaces %(old)s (%(keys)s keys re-wrapped); "
                "%(threshold)s of %(count)s shares",
                key_id=provider.custody_master_key_id,
                old=old_key_id,
                keys=rewrapped,
                threshold=threshold,
                count=share_count,
            )
        else:
            detail = _(
                "new share set: %(threshold)s of %(count)s shares", threshold=threshold, count=share_count
            )
        provider._custody_log("rekey_master" if mode == "master" else "rekey", detail=detail)
        provider._custody_changed()
        return share_set, None

    def _custody_forget_rekey(self):
        """Drop the shares entered towards a rekey on this server."""
        self.ensure_one()
        custody_store().remove(self._custody_scope(), "rekey")
        self._custody_changed()

    def action_custody_seal(self):
        """Forget the master key on this server (and any shares entered): it is sealed."""
        for provider in self:
            if not provider._custody_sealed_mode():
                raise UserError(_("%(provider)s is not in sealed custody.", provider=provider.display_name))
            custody_store().remove_scope(provider._custody_scope())
            clear_data_key_cache()
            provider._custody_server_update("sealed", shares_entered=0, progress_key=False)
            provider._custody_log("seal")
            _logger.info("Encryption provider %s sealed on this server", provider.id)
        self._custody_changed()
        return True

    def action_custody_check(self, token=None):
        """Encrypt and decrypt a probe value here; tell which server and worker did it.

        ``token`` (a probe token returned by an earlier call, possibly served by another worker) is
        decrypted too. Only probe values open: they are bound to their own associated data.
        """
        self.ensure_one()
        probe = f"custody probe {os.urandom(8).hex()}".encode()
        new_token = self.encrypt_data(probe, aad=PROBE_AAD)
        round_trip = self.decrypt_data(new_token, aad=PROBE_AAD) == probe
        decrypted = self.decrypt_data(token.encode(), aad=PROBE_AAD).decode() if token else None
        message = _(
            "Keys usable on %(host)s (worker process %(pid)s): a probe value was encrypted and decrypted.",
            host=socket.gethostname(),
            pid=os.getpid(),
        )
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "title": self.display_name,
                "message": message,
                "type": "success" if round_trip else "danger",
                "sticky": False,
                "pid": os.getpid(),
                "instance_id": current_instance_id(),
                "round_trip": round_trip,
                "token": new_token.decode(),
                "probe": probe.decode(),
                "decrypted": decrypted,
            },
        }

    # Wizard openers --------------------------------------------------------------------------
    def _custody_wizard_action(self, model, name):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": name,
            "res_model": model,
            "view_mode": "form",
            "target": "new",
            "context": {"default_provider_id": self.id},
        }

    def action_custody_initialise(self):
        return self._custody_wizard_action(
            "g2p.encryption.custody.initialise.wizard", _("Initialise sealed custody")
        )

    def action_custody_unseal(self):
        return self._custody_wizard_action("g2p.encryption.custody.unseal.wizard", _("Unseal"))

    def action_custody_rekey(self):
        return self._custody_wizard_action("g2p.encryption.custody.rekey.wizard", _("Rekey"))

    # Housekeeping ----------------------------------------------------------------------------
    def _register_hook(self):
        super()._register_hook()
        # Unsealed keys of servers that stopped without sealing: delete them (memory, not disk,
        # but nothing should outlive its server).
        try:
            removed = custody_store().remove_stale()
        except (custody.CustodyError, OSError) as error:
            _logger.debug("Stale custody files not checked: %s", error)
        else:
            if removed:
                _logger.info("Removed %s custody files of stopped Odoo servers", removed)
