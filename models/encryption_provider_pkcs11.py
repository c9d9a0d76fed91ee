# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The ``pkcs11`` provider type: a master key and signing keys that never leave an HSM (PKCS#11).

The token makes an AES-256 master key (sensitive, non-extractable) and wraps and unwraps this
provider's data and blind-index keys with it; values are encrypted locally by the envelope, so a
batch costs at most one wrap or unwrap per data key, and none once the worker has the key. The
signing key pair is made in the token and signs every JWS there. The user PIN comes from the server
configuration or the environment (``_pkcs11_pin_sources``), never from the database. The PKCS#11
work is ``core/pkcs11/``.
"""

import json
import logging
import os
import re
import time

from odoo import _, api, fields, models
from odoo.tools import config

from ..core import envelope, jose
from ..core import pkcs11 as p11
from ..core.cache import Cache
from ..core.errors import G2PCryptoError, HsmError
from .encryption_provider import DATA_KEYS
from .encryption_provider_keymanager import _notification

_logger = logging.getLogger(__name__)

PIN_OPTION = "g2p_encryption_pkcs11_pin"
PIN_ENV = "G2P_ENCRYPTION_PKCS11_PIN"
# Providers whose token answered lately, per worker: checked again after pkcs11_check_seconds.
_PRESENT = Cache("PKCS#11 presence checks")
_LABEL_SUFFIX = re.compile(r"-\d{8}T\d{6}Z(-\d+)?$")


class EncryptionProviderPkcs11(models.Model):
    _inherit = "g2p.encryption.provider"

    type = fields.Selection(selection_add=[("pkcs11", "PKCS#11 (HSM)")], ondelete={"pkcs11": "cascade"})
    pkcs11_library = fields.Char(
        "PKCS#11 library",
        help="Path, on the server, of the HSM vendor's PKCS#11 module, e.g. "
        "/usr/lib/softhsm/libsofthsm2.so for SoftHSM2.",
    )
    pkcs11_token_label = fields.Char(
        "Token label", help="The token's label; or leave it empty and give its slot."
    )
    pkcs11_slot = fields.Char("Slot ID", help="Used when no token label is given.")
    pkcs11_key_label = fields.Char(
        "Master key label",
        default="g2p-master",
        help="The AES-256 key of the token that wraps this provider's data keys; made inside the token "
        "on first use. Rotation makes a new key under a new label and writes it here: keys wrapped "
        "under earlier labels keep unwrapping while those keys stay in the token.",
    )
    pkcs11_signing_key_label = fields.Char(
        "Signing key label",
        default="g2p-signing",
        help="Label of the key pairs made in the token for signing (a date is added to the label when "
        "it is taken, as after a rotation).",
    )
    pkcs11_check_seconds = fields.Integer(
        "Token check (seconds)",
        default=10,
        help="Each worker checks this often that the token is still there, and stops serving the data "
        "keys it holds as soon as it is not: removing the token stops decryption within this delay.",
    )
    pkcs11_pin_source = fields.Char("User PIN", compute="_compute_pkcs11_pin_source")

    # Configuration ------------------------------------------------------------------------------
    def _pkcs11_pin_sources(self):
        """Where the server looks for this provider's PIN, in order: [(kind, name)]."""
        self.ensure_one()
        names = [*self.sudo().get_external_id().values(), str(self.id)]
        sources = [("option", f"{PIN_OPTION}_{name}") for name in names if name]
        sources += [
            ("env", f"{PIN_ENV}_{re.sub(r'[^A-Za-z0-9]', '_', name).upper()}") for name in names if name
        ]
        return sources + [("option", PIN_OPTION), ("env", PIN_ENV)]

    def _pkcs11_pin(self):
        """(PIN, where it was found) or (None, None). The PIN is never logged nor stored."""
        for kind, name in self._pkcs11_pin_sources():
            value = config.get(name) if kind == "option" else os.environ.get(name)
            if value:
                return str(value), name
        return None, None

    @api.depends("type")
    def _compute_pkcs11_pin_source(self):
        for provider in self:
            if provider.type != "pkcs11" or not provider.id:
                provider.pkcs11_pin_source = False
                continue
            _pin, source = provider._pkcs11_pin()
            # The names are made outside _(): the term extractor stops reading a file at an f-string.
            option, env = f"{PIN_OPTION}_{provider.id}", f"{PIN_ENV}_{provider.id}"
            provider.pkcs11_pin_source = (
                _("read from %(where)s", where=source)
                if source
                else _(
                    "not configured: set %(option)s in the server configuration "
                    "or %(env)s in the environment",
                    option=option,
                    env=env,
                )
            )

    def _pkcs11_token(self):
        """The token of this provider (``core.pkcs11.Token``), from its fields and the PIN."""
        provider = self.sudo()
        if not provider.pkcs11_token_label and not (provider.pkcs11_slot or "").strip().isdigit():
            raise HsmError("name the token: its label, or its slot id (a number)", service="PKCS#11")
        slot_id = int(provider.pkcs11_slot) if (provider.pkcs11_slot or "").strip().isdigit() else None
        pin, _source = provider._pkcs11_pin()
        return p11.Token(provider.pkcs11_library, provider.pkcs11_token_label, slot_id, pin)

    def _pkcs11_next_label(self, token, label, kind):
        """``label`` when the token has no such key yet, else a new label made from it and the date."""
        if not token.has_key(label, kind):
            return label
        stem = f"{_LABEL_SUFFIX.sub('', label)}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        candidate, number = stem, 1
        while token.has_key(candidate, kind):
            number += 1
            candidate = f"{stem}-{number}"
        return candidate

    # Keys ---------------------------------------------------------------------------------------
    def _wrap_key_pkcs11(self, key_id, secret, purpose):
        label = self.sudo().pkcs11_key_label or "g2p-master"
        with self._errors_logged(f"wrapping key {key_id}"):
            token = self._pkcs11_token()
            return token.wrap(label, key_id, secret, purpose), f"{token.name}: {label}"

    def _unwrap_key_pkcs11(self, key_id, wrapped, purpose):
        with self._errors_logged(f"unwrapping key {key_id}"):
            return self._pkcs11_token().unwrap(key_id, wrapped, purpose)

    def _generate_key_pkcs11(self, usage):
        """Signing key pairs are made in the token (the record keeps their public half and a
        reference). A new data key after the first is a rotation: a new master key is made under a
        new label first, and wraps it (and the keys made after it)."""
        provider = self.sudo()
        if usage == "sign":
            with self._errors_logged("making a signing key"):
                token = self._pkcs11_token()
                label = self._pkcs11_next_label(
                    token, provider.pkcs11_signing_key_label or "g2p-signing", "private"
                )
                key = token.generate_signing_key(
                    label, provider.signing_algorithm, f"g2p_encryption {provider.name}"
                )
            _logger.info(
                "Encryption provider %s: signing key %s made in %s as %s", self.id, key.kid, token.name, label
            )
            return {
                "key_id": key.kid,
                "algorithm": key.alg,
                "certificate": key.certificate_pem,
                "public_jwk": json.dumps(key.public_jwk()),
                "wrapped_key": p11.key_reference(label),
                "wrapped_by": f"{token.name}: {label}",
            }
        if usage == "encrypt" and provider.key_ids.filtered(lambda key: key.usage == "encrypt"):
            with self._errors_logged("rotating the master key"):
                token = self._pkcs11_token()
                label = self._pkcs11_next_label(token, provider.pkcs11_key_label or "g2p-master", "secret")
                token.generate_master_key(label)
            _logger.info("Encryption provider %s: master key rotated to %s in %s", self.id, label, token.name)
            provider.pkcs11_key_label = label
        return None

    def _assert_keys_usable_pkcs11(self):
        """Data keys cached by this worker are served only while the token is there (checked every
        ``pkcs11_check_seconds``): pulling the token stops decryption, as sealing does."""
        scope = (self.env.cr.dbname, self.id)
        if _PRESENT.get(scope):
            return
        try:
            with self._errors_logged("checking the token"):
                self._pkcs11_token().check_present()
        except Exception:
            for name, _key in DATA_KEYS.items():
                if name[0] == scope:
                    DATA_KEYS.pop(name)
            raise
        _PRESENT.put(scope, True, ttl=max(0, self.pkcs11_check_seconds))

    # Public contract (reached through encrypt_data, ... ; RPC can call these names too: they check)
    def _encrypt_data_pkcs11(self, data, aad=b"", **kwargs):
        self._check_crypto_admin_or_server()
        return self._envelope_encrypt_data(data, aad)

    def _decrypt_data_pkcs11(self, data, aad=b"", **kwargs):
        self._check_crypto_admin_or_server()
        return self._envelope_decrypt_data(data, aad)

    def _jwt_sign_pkcs11(
        self, data, include_payload=True, include_certificate=False, include_cert_hash=False, **kwargs
    ):
        self._check_crypto_admin_or_server()
        with self._errors_logged("signing"):
            record = self.env["g2p.encryption.key"].sudo()._active_key(self, "sign")
            label = p11.label_of_reference(record.wrapped_key)
            key = self._pkcs11_token().signing_key(label, record.algorithm, record.certificate)
            return jose.jws_sign(
                key,
                data,
                include_payload=include_payload,
                include_certificate=include_certificate,
                include_cert_hash=include_cert_hash,
            )

    def _jwt_verify_pkcs11(self, token, payload=None, **kwargs):
        return jose.jws_verify(token, self._get_jwks_pkcs11(), payload=payload)

    def _get_jwks_pkcs11(self, **kwargs):
        """The public keys of the key records: published without asking the token."""
        return self.env["g2p.encryption.key"].sudo()._signing_jwks(self)

    # Test connection ----------------------------------------------------------------------------
    def _test_connection_pkcs11(self):
        """Open a session, find the keys, and wrap, unwrap and sign once; a notification says how."""
        provider, done = self.sudo(), []
        try:
            token = provider._pkcs11_token()
            started = time.monotonic()
            facts = token.describe()
            done.append(
                _(
                    "Session opened with token %(label)s (%(model)s by %(maker)s, serial %(serial)s) "
                    "in %(ms)d ms.",
                    label=facts["label"],
                    model=facts["model"],
                    maker=facts["manufacturer"],
                    serial=facts["serial"],
                    ms=(time.monotonic() - started) * 1000,
                )
            )
            label = provider.pkcs11_key_label or "g2p-master"
            existed = token.has_key(label)
            secret, key_id = os.urandom(32), envelope.new_key_id()
            if token.unwrap(key_id, token.wrap(label, key_id, secret, "test"), "test") != secret:
                raise HsmError("the round trip returned another key", service=token.name)
            done.append(
                _(
                    "Master key %(label)s %(state)s: a key wrapped and unwrapped by the token.",
                    label=label,
                    state=_("found") if existed else _("made in the token now"),
                )
            )
            record = provider.key_ids.filtered(lambda key: key.usage == "sign" and key.state == "active")[:1]
            if record:
                signing_key = token.signing_key(
                    p11.label_of_reference(record.wrapped_key), record.algorithm, record.certificate
                )
                jose.jws_verify(jose.jws_sign(signing_key, {"test": key_id}), provider._get_jwks_pkcs11())
                done.append(
                    _("Signing key %(kid)s found: a test JWS signed and verified.", kid=record.key_id)
                )
            else:
                done.append(_("No signing key yet: one is made in the token on the first signature."))
        except G2PCryptoError as error:
            _logger.warning(
                "Encryption provider %s (id %s): connection test failed: %s", self.name, self.id, error
            )
            message = " ".join(done + [_("Failed: %(cause)s", cause=error)])
            return _notification(_("PKCS#11 token connection failed"), message, "danger", sticky=True)
        _logger.info("Encryption provider %s (id %s): connection test passed", self.name, self.id)
        return _notification(_("PKCS#11 token works"), " ".join(done), "success", sticky=False)
