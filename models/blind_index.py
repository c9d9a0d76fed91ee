# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Blind indexes of the searchable encrypted fields.

One row per (model, record, field) with the HMAC of the normalised value under an index key of the
registry provider (``core/blind_index.py``), so that exact searches find encrypted records without
decrypting anything. Each row names the index key that made it: after the registry provider
changed, searches hash the value under every index key still in use, until the re-encryption job
has moved the rows. Rows are written and read only by the addon's code, with SQL in batches (a
registry import writes thousands at once); nobody has ORM access to them.
"""

import time

from odoo import api, fields, models, tools

from ..core import blind_index

KEYS_IN_USE_SECONDS = 60
INSERT_ROWS = 10_000  # rows per INSERT of _store
_KEYS_IN_USE = {}  # {(dbname, model, field): (expires at, [index key ids])}, per worker


class BlindIndex(models.Model):
    _name = "g2p.blind.index"
    _description = "Blind Index of an Encrypted Field"
    _log_access = False

    res_model = fields.Char(required=True)
    res_id = fields.Integer(required=True)
    field_name = fields.Char(required=True)
    digest = fields.Char(required=True)
    index_key_id = fields.Char(help="The index key (of the provider) that made the digest.")

    _sql_constraints = [
        ("record_field_unique", "unique(res_model, res_id, field_name)", "One blind index per field."),
    ]

    def init(self):
        tools.create_index(
            self.env.cr, "g2p_blind_index_lookup", self._table, ["res_model", "field_name", "digest"]
        )
        tools.create_index(self.env.cr, "g2p_blind_index_key", self._table, ["res_model", "index_key_id"])

    @api.model
    def _store(self, res_model, rows):
        """Index [(record id, field, kind, plaintext or empty, bits kept)]; an empty value removes
        the row."""
        removed = {}
        kept = []
        # The last row of a record's field wins (a batch gathered over a flush may hold two).
        for row in {(row[0], row[1]): row for row in rows}.values():
            if row[3]:
                kept.append(row)
            else:
                removed.setdefault(row[1], []).append(row[0])
        for name, res_ids in removed.items():
            for chunk in tools.split_every(1000, res_ids):
                self.env.cr.execute(
                    "DELETE FROM g2p_blind_index WHERE res_model = %s AND field_name = %s AND res_id IN %s",
                    (res_model, name, tuple(chunk)),
                )
        if not kept:
            return
        provider = self.env["g2p.encryption.provider"]._get_registry_provider()
        key_id, key = provider._blind_index_key()
        digest, truncate = blind_index.blind_index, blind_index.truncate
        # Columns as arrays, unnested by PostgreSQL: three parameters per statement, however many
        # rows (a list of VALUES would make psycopg2 quote five values a row into the SQL text).
        for chunk in tools.split_every(INSERT_ROWS, kept):
            res_ids = [row[0] for row in chunk]
            names = [row[1] for row in chunk]
            digests = [
                truncate(digest(key, name, str(value), kind), bits)
                for _res_id, name, kind, value, bits in chunk
            ]
            self.env.cr.execute(
                """INSERT INTO g2p_blind_index (res_model, res_id, field_name, digest, index_key_id)
                   SELECT %s, t.res_id, t.field_name, t.digest, %s
                     FROM unnest(%s::int[], %s::varchar[], %s::varchar[]) AS t(res_id, field_name, digest)
                   ON CONFLICT (res_model, res_id, field_name)
                   DO UPDATE SET digest = EXCLUDED.digest, index_key_id = EXCLUDED.index_key_id""",
                (res_model, key_id, res_ids, names, digests),
            )
        _KEYS_IN_USE.pop((self.env.cr.dbname, res_model), None)

    @api.model
    def _lookup(self, res_model, field_name, kind, values, lengths=(blind_index.DIGEST_BITS,)):
        """Ids of the records whose ``field_name`` equals one of ``values`` (normalised): exactly,
        or, for an index truncated to fewer bits, the candidates to check."""
        providers = self.env["g2p.encryption.provider"].sudo()
        digests = []
        for key_id in self._keys_in_use(res_model, field_name):
            provider = providers._providers_of_keys({key_id})
            key = next(iter(provider))._keyring().key(key_id)
            for value in values:
                digest = blind_index.blind_index(key, field_name, value, kind)
                digests.extend(blind_index.truncate(digest, bits) for bits in lengths)
        if not digests:
            return []
        self.env.cr.execute(
            "SELECT res_id FROM g2p_blind_index WHERE res_model = %s AND field_name = %s AND digest IN %s",
            (res_model, field_name, tuple(digests)),
        )
        return [row[0] for row in self.env.cr.fetchall()]

    @api.model
    def _keys_in_use(self, res_model, field_name):
        """Index keys that made rows of ``res_model`` (and the registry provider's), cached briefly."""
        cache_key = (self.env.cr.dbname, res_model)
        now = time.monotonic()
        cached = _KEYS_IN_USE.get(cache_key)
        if cached is None or cached[0] < now:
            # A handful of index keys exist (one per provider): ask which ones made rows here.
            self.env.cr.execute("SELECT key_id FROM g2p_encryption_key WHERE usage = 'index'")
            in_use = []
            for (key_id,) in self.env.cr.fetchall():
                self.env.cr.execute(
                    "SELECT 1 FROM g2p_blind_index WHERE res_model = %s AND index_key_id = %s LIMIT 1",
                    (res_model, key_id),
                )
                if self.env.cr.fetchone():
                    in_use.append(key_id)
            cached = _KEYS_IN_USE[cache_key] = (now + KEYS_IN_USE_SECONDS, in_use)
        registry_key = (
            self.env["g2p.encryption.provider"]._get_registry_provider()._active_key("index").key_id
        )
        return list(dict.fromkeys([registry_key, *cached[1]]))

    @api.model
    def _forget(self, res_model, res_ids):
        if res_ids:
            self.env.cr.execute(
                "DELETE FROM g2p_blind_index WHERE res_model = %s AND res_id IN %s",
                (res_model, tuple(res_ids)),
            )
