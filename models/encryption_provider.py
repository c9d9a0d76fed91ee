# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The provider of cryptographic operations and its public contract.

Other modules call ``encrypt_data``, ``decrypt_data``, ``jwt_sign``, ``jwt_verify`` and
``get_jwks``; each dispatches to the type's ``_<operation>_<type>`` (``_jwt_sign_local``,
``_get_jwks_keymanager``, ...: private, so that only the checked public method is an RPC
endpoint), or to ``<operation>_<type>`` as OpenG2P's modules name them. A module adds a provider
type with ``selection_add`` and those methods, in a small file of its own. Field values are
encrypted with data keys (envelope encryption, ``core/keyring.py``): a type supplies how a data key
is wrapped and unwrapped (``_wrap_key_<type>`` / ``_unwrap_key_<type>``), the keyring does the rest.
"""

import contextlib
import logging

from odoo import _, api, fields, models, tools
from odoo.exceptions import AccessError, UserError

from ..core import envelope
from ..core.cache import Cache
from ..core.errors import G2PCryptoError, InvalidCiphertextError, UnknownKeyError
from ..core.keyring import Keyring
from ..exceptions import UndecryptableUserError, user_error

_logger = logging.getLogger(__name__)

# Unwrapped data keys of this worker process, all providers and databases. Safe to lose.
DATA_KEYS = Cache("data keys")
# {(database, data key id): provider id}, per worker: which provider's keyring opens a key id.
KEY_PROVIDERS = {}
# Context key of the registry jobs: values that do not decrypt are skipped (and reported), even
# when none of a batch does.
SKIP_UNREADABLE = "g2p_skip_unreadable"
CRYPTO_ADMIN = "g2p_encryption.crypto_admin"


def clear_data_key_cache():
    """Forget every unwrapped key of this process (tests, sealing, a changed key file)."""
    DATA_KEYS.clear()


class G2PEncryptionProvider(models.Model):
    _name = "g2p.encryption.provider"
    _description = "Encryption Provider"
    _order = "sequence, id"

    name = fields.Char(required=True)
    sequence = fields.Integer(default=10)
    active = fields.Boolean(default=True)
    type = fields.Selection([("local", "Local keys")], required=True, default="local")
    key_ids = fields.One2many("g2p.encryption.key", "provider_id", string="Keys")
    active_key_count = fields.Integer(compute="_compute_key_counts")
    retired_key_count = fields.Integer(compute="_compute_key_counts")
    signing_algorithm = fields.Selection(
        [("RS256", "RS256 (RSA 2048, SHA-256)"), ("ES256", "ES256 (ECDSA P-256, SHA-256)")],
        default="RS256",
        required=True,
        help="Algorithm of the signing keys made from now on; existing keys keep theirs.",
    )
    is_registry_provider = fields.Boolean(
        compute="_compute_is_registry_provider",
        help="Its keys encrypt the registry's new values (Settings ‣ G2P Encryption).",
    )

    @api.depends("key_ids.state")
    def _compute_key_counts(self):
        for provider in self:
            states = provider.key_ids.mapped("state")
            provider.active_key_count = states.count("active")
            provider.retired_key_count = states.count("retired")

    def _compute_is_registry_provider(self):
        registry_provider_id = self._registry_provider_id()
        for provider in self:
            provider.is_registry_provider = provider.id == registry_provider_id

    # ------------------------------------------------------------------------------------------
    # Public contract (OpenG2P's g2p_encryption names and signatures)
    # ------------------------------------------------------------------------------------------
    def encrypt_data(self, data: bytes, **kwargs) -> bytes:
        """Encrypt ``data``; ``aad`` (bytes) binds the ciphertext to its context."""
        self._check_crypto_admin_or_server()
        return self._dispatch("encrypt_data", data, **kwargs)

    def decrypt_data(self, data: bytes, **kwargs) -> bytes:
        """Decrypt what ``encrypt_data`` returned, with the same ``aad``.

        Server code (``sudo``) or a Crypto Admin; a Crypto Admin's call is written to the
        decryption log, as any other plaintext that leaves the server.
        """
        self._check_crypto_admin_or_server()
        plaintext = self._dispatch("decrypt_data", data, **kwargs)
        if not self.env.su:
            self.env["g2p.decryption.log"]._log_exit(self, self.ids, ["decrypt_data"])
        return plaintext

    def jwt_sign(
        self,
        data,
        include_payload=True,
        include_certificate=False,
        include_cert_hash=False,
        **kwargs,
    ) -> str:
        """Sign ``data`` (dict, str or bytes) and return a compact JWS."""
        self._check_crypto_admin_or_server()
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

    def _check_crypto_admin_or_server(self):
        """Server code (``sudo``) signs and encrypts for vouchers and credentials; otherwise only a
        Crypto Admin uses the keys (as OpenG2P's module, whose providers only they may read)."""
        if not self.env.su and not self.env.user.has_group(CRYPTO_ADMIN):
            raise AccessError(_("Only server code may use the keys of an encryption provider this way."))

    def _dispatch(self, operation, *args, **kwargs):
        self.ensure_one()
        method = self._type_method(operation)
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
        """Errors of ``core`` inside the block reach people as ``UserError`` naming their cause."""
        try:
            yield
        except G2PCryptoError as error:
            raise self._user_error(error) from error

    @contextlib.contextmanager
    def _errors_logged(self, operation):
        """As ``_errors_as_user_errors``, and the failure logged with ``operation``: for the types
        that call a remote service or a device (never data, keys, PINs or tokens in the log)."""
        with self._errors_as_user_errors():
            try:
                yield
            except G2PCryptoError as error:
                _logger.warning(
                    "Encryption provider %s (id %s): %s failed: %s", self.name, self.id, operation, error
                )
                raise

    # The envelope serves encrypt_data/decrypt_data of every type that wraps data keys.
    def _envelope_encrypt_data(self, data, aad=b"", **kwargs):
        return self._encrypt_values([bytes(data)], [aad])[0].encode()

    def _envelope_decrypt_data(self, data, aad=b"", **kwargs):
        if envelope.is_token(data):
            return self._keyring().decrypt([data], [aad])[0]  # this provider's keys only
        return self._dispatch("_decrypt_values", [data], [aad])[0]  # the type's own ciphertext

    _encrypt_data_local = _envelope_encrypt_data
    _decrypt_data_local = _envelope_decrypt_data

    def _optional_dispatch(self, operation, default, *args):
        """``<operation>_<type>(*args)`` when the type defines it, else ``default``."""
        method = self._type_method(operation)
        return method(*args) if method else default

    def _type_method(self, operation):
        """The type's implementation of ``operation``: ``_<operation>_<type>`` (this addon's types:
        private, so not an RPC endpoint of its own), or ``<operation>_<type>`` (OpenG2P's naming,
        for types other modules add)."""
        name = f"{operation.lstrip('_')}_{self._cached_type()}"
        return getattr(self, f"_{name}", None) or getattr(self, name, None)

    def _cached_type(self):
        """The type of this provider. Under sudo (the addon's own calls: before every batch of
        values) read once per worker rather than once per request; otherwise read with the user's
        access rights (what a user may not read, he may not call through it either)."""
        if self.env.su and isinstance(self.id, int):
            return self._provider_type(self.id)
        return self.type

    @api.model
    @tools.ormcache("provider_id")
    def _provider_type(self, provider_id):
        # Cleared when a provider is created, deleted, or its type or activity changes (write).
        return self.sudo().browse(provider_id).type

    def _user_error(self, error):
        """A ``G2PCryptoError`` of ``core`` as the ``UserError`` of its cause (``exceptions.py``),
        naming the provider and the cause; callers tell causes apart by class, not by text."""
        return user_error(error, _("%(provider)s: %(cause)s", provider=self.sudo().display_name, cause=error))

    # ------------------------------------------------------------------------------------------
    # Values (field encryption) through the keyring
    # ------------------------------------------------------------------------------------------
    def _encrypt_values(self, plaintexts, aads):
        """Tokens (str) of a batch of byte strings, each bound to its AAD.

        One key look-up per batch, whatever its size: this is what keeps a write of a thousand
        records from costing a thousand remote calls. The active key is looked up once per
        transaction (``_active_key_id``).
        """
        self.ensure_one()
        plaintexts, aads = list(plaintexts), list(aads)
        with self._errors_as_user_errors():
            # A type may encrypt values itself (KeyManager's direct mode); None: the envelope does.
            tokens = self._optional_dispatch("_encrypt_values", None, plaintexts, aads)
            if tokens is None:
                tokens = self._keyring().encrypt(_active_key_id(self, "encrypt"), plaintexts, aads)
        return tokens

    def _encrypts_values_itself(self):
        """Whether the type encrypts each value itself (a remote call: KeyManager's direct mode)
        rather than through the keyring."""
        return bool(self._optional_dispatch("_encrypts_values_itself", False))

    @api.model
    def _decrypt_tokens(self, tokens, aads, key_ids=None):
        """Plaintexts (bytes) of envelope tokens of any provider, each checked against its AAD.

        The key id of each token names its key, hence its provider: data written under a previous
        registry provider stays readable. One look-up of the providers and one keyring batch per
        provider. Raises the ``UserError`` of its cause on the first failure;
        ``_decrypt_stored_values`` isolates bad values. ``key_ids``: the tokens' key ids, when the
        caller has them already.
        """
        tokens, aads = list(tokens), list(aads)
        if key_ids is None:
            key_ids = [envelope.key_id_or_none(token) for token in tokens]
        if None in key_ids:
            # Not a well-formed token: key_id_of says what is wrong with the first one.
            bad = tokens[key_ids.index(None)]
            try:
                envelope.key_id_of(bad)
            except G2PCryptoError as error:
                raise user_error(error) from error
            raise user_error(InvalidCiphertextError("not a ciphertext of a known format"))
        providers = self._providers_of_keys(set(key_ids))
        if len(providers) == 1:
            provider = next(iter(providers))
            try:
                return provider._keyring().decrypt(tokens, aads)
            except G2PCryptoError as error:
                raise provider._user_error(error) from error
        results = [None] * len(tokens)
        for provider, provider_key_ids in providers.items():
            positions = [i for i, key_id in enumerate(key_ids) if key_id in provider_key_ids]
            try:
                plaintexts = provider._keyring().decrypt(
                    [tokens[i] for i in positions], [aads[i] for i in positions]
                )
            except G2PCryptoError as error:
                raise provider._user_error(error) from error
            for i, plaintext in zip(positions, plaintexts, strict=True):
                results[i] = plaintext
        return results

    @api.model
    def _decrypt_stored_values(self, tokens, aads):
        """Plaintexts of stored values of any format, None for each that fails authentication.

        Envelope tokens go through the keyrings (one batch per provider); tokens of KeyManager's
        direct mode through KeyManager. A failure of a provider itself (sealed, KeyManager down)
        raises: the read fails with its cause rather than showing data as unreadable.
        """
        tokens, aads = list(tokens), list(aads)
        key_ids = envelope.key_ids_of(tokens)
        if None not in key_ids:  # envelope tokens only: the usual batch, without bookkeeping
            return self._decrypt_or_none(self._decrypt_tokens, tokens, aads, key_ids)
        results = [None] * len(tokens)
        local, remote = [], []
        for i, key_id in enumerate(key_ids):
            (local if key_id is not None else remote).append(i)
        for positions, decrypt in ((local, self._decrypt_tokens), (remote, self._decrypt_direct)):
            if not positions:
                continue
            if len(positions) == len(tokens):
                batch_tokens, batch_aads, batch_key_ids = tokens, aads, key_ids
            else:
                batch_tokens, batch_aads = [tokens[i] for i in positions], [aads[i] for i in positions]
                batch_key_ids = [key_ids[i] for i in positions]
            plaintexts = self._decrypt_or_none(decrypt, batch_tokens, batch_aads, batch_key_ids)
            for i, plaintext in zip(positions, plaintexts, strict=True):
                results[i] = plaintext
        return results

    @api.model
    def _decrypt_or_none(self, decrypt, tokens, aads, key_ids):
        """``decrypt`` of a batch; when a value fails authentication, each value apart (None for
        those that fail). A failure of the provider itself raises, and so does a batch of values
        of KeyManager's direct mode of which none decrypts: its configuration (a salt pasted
        wrong), not values tampered with one by one. (A registry job skips such values.)"""
        try:
            if decrypt == self._decrypt_tokens:
                return decrypt(tokens, aads, key_ids)
            return decrypt(tokens, aads)
        except UndecryptableUserError:
            opened = [
                _none_if_unreadable(decrypt, token, aad) for token, aad in zip(tokens, aads, strict=True)
            ]
            direct = decrypt != self._decrypt_tokens
            if direct and len(opened) > 1 and all(plaintext is None for plaintext in opened):
                if not self.env.context.get(SKIP_UNREADABLE):
                    raise
            return opened

    @api.model
    def _decrypt_direct(self, tokens, aads):
        """Values encrypted by a remote service itself (KeyManager's direct mode), decrypted by the
        registry provider, or else the first provider whose type decrypts its own ciphertext."""
        registry_provider = self._get_registry_provider()
        providers = registry_provider | self.sudo().search([("type", "!=", "local")])
        for provider in providers.filtered(lambda p: hasattr(p, f"_decrypt_values_{p.type}")):
            return provider._dispatch("_decrypt_values", tokens, aads)
        raise user_error(InvalidCiphertextError("no provider reads these values (KeyManager direct mode)"))

    @api.model
    def _providers_of_keys(self, key_ids):
        """{provider: {key ids}} of data keys ``key_ids``; unknown ids fail with a clear error.

        A key belongs to one provider for ever (keys are never deleted nor moved), so the answer
        is kept per worker (``KEY_PROVIDERS``): a list read decrypts field by field, and would
        otherwise ask the database once per field.
        """
        dbname = self.env.cr.dbname
        found = {}
        missing = []
        for key_id in key_ids:
            provider_id = KEY_PROVIDERS.get((dbname, key_id))
            if provider_id is None:
                missing.append(key_id)
            else:
                found[key_id] = provider_id
        if missing:
            self.env.cr.execute(
                """SELECT key_id, provider_id FROM g2p_encryption_key
                   WHERE key_id IN %s AND usage IN ('encrypt', 'index')""",
                (tuple(missing),),
            )
            fetched = dict(self.env.cr.fetchall())
            unknown = set(missing) - set(fetched)
            if unknown:
                raise user_error(
                    UnknownKeyError(
                        f"no data key {', '.join(sorted(unknown))} in this database: the ciphertext was "
                        "made by another database, or its key record was removed"
                    )
                )
            found.update(fetched)
            if len(KEY_PROVIDERS) < 10_000:
                KEY_PROVIDERS.update(((dbname, key_id), owner) for key_id, owner in fetched.items())
        grouped = {}
        for key_id, provider_id in found.items():
            grouped.setdefault(provider_id, set()).add(key_id)
        return {self.sudo().browse(provider_id): ids for provider_id, ids in grouped.items()}

    def _keyring(self):
        """The keyring of this provider: its data keys, unwrapped through its type."""
        self.ensure_one()
        provider = self.sudo()
        provider._optional_dispatch("_assert_keys_usable", None)
        ttl, uses = provider._optional_dispatch("_data_key_cache_limits", (3600.0, 10**9))
        return Keyring(provider._unwrap_data_key, DATA_KEYS, (self.env.cr.dbname, provider.id), ttl, uses)

    def _unwrap_data_key(self, key_id):
        key_record = self.env["g2p.encryption.key"].sudo()._find(self, key_id)
        return self._unwrap_key(key_record) if key_record else None

    def _active_key(self, usage):
        """The active key record of this provider for ``usage``, made on first use."""
        return self.env["g2p.encryption.key"].sudo()._active_key(self, usage)

    def _blind_index_key(self):
        """(key id, key) of this provider's blind indexes (never rotated: they would break)."""
        key_id = _active_key_id(self, "index")
        return key_id, self._keyring().key(key_id)

    def _wrap_key(self, key_id, secret, purpose):
        return self._dispatch("_wrap_key", key_id, secret, purpose)

    def _unwrap_key(self, key_record):
        return self._dispatch(
            "_unwrap_key", key_record.key_id, key_record.wrapped_key, key_record._wrap_purpose()
        )

    def _rotated_key_usages(self):
        """Usages of the keys that rotation renews (the blind-index key never: its digests would
        no longer match)."""
        return self._optional_dispatch("_rotated_usages", ("encrypt", "sign"))

    # ------------------------------------------------------------------------------------------
    # The registry provider
    # ------------------------------------------------------------------------------------------
    @api.model
    def _get_registry_provider(self):
        """The provider chosen in Settings, or the default one."""
        return self.sudo().browse(self._registry_provider_id())

    @api.model
    @tools.ormcache()
    def _registry_provider_id(self):
        # Cached per worker: asked on every write of an encrypted field. Setting the parameter
        # clears the cache (ir.config_parameter does), so does changing providers.
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
        if "active" in vals or "type" in vals:
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


def _active_key_id(provider, usage):
    """The key id of ``provider``'s active key for ``usage``, looked up once per transaction.

    A flush writes records one at a time when their values differ (each ``_write`` encrypts its
    record): an ORM search per write would cost more than the encryption. The key records are kept
    on the transaction and trusted while the ORM cache says they are active; a rotation (which
    retires a key through the ORM), a rollback or an invalidation makes the next batch look again.
    One look-up finds the active keys of every usage (encryption and blind index). Never kept
    longer than the transaction: a worker that kept a key rotated by another one would go on
    encrypting under it, out of sight of the re-encryption job that retires it.
    """
    keys = provider.env.transaction.__dict__.setdefault("g2p_active_keys", {})
    key_record = keys.get((provider.id, usage))
    if key_record is not None:
        cache = key_record.env.cache
        if cache.get(key_record, key_record._fields["state"], None) == "active":
            key_id = cache.get(key_record, key_record._fields["key_id"], None)
            if key_id:
                return key_id
    found = provider.env["g2p.encryption.key"].sudo()._active_keys(provider)
    keys.update(((provider.id, key_usage), record) for key_usage, record in found.items())
    key_record = keys[(provider.id, usage)] = found.get(usage) or provider._active_key(usage)
    return key_record.key_id


def _none_if_unreadable(decrypt, token, aad):
    try:
        return decrypt([token], [aad])[0]
    except UndecryptableUserError:
        return None
