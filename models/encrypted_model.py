# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Every model can have encrypted fields: set-up and storage (an extension of ``base``).

* **Set-up**: the fields declared encrypted (``g2p.encrypted.mixin`` in code, ``g2p.encrypted.field``
  for admins) become encrypted fields (``encrypted_field.py``) when the registry is set up; a
  wrong declaration in code fails there, not at run time.
* **Storage**: ``_create`` and ``_write``, the two places where the ORM writes columns, store the
  values of records in scope as tokens bound to model, field and record (``_create`` reserves the
  ids first, so the row is inserted already encrypted), and keep the blind indexes up to date.
* **Search** on encrypted fields is in ``encrypted_search.py``, another extension of ``base``.

Models without encrypted fields pay one dictionary test per call.
"""

import logging

from odoo import api, models
from odoo.tools import SQL, split_every

from ..core import blind_index, monitoring
from .encrypted_field import (
    EncryptedField,
    _Encrypting,
    check_not_masked,
    column_plaintext,
    field_aad,
    is_ciphertext,
)
from .encrypted_field_config import FieldSpec, field_problem, load_specs
from .encryption_exits import PARAM_ENCRYPT, may_be_in_scope

_logger = logging.getLogger(__name__)

_ENCRYPTED_CLASSES = {}
UPDATE_ROWS = 10_000  # rows per UPDATE ... FROM unnest(...)


def encrypted_class(field_class):
    """The encrypted variant of a field class (``EncryptedChar`` for ``Char``...), made once."""
    cls = _ENCRYPTED_CLASSES.get(field_class)
    if cls is None:
        cls = type(f"Encrypted{field_class.__name__}", (EncryptedField, field_class), {})
        _ENCRYPTED_CLASSES[field_class] = cls
    return cls


class EncryptedModel(models.AbstractModel):
    _inherit = "base"

    # {field name: FieldSpec} of the fields stored encrypted, and the field path that tells which
    # records are in scope; set on each registry class at set-up.
    _g2p_encrypted = {}
    _g2p_scope_path = None

    # Set-up ------------------------------------------------------------------------------------
    @api.model
    def _prepare_setup(self):
        result = super()._prepare_setup()
        # The list of encrypted fields is read again at each set-up of the registry.
        self.env.registry.__dict__.pop("g2p_specs", None)
        self.env.registry.__dict__.pop("g2p_exit_derived", None)
        return result

    @api.model
    def _setup_base(self):
        result = super()._setup_base()
        cls = self.env.registry[self._name]
        specs = self._g2p_specs()
        cls._g2p_encrypted = {}
        cls._g2p_scope_path = None
        for name, spec in specs.items():
            field = cls._fields.get(name)
            problem = field_problem(self, name)
            if problem:
                if name in getattr(cls, "_encrypted_fields", {}):
                    raise ValueError(problem)  # a declaration in code is a programming error
                if field is not None:
                    _logger.error("Encrypted field list: %s Not encrypted.", problem)
                continue
            if not isinstance(field, EncryptedField):
                definitions = [
                    definition
                    for klass in reversed(cls._model_classes)
                    if isinstance(klass, models.MetaModel)
                    for definition in klass._field_definitions
                    if definition.name == name
                ]
                field = encrypted_class(type(field))(_base_fields=definitions)
                self._add_field(name, field)
                field.prepare_setup()
            field.g2p_encrypted = True
            field.g2p_index_kind = spec.index_kind
            field.g2p_names_record = spec.names_record
            cls._g2p_encrypted[name] = spec
            cls._g2p_scope_path = cls._g2p_scope_path or spec.scope
        return result

    @api.model
    def _g2p_specs(self):
        """{field: FieldSpec} of this model: its declarations in code and the admins' list."""
        registry = self.env.registry
        all_specs = registry.__dict__.get("g2p_specs")
        if all_specs is None:
            all_specs = registry.g2p_specs = load_specs(self.env.cr)
        specs = dict(all_specs.get(self._name, {}))
        cls = registry[self._name]
        declared = getattr(cls, "_encrypted_fields", None) or {}
        for name, kind in dict(declared).items():
            names_record = name in (cls._rec_name, "name")
            scope = getattr(cls, "_encrypted_scope", None)
            specs[name] = FieldSpec(
                kind, names_record, scope, blind_index.DIGEST_BITS, (blind_index.DIGEST_BITS,)
            )
        return specs

    # Storage -------------------------------------------------------------------------------------
    @api.model
    def _create(self, data_list):
        specs = self._g2p_encrypted
        if not specs:
            return super()._create(data_list)
        filled = []  # (stored values, {field: plaintext}) of the rows that give encrypted fields
        for data in data_list:
            stored = data["stored"]
            given = {name: stored[name] for name in specs if stored.get(name)}
            for name, value in given.items():
                check_not_masked(self._fields[name], value)
            if given:
                filled.append((stored, given))
        in_scope = (
            self._g2p_rows_in_scope([stored for stored, _given in filled])
            if filled and self._g2p_encrypting()
            else [False] * len(filled)
        )
        pending = []  # the rows inserted encrypted, with the plaintext of their encrypted fields
        for (stored, given), encrypt in zip(filled, in_scope, strict=True):
            if not (encrypt or any(map(is_ciphertext, given.values()))):
                continue  # Odoo converts the values of the others
            plaintexts = {}
            for name, value in given.items():
                # What the column would hold in the clear is what is encrypted: HTML sanitised, a
                # character field cut to its size.
                plaintext = column_plaintext(self._fields[name], value, self, stored)
                if plaintext:
                    plaintexts[name] = plaintext
                else:
                    stored[name] = plaintext
            if plaintexts:
                pending.append((stored, plaintexts))
        if pending:
            # The ids are reserved first, so that each row is inserted already encrypted and bound
            # to its record: no plaintext reaches the table, not even within the transaction.
            self.env.cr.execute(
                SQL(
                    "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                    self._table,
                    len(pending),
                )
            )
            ids = [row[0] for row in self.env.cr.fetchall()]
            encrypted = self._g2p_encrypt_rows(
                [(record_id, given) for record_id, (_stored, given) in zip(ids, pending, strict=True)]
            )
            for record_id, (stored, given) in zip(ids, pending, strict=True):
                stored["id"] = record_id
                for name, value in given.items():
                    stored[name] = _Encrypting(value, encrypted[record_id][name])
            given_by_id = {record_id: given for record_id, (_s, given) in zip(ids, pending, strict=True)}
            self.browse(ids)._g2p_update_index(given_by_id)
        return super()._create(data_list)

    def _write(self, vals):
        specs = self._g2p_encrypted
        names = [name for name in vals if name in specs] if specs else ()
        if not names or not self:
            return super()._write(vals)
        values = {name: vals[name] for name in names}
        for name, value in values.items():
            check_not_masked(self._fields[name], value)
        others = {name: value for name, value in vals.items() if name not in values}
        forced = any(map(is_ciphertext, values.values()))  # never stored as is
        if forced:
            encrypted = self
        elif self._g2p_encrypting():
            column = self._g2p_scope_in_table(vals, others)
            if column:
                return self._g2p_write_where_in_scope(vals, values, others, column)
            scope = self._fields.get((self._g2p_scope_path or "").partition(".")[0])
            if scope is not None and scope.store and any(self.env.cache.get_missing_ids(self, scope)):
                self.fetch([scope.name])  # that column only, not every prefetched one
            encrypted = self._g2p_in_scope()
        else:
            encrypted = self.browse()
        plain = self - encrypted
        if plain:
            super(EncryptedModel, plain)._write(vals)
        if not encrypted:
            return None
        values_by_id = {record_id: values for record_id in encrypted._ids}
        pending = self.env.transaction.__dict__.get("g2p_pending_values")
        if pending is not None and len(encrypted) == 1 and all(map(self._g2p_row_column, others)):
            # A flush writes records one at a time when their values differ (computed fields):
            # they are encrypted and stored when the flush ends (``_flush``), the model's rows
            # in one batch and one UPDATE, instead of one provider call and one UPDATE each.
            row_values, row_others = pending.setdefault(self._name, {}).setdefault(encrypted.id, ({}, {}))
            row_values.update(values)
            row_others.update(others)
            return None
        tokens = encrypted._g2p_encrypt_rows(list(values_by_id.items()))
        if len(encrypted) == 1:
            # A flush writes records one at a time when their values differ: the tokens go into
            # the same UPDATE as the other columns, as the plaintext would without encryption.
            super(EncryptedModel, encrypted)._write(dict(others, **tokens[encrypted.id]))
        elif all(self._g2p_plain_column(name) for name in others):
            # One value per record: one UPDATE ... FROM (VALUES ...) with the other columns too.
            encrypted._g2p_update_columns(tokens, others)
        else:
            super(EncryptedModel, encrypted)._write(others)
            encrypted._g2p_update_columns(tokens)
        encrypted._g2p_update_index(values_by_id)
        return None

    def _g2p_scope_in_table(self, vals, others):
        """The scope column of ``self`` when the UPDATE of the tokens can test it, else None.

        Several records whose scope is a stored flag of their own, missing from the cache (else
        it is read there, for nothing), neither written by this ``_write`` (``vals``) nor waiting
        to be recomputed: the table holds it as it is now. (A value waiting for the flush is in
        the cache; the flush calls ``_write`` with it in ``vals``.) The other values are plain
        columns, and the values are encrypted here: not one remote call each (KeyManager's direct
        mode) for records that may be out of scope."""
        column = self._g2p_scope_column()
        if not column or column in vals or len(self) < 2 or not all(map(self._g2p_plain_column, others)):
            return None
        field = self._fields[column]
        if not any(self.env.cache.get_missing_ids(self, field)):
            return None
        if not set(self.env.records_to_compute(field)._ids).isdisjoint(self._ids):
            return None
        if self.env["g2p.encryption.provider"]._get_registry_provider()._encrypts_values_itself():
            return None
        return column

    def _g2p_write_where_in_scope(self, vals, values, others, column):
        """``_write`` of records whose scope is in the table only: the UPDATE of the tokens tests
        the scope column itself, instead of a read of the same rows first (they are wide: that
        read costs a tenth of the write of a thousand). The records it leaves are out of scope,
        written in the clear; their tokens are dropped unused (the metrics count them: they were
        encrypted)."""
        tokens = self._g2p_encrypt_rows(list(dict.fromkeys(self._ids, values).items()))
        encrypted = self.browse(self._g2p_update_columns(tokens, others, scope_column=column))
        plain = self - encrypted
        if plain:
            super(EncryptedModel, plain)._write(vals)
        encrypted._g2p_update_index(dict.fromkeys(encrypted._ids, values))
        return None

    def _g2p_store(self, values_by_id):
        """Store {record id: {field: plaintext}} encrypted, with their blind indexes (SQL, no
        ORM write: no tracking, no recomputation; the caller keeps the cache right)."""
        tokens = self._g2p_encrypt_rows(list(values_by_id.items()))
        self._g2p_update_columns(tokens)
        self._g2p_update_index(values_by_id)

    def _g2p_plain_column(self, name):
        """Whether ``_write`` would store ``name`` as a plain ``column = value`` (not translated,
        not the parent of a parent store)."""
        field = self._fields.get(name)
        return bool(
            field is not None
            and field.store
            and field.column_type
            and not field.translate
            and not (self._parent_store and name == self._parent_name)
        )

    def _g2p_row_column(self, name):
        """Whether the values of column ``name``, one per record, can go into
        ``_g2p_update_columns`` as an array of the column's type (a plain column, not JSON)."""
        return self._g2p_plain_column(name) and self._fields[name].column_type[0] != "jsonb"

    def _g2p_update_columns(self, tokens_by_id, constants=None, columns_by_id=None, scope_column=None):
        """Write {record id: {column: token}}: one UPDATE per set of columns (usually one for the
        whole batch). ``constants`` ({column: value}, the same for every record) go into the same
        UPDATE, with ``write_uid``/``write_date`` as ``_write`` sets them; None: tokens only.
        ``columns_by_id`` ({record id: {column: value}}): plain columns (``_g2p_row_column``)
        whose values differ per record, in the same UPDATE too. ``scope_column``: a boolean column
        (written by none of these); the tokens go only into the rows where it is true, the others
        keep theirs. Returns the ids of the rows that took the tokens (None without it)."""

        def kept(name, value):  # as ``_write``: empty log-access values are not written
            return not (self._log_access and name in models.LOG_ACCESS_COLUMNS and not value)

        shared = {}
        if constants is not None:
            constants = dict(constants)
            if self._log_access:
                constants.setdefault("write_uid", self.env.uid)
                constants.setdefault("write_date", self.env.cr.now())
            shared = {
                name: SQL("%s = %s", SQL.identifier(name), value)
                for name, value in sorted(constants.items())
                if kept(name, value)
            }
        groups, rows = {}, {}
        for record_id, tokens in tokens_by_id.items():
            row = {
                name: value
                for name, value in (columns_by_id or {}).get(record_id, {}).items()
                if kept(name, value)
            }
            rows[record_id] = row
            if tokens or row:
                groups.setdefault((tuple(sorted(tokens)), tuple(sorted(row))), []).append(record_id)
        if scope_column:
            assert scope_column not in shared and not any(scope_column in row for row in rows.values())
            # Tested in the assignments, not in the WHERE clause: a condition there changes the
            # estimate of the join of the rows to the values, and with statistics that see few
            # rows in scope PostgreSQL joins them in a nested loop (a thousand times slower).
            scope = SQL("t.%s", SQL.identifier(scope_column))
            returning = SQL(" RETURNING t.id, %s", scope)
        else:
            returning = SQL()
        written = []
        for (token_names, row_names), ids in groups.items():
            names = token_names + row_names
            # Columns as arrays, unnested by PostgreSQL: one parameter per column, however many rows.
            assignments = []
            for name in names:
                column = SQL.identifier(name)
                if scope_column and name in token_names:
                    assignments.append(
                        SQL("%s = CASE WHEN %s THEN v.%s ELSE t.%s END", column, scope, column, column)
                    )
                else:
                    assignments.append(SQL("%s = v.%s", column, column))
            assignments += [assignment for name, assignment in shared.items() if name not in row_names]
            for chunk in split_every(UPDATE_ROWS, ids):
                # One array literal: psycopg2 would adapt a list of ids one id at a time, twice.
                chunk_ids = SQL("%s::int[]", "{" + ",".join(map(str, chunk)) + "}")
                columns = [chunk_ids]
                for name in token_names:
                    tokens = [tokens_by_id[record_id].get(name) for record_id in chunk]
                    columns.append(SQL("%s::text[]", tokens))
                for name in row_names:
                    values = [rows[record_id][name] for record_id in chunk]
                    columns.append(SQL(f"%s::{self._fields[name].column_type[1]}[]", values))
                # The ids again, as a condition on the table: PostgreSQL then finds the rows by
                # their key, as for Odoo's ``UPDATE ... WHERE id IN``. Without it, with statistics
                # older than the table's last inserts (after an import), it joins the whole table.
                self.env.cr.execute(
                    SQL(
                        "UPDATE %s AS t SET %s FROM unnest(%s) AS v(id, %s)"
                        " WHERE t.id = v.id AND t.id = ANY(%s)%s",
                        SQL.identifier(self._table),
                        SQL(", ").join(assignments),
                        SQL(", ").join(columns),
                        SQL(", ").join(map(SQL.identifier, names)),
                        chunk_ids,
                        returning,
                    )
                )
                if scope_column:
                    written += [record_id for record_id, in_scope in self.env.cr.fetchall() if in_scope]
        return written if scope_column else None

    def _g2p_stored_rows(self, names, flush=True):
        """Rows ``(id, value of each of names...)`` of ``self`` as stored (read with SQL: tokens
        of encrypted fields, not plaintext), after flushing those fields unless ``flush=False``."""
        if flush:
            self.flush_recordset(names)
        self.env.cr.execute(
            SQL(
                "SELECT id, %s FROM %s WHERE id IN %s",
                SQL(", ").join(map(SQL.identifier, names)),
                SQL.identifier(self._table),
                tuple(self.ids) or (0,),
            )
        )
        return self.env.cr.fetchall()

    def _g2p_encrypt_in_place(self, flush=True):
        """Encrypt the values of ``self`` still stored in the clear (read and written with SQL: the
        values do not change, so nothing is tracked, recomputed or validated). Returns the number
        of records that had some. ``flush=False`` inside ``_write``, where the cache is current."""
        names = [name for name in self._g2p_encrypted if self._fields[name].store]
        if not names or not self:
            return 0
        values_by_id = {}
        for row in self._g2p_stored_rows(names, flush=flush):
            plain = {
                name: value
                for name, value in zip(names, row[1:], strict=True)
                if value and not is_ciphertext(value)
            }
            if plain:
                values_by_id[row[0]] = plain
        if values_by_id:
            self.browse(list(values_by_id))._g2p_store(values_by_id)
        return len(values_by_id)

    @api.model
    def _g2p_encrypt_rows(self, rows):
        """{record id: {field: token or empty}} of [(record id, {field: plaintext})].

        One provider batch for all the fields of all the rows (one key look-up); empty values
        stay empty (NULL)."""
        result = {}
        filled_ids, filled_names, plaintexts, aads = [], [], [], []
        prefixes = {}  # field -> b"model|field|" (encrypted_field.field_aad, made once per field)
        for record_id, values in rows:
            tokens = result[record_id] = {}
            suffix = str(record_id).encode()
            for name, value in values.items():
                if value:
                    prefix = prefixes.get(name)
                    if prefix is None:
                        prefix = prefixes[name] = field_aad(self._fields[name], "")
                    filled_ids.append(record_id)
                    filled_names.append(name)
                    plaintexts.append(str(value).encode())
                    aads.append(prefix + suffix)
                else:
                    tokens[name] = None
        if plaintexts:
            provider = self.env["g2p.encryption.provider"]._get_registry_provider()
            for record_id, name, token in zip(
                filled_ids, filled_names, provider._encrypt_values(plaintexts, aads), strict=True
            ):
                result[record_id][name] = token
            monitoring.count_values("encrypt", self._name, len(plaintexts))
        return result

    def _g2p_update_index(self, values_by_id):
        """Blind indexes of the searchable fields given in {record id: {field: plaintext}}.

        Inside a flush, the rows wait for the end of the flush and go in one batch (``_flush``):
        the index is read by searches only, and a search flushes first."""
        searchable = {name: spec.index_kind for name, spec in self._g2p_encrypted.items() if spec.index_kind}
        rows = [
            (record_id, name, searchable[name], value, self._g2p_encrypted[name].index_bits)
            for record_id, values in values_by_id.items()
            for name, value in values.items()
            if name in searchable
        ]
        if not rows:
            return
        deferred = self.env.transaction.__dict__.get("g2p_index_rows")
        if deferred is not None:
            deferred.setdefault(self._name, []).extend(rows)
        else:
            self.env["g2p.blind.index"]._store(self._name, rows)

    def _flush(self, fnames=None):
        # What a flush writes one record at a time (``_write``) and the blind-index rows of the
        # records it writes (``_g2p_update_index``) are stored in batches at its end; a flush
        # inside a flush leaves them to the outer one.
        transaction = self.env.transaction
        if transaction.__dict__.get("g2p_index_rows") is not None:
            return super()._flush(fnames)
        transaction.g2p_index_rows = deferred = {}
        transaction.g2p_pending_values = pending = {}
        try:
            result = super()._flush(fnames)
            transaction.g2p_pending_values = None
            for model_name, rows in pending.items():
                records = self.env[model_name].browse(list(rows))
                values_by_id = {record_id: values for record_id, (values, _others) in rows.items()}
                tokens = records._g2p_encrypt_rows(list(values_by_id.items()))
                records._g2p_update_columns(
                    tokens, {}, {record_id: others for record_id, (_values, others) in rows.items()}
                )
                records._g2p_update_index(values_by_id)
        finally:
            transaction.g2p_index_rows = None
            transaction.g2p_pending_values = None
        index = self.env["g2p.blind.index"]
        for model_name, rows in deferred.items():
            index._store(model_name, rows)
        return result

    @api.model
    def _g2p_encrypting(self):
        """Whether values of records in scope are stored encrypted ("Encrypt registry")."""
        return bool(self.env["ir.config_parameter"].sudo().get_param(PARAM_ENCRYPT))

    @api.model
    def _g2p_rows_in_scope(self, stored_list):
        """Whether each record created with the values of ``stored_list`` is in scope (its values
        are encrypted); the records a scope path goes through are read once for all the rows."""
        path = self._g2p_scope_path
        if not path:
            return [True] * len(stored_list)
        first, _dot, rest = path.partition(".")
        values = [stored.get(first) for stored in stored_list]
        if not rest:
            return [bool(value) for value in values]
        targets = (
            self.env[self._fields[first].comodel_name].sudo().browse({value for value in values if value})
        )
        # As filtered(path): a boolean at the end of the path gives [False], which is no scope.
        in_scope = {target.id for target in targets if any(target.mapped(rest))}
        return [bool(value) and value in in_scope for value in values]

    @api.model
    def _g2p_delegated_rows_in_scope(self, stored_list):
        """``_g2p_rows_in_scope`` of a model that delegates (``_g2p_delegated_in_scope``):
        ``create`` makes the records it delegates to first, and each row names them."""
        in_scope = [False] * len(stored_list)
        for parent_model, link in self._inherits.items():
            if may_be_in_scope(self.env[parent_model]):
                ids = [stored.get(link) for stored in stored_list]
                parents = self.env[parent_model].sudo().browse({parent_id for parent_id in ids if parent_id})
                found = set(parents._g2p_in_scope()._ids)
                in_scope = [done or parent_id in found for done, parent_id in zip(in_scope, ids, strict=True)]
        return in_scope

    def unlink(self):
        ids, model_name = self.ids, self._name
        result = super().unlink()
        if self._g2p_encrypted and any(spec.index_kind for spec in self._g2p_encrypted.values()):
            self.env["g2p.blind.index"]._forget(model_name, ids)
        return result
