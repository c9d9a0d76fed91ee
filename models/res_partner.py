# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Registrants (``res.partner`` with ``is_registrant``) encrypt the fields their provider names.

Companies and ordinary contacts are untouched. Stored values derived from an encrypted field
(``complete_name``, ``commercial_company_name``, the inline address that mail tracks) show the
mask instead of being computed from ciphertext.
"""

import base64
import json

from odoo import _, api, fields, models
from odoo.exceptions import UserError

from .encrypted_mixin import MASK

# Column in which OpenG2P's g2p_registry_encryption kept a JSON blob of the encrypted fields,
# encrypted by its (KeyManager, direct) provider; its columns held a placeholder.
OPENG2P_BLOB_COLUMN = "encrypted_val"


class ResPartner(models.Model):
    _name = "res.partner"
    _inherit = ["res.partner", "g2p.encrypted.mixin"]

    # OpenG2P's g2p_registry_base defines the same field; either definition serves.
    is_registrant = fields.Boolean(string="Registrant", index=True)

    # Configuration hooks of the mixin ----------------------------------------------------------
    @api.model
    def _get_encrypted_fields(self):
        return self._encryption_provider()._registrant_fields("encrypted", self._fields)

    @api.model
    def _get_searchable_fields(self):
        return self._encryption_provider()._registrant_fields("searchable", self._fields)

    @api.model
    def _vals_are_encryptable(self, vals):
        return bool(vals.get("is_registrant", self.env.context.get("default_is_registrant")))

    def _filter_encryptable(self):
        return self.filtered("is_registrant")

    @api.model
    def _encryptable_domain(self):
        return [("is_registrant", "=", True)]

    @api.model
    def _encrypted_search_is_strict(self, domain):
        # Ordinary contacts are searched by name and email all over Odoo (many2one completion,
        # the contacts app): there an unsupported condition leaves encrypted registrants out. A
        # search of registrants, though, would silently find nothing: it raises.
        return any(
            isinstance(leaf, list | tuple) and tuple(leaf) == ("is_registrant", "=", True) for leaf in domain
        )

    def write(self, vals):
        result = super().write(vals)
        if vals.get("is_registrant") and self._encryption_enabled():
            self.filtered(lambda partner: not partner.is_encrypted)._encrypt_existing()
        return result

    def copy(self, default=None):
        # The base appends " (copy)" to the name, which for an encrypted registrant would be
        # appended to the ciphertext: a duplicate keeps the (encrypted) name as it is.
        if self.is_encrypted and not (default or {}).get("name"):
            default = dict(default or {}, name=self.name)
        return super().copy(default)

    def update_address(self, vals):
        # The ORM copies address fields between parents and contacts with a bare write that
        # skips write overrides: encrypt them here for the encrypted contacts.
        encrypted = self.filtered("is_encrypted")
        plain = self - encrypted
        address_fields = set(self._address_fields()) & set(vals)
        encrypted_fields = set(self._get_encrypted_fields()) & address_fields
        if encrypted and encrypted_fields:
            provider = self._encryption_provider()
            columns = encrypted._encrypt_columns(provider, {name: [vals[name]] for name in encrypted_fields})
            super(ResPartner, encrypted).update_address(
                dict(vals, **{name: columns[name][0] for name in encrypted_fields})
            )
            encrypted._update_blind_index({p.id: {n: vals[n] for n in encrypted_fields} for p in encrypted})
        elif encrypted:
            super(ResPartner, encrypted).update_address(vals)
        if plain:
            return super(ResPartner, plain).update_address(vals)
        return None

    # Derived values never computed from ciphertext ---------------------------------------------
    @api.depends("is_encrypted")
    def _compute_display_name(self):
        result = super()._compute_display_name()
        for partner in self.filtered("is_encrypted"):
            partner.display_name = MASK
        return result

    @api.depends("is_encrypted", "parent_id.is_encrypted")
    def _compute_complete_name(self):
        return super()._compute_complete_name()

    def _get_complete_name(self):
        if self.is_encrypted:
            return MASK
        name = super()._get_complete_name()
        parent = self.sudo().parent_id
        if parent.is_encrypted and parent.name:
            name = name.replace(parent.name, MASK)
        return name

    @api.depends("commercial_partner_id.is_encrypted")
    def _compute_commercial_company_name(self):
        result = super()._compute_commercial_company_name()
        for partner in self:
            if partner.commercial_partner_id.is_encrypted and partner.commercial_company_name:
                partner.commercial_company_name = MASK
        return result

    def _display_address(self, without_company=False):
        if self.is_encrypted:
            return MASK
        return super()._display_address(without_company=without_company)

    # Migration from OpenG2P's g2p_registry_encryption ----------------------------------------
    @api.model
    def _openg2p_blob_ids(self, after_id, limit):
        """Ids of registrants that still hold an OpenG2P ``encrypted_val`` blob, in id order."""
        self.env.cr.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'res_partner' AND column_name = %s",
            (OPENG2P_BLOB_COLUMN,),
        )
        if not self.env.cr.fetchone():
            return []
        self.env.cr.execute(
            """SELECT id FROM res_partner WHERE encrypted_val IS NOT NULL AND id > %s
               ORDER BY id LIMIT %s""",
            (after_id, limit),
        )
        return [row[0] for row in self.env.cr.fetchall()]

    def _migrate_openg2p_blobs(self, legacy_provider):
        """Read the OpenG2P blobs of ``self`` with ``legacy_provider`` (KeyManager, direct mode,
        with the salt and aad OpenG2P's provider had) and store the values encrypted the way
        this module does; the blob is then cleared. Plaintext never reaches a column."""
        if not self:
            return
        self.flush_recordset()
        self.env.cr.execute("SELECT id, encrypted_val FROM res_partner WHERE id IN %s", (tuple(self.ids),))
        blobs = dict(self.env.cr.fetchall())
        names = self._get_encrypted_fields()
        records = self.browse([record_id for record_id in self.ids if blobs.get(record_id)])
        plaintexts = {name: [] for name in names}
        for record in records:
            # A Binary column stores its value base64-encoded.
            raw = base64.b64decode(bytes(blobs[record.id]))
            try:
                values = json.loads(legacy_provider.decrypt_data(raw).decode())
            except ValueError as error:
                raise UserError(
                    _(
                        "The OpenG2P value of registrant %(id)s is not readable: %(error)s",
                        id=record.id,
                        error=error,
                    )
                ) from error
            for name in names:
                plaintexts[name].append(values.get(name, False))
        records._store_encrypted(plaintexts)
        self.flush_recordset()
        self.env.cr.execute("UPDATE res_partner SET encrypted_val = NULL WHERE id IN %s", (tuple(self.ids),))
