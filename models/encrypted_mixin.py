# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The mixin a developer inherits to encrypt fields of a model.

::

    class Beneficiary(models.Model):
        _name = "my.beneficiary"
        _inherit = ["g2p.encrypted.mixin"]
        _encrypted_fields = {"name": "text", "national_id": "identifier", "notes": None}
        _encrypted_scope = None  # or a field path: only records where it is true are encrypted

    name = fields.Char()
    national_id = fields.Char()
    notes = fields.Text()

Each key names a stored character, text or HTML field; its value is the kind of blind index the field
gets (``text``, ``email``, ``phone``, ``identifier``) or None for a field that is not searched. A
wrong declaration (unknown field, a field of another type, a translated one) fails when the
registry is set up. Nothing else is needed: the server code of every module reads plaintext, the
columns hold ciphertext, and people see the values only where the policy lets them
(``encrypted_model.py``, ``encryption_exits.py``).
"""

from odoo import models


class EncryptedMixin(models.AbstractModel):
    _name = "g2p.encrypted.mixin"
    _description = "Encrypted Fields"

    _encrypted_fields = {}
    _encrypted_scope = None
