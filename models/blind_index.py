# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Blind indexes of the searchable encrypted fields.

One row per (model, record, field) with the HMAC of the normalised value, so that ``=`` and
``in`` find encrypted records without decrypting anything. Rows are written and read only by
the encrypted-field mixin, with SQL in batches (a registry import writes thousands at once);
nobody has ORM access to them.
"""

from odoo import fields, models, tools


class BlindIndex(models.Model):
    _name = "g2p.blind.index"
    _description = "Blind Index of an Encrypted Field"
    _log_access = False

    res_model = fields.Char(required=True)
    res_id = fields.Integer(required=True)
    field_name = fields.Char(required=True)
    digest = fields.Char(required=True)

    _sql_constraints = [
        ("record_field_unique", "unique(res_model, res_id, field_name)", "One blind index per field."),
    ]

    def init(self):
        tools.create_index(
            self.env.cr, "g2p_blind_index_lookup", self._table, ["res_model", "field_name", "digest"]
        )

    def _store(self, res_model, rows):
        """Set the index of [(record id, field, digest or None)]; None removes it."""
        self.flush_model()
        removed = [(res_id, name) for res_id, name, digest in rows if digest is None]
        kept = [(res_model, res_id, name, digest) for res_id, name, digest in rows if digest is not None]
        for res_id, name in removed:
            self.env.cr.execute(
                "DELETE FROM g2p_blind_index WHERE res_model = %s AND res_id = %s AND field_name = %s",
                (res_model, res_id, name),
            )
        for chunk in tools.split_every(1000, kept):
            placeholders = ", ".join(["(%s, %s, %s, %s)"] * len(chunk))
            self.env.cr.execute(
                f"""INSERT INTO g2p_blind_index (res_model, res_id, field_name, digest)
                    VALUES {placeholders}
                    ON CONFLICT (res_model, res_id, field_name) DO UPDATE SET digest = EXCLUDED.digest""",  # pylint: disable=sql-injection
                [value for row in chunk for value in row],
            )
        self.invalidate_model()

    def _lookup(self, res_model, field_name, digests):
        if not digests:
            return []
        self.flush_model()
        self.env.cr.execute(
            "SELECT res_id FROM g2p_blind_index WHERE res_model = %s AND field_name = %s AND digest IN %s",
            (res_model, field_name, tuple(digests)),
        )
        return [row[0] for row in self.env.cr.fetchall()]

    def _forget(self, res_model, res_ids):
        if res_ids:
            self.env.cr.execute(
                "DELETE FROM g2p_blind_index WHERE res_model = %s AND res_id IN %s",
                (res_model, tuple(res_ids)),
            )
