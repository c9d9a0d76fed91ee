# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The ``keymanager`` provider type: keys held by MOSIP KeyManager, reached with a Keycloak token.

* ``envelope`` mode (default): KeyManager wraps and unwraps the data keys (``_wrap_key_keymanager``,
  ``_unwrap_key_keymanager``); values are encrypted locally by the shared envelope code, so a batch
  costs O(1) KeyManager calls, and none once the data key is in the worker's cache.
* ``direct`` mode (OpenG2P compatibility): every value goes through ``/encrypt`` and ``/decrypt``
  with the provider's salt and aad (``_encrypt_values_keymanager``, ``_decrypt_values_keymanager``).

Signing goes through ``/jwtSign`` and ``/jwtVerify``; the JWKS comes from ``/getAllCertificates``.
The HTTP client, the ciphertext formats and the caches are in ``core``; nothing here writes to the
database on a read path, and logs name causes, never tokens, secrets or data.
"""

import logging
import os
import secrets
import time

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError

from ..core import envelope, monitoring
from ..core import keymanager_format as km_format
from ..core.errors import G2PCryptoError
from ..core.keycloak import TokenFetcher
from ..core.keymanager import KeyManagerClient
from ..core.keymanager_keys import KeyManagerKeys

_logger = logging.getLogger(__name__)

AUTH_METHODS = [
    ("client_secret_post", "Form fields (client_secret_post)"),
    ("client_secret_basic", "HTTP Basic (client_secret_basic)"),
]
MODES = [
    ("envelope", "Envelope: KeyManager wraps data keys, values are encrypted locally"),
    ("direct", "Direct: every value goes through KeyManager (OpenG2P compatible)"),
]


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
        AUTH_METHODS, "Client authentication", default="client_secret_post"
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
    keymanager_mode = fields.Selection(MODES, "Mode", default="envelope")
    # Per worker: how long, and for how many batches, an unwrapped data key is kept; how long the
    # certificates of /getAllCertificates (JWKS, verification) are.
    keymanager_data_key_cache_seconds = fields.Integer("Data key cache (seconds)", default=3600)
    keymanager_data_key_cache_uses = fields.Integer("Data key cache (uses)", default=10000)
    keymanager_jwks_cache_seconds = fields.Integer("Certificate cache (seconds)", default=300)
    keymanager_monitoring_html = fields.Html(
        "Monitoring", compute="_compute_keymanager_monitoring_html", sanitize=False
    )

    # ------------------------------------------------------------------------------------------
    # Configuration
    # ------------------------------------------------------------------------------------------
    def _keymanager_client(self):
        """A KeyManager client with its Keycloak token fetcher; cheap (sessions, tokens are cached)."""
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
        limits = {
            "timeout": provider.keymanager_api_timeout if provider.keymanager_api_timeout > 0 else 10,
            "retries": max(0, provider.keymanager_api_retries),
            "backoff": max(0.0, provider.keymanager_api_retry_backoff),
        }
        fetcher = TokenFetcher(
            provider.keymanager_auth_url,
            provider.keymanager_auth_client_id or "",
            provider.keymanager_auth_client_secret or "",
            auth_method=provider.keymanager_auth_method or "client_secret_post",
            **limits,
        )
        return KeyManagerClient(provider.keymanager_api_base_url, fetcher, **limits)

    def _keymanager_keys(self):
        """This provider's keys in KeyManager (``core.keymanager_keys``), from its fields."""
        return KeyManagerKeys(
            self._keymanager_client(),
            encrypt_ids=(
                self.keymanager_encrypt_application_id or "",
                self.keymanager_encrypt_reference_id or "",
            ),
            sign_ids=(self.keymanager_sign_application_id or "", self.keymanager_sign_reference_id or ""),
            salt=self.keymanager_encrypt_salt,
            aad=self.keymanager_encrypt_aad,
            cache_scope=(self.env.cr.dbname, self.id, self.keymanager_api_base_url),
            certificate_ttl=self.keymanager_jwks_cache_seconds,
        )

    def _keymanager_require_admin(self):
        # Actions that call KeyManager are RPC endpoints: only a Crypto Admin may trigger them.
        if not (self.env.su or self.env.user.has_group("g2p_encryption.crypto_admin")):
            raise AccessError(_("Only Crypto Admins may call the services of an encryption provider."))

    @api.depends("keymanager_auth_client_secret_wrapped")
    def _compute_keymanager_auth_client_secret(self):
        for provider in self:
            wrapped = provider.sudo().keymanager_auth_client_secret_wrapped
            secret = wrapped and provider._local_master_key().unwrap(
                f"provider{provider.id}", wrapped, "client-secret"
            )
            provider.keymanager_auth_client_secret = secret.decode() if secret else False

    def _inverse_keymanager_auth_client_secret(self):
        for provider in self:
            secret = provider.keymanager_auth_client_secret
            provider.sudo().keymanager_auth_client_secret_wrapped = (
                secret
                and provider._local_master_key().wrap(
                    f"provider{provider.id}", secret.encode(), "client-secret"
                )
            )

    def _rotated_usages_keymanager(self):
        return ("encrypt",)  # signing keys live in KeyManager: /generateMasterKey rotates them

    def _data_key_cache_limits_keymanager(self):
        seconds, uses = self.keymanager_data_key_cache_seconds, self.keymanager_data_key_cache_uses
        return float(max(0, seconds)), max(0, uses)

    # ------------------------------------------------------------------------------------------
    # Envelope mode: KeyManager wraps the data keys
    # ------------------------------------------------------------------------------------------
    def _wrap_key_keymanager(self, key_id, secret, purpose):
        with self._errors_logged(f"wrapping key {key_id}"):
            return self._keymanager_keys().wrap(key_id, secret, purpose)

    def _unwrap_key_keymanager(self, key_id, wrapped, purpose):
        record = (
            self.env["g2p.encryption.key"]
            .sudo()
            .search([("provider_id", "=", self.id), ("key_id", "=", key_id)], limit=1)
        )
        with self._errors_logged(f"unwrapping key {key_id}"):
            return self._keymanager_keys().unwrap(key_id, wrapped, purpose, record.wrapped_by)

    # ------------------------------------------------------------------------------------------
    # Direct mode: every value through KeyManager; KeyManager ciphertexts in either mode
    # ------------------------------------------------------------------------------------------
    def _keymanager_direct(self):
        return self.type == "keymanager" and self.keymanager_mode == "direct"

    def _encrypts_values_itself_keymanager(self):
        return self._keymanager_direct()

    def _encrypt_values_keymanager(self, plaintexts, aads):
        """Direct tokens of ``plaintexts``, one ``/encrypt`` each; None in envelope mode (the
        provider's envelope encrypts them)."""
        if not self._keymanager_direct():
            return None
        with self._errors_logged("direct encryption"):
            return self._keymanager_keys().encrypt_values(plaintexts, aads)

    def _decrypt_values_keymanager(self, tokens, aads):
        """Plaintexts of KeyManager ciphertexts (direct tokens, OpenG2P's values), one ``/decrypt`` each."""
        with self._errors_logged("direct decryption"):
            return self._keymanager_keys().decrypt_values(tokens, aads)

    def _is_ciphertext_keymanager(self, value):
        return km_format.is_direct_token(value) or envelope.is_token(value)

    def _is_stale_ciphertext_keymanager(self, token, active_key_id):
        if envelope.is_token(token):
            return self._keymanager_direct() or envelope.key_id_of(token) != active_key_id
        if not km_format.is_direct_token(token):
            return False
        if not self._keymanager_direct():
            return True  # envelope mode moves direct-mode values to its data key
        with self._errors_logged("certificate"):
            return not self._keymanager_keys().is_current(token)  # KeyManager rotated its key since

    # ------------------------------------------------------------------------------------------
    # Public contract
    # ------------------------------------------------------------------------------------------
    def _encrypt_data_keymanager(self, data, aad=b"", **kwargs):
        return self._envelope_encrypt_data(data, aad)

    def _decrypt_data_keymanager(self, data, aad=b"", **kwargs):
        return self._envelope_decrypt_data(data, aad)

    def _jwt_sign_keymanager(
        self, data, include_payload=True, include_certificate=False, include_cert_hash=False, **kwargs
    ):
        with self._errors_logged("/jwtSign"):
            return self._keymanager_keys().sign(data, include_payload, include_certificate, include_cert_hash)

    def _jwt_verify_keymanager(self, token, payload=None, **kwargs):
        with self._errors_logged("/jwtVerify"):
            return self._keymanager_keys().verify(token, payload)

    def _get_jwks_keymanager(self, **kwargs):
        """The encryption (``enc``) and signing (``sig``) keys of ``/getAllCertificates``, cached."""
        with self._errors_logged("/getAllCertificates"):
            return {"keys": [dict(key) for key in self._keymanager_keys().certificates()[0]]}

    # ------------------------------------------------------------------------------------------
    # Form: test connection and monitoring
    # ------------------------------------------------------------------------------------------
    def action_test_connection(self):
        """Check that the provider's remote services answer; a notification says how it went."""
        self.ensure_one()
        self._keymanager_require_admin()
        test = getattr(self, f"_test_connection_{self.type}", None)
        if test is None:
            raise UserError(_("%(provider)s has no remote service to test.", provider=self.display_name))
        return test()

    def _test_connection_keymanager(self):
        client = self._keymanager_client()
        application_id, reference_id = self.keymanager_sign_application_id, self.keymanager_sign_reference_id
        done = []
        try:
            started = time.monotonic()
            client.token_fetcher.get_token(force_refresh=True)
            elapsed_ms = (time.monotonic() - started) * 1000
            done.append(
                _(
                    "Keycloak: token obtained for %(client)s in %(ms)d ms.",
                    client=self.keymanager_auth_client_id,
                    ms=elapsed_ms,
                )
            )
            started = time.monotonic()
            response = client.get_certificate(application_id, reference_id or None)
            km_format.certificate_thumbprint(response.get("certificate"))  # checks there is one
            done.append(
                _(
                    "KeyManager: certificate of %(key)s obtained in %(ms)d ms (valid until %(expiry)s).",
                    key="/".join(filter(None, (application_id, reference_id))),
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
            provider.keymanager_monitoring_html = self.env["ir.qweb"]._render(
                "g2p_encryption.keymanager_monitoring_table",
                {"rows": monitoring.table_rows(*sections), "pid": os.getpid()},
            )


def _notification(title, message, kind, sticky):
    return {
        "type": "ir.actions.client",
        "tag": "display_notification",
        "params": {"title": title, "message": message, "type": kind, "sticky": sticky},
    }
