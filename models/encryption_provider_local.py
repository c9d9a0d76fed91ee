# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The ``local`` provider: keys made and kept by this Odoo, wrapped by a master key.

The master key never enters the database. It comes, in this order, from the server
configuration (``g2p_encryption_master_key``, base64), from the key file it names
(``g2p_encryption_master_key_file``), from the file named by the environment variable
``G2P_ENCRYPTION_MASTER_KEY_FILE``, or from ``<data_dir>/g2p_encryption/master.key``, which is
generated on first use (mode 0600) with a warning: back it up, without it nothing decrypts.

A local provider in sealed custody (``g2p.encryption.custody``) asks its custody instead: the key
rebuilt from the custodians' shares, which a sealed server does not have.
"""

import logging
import os
import threading

from odoo import _, api, fields, models, tools
from odoo.exceptions import ValidationError
from odoo.tools import config

from ..core import jose, jwk
from ..core.master_key import resolve_master_key
from .encryption_provider import clear_data_key_cache

_logger = logging.getLogger(__name__)

MASTER_KEY_ENV = "G2P_ENCRYPTION_MASTER_KEY_FILE"

_master_key_lock = threading.Lock()
# {source settings: MasterKey}; per worker process, rebuilt from the key file when lost.
_MASTER_KEYS = {}


def local_master_key():
    """The master key of this server, read once per process."""
    settings = (
        config.get("g2p_encryption_master_key") or None,
        config.get("g2p_encryption_master_key_file") or None,
        os.environ.get(MASTER_KEY_ENV) or None,
        os.path.join(config["data_dir"], "g2p_encryption", "master.key"),
    )
    with _master_key_lock:
        master_key = _MASTER_KEYS.get(settings)
        if master_key is None:
            master_key, source, generated = resolve_master_key(*settings)
            if generated:
                _logger.warning(
                    "No master key was configured: generated one in %s. Back it up apart from the "
                    "database, and name it in the server configuration "
                    "(g2p_encryption_master_key_file); without it the data cannot be decrypted.",
                    source,
                )
            else:
                _logger.info("Master key %s loaded from %s", master_key.key_id, source)
            _MASTER_KEYS[settings] = master_key
        return master_key


def forget_master_keys():
    """Drop the master keys held by this process (tests, a changed key file)."""
    with _master_key_lock:
        _MASTER_KEYS.clear()


class EncryptionProviderLocal(models.Model):
    _inherit = "g2p.encryption.provider"

    custody_ids = fields.One2many("g2p.encryption.custody", "provider_id", string="Sealed custody")
    custody_id = fields.Many2one("g2p.encryption.custody", compute="_compute_custody", string="Custody")
    custody_mode = fields.Selection(
        [("key_file", "Key file"), ("sealed", "Sealed (custodians' shares)")],
        string="Key custody",
        compute="_compute_custody",
        help="Key file: the master key is read from the server's key file. Sealed: the master key is "
        "split into shares held by custodians; after every restart enough of them must unseal the "
        "provider. Changed by the 'Initialise sealed custody' ceremony.",
    )
    custody_state = fields.Selection(
        [("key_file", "Key file"), ("sealed", "Sealed"), ("unsealed", "Unsealed")],
        string="Custody state",
        compute="_compute_custody_state",
        help="On this server.",
    )
    custody_status = fields.Char(compute="_compute_custody_state")
    custody_pending_ceremony_id = fields.Many2one(
        "g2p.encryption.custody.ceremony", compute="_compute_custody", string="Key ceremony in progress"
    )

    def _compute_custody(self):
        ceremonies = self.env["g2p.encryption.custody.ceremony"]
        for provider in self:
            record = provider.sudo().custody_ids[:1]
            provider.custody_id = record
            provider.custody_mode = "sealed" if record else "key_file"
            provider.custody_pending_ceremony_id = ceremonies._pending_for(provider) if provider.id else False

    def _compute_custody_state(self):
        for provider in self:
            record = provider.sudo().custody_ids[:1]
            if provider.type != "local":
                provider.custody_state = False
                provider.custody_status = _(
                    "Not applicable: this provider's keys are not wrapped by a local master key."
                )
            elif not record:
                provider.custody_state = "key_file"
                provider.custody_status = _("The master key is read from the server's key file.")
            else:
                provider.custody_state = record.state
                provider.custody_status = record.status

    def write(self, vals):
        if vals.get("type") and vals["type"] != "local" and self.sudo().filtered("custody_ids"):
            raise ValidationError(_("A provider in sealed custody stays a local provider."))
        return super().write(vals)

    # The master key and the sealed state ------------------------------------------------------
    def _custody(self):
        """The sealed custody of this provider, or an empty recordset (key file, another type)."""
        self.ensure_one()
        if not isinstance(self.id, int):  # a provider being edited in a form
            provider = self.sudo()
            return provider.custody_ids[:1] if provider.type == "local" else provider.custody_ids.browse()
        return self.env["g2p.encryption.custody"].sudo().browse(self._custody_id(self.id))

    @api.model
    @tools.ormcache("provider_id")
    def _custody_id(self, provider_id):
        # Asked before every batch of values: cached per worker; creating a custody clears it (a
        # custody is never deleted), so does a change of the provider's type.
        provider = self.sudo().browse(provider_id)
        return provider.custody_ids[:1].id if provider._cached_type() == "local" else None

    def _local_master_key(self):
        """The master key that wraps this provider's keys: the one its custodians' shares rebuilt on
        this server when it is in sealed custody (a sealed server has none), the key file otherwise.
        """
        custody_record = self._custody() if self else None
        if custody_record:
            return custody_record._master_key()
        return local_master_key()

    def _is_sealed_here(self):
        """Whether this provider is in sealed custody and this server does not hold its key.

        Reads the key file of this server and checks it (no database write): cheap enough to ask once
        per request before reading plaintext.
        """
        custody_record = self._custody()
        if not custody_record:
            return False
        return custody_record._memory().key(custody_record.sudo().check_value) is None

    def _sealed_error(self):
        """The ``UserError`` to raise when ``_is_sealed_here()``: names the provider, the shares
        entered so far out of those needed, and this server."""
        return self._custody()._sealed_error()

    def _assert_keys_usable_local(self):
        # Data keys stay cached in each worker: a sealed server must not keep using them.
        if self._is_sealed_here():
            clear_data_key_cache()
            self.env["g2p.encryption.custody"]._changed()
            raise self._sealed_error()

    def _wrap_key_local(self, key_id, secret, purpose):
        master_key = self._local_master_key()
        return master_key.wrap(key_id, secret, purpose), master_key.key_id

    def _unwrap_key_local(self, key_id, wrapped, purpose):
        return self._local_master_key().unwrap(key_id, wrapped, purpose)

    # Signing --------------------------------------------------------------------------------
    def _jwt_sign_local(
        self, data, include_payload=True, include_certificate=False, include_cert_hash=False, **kwargs
    ):
        key_record = self.env["g2p.encryption.key"].sudo()._active_key(self, "sign")
        signing_key = jwk.SigningKey.from_private_pem(
            self._unwrap_key(key_record), key_record.algorithm, key_record.certificate
        )
        return jose.jws_sign(
            signing_key,
            data,
            include_payload=include_payload,
            include_certificate=include_certificate,
            include_cert_hash=include_cert_hash,
        )

    def _jwt_verify_local(self, token, payload=None, **kwargs):
        return jose.jws_verify(token, self._get_jwks_local(), payload=payload)

    def _get_jwks_local(self, **kwargs):
        return self.env["g2p.encryption.key"].sudo()._signing_jwks(self)
