# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The ``keymanager`` provider: keys held by MOSIP KeyManager, reached with a Keycloak token.

Two modes:

* ``envelope`` (default): KeyManager ``/encrypt`` wraps the provider's data keys (mode C of
  KEYMANAGER_API.md §4.4, with an AAD naming the key and its purpose) and ``/decrypt`` unwraps
  them; field values are encrypted locally by the shared envelope code. A batch of N values costs
  O(1) KeyManager calls, and none once the data key is in the worker's cache.
* ``direct`` (OpenG2P compatibility): every value goes through ``/encrypt`` / ``/decrypt`` with the
  provider's salt and aad (mode A), as OpenG2P's module does. Tokens are stored as
  ``g2pkm1.<KeyManager ciphertext>``; what OpenG2P's module stored (the base64url-decoded bytes of
  KeyManager's answer, or the answer itself) still decrypts.

Signing goes through ``/jwtSign`` and ``/jwtVerify``; the JWKS comes from ``/getAllCertificates``.
Nothing here writes to the database on a read path: tokens, certificates and keys are cached in
the memory of the worker process only. Logs name causes, never tokens, secrets or data.
"""

import binascii
import contextlib
import hashlib
import json
import logging
import secrets
import time

from markupsafe import Markup

from odoo import _, api, fields, models
from odoo.exceptions import UserError

from ..core import envelope, jose, monitoring
from ..core.cache import Cache
from ..core.encoding import b64decode, b64decode_any, b64url_decode, b64url_encode
from ..core.errors import G2PCryptoError, InvalidCiphertextError, SignatureError
from ..core.keycloak import TokenFetcher
from ..core.keymanager import KeyManagerClient

_logger = logging.getLogger(__name__)

DIRECT_PREFIX = "g2pkm1."
KEY_SPLITTER = b"#KEY_SPLITTER#"
VERSION_HEADER = b"VER_R2"
WRAPPED_BY_PREFIX = "KeyManager "
_B64URL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")

# Certificates, JWKS and thumbprints fetched from KeyManager, per worker process.
_remote = Cache("KeyManager certificates")


class EncryptionProviderKeyManager(models.Model):
    _inherit = "g2p.encryption.provider"

    type = fields.Selection(
        selection_add=[("keymanager", "MOSIP KeyManager")], ondelete={"keymanager": "cascade"}
    )
    keymanager_api_base_url = fields.Char(
        "KeyManager API base URL", default="http://keymanager.keymanager/v1/keymanager"
    )
    keymanager_auth_url = fields.Char(
        "Keycloak token URL",
        default="http://keycloak.keycloak/realms/openg2p/protocol/openid-connect/token",
    )
    keymanager_auth_client_id = fields.Char("Client ID", default="openg2p-admin-client")
    keymanager_auth_client_secret = fields.Char(
        "Client secret",
        groups="g2p_encryption.crypto_admin",
        copy=False,
        compute="_compute_keymanager_auth_client_secret",
        inverse="_inverse_keymanager_auth_client_secret",
    )
    # The secret grants decryption through KeyManager: the database holds it only wrapped by the
    # server's master key, so that a dump of the database alone decrypts nothing.
    keymanager_auth_client_secret_wrapped = fields.Char(groups="base.group_system", copy=False)
    keymanager_auth_grant_type = fields.Char("Grant type", default="client_credentials")
    keymanager_auth_method = fields.Selection(
        [
            ("client_secret_post", "Form fields (client_secret_post)"),
            ("client_secret_basic", "HTTP Basic (client_secret_basic)"),
        ],
        "Client authentication",
        default="client_secret_post",
    )
    keymanager_api_timeout = fields.Float("Timeout (seconds)", default=10)
    keymanager_api_retries = fields.Integer(
        "Retries", default=2, help="Retries of transient failures (5xx, timeout, no connection)."
    )
    keymanager_api_retry_backoff = fields.Float(
        "Retry backoff (seconds)", default=0.2, help="First wait between retries; it doubles each time."
    )
    keymanager_encrypt_application_id = fields.Char("Encryption application ID", default="REGISTRATION")
    keymanager_encrypt_reference_id = fields.Char("Encryption reference ID", default="ENCRYPT")
    keymanager_sign_application_id = fields.Char("Signing application ID", default="ID_REPO")
    keymanager_sign_reference_id = fields.Char("Signing reference ID", default="")
    keymanager_encrypt_salt = fields.Char(
        "Salt",
        default=lambda self: secrets.token_urlsafe(),
        help="Direct mode: base64 bytes that KeyManager uses as the GCM IV. Keep it: data encrypted "
        "with it needs it to decrypt. Copy OpenG2P's value here to read its data.",
    )
    keymanager_encrypt_aad = fields.Char(
        "AAD",
        default=lambda self: secrets.token_urlsafe(),
        help="Direct mode: base64 additional authenticated data. Keep it, as the salt.",
    )
    keymanager_mode = fields.Selection(
        [
            ("envelope", "Envelope: KeyManager wraps data keys, values are encrypted locally"),
            ("direct", "Direct: every value goes through KeyManager (OpenG2P compatible)"),
        ],
        "Mode",
        default="envelope",
    )
    keymanager_data_key_cache_seconds = fields.Integer(
        "Data key cache (seconds)",
        default=3600,
        help="How long a worker keeps a data key that KeyManager unwrapped.",
    )
    keymanager_data_key_cache_uses = fields.Integer(
        "Data key cache (uses)",
        default=10000,
        help="Batches a cached data key serves before it is unwrapped again.",
    )
    keymanager_jwks_cache_seconds = fields.Integer(
        "Certificate cache (seconds)",
        default=300,
        help="How long a worker keeps the certificates of /getAllCertificates (JWKS, verification).",
    )
    keymanager_monitoring_html = fields.Html(
        "Monitoring", compute="_compute_keymanager_monitoring_html", sanitize=False
    )

    # ------------------------------------------------------------------------------------------
    # Configuration
    # ------------------------------------------------------------------------------------------
    def _keymanager_client(self):
        """A KeyManager client with a Keycloak token fetcher, from the provider's fields.

        Cheap: HTTP sessions and tokens are cached per process in ``core``.
        """
        self.ensure_one()
        provider = self.sudo()
        if (provider.keymanager_auth_grant_type or "client_credentials") != "client_credentials":
            raise UserError(
                _("%(provider)s: only the client_credentials grant is supported.", provider=self.display_name)
            )
        if not provider.keymanager_api_base_url or not provider.keymanager_auth_url:
            raise UserError(
                _("%(provider)s: the KeyManager and Keycloak URLs are required.", provider=self.display_name)
            )
        timeout = provider.keymanager_api_timeout if provider.keymanager_api_timeout > 0 else 10
        retries = max(0, provider.keymanager_api_retries)
        backoff = max(0.0, provider.keymanager_api_retry_backoff)
        fetcher = TokenFetcher(
            provider.keymanager_auth_url,
            provider.keymanager_auth_client_id or "",
            provider.sudo().keymanager_auth_client_secret or "",
            auth_method=provider.keymanager_auth_method or "client_secret_post",
            timeout=timeout,
            retries=retries,
            backoff=backoff,
        )
        return KeyManagerClient(
            provider.keymanager_api_base_url, fetcher, timeout=timeout, retries=retries, backoff=backoff
        )

    def _keymanager_encrypt_ids(self):
        return self.keymanager_encrypt_application_id or "", self.keymanager_encrypt_reference_id or ""

    def _keymanager_sign_ids(self):
        return self.keymanager_sign_application_id or "", self.keymanager_sign_reference_id or ""

    def _keymanager_cache_key(self, kind, *parts):
        return (self.env.cr.dbname, self.id, kind, self.keymanager_api_base_url, *parts)

    @contextlib.contextmanager
    def _keymanager_logged(self, operation):
        """Log the cause of a failed KeyManager operation (never data, tokens or secrets)."""
        try:
            yield
        except G2PCryptoError as error:
            _logger.warning(
                "Encryption provider %s (id %s): %s failed: %s", self.name, self.id, operation, error
            )
            raise

    def _rotated_key_usages(self):
        if self.type == "keymanager":
            return ("encrypt",)  # signing keys live in KeyManager: /generateMasterKey rotates them
        return super()._rotated_key_usages()

    @api.depends("keymanager_auth_client_secret_wrapped")
    def _compute_keymanager_auth_client_secret(self):
        for provider in self:
            wrapped = provider.sudo().keymanager_auth_client_secret_wrapped
            provider.keymanager_auth_client_secret = (
                provider._local_master_key()
                .unwrap(provider._client_secret_key_id(), wrapped, "client-secret")
                .decode()
                if wrapped
                else False
            )

    def _inverse_keymanager_auth_client_secret(self):
        for provider in self:
            secret = provider.keymanager_auth_client_secret
            provider.sudo().keymanager_auth_client_secret_wrapped = (
                provider._local_master_key().wrap(
                    provider._client_secret_key_id(), secret.encode(), "client-secret"
                )
                if secret
                else False
            )

    def _client_secret_key_id(self):
        return f"provider{self.id}"

    def _data_key_cache_limits(self):
        if self.type != "keymanager":
            return super()._data_key_cache_limits()
        return (
            float(max(0, self.keymanager_data_key_cache_seconds)),
            max(0, self.keymanager_data_key_cache_uses),
        )

    # ------------------------------------------------------------------------------------------
    # Envelope mode: KeyManager wraps the data keys
    # ------------------------------------------------------------------------------------------
    @staticmethod
    def _keymanager_wrap_aad(key_id, purpose):
        return b64url_encode(f"g2p_encryption|{purpose}|{key_id}".encode())

    def _wrap_key_keymanager(self, key_id, secret, purpose):
        application_id, reference_id = self._keymanager_encrypt_ids()
        with self._keymanager_logged(f"wrapping key {key_id}"):
            wrapped = self._keymanager_client().encrypt(
                secret, application_id, reference_id, aad=self._keymanager_wrap_aad(key_id, purpose)
            )
        return wrapped, f"{WRAPPED_BY_PREFIX}{application_id}/{reference_id}"

    def _unwrap_key_keymanager(self, key_id, wrapped, purpose):
        application_id, reference_id = self._keymanager_wrapping_ids(key_id)
        with self._keymanager_logged(f"unwrapping key {key_id}"):
            return self._keymanager_client().decrypt(
                wrapped, application_id, reference_id, aad=self._keymanager_wrap_aad(key_id, purpose)
            )

    def _keymanager_wrapping_ids(self, key_id):
        """(applicationId, referenceId) that wrapped ``key_id``: KeyManager checks they match."""
        record = (
            self.env["g2p.encryption.key"]
            .sudo()
            .search([("provider_id", "=", self.id), ("key_id", "=", key_id)], limit=1)
        )
        wrapped_by = record.wrapped_by or ""
        if wrapped_by.startswith(WRAPPED_BY_PREFIX) and "/" in wrapped_by:
            application_id, reference_id = wrapped_by[len(WRAPPED_BY_PREFIX) :].split("/", 1)
            return application_id, reference_id
        return self._keymanager_encrypt_ids()

    # ------------------------------------------------------------------------------------------
    # Batch API: direct mode, and KeyManager ciphertexts in either mode
    # ------------------------------------------------------------------------------------------
    def _keymanager_direct(self):
        return self.type == "keymanager" and self.keymanager_mode == "direct"

    def encrypt_values(self, values, aad=b""):
        if not self._keymanager_direct():
            return super().encrypt_values(values, aad)
        self.ensure_one()
        values = list(values)
        aads = _aad_list(aad, len(values))
        client = self._keymanager_client()
        application_id, reference_id = self._keymanager_encrypt_ids()
        salt = self._keymanager_salt()
        with self._errors_as_user_errors(), self._keymanager_logged("direct encryption"):
            # KeyManager refuses empty data (KER-KMS-005): an empty value is the bare prefix.
            return [
                DIRECT_PREFIX
                + (
                    client.encrypt(
                        bytes(value), application_id, reference_id, salt=salt, aad=self._keymanager_aad(one)
                    )
                    if value
                    else ""
                )
                for value, one in zip(values, aads, strict=True)
            ]

    def decrypt_values(self, tokens, aad=b""):
        if self.type != "keymanager":
            return super().decrypt_values(tokens, aad)
        self.ensure_one()
        tokens = list(tokens)
        aads = _aad_list(aad, len(tokens))
        results = [None] * len(tokens)
        envelope_positions, remote = [], []
        for i, token in enumerate(tokens):
            if envelope.is_token(token):
                envelope_positions.append(i)
            else:
                remote.append(i)
        if envelope_positions:
            plaintexts = super().decrypt_values(
                [tokens[i] for i in envelope_positions],
                aad
                if isinstance(aad, bytes | bytearray | memoryview)
                else [aads[i] for i in envelope_positions],
            )
            for i, plaintext in zip(envelope_positions, plaintexts, strict=True):
                results[i] = plaintext
        if remote:
            client = self._keymanager_client()
            application_id, reference_id = self._keymanager_encrypt_ids()
            salt = self._keymanager_salt()
            with self._errors_as_user_errors(), self._keymanager_logged("direct decryption"):
                for i in remote:
                    ciphertext, bound = _keymanager_ciphertext(tokens[i])
                    if bound and not ciphertext:
                        results[i] = b""
                        continue
                    # Only g2pkm1. tokens were bound to the caller's AAD; OpenG2P's values never were.
                    km_aad = self._keymanager_aad(aads[i] if bound else b"")
                    results[i] = client.decrypt(
                        ciphertext, application_id, reference_id, salt=salt, aad=km_aad
                    )
        return results

    def is_ciphertext(self, value):
        if self.type == "keymanager" and _is_direct_token(value):
            return True
        return super().is_ciphertext(value)

    def _is_stale_ciphertext(self, token, active_key_id):
        if self.type != "keymanager":
            return super()._is_stale_ciphertext(token, active_key_id)
        if not self._keymanager_direct():
            # A direct-mode value moves to the data key of envelope mode.
            return _is_direct_token(token) or super()._is_stale_ciphertext(token, active_key_id)
        if envelope.is_token(token):
            return True
        if not _is_direct_token(token):
            return False
        # A value encrypted under an older generation of KeyManager's key (after a rotation).
        thumbprint = _thumbprint_of(token)
        return thumbprint is not None and thumbprint != self._keymanager_current_thumbprint()

    def _keymanager_current_thumbprint(self):
        """SHA-256 of the current encryption certificate's DER (cached per worker)."""
        application_id, reference_id = self._keymanager_encrypt_ids()
        cache_key = self._keymanager_cache_key("thumbprint", application_id, reference_id)
        cached = _remote.get(cache_key)
        if cached is not None:
            return cached
        with self._errors_as_user_errors(), self._keymanager_logged("certificate"):
            response = self._keymanager_client().get_certificate(application_id, reference_id)
            der = _certificate_der(response.get("certificate"))
        return _remote.put(cache_key, hashlib.sha256(der).digest(), ttl=self.keymanager_jwks_cache_seconds)

    def _keymanager_salt(self):
        salt = self.keymanager_encrypt_salt
        if not salt or len(salt.strip()) < 2:
            raise UserError(_("%(provider)s: direct mode needs a salt.", provider=self.display_name))
        return salt

    def _keymanager_aad(self, caller_aad=b""):
        """The ``aad`` sent to KeyManager: the provider's, bound to the caller's when given."""
        provider_aad = self.keymanager_encrypt_aad or None
        caller_aad = bytes(caller_aad or b"")
        if not caller_aad:
            return provider_aad
        try:
            base = b64decode_any(provider_aad) if provider_aad else b""
        except (ValueError, binascii.Error) as exc:
            raise UserError(_("%(provider)s: the AAD is not base64.", provider=self.display_name)) from exc
        return b64url_encode(base + b"|" + caller_aad)

    # ------------------------------------------------------------------------------------------
    # Public contract
    # ------------------------------------------------------------------------------------------
    def encrypt_data_keymanager(self, data, aad=b"", **kwargs):
        return self.encrypt_values([bytes(data)], aad)[0].encode()

    def decrypt_data_keymanager(self, data, aad=b"", **kwargs):
        return self.decrypt_values([data], aad)[0]

    def jwt_sign_keymanager(
        self, data, include_payload=True, include_certificate=False, include_cert_hash=False, **kwargs
    ):
        application_id, reference_id = self._keymanager_sign_ids()
        with self._keymanager_logged("/jwtSign"):
            return self._keymanager_client().jwt_sign(
                jose.encode_payload(data),
                application_id,
                reference_id,
                include_payload=include_payload,
                include_certificate=include_certificate,
                include_cert_hash=include_cert_hash,
            )

    def jwt_verify_keymanager(self, token, payload=None, **kwargs):
        token, header, payload_bytes, attached = _parse_jws(token, payload)
        certificate = None
        kid = header.get("kid")
        if not header.get("x5c"):
            # KeyManager verifies with its *current* key unless told which certificate to use:
            # pass the one the token names, so that tokens signed before a rotation verify.
            if not isinstance(kid, str) or not kid:
                raise SignatureError("JWS header has no kid: cannot select the verification key")
            certificate = self._keymanager_signing_certificates().get(kid)
            if certificate is None:
                # Signed by a key made after the certificates were cached?
                certificate = self._keymanager_signing_certificates(refresh=True).get(kid)
            # Still unknown (KeyManager 1.2 lists KERNEL's master keys for KERNEL/SIGN, not the
            # SIGN key itself): KeyManager verifies with its current certificate, as OpenG2P's
            # module always let it.
        application_id, reference_id = self._keymanager_sign_ids()
        with self._keymanager_logged("/jwtVerify"):
            verdict = self._keymanager_client().jwt_verify(
                token,
                application_id,
                reference_id,
                actual_data=None if attached else payload_bytes,
                certificate_data=certificate,
            )
        if verdict.get("signatureValid") is not True:
            _logger.warning(
                "Encryption provider %s (id %s): KeyManager found the signature of a JWS (kid %s) invalid",
                self.name,
                self.id,
                kid,
            )
            message = verdict.get("message") or "no message"
            raise SignatureError(f"KeyManager /jwtVerify: the signature is not valid ({message})")
        return jose.verified_claims(payload_bytes)

    def get_jwks_keymanager(self, **kwargs):
        """The encryption (``enc``) and signing (``sig``) keys of ``/getAllCertificates``, cached."""
        return {"keys": [dict(key) for key in self._keymanager_jwk_list()]}

    def _keymanager_jwk_list(self, refresh=False):
        encrypt_ids = self._keymanager_encrypt_ids()
        sign_ids = self._keymanager_sign_ids()
        cache_key = self._keymanager_cache_key("jwks", encrypt_ids, sign_ids)
        cached = None if refresh else _remote.get(cache_key)
        if cached is not None:
            return cached
        client = self._keymanager_client()
        keys = []
        with self._errors_as_user_errors(), self._keymanager_logged("/getAllCertificates"):
            for use, (application_id, reference_id) in (("enc", encrypt_ids), ("sig", sign_ids)):
                for entry in client.get_all_certificates(application_id, reference_id or None):
                    pem, kid = entry.get("certificateData"), entry.get("keyId")
                    if not pem or not kid:
                        continue
                    public = jose.jwk_from_certificate(pem, kid, use)
                    if use == "enc":
                        public["alg"] = "RSA-OAEP-256"
                    public["_pem"] = pem
                    keys.append(public)
        seen, unique = set(), []
        for key in keys:
            if (key["kid"], key["use"]) not in seen:
                seen.add((key["kid"], key["use"]))
                unique.append(key)
        return self._keymanager_store_jwks(cache_key, unique)

    def _keymanager_store_jwks(self, cache_key, keys):
        public = tuple({k: v for k, v in key.items() if k != "_pem"} for key in keys)
        certificates = {key["kid"]: key["_pem"] for key in keys if key["use"] == "sig"}
        seconds = self.keymanager_jwks_cache_seconds
        _remote.put(cache_key + ("certificates",), certificates, ttl=seconds)
        return _remote.put(cache_key, public, ttl=seconds)

    def _keymanager_signing_certificates(self, refresh=False):
        """{kid: PEM} of every generation of the signing key (from the JWKS fetch, cached)."""
        cache_key = self._keymanager_cache_key(
            "jwks", self._keymanager_encrypt_ids(), self._keymanager_sign_ids()
        )
        certificates = None if refresh else _remote.get(cache_key + ("certificates",))
        if certificates is None:
            self._keymanager_jwk_list(refresh=True)
            certificates = _remote.get(cache_key + ("certificates",)) or {}
        return certificates

    # ------------------------------------------------------------------------------------------
    # Form: test connection and monitoring
    # ------------------------------------------------------------------------------------------
    def action_test_connection(self):
        self.ensure_one()
        client = self._keymanager_client()
        application_id, reference_id = self._keymanager_sign_ids()
        done = []
        try:
            started = time.monotonic()
            client.token_fetcher.get_token(force_refresh=True)
            done.append(
                _(
                    "Keycloak: token obtained for %(client)s in %(ms)d ms.",
                    client=self.keymanager_auth_client_id,
                    ms=(time.monotonic() - started) * 1000,
                )
            )
            started = time.monotonic()
            response = client.get_certificate(application_id, reference_id or None)
            _certificate_der(response.get("certificate"))
            key_label = f"{application_id}/{reference_id}" if reference_id else application_id
            done.append(
                _(
                    "KeyManager: certificate of %(key)s obtained in %(ms)d ms (valid until %(expiry)s).",
                    key=key_label,
                    ms=(time.monotonic() - started) * 1000,
                    expiry=response.get("expiryAt") or "?",
                )
            )
        except G2PCryptoError as error:
            _logger.warning(
                "Encryption provider %s (id %s): connection test failed: %s", self.name, self.id, error
            )
            message = " ".join(done + [_("Failed: %(cause)s", cause=error)])
            return _notification(_("KeyManager connection failed"), message, "danger", sticky=True)
        _logger.info("Encryption provider %s (id %s): connection test passed", self.name, self.id)
        return _notification(_("KeyManager connection works"), " ".join(done), "success", sticky=False)

    @api.depends("type", "keymanager_api_base_url", "keymanager_auth_url")
    def _compute_keymanager_monitoring_html(self):
        for provider in self:
            if provider.type != "keymanager" or not provider.keymanager_api_base_url:
                provider.keymanager_monitoring_html = False
                continue
            sections = [monitoring.keymanager_stats(provider.keymanager_api_base_url)]
            if provider.keymanager_auth_url:
                sections.append(monitoring.keycloak_stats(provider.keymanager_auth_url))
            provider.keymanager_monitoring_html = _stats_table(sections)


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------
def _notification(title, message, kind, sticky):
    return {
        "type": "ir.actions.client",
        "tag": "display_notification",
        "params": {"title": title, "message": message, "type": kind, "sticky": sticky},
    }


def _stats_table(sections):
    rows = []
    for section in sections:
        endpoints = section["endpoints"] or {}
        if not endpoints:
            rows.append(
                Markup("<tr><td>{}</td><td colspan='6' class='text-muted'>{}</td></tr>").format(
                    section["service"], _("no calls yet in this worker")
                )
            )
        for name, stats in sorted(endpoints.items()):
            errors = ", ".join(f"{kind}: {count}" for kind, count in sorted(stats["errors"].items()))
            last = ""
            if stats["last_error"]:
                last = f"{stats['last_error_at']}: {stats['last_error']}"
            rows.append(
                Markup(
                    "<tr><td>{}</td><td>{}</td><td class='text-end'>{}</td><td>{}</td>"
                    "<td class='text-end'>{}</td><td class='text-end'>{}</td><td>{}</td></tr>"
                ).format(
                    section["service"],
                    name,
                    stats["calls"],
                    errors or "0",
                    stats["avg_ms"],
                    stats["max_ms"],
                    last,
                )
            )
    header = Markup(
        "<table class='table table-sm o_g2p_keymanager_stats'><thead><tr><th>{}</th><th>{}</th>"
        "<th class='text-end'>{}</th><th>{}</th><th class='text-end'>{}</th><th class='text-end'>{}</th>"
        "<th>{}</th></tr></thead><tbody>"
    ).format(_("Service"), _("Endpoint"), _("Calls"), _("Errors"), _("Avg ms"), _("Max ms"), _("Last error"))
    pid = sections[0]["pid"] if sections else ""
    footer = Markup("</tbody></table><div class='text-muted small'>{}</div>").format(
        _("Counters of worker process %(pid)s since it started.", pid=pid)
    )
    return header + Markup("").join(rows) + footer


def _aad_list(aad, count):
    if isinstance(aad, bytes | bytearray | memoryview):
        return [bytes(aad)] * count
    aads = [bytes(one or b"") for one in aad]
    if len(aads) != count:
        raise ValueError(f"got {count} values but {len(aads)} AAD values")
    return aads


def _is_direct_token(value):
    if isinstance(value, bytes | bytearray):
        return bytes(value).startswith(DIRECT_PREFIX.encode())
    return isinstance(value, str) and value.startswith(DIRECT_PREFIX)


def _keymanager_ciphertext(token):
    """(KeyManager's ciphertext string, whether it is a g2pkm1. token bound to the caller's AAD).

    Accepts a ``g2pkm1.`` token (str or bytes), the raw bytes OpenG2P's module stored (KeyManager's
    answer base64url-decoded) and KeyManager's answer itself.
    """
    if isinstance(token, bytearray | memoryview):
        token = bytes(token)
    if _is_direct_token(token):
        text = token.decode("ascii", "replace") if isinstance(token, bytes) else token
        return text[len(DIRECT_PREFIX) :], True
    if isinstance(token, bytes):
        if KEY_SPLITTER in token:
            return b64url_encode(token), False
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidCiphertextError("the value is not a KeyManager ciphertext") from None
    if not isinstance(token, str) or not token:
        raise InvalidCiphertextError("the value is not a KeyManager ciphertext")
    text = token.strip().rstrip("=")
    if not set(text) <= _B64URL_CHARS:
        raise InvalidCiphertextError("the value is not a KeyManager ciphertext")
    return text, False


def _thumbprint_of(token):
    """The 32-byte certificate thumbprint at the head of a KeyManager ciphertext, if any."""
    try:
        blob = b64url_decode(_keymanager_ciphertext(token)[0])
    except (ValueError, binascii.Error, G2PCryptoError):
        return None
    index = blob.find(KEY_SPLITTER)
    if index < 0:
        return None
    key_part = blob[:index]
    if key_part.startswith(VERSION_HEADER):
        key_part = key_part[len(VERSION_HEADER) :]
    return key_part[:32] if len(key_part) == 288 else None


def _certificate_der(pem):
    if not isinstance(pem, str) or "BEGIN CERTIFICATE" not in pem:
        raise InvalidCiphertextError("KeyManager returned no certificate")
    body = "".join(line for line in pem.strip().splitlines() if "-----" not in line)
    return b64decode(body)


def _parse_jws(token, payload):
    """(token, header, payload bytes, whether the payload is attached) of a compact JWS."""
    if isinstance(token, bytes):
        token = token.decode("ascii", "replace")
    if not isinstance(token, str) or token.count(".") != 2:
        raise SignatureError("malformed JWS: expected the compact form header.payload.signature")
    header_b64, payload_b64, _signature = token.split(".")
    try:
        header = json.loads(b64url_decode(header_b64))
        payload_bytes = b64url_decode(payload_b64)
    except (ValueError, binascii.Error):
        raise SignatureError("malformed JWS: not base64url JSON") from None
    if not isinstance(header, dict):
        raise SignatureError("malformed JWS: the header is not a JSON object")
    if payload is not None:
        given = jose.encode_payload(payload)
        if payload_b64 and payload_bytes != given:
            raise SignatureError("the payload given differs from the one inside the JWS")
        payload_bytes = given
    elif not payload_b64:
        raise SignatureError("detached JWS: the payload must be given to verify it")
    return token, header, payload_bytes, bool(payload_b64)
