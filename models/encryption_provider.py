# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The provider of cryptographic operations and its public contract.

Other modules call ``encrypt_data``, ``decrypt_data``, ``jwt_sign``, ``jwt_verify`` and
``get_jwks``; each dispatches to ``<operation>_<type>`` (``encrypt_data_local``,
``jwt_sign_keymanager``, ...), so a module adds a provider type with ``selection_add`` and those
methods. Field values are encrypted with data keys (envelope encryption): a type supplies how a
data key is wrapped and unwrapped (``_wrap_key_<type>`` / ``_unwrap_key_<type>``), and the
envelope code here is shared by all types.
"""

import contextlib
import logging
import time

from odoo import _, api, fields, models, tools
from odoo.exceptions import UserError

from ..core import envelope
from ..core.errors import G2PCryptoError
from ..exceptions import user_error

_logger = logging.getLogger(__name__)

# Unwrapped data keys, per worker process: {(dbname, provider id, key id): (key, expires at, uses left)}.
# Safe to lose: a miss unwraps the key again from its record.
_DATA_KEY_CACHE = {}


def clear_data_key_cache():
    """Forget every unwrapped key of this process (tests, sealing, a changed key file)."""
    _DATA_KEY_CACHE.clear()


class EncryptionProvider(models.Model):
    _name = "g2p.encryption.provider"
    _description = "Encryption Provider"
    _order = "sequence, id"

    name = fields.Char(required=True)
    sequence = fields.Integer(default=10)
    active = fields.Boolean(default=True)
    type = fields.Selection([("local", "Local keys")], required=True, default="local")
    key_ids = fields.One2many("g2p.encryption.key", "provider_id", string="Keys")
    job_ids = fields.One2many("g2p.encryption.job", "provider_id", string="Registry jobs")
    active_key_count = fields.Integer(compute="_compute_key_counts")
    retired_key_count = fields.Integer(compute="_compute_key_counts")
    registrant_encrypted_fields = fields.Char(
        default="name,email,phone,mobile,street,street2,city,zip",
        required=True,
        help="Comma-separated fields of registrants that this provider encrypts when it is the "
        "registry provider.",
    )
    registrant_searchable_fields = fields.Char(
        default="email,phone,mobile",
        help="Encrypted fields that get a blind index, so that an exact value (= or in) finds them. "
        "A blind index reveals which records share a value; see the README.",
    )
    signing_algorithm = fields.Selection(
        [("RS256", "RS256 (RSA 2048, SHA-256)"), ("ES256", "ES256 (ECDSA P-256, SHA-256)")],
        default="RS256",
        required=True,
        help="Algorithm of the signing keys made from now on; existing keys keep theirs.",
    )

    @api.depends("key_ids.state")
    def _compute_key_counts(self):
        for provider in self:
            states = provider.key_ids.mapped("state")
            provider.active_key_count = states.count("active")
            provider.retired_key_count = states.count("retired")

    # ------------------------------------------------------------------------------------------
    # Public contract (OpenG2P's g2p_encryption names and signatures)
    # ------------------------------------------------------------------------------------------
    def encrypt_data(self, data: bytes, **kwargs) -> bytes:
        """Encrypt ``data``; ``aad`` (bytes) binds the ciphertext to its context."""
        return self._dispatch("encrypt_data", data, **kwargs)

    def decrypt_data(self, data: bytes, **kwargs) -> bytes:
        """Decrypt what ``encrypt_data`` returned, with the same ``aad``."""
        return self._dispatch("decrypt_data", data, **kwargs)

    def jwt_sign(
        self,
        data,
        include_payload=True,
        include_certificate=False,
        include_cert_hash=False,
        **kwargs,
    ) -> str:
        """Sign ``data`` (dict, str or bytes) and return a compact JWS."""
        return self._dispatch(
            "jwt_sign",
            data,
            include_payload=include_payload,
            include_certificate=include_certificate,
            include_cert_hash=include_cert_hash,
            **kwargs,
        )

    def jwt_verify(self, token: str, **kwargs):
        """Verify ``token``; return its claims, or raise ``UserError`` when it is not valid."""
        return self._dispatch("jwt_verify", token, **kwargs)

    def get_jwks(self, **kwargs) -> dict:
        """Public keys of this provider as a JWK set (``{"keys": [...]}``)."""
        return self._dispatch("get_jwks", **kwargs)

    def _dispatch(self, operation, *args, **kwargs):
        self.ensure_one()
        method = getattr(self, f"{operation}_{self.type}", None)
        if method is None:
            raise UserError(
                _(
                    "The encryption provider %(provider)s of type %(type)s does not implement "
                    "%(operation)s.",
                    provider=self.display_name,
                    type=self.type,
                    operation=operation,
                )
            )
        with self._errors_as_user_errors():
            return method(*args, **kwargs)

    @contextlib.contextmanager
    def _errors_as_user_errors(self):
        """Show errors of the pure-Python layer to users as ``UserError`` naming the cause."""
        try:
            yield
        except G2PCryptoError as error:
            message = _("%(provider)s: %(cause)s", provider=self.display_name, cause=error)
            raise user_error(error, message) from error

    # ------------------------------------------------------------------------------------------
    # Envelope encryption shared by all types
    # ------------------------------------------------------------------------------------------
    def encrypt_values(self, values, aad=b""):
        """Encrypt a batch of byte strings with the active data key; return tokens (str).

        One key look-up per batch, whatever its size: this is what keeps a write of a thousand
        records from costing a thousand remote calls.
        """
        self.ensure_one()
        key_id, key = self._active_data_key()
        with self._errors_as_user_errors():
            return envelope.seal_many(key_id, key, list(values), aad)

    def decrypt_values(self, tokens, aad=b""):
        """Decrypt a batch of tokens made by ``encrypt_values``; return byte strings."""
        self.ensure_one()
        tokens = list(tokens)
        with self._errors_as_user_errors():
            keys = self._data_keys({envelope.key_id_of(token) for token in tokens})
            return envelope.open_many(tokens, keys.__getitem__, aad)

    def is_ciphertext(self, value):
        """Whether ``value`` is ciphertext of a format this provider decrypts."""
        return envelope.is_token(value)

    def _is_stale_ciphertext(self, token, active_key_id):
        """Whether ``token`` should be re-encrypted to move to the active data key."""
        return envelope.is_token(token) and envelope.key_id_of(token) != active_key_id

    def action_encrypt_registry(self):
        self.ensure_one()
        self.env["g2p.encryption.job"]._start(self, "encrypt")
        return True

    def action_reencrypt_registry(self):
        self.ensure_one()
        self.env["g2p.encryption.job"]._start(self, "reencrypt")
        return True

    def action_migrate_openg2p_registry(self):
        """Read registrants encrypted by OpenG2P's g2p_registry_encryption with this provider and
        store them encrypted by the registry provider, in batches."""
        self.ensure_one()
        self.env["g2p.encryption.job"]._start(self, "migrate_openg2p")
        return True

    def encrypt_data_local(self, data, aad=b"", **kwargs):
        return self.encrypt_values([data], aad)[0].encode()

    def decrypt_data_local(self, data, aad=b"", **kwargs):
        return self.decrypt_values([data], aad)[0]

    def _active_data_key(self):
        """(key id, key) of the active data key, made on first use."""
        key_record = self.env["g2p.encryption.key"].sudo()._active_key(self, "encrypt")
        return key_record.key_id, self._data_keys({key_record.key_id})[key_record.key_id]

    def _blind_index_key(self):
        """The key of this provider's blind indexes (never rotated: the indexes would break)."""
        key_record = self.env["g2p.encryption.key"].sudo()._active_key(self, "index")
        return self._data_keys({key_record.key_id}, usage="index")[key_record.key_id]

    def _registrant_fields(self, kind, model_fields):
        """Names of the registrant fields this provider encrypts (``kind`` "encrypted") or
        indexes ("searchable"), keeping only stored character fields of the model."""
        encrypted = _field_list(self.registrant_encrypted_fields)
        names = (
            encrypted
            if kind == "encrypted"
            else [name for name in _field_list(self.registrant_searchable_fields) if name in encrypted]
        )
        return tuple(
            name
            for name in names
            if name in model_fields
            and model_fields[name].type in ("char", "text")
            and model_fields[name].store
        )

    def _data_keys(self, key_ids, usage="encrypt"):
        """{key id: key} for ``key_ids``, from the worker cache or unwrapped from their records."""
        now = time.monotonic()
        dbname = self.env.cr.dbname
        keys, missing = {}, []
        for key_id in key_ids:
            cached = _DATA_KEY_CACHE.get((dbname, self.id, key_id))
            if cached and cached[1] > now and cached[2] > 0:
                _DATA_KEY_CACHE[(dbname, self.id, key_id)] = (cached[0], cached[1], cached[2] - 1)
                keys[key_id] = cached[0]
            else:
                missing.append(key_id)
        if missing:
            records = (
                self.env["g2p.encryption.key"]
                .sudo()
                .search([("provider_id", "=", self.id), ("key_id", "in", missing), ("usage", "=", usage)])
            )
            found = {record.key_id: record for record in records}
            unknown = set(missing) - set(found)
            if unknown:
                raise UserError(
                    _(
                        "%(provider)s has no data key %(key_ids)s: the ciphertext was made by "
                        "another provider or database.",
                        provider=self.display_name,
                        key_ids=", ".join(sorted(unknown)),
                    )
                )
            max_age, max_uses = self._data_key_cache_limits()
            for key_id, record in found.items():
                key = self._unwrap_key(record)
                _DATA_KEY_CACHE[(dbname, self.id, key_id)] = (key, now + max_age, max_uses)
                keys[key_id] = key
        return keys

    def _data_key_cache_limits(self):
        """(seconds, uses) an unwrapped data key may stay in the worker cache."""
        limits = getattr(self, f"_data_key_cache_limits_{self.type}", None)
        return limits() if limits else (3600.0, 10**9)

    def _rotated_key_usages(self):
        """Usages of the keys that "Rotate key" renews (the blind-index key never: its digests
        would no longer match)."""
        usages = getattr(self, f"_rotated_usages_{self.type}", None)
        return usages() if usages else ("encrypt", "sign")

    def _wrap_key(self, key_id, secret, purpose):
        return self._dispatch("_wrap_key", key_id, secret, purpose)

    def _unwrap_key(self, key_record):
        return self._dispatch(
            "_unwrap_key", key_record.key_id, key_record.wrapped_key, key_record._wrap_purpose()
        )

    # ------------------------------------------------------------------------------------------
    # Actions
    # ------------------------------------------------------------------------------------------
    def action_rotate_key(self):
        """Retire the active keys and make new ones; data under retired keys stays readable."""
        for provider in self:
            provider.env["g2p.encryption.key"].sudo()._rotate(provider)
            _logger.info("Keys of encryption provider %s (id %s) rotated", provider.name, provider.id)
        return True

    @api.model
    def _get_registry_provider(self):
        """The provider chosen in Settings, or the default one."""
        return self.sudo().browse(self._registry_provider_id())

    @api.model
    @tools.ormcache()
    def _registry_provider_id(self):
        # Cached per worker: asked on every search and write of an encrypted model. Setting the
        # parameter clears the cache (ir.config_parameter does), so does changing providers.
        param = (
            self.env["ir.config_parameter"].sudo().get_param("g2p_encryption.registry_encryption_provider_id")
        )
        provider = self.sudo().browse(int(param)).exists() if param else self.browse()
        return (provider or self.env.ref("g2p_encryption.encryption_provider_default")).id

    @api.model_create_multi
    def create(self, vals_list):
        self.env.registry.clear_cache()
        return super().create(vals_list)

    def write(self, vals):
        if "active" in vals:
            self.env.registry.clear_cache()
        return super().write(vals)

    @api.ondelete(at_uninstall=False)
    def _unlink_except_with_keys(self):
        if self.key_ids:
            raise UserError(
                _(
                    "A provider with keys is never deleted: data encrypted under its keys would be "
                    "lost. Archive it instead."
                )
            )

    def unlink(self):
        self.env.registry.clear_cache()
        return super().unlink()


def _field_list(text):
    return [name.strip() for name in (text or "").split(",") if name.strip()]
