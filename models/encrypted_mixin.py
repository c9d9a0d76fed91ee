# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Transparent encryption of chosen fields.

A model inherits ``g2p.encrypted.mixin`` and names its fields in ``_encrypted_fields``. The
principle that keeps plaintext out of the database: **the ORM never holds plaintext of an
encrypted record**. Values are encrypted in ``create``/``write`` before they reach the ORM, so the
columns, the cache, stored computed fields (``complete_name``...), mail tracking and logs only
ever see ciphertext. Plaintext exists only on the way out (``_read_format``, which serves
``read``, ``search_read``, ``web_read`` and ``web_search_read``, and exports), and only for
members of Crypto Admin while "Decrypt registry" is on; every such read writes one audit row.

Each ciphertext carries its key id and is bound (AAD) to model and field. Searches on an
encrypted field never match ciphertext: ``=`` and ``in`` use a blind index for searchable
fields, anything else raises, or, where the model also holds unencrypted records, excludes the
encrypted ones.
"""

import logging

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.osv import expression

from ..core import blind_index
from ..core.errors import RemoteServiceError

_logger = logging.getLogger(__name__)

MASK = "[encrypted]"
UNREADABLE = "[unreadable]"
# Context key under which this module writes the columns only it may write.
WRITE_MARKER = "g2p_encrypted_write"
INDEXED_OPERATORS = ("=", "in")
PARAM_ENCRYPT = "g2p_encryption.encrypt_registry"
PARAM_DECRYPT = "g2p_encryption.decrypt_registry"


class EncryptedMixin(models.AbstractModel):
    _name = "g2p.encrypted.mixin"
    _description = "Encrypted Fields"

    # Names of the encrypted fields and of those that get a blind index (class attributes; a
    # model may compute them instead by overriding the two getters below).
    _encrypted_fields = ()
    _encrypted_searchable_fields = ()

    is_encrypted = fields.Boolean(
        string="Encrypted",
        readonly=True,
        copy=False,
        index=True,
        help="The encrypted fields of this record hold ciphertext.",
    )

    # ------------------------------------------------------------------------------------------
    # Configuration hooks
    # ------------------------------------------------------------------------------------------
    @api.model
    def _get_encrypted_fields(self):
        return tuple(self._encrypted_fields)

    @api.model
    def _get_searchable_fields(self):
        return tuple(f for f in self._encrypted_searchable_fields if f in self._get_encrypted_fields())

    @api.model
    def _encryption_provider(self):
        return self.env["g2p.encryption.provider"]._get_registry_provider()

    @api.model
    def _encryption_enabled(self):
        """Whether new values of eligible records are encrypted ("Encrypt registry")."""
        return bool(self.env["ir.config_parameter"].sudo().get_param(PARAM_ENCRYPT))

    @api.model
    def _vals_are_encryptable(self, vals):
        """Whether a record created with ``vals`` is one whose fields are encrypted."""
        return True

    def _filter_encryptable(self):
        """The records of ``self`` whose fields are to be encrypted."""
        return self

    @api.model
    def _encryptable_domain(self):
        """Domain of the records whose fields are to be encrypted (for the batch job)."""
        return []

    @api.model
    def _can_read_plaintext(self):
        """Plaintext reaches members of Crypto Admin, and only while "Decrypt registry" is on."""
        return bool(
            self.env["ir.config_parameter"].sudo().get_param(PARAM_DECRYPT)
        ) and self.env.user.has_group("g2p_encryption.crypto_admin")

    @api.model
    def _encrypted_search_is_strict(self, domain):
        """Whether an unsupported search on an encrypted field raises (rather than leaving the
        encrypted records out). True for models whose records are all encrypted."""
        return True

    @api.model
    def _field_aad(self, field_name):
        return f"{self._name}|{field_name}".encode()

    # ------------------------------------------------------------------------------------------
    # Writing
    # ------------------------------------------------------------------------------------------
    @api.model_create_multi
    def create(self, vals_list):
        self._check_protected_write(set().union(*vals_list) if vals_list else set())
        encrypted_fields = self._get_encrypted_fields()
        if not encrypted_fields or not self._encryption_enabled():
            return super().create(vals_list)
        to_encrypt = [self._vals_are_encryptable(vals) for vals in vals_list]
        if not any(to_encrypt):
            return super().create(vals_list)
        # One provider batch per field for all the records created.
        plaintexts = {
            name: [vals.get(name) for vals, encrypt in zip(vals_list, to_encrypt, strict=True) if encrypt]
            for name in encrypted_fields
        }
        encrypted = self._encrypt_columns(self._encryption_provider(), plaintexts)
        new_vals_list, index_values, position = [], [], 0
        for vals, encrypt in zip(vals_list, to_encrypt, strict=True):
            vals = dict(vals)
            if encrypt:
                given = [name for name in encrypted_fields if name in vals]
                vals.update({name: encrypted[name][position] for name in given}, is_encrypted=True)
                index_values.append({name: plaintexts[name][position] for name in given})
                position += 1
            new_vals_list.append(vals)
        records = super(EncryptedMixin, self.with_context(**{WRITE_MARKER: True})).create(new_vals_list)
        records = records.with_env(self.env)
        encrypted_records = records.filtered("is_encrypted")
        encrypted_records._update_blind_index(dict(zip(encrypted_records.ids, index_values, strict=True)))
        return records

    def write(self, vals):
        self._check_protected_write(set(vals))
        encrypted_fields = set(self._get_encrypted_fields()) & set(vals)
        if not encrypted_fields:
            return super().write(vals)
        encrypted_records = self.filtered("is_encrypted")
        plain_records = self - encrypted_records
        if self._encryption_enabled():
            # Records that qualify but still hold plaintext are converted first, so that the
            # values written below are tracked as ciphertext, never as plaintext.
            to_convert = plain_records._filter_encryptable()
            if to_convert:
                to_convert._encrypt_existing()
                encrypted_records |= to_convert
                plain_records -= to_convert
        if plain_records:
            super(EncryptedMixin, plain_records).write(vals)
        if encrypted_records:
            encrypted_records._write_encrypted(vals, encrypted_fields)
        return True

    def _write_encrypted(self, vals, encrypted_fields):
        """Write ``vals`` on encrypted records: one encryption per value for the whole batch."""
        provider = self._encryption_provider()
        names = sorted(encrypted_fields)
        encrypted = self._encrypt_columns(provider, {name: [vals[name]] for name in names})
        encrypted_vals = dict(vals, **{name: encrypted[name][0] for name in names})
        result = super(EncryptedMixin, self.with_context(**{WRITE_MARKER: True})).write(encrypted_vals)
        self._update_blind_index({record.id: {name: vals[name] for name in names} for record in self})
        return result

    def _encrypt_existing(self):
        """Encrypt the plaintext held by ``self`` (records not yet encrypted). No tracking: the
        old plaintext must not be copied into tracking values."""
        records = self.filtered(lambda record: not record.is_encrypted)
        if not records:
            return records
        names = self._get_encrypted_fields()
        records._store_encrypted({name: [record[name] for record in records] for name in names})
        return records

    def _store_encrypted(self, plaintexts):
        """Encrypt {field: [one value per record of ``self``]} and store it, marking the records
        encrypted. Not tracked: the values replace plaintext (or legacy data) that must not be
        copied into tracking values."""
        names = list(plaintexts)
        encrypted = self._encrypt_columns(self._encryption_provider(), plaintexts)
        writer = self.with_context(
            tracking_disable=True, mail_notrack=True, mail_create_nolog=True, **{WRITE_MARKER: True}
        )
        for index, record in enumerate(writer):
            values = {name: encrypted[name][index] for name in names}
            values["is_encrypted"] = True
            super(EncryptedMixin, record).write(values)
        self._update_blind_index(
            {record.id: {name: plaintexts[name][i] for name in names} for i, record in enumerate(self)}
        )
        return True

    def _reencrypt(self):
        """Re-encrypt, under the active data key, the values of ``self`` under older keys."""
        provider = self._encryption_provider()
        active_key_id = provider._active_data_key()[0]
        updates = {}
        for name in self._get_encrypted_fields():
            stale = [
                (record.id, record[name])
                for record in self
                if record[name] and provider._is_stale_ciphertext(record[name], active_key_id)
            ]
            if not stale:
                continue
            aad = self._field_aad(name)
            plaintexts = provider.decrypt_values([token for _id, token in stale], aad)
            tokens = provider.encrypt_values(plaintexts, aad)
            for (record_id, _token), token in zip(stale, tokens, strict=True):
                updates.setdefault(record_id, {})[name] = token
        writer = self.with_context(tracking_disable=True, mail_notrack=True, **{WRITE_MARKER: True})
        for record_id, values in updates.items():
            super(EncryptedMixin, writer.browse(record_id)).write(values)
        return len(updates)

    def _encrypt_columns(self, provider, plaintexts):
        """{field: [values]} -> {field: [ciphertexts]}; one provider batch per field.

        Empty values stay empty, and values that already are ciphertext of the provider (copied
        from another encrypted record by the ORM's own syncs) are kept as they are.
        """
        result = {}
        for name, values in plaintexts.items():
            positions = [i for i, value in enumerate(values) if value and not provider.is_ciphertext(value)]
            out = list(values)
            if positions:
                tokens = provider.encrypt_values(
                    [str(values[i]).encode() for i in positions], self._field_aad(name)
                )
                for i, token in zip(positions, tokens, strict=True):
                    out[i] = token
            result[name] = out
        return result

    def _check_protected_write(self, field_names):
        if "is_encrypted" in field_names and not self.env.context.get(WRITE_MARKER):
            raise AccessError(_("Only the encryption module sets whether a record is encrypted."))

    # ------------------------------------------------------------------------------------------
    # Blind index
    # ------------------------------------------------------------------------------------------
    def _update_blind_index(self, plaintexts_by_id):
        """Store the blind index of the searchable fields given in {record id: {field: value}}."""
        searchable = self._get_searchable_fields()
        if not searchable or not self:
            return
        provider = self._encryption_provider()
        index_key = provider._blind_index_key()
        rows = []
        for record_id, values in plaintexts_by_id.items():
            for name in searchable:
                if name in values:
                    value = values[name]
                    if value and provider.is_ciphertext(value):
                        # Copied as ciphertext (a duplicated record): index what it holds.
                        value = provider.decrypt_values([value], self._field_aad(name))[0].decode()
                    digest = (
                        blind_index.blind_index(index_key, name, value, _index_kind(name)) if value else None
                    )
                    rows.append((record_id, name, digest))
        self.env["g2p.blind.index"]._store(self._name, rows)

    @api.model
    def _blind_index_domain(self, field_name, operator, value):
        values = value if operator == "in" else [value]
        values = [v for v in values if v]
        provider = self._encryption_provider()
        index_key = provider._blind_index_key()
        digests = [blind_index.blind_index(index_key, field_name, v, _index_kind(field_name)) for v in values]
        ids = self.env["g2p.blind.index"]._lookup(self._name, field_name, digests)
        return [("id", "in", ids)]

    # ------------------------------------------------------------------------------------------
    # Searching
    # ------------------------------------------------------------------------------------------
    @api.model
    def _search(self, domain, offset=0, limit=None, order=None, access_rights_uid=None):
        encrypted_fields = set(self._get_encrypted_fields())
        if encrypted_fields and self._encryption_in_use():
            self._check_encrypted_order(order, encrypted_fields)
            domain = self._rewrite_encrypted_domain(domain, encrypted_fields)
        return super()._search(domain, offset, limit, order, access_rights_uid)

    @api.model
    def _encryption_in_use(self):
        # Cheap: an indexed boolean, asked once per search of a model that has encrypted fields.
        return bool(self.sudo().with_context(active_test=False)._search_is_encrypted_exists())

    @api.model
    def _search_is_encrypted_exists(self):
        self.env.cr.execute(
            f'SELECT 1 FROM "{self._table}" WHERE is_encrypted LIMIT 1'  # pylint: disable=sql-injection
        )
        return self.env.cr.fetchone()

    @api.model
    def _rewrite_encrypted_domain(self, domain, encrypted_fields):
        domain = expression.normalize_domain(domain or [])
        strict = None
        rewritten = []
        for leaf in domain:
            if not expression.is_leaf(leaf) or leaf in (expression.TRUE_LEAF, expression.FALSE_LEAF):
                rewritten.append(leaf)
                continue
            left, operator, right = leaf
            field_name = left.split(".", 1)[0] if isinstance(left, str) else left
            if field_name not in encrypted_fields or left != field_name or right is False:
                rewritten.append(leaf)  # paths go to the co-model's own _search; False is NULL
                continue
            if operator in INDEXED_OPERATORS and field_name in self._get_searchable_fields():
                rewritten.extend(
                    ["|", "&", ("is_encrypted", "=", False), leaf]
                    + self._blind_index_domain(field_name, operator, right)
                )
                continue
            if strict is None:
                strict = self._encrypted_search_is_strict(domain)
            if strict:
                raise UserError(self._unsupported_search_message(field_name, operator))
            rewritten.extend(["&", ("is_encrypted", "=", False), leaf])
        return rewritten

    @api.model
    def _unsupported_search_message(self, field_name, operator):
        label = self._fields[field_name].string
        if field_name in self._get_searchable_fields():
            return _(
                "%(field)s is encrypted: it can be searched only for an exact value (= or in), "
                "not with '%(operator)s'.",
                field=label,
                operator=operator,
            )
        return _(
            "%(field)s is encrypted and cannot be searched, sorted or grouped. Search on a field "
            "marked searchable on the encryption provider (exact value only).",
            field=label,
        )

    @api.model
    def _check_encrypted_order(self, order, encrypted_fields):
        for part in (order or "").split(","):
            name = part.strip().split(" ")[0].split(".")[0].strip('"')
            if name in encrypted_fields:
                raise UserError(self._unsupported_search_message(name, "order"))

    @api.model
    def _read_group(self, domain, groupby=(), aggregates=(), having=(), offset=0, limit=None, order=None):
        encrypted_fields = set(self._get_encrypted_fields())
        for spec in groupby:
            name = spec.split(":")[0].split(".")[0]
            if name in encrypted_fields and self._encryption_in_use():
                raise UserError(self._unsupported_search_message(name, "group by"))
        return super()._read_group(domain, groupby, aggregates, having, offset, limit, order)

    # ------------------------------------------------------------------------------------------
    # Reading
    # ------------------------------------------------------------------------------------------
    def _read_format(self, fnames, load="_classic_read"):
        result = super()._read_format(fnames, load)
        encrypted_fields = self._get_encrypted_fields()
        wanted = [name for name in fnames if name in encrypted_fields]
        if not result or not (wanted or "display_name" in fnames):
            return result
        records = self.browse([vals["id"] for vals in result])
        encrypted_ids = set(records.filtered("is_encrypted").ids)
        if not encrypted_ids:
            return result
        rows = [vals for vals in result if vals["id"] in encrypted_ids]
        if not self._can_read_plaintext():
            for vals in rows:
                for name in wanted:
                    if vals.get(name):
                        vals[name] = MASK
            return result
        plaintext = self.browse([vals["id"] for vals in rows])._decrypt_fields(
            set(wanted) | ({"name"} & set(encrypted_fields) if "display_name" in fnames else set())
        )
        for vals in rows:
            values = plaintext[vals["id"]]
            for name in wanted:
                vals[name] = values.get(name) or vals[name]
            if "display_name" in vals:
                vals["display_name"] = self.browse(vals["id"])._plaintext_display_name(values)
        self.env["g2p.decryption.log"]._log_read(self, [vals["id"] for vals in rows], wanted)
        return result

    def _plaintext_display_name(self, values):
        """Display name of an encrypted record from its decrypted values."""
        return values.get("name") or MASK

    def _decrypt_fields(self, names):
        """{record id: {field: plaintext}} for the encrypted records of ``self``.

        One provider batch per field. A value that does not decrypt (tampered, moved) is shown as
        unreadable and logged (record and field, never the value) rather than breaking the whole
        list; a failure of the remote service fails the request with its cause.
        """
        provider = self._encryption_provider()
        result = {record.id: {} for record in self}
        for name in names:
            pairs = [(record.id, record[name]) for record in self if record[name]]
            if not pairs:
                continue
            aad = self._field_aad(name)
            try:
                values = [v.decode() for v in provider.decrypt_values([t for _id, t in pairs], aad)]
            except UserError as error:
                if _is_remote_failure(error):
                    raise  # KeyManager or Keycloak failed: the request fails, naming the cause
                values = [
                    self._decrypt_one(provider, record_id, name, token, aad) for record_id, token in pairs
                ]
            for (record_id, _token), value in zip(pairs, values, strict=True):
                result[record_id][name] = value
        return result

    def _decrypt_one(self, provider, record_id, name, token, aad):
        try:
            return provider.decrypt_values([token], aad)[0].decode()
        except UserError as error:
            if _is_remote_failure(error):
                raise
            _logger.warning("%s(%s).%s does not decrypt: %s", self._name, record_id, name, error)
            return UNREADABLE

    def _export_rows(self, fields, *, _is_toplevel_call=True):
        columns = [
            (i, path[0])
            for i, path in enumerate(fields)
            if len(path) == 1 and path[0] in self._get_encrypted_fields()
        ]
        encrypted = self.filtered("is_encrypted") if columns and _is_toplevel_call else self.browse()
        if not encrypted:
            return super()._export_rows(fields, _is_toplevel_call=_is_toplevel_call)
        names = {name for _i, name in columns}
        if self._can_read_plaintext():
            plaintext = encrypted._decrypt_fields(names)
            self.env["g2p.decryption.log"]._log_read(self, encrypted.ids, sorted(names))
        else:
            plaintext = {record.id: dict.fromkeys(names, MASK) for record in encrypted}
        lines = []
        # One record at a time, so that each record's main line is known (x2many columns add lines).
        for record in self:
            record_lines = super(EncryptedMixin, record)._export_rows(fields, _is_toplevel_call=True)
            if record.id in plaintext and record_lines:
                for i, name in columns:
                    if record_lines[0][i]:
                        record_lines[0][i] = plaintext[record.id].get(name, MASK)
            lines.extend(record_lines)
        return lines

    def unlink(self):
        ids = self.ids
        result = super().unlink()
        self.env["g2p.blind.index"]._forget(self._name, ids)
        return result


def _is_remote_failure(error):
    """Whether ``error`` comes from a remote service rather than from the ciphertext itself."""
    return isinstance(error.__cause__, RemoteServiceError)


def _index_kind(field_name):
    if "email" in field_name:
        return "email"
    if "phone" in field_name or "mobile" in field_name:
        return "phone"
    return "text"
