# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Keys of the encryption providers, stored only in wrapped form.

A record holds a data key (``encrypt``), a signing key (``sign``) or a blind-index key
(``index``), wrapped by the provider (the local master key, or KeyManager). Keys are never
deleted: a retired key still decrypts what it encrypted, and a retired signing key still
verifies. Key material may be written only by the addon's own code (``rpc_guard.internal``, a
channel no RPC client reaches); any other write of it raises ``AccessError``.
"""

import json

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError

from ..core import envelope, jwk
from .rpc_guard import internal, is_internal

# Fields that only this module's code may write.
KEY_MATERIAL_FIELDS = {"key_id", "wrapped_key", "wrapped_by", "public_jwk", "certificate", "usage"}
PURPOSES = {"encrypt": "data-key", "sign": "signing-key", "index": "index-key"}


class EncryptionKey(models.Model):
    _name = "g2p.encryption.key"
    _description = "Encryption Key"
    _order = "provider_id, create_date desc, id desc"
    _rec_name = "key_id"

    # Cascade only serves uninstallation: the provider refuses deletion while it has keys.
    provider_id = fields.Many2one("g2p.encryption.provider", required=True, ondelete="cascade", index=True)
    key_id = fields.Char(string="Key ID", required=True, readonly=True, index=True, copy=False)
    usage = fields.Selection(
        [("encrypt", "Data encryption"), ("sign", "Signing"), ("index", "Blind index")],
        required=True,
        readonly=True,
    )
    state = fields.Selection(
        [("active", "Active"), ("retired", "Retired")], default="active", required=True, readonly=True
    )
    algorithm = fields.Char(readonly=True)
    retired_date = fields.Datetime(readonly=True)
    wrapped_key = fields.Text(readonly=True, copy=False, help="The key, encrypted by the provider.")
    wrapped_by = fields.Char(
        readonly=True, help="Which key wrapped it: the local master key id, or the KeyManager key."
    )
    public_jwk = fields.Text(string="Public JWK", readonly=True)
    certificate = fields.Text(readonly=True)

    _sql_constraints = [
        ("key_id_unique", "unique(provider_id, key_id)", "A key id is unique within its provider."),
    ]

    # Protection of key material --------------------------------------------------------------
    @api.model_create_multi
    def create(self, vals_list):
        self._check_key_material_write(set().union(*vals_list))
        return super().create(vals_list)

    def write(self, vals):
        self._check_key_material_write(set(vals))
        return super().write(vals)

    def _check_key_material_write(self, field_names):
        if field_names & KEY_MATERIAL_FIELDS and not is_internal(self):
            raise AccessError(_("Key material is written only by the encryption provider itself."))

    @api.ondelete(at_uninstall=False)
    def _unlink_never(self):
        raise UserError(_("Keys are never deleted: data encrypted under them would be lost. Retire them."))

    def _wrap_purpose(self):
        return PURPOSES[self.usage]

    # Life cycle ------------------------------------------------------------------------------
    def _find(self, provider, key_id):
        """The key record ``key_id`` of ``provider`` (any usage), or an empty recordset."""
        return self.search([("provider_id", "=", provider.id), ("key_id", "=", key_id)], limit=1)

    def _active_key(self, provider, usage):
        """The active key of ``provider`` for ``usage``, made on first use."""
        return self._active_keys(provider).get(usage) or self._generate(provider, usage)

    def _active_keys(self, provider):
        """{usage: key} of ``provider``'s active keys (the newest of each usage), in one query: a
        request that encrypts usually indexes too."""
        keys = {}
        for key in self.search_fetch(
            [("provider_id", "=", provider.id), ("state", "=", "active")],
            ["usage", "state", "key_id"],
            order="id desc",
        ):
            keys.setdefault(key.usage, key)
        return keys

    def _generate(self, provider, usage):
        # Two workers making a provider's first key at once would make two: the row update
        # makes the second transaction wait, then fail to serialize, and Odoo retries it.
        self.env.cr.execute(
            "UPDATE g2p_encryption_provider SET write_date = now() WHERE id = %s", (provider.id,)
        )
        key_id = envelope.new_key_id()
        vals = {"provider_id": provider.id, "key_id": key_id, "usage": usage, "state": "active"}
        # A type that makes a key where it stays (an HSM's signing key) gives the record's values.
        made = provider._optional_dispatch("_generate_key", None, usage)
        if made is not None:
            return internal(self).create(dict(vals, **made))
        if usage == "sign":
            signing_key = jwk.SigningKey.generate(
                provider.signing_algorithm, common_name=f"g2p_encryption {provider.name}"
            )
            # The signing key's id is its RFC 7638 thumbprint, the JWS ``kid``.
            key_id = vals["key_id"] = signing_key.kid
            secret = signing_key.private_pem()
            vals.update(
                algorithm=signing_key.alg,
                certificate=signing_key.certificate_pem,
                public_jwk=json.dumps(signing_key.public_jwk()),
            )
        else:
            secret = envelope.new_data_key()
            vals["algorithm"] = "XChaCha20-Poly1305" if usage == "encrypt" else "HS256"
        vals["wrapped_key"], vals["wrapped_by"] = provider._wrap_key(key_id, secret, PURPOSES[usage])
        return internal(self).create(vals)

    def _signing_jwks(self, provider):
        keys = self.search([("provider_id", "=", provider.id), ("usage", "=", "sign")], order="id")
        return jwk.public_jwks([json.loads(key.public_jwk) for key in keys if key.public_jwk])
