# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The end of a key ceremony: the new key takes over, once its confirmed shares rebuilt it.

``KeyTakeover(ceremony, memory)`` re-wraps the provider's keys under the new master key
(initialise, new master key; the keys themselves, and so the data, do not change), makes or
changes the provider's custody, keeps the new key on this server when it holds the current one,
and records the event. Everything here runs inside the ceremony's transaction: if it fails,
nothing changed and the current key stays in force.
"""

from odoo import _, fields
from odoo.exceptions import UserError

from ..core import custody
from ..core.errors import G2PCryptoError
from ..core.master_key import MasterKey
from .encryption_provider_local import local_master_key
from .rpc_guard import internal


class KeyTakeover:
    def __init__(self, ceremony, memory):
        self.ceremony = ceremony.sudo()
        self.memory = memory
        self.env = self.ceremony.env

    def initialise(self, new_key):
        """The key file gives way to sealed custody under ``new_key``; return the outcome."""
        ceremony, memory = self.ceremony, self.memory
        provider = ceremony.provider_id
        if provider.custody_id:
            raise UserError(_("%(provider)s is already in sealed custody.", provider=provider.display_name))
        old_master, new_master = local_master_key(), MasterKey(new_key)
        rewrapped = self.rewrap(old_master, new_master)
        custody_record = internal(self.env["g2p.encryption.custody"]).create(
            {
                "provider_id": provider.id,
                "threshold": ceremony.threshold,
                "share_count": ceremony.share_count,
                "share_set_id": ceremony.share_set_id,
                "check_value": ceremony.check_value,
                "master_key_id": new_master.key_id,
                "initialised_date": fields.Datetime.now(),
            }
        )
        internal(ceremony).write({"custody_id": custody_record.id})
        memory.keep_key(new_key)
        memory.update_server("unsealed", shares_entered=0, rejected_shares=0)
        detail = _(
            "%(threshold)s of %(count)s shares confirmed; master key %(key_id)s replaces key file %(old)s; "
            "%(keys)s keys re-wrapped",
            threshold=ceremony.threshold,
            count=ceremony.share_count,
            key_id=new_master.key_id,
            old=old_master.key_id,
            keys=rewrapped,
        )
        custody_record._log("initialise", detail=detail)
        return _("Sealed custody is in force: %(detail)s.", detail=detail)

    def rekey(self, new_key, old_key):
        """The new share set (and, for a new master key, ``new_key``) replaces the current one."""
        ceremony, memory = self.ceremony, self.memory
        custody_record = ceremony.custody_id
        if not custody_record or custody_record.check_value != ceremony.base_check_value:
            raise UserError(
                _(
                    "The custody of %(provider)s changed since this ceremony started.",
                    provider=ceremony.provider_id.name,
                )
            )
        vals = {
            "threshold": ceremony.threshold,
            "share_count": ceremony.share_count,
            "share_set_id": ceremony.share_set_id,
            "rekeyed_date": fields.Datetime.now(),
        }
        new_shares = _(
            "%(threshold)s of %(count)s shares", threshold=ceremony.threshold, count=ceremony.share_count
        )
        if ceremony.kind == "rekey_master":
            if not old_key or not custody.verify_check_value(old_key, custody_record.check_value):
                raise UserError(_("The current master key of this ceremony does not match the custody."))
            old_master, new_master = MasterKey(old_key), MasterKey(new_key)
            rewrapped = self.rewrap(old_master, new_master)
            vals.update(check_value=ceremony.check_value, master_key_id=new_master.key_id)
            if memory.has("key"):
                # Written aside: it replaces the current key only once this transaction committed.
                memory.keep_next_key(new_key)
            detail = _(
                "new master key %(key_id)s replaces %(old)s (%(keys)s keys re-wrapped); %(shares)s",
                key_id=new_master.key_id,
                old=old_master.key_id,
                keys=rewrapped,
                shares=new_shares,
            )
        else:
            detail = _("new share set: %(shares)s", shares=new_shares)
        internal(custody_record).write(vals)
        # Shares entered towards an unseal belong to the old share set.
        memory.remove("unseal")
        memory.update_server(shares_entered=0)
        custody_record._log("rekey_master" if ceremony.kind == "rekey_master" else "rekey", detail=detail)
        return _("Rekeyed: %(detail)s. The old shares no longer work.", detail=detail)

    def rewrap(self, old_master, new_master):
        """Re-wrap every key of the provider (all usages and states) under ``new_master``."""
        provider = self.ceremony.provider_id
        keys = self.env["g2p.encryption.key"].search([("provider_id", "=", provider.id)])
        for record in keys:
            purpose = record._wrap_purpose()
            try:
                secret = old_master.unwrap(record.key_id, record.wrapped_key, purpose)
            except G2PCryptoError as error:
                raise UserError(
                    _(
                        "%(provider)s: key %(key)s cannot be re-wrapped: %(cause)s",
                        provider=provider.display_name,
                        key=record.key_id,
                        cause=error,
                    )
                ) from error
            # The key model's own guard: its context marker today, internal() once it trusts no context.
            internal(record).write(
                {
                    "wrapped_key": new_master.wrap(record.key_id, secret, purpose),
                    "wrapped_by": new_master.key_id,
                }
            )
        return len(keys)
