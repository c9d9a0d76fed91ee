# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""What an exit showed, sent back: never stored over the data it hides.

A web client saves what its form holds. On a new record that is every value, those an onchange
returned included: OpenG2P's program membership form shows its registrant's e-mail and address
(delegated fields), masked to a registrar, and Odoo's ``create`` writes them into the registrant.
An onchange computes from masks too (it runs inside an exit): OpenG2P makes a name of the family
and given names, ``[ENCRYPTED], AMINA``, and the web client saves it with the given name.

So a write of an encrypted field whose value holds a mask, a record's label or the placeholder of
a value that does not decrypt, on a record whose value an exit masks (in scope, or stored
encrypted):

* a value that *is* one of them (the echo of what was shown) is left out of the write;
* a value *made from* one is computed again: the model's onchange methods run in the server on
  the real values, for the fields the write changes, and what they make of it is written;
* otherwise (nothing computes it) the write is refused.

The other values of the write are written. A record whose value no exit masks (a company) keeps
whatever is typed.
"""

import logging
import re

from odoo import _, models

from .encrypted_field import AtRest, EncryptedField, Unreadable, is_ciphertext, refuse_masked

_logger = logging.getLogger(__name__)


class Base(models.AbstractModel):
    _inherit = "base"

    def write(self, vals):
        masked = self._g2p_values_holding_masks(vals) if self else None
        if not masked:
            return super().write(vals)
        guarded = self._g2p_masked_at_exits(masked)
        if guarded != self:
            super(Base, self - guarded).write(vals)
        if not guarded:
            return True
        _logger.warning(
            "%s %s: %s sent back as an exit showed them, not written as such",
            self._name,
            guarded.ids[:20],
            ", ".join(sorted(masked)),
        )
        kept = {name: value for name, value in vals.items() if name not in masked}
        made = [name for name, echo in masked.items() if not echo]
        if not made:
            if kept:
                super(Base, guarded).write(kept)
            return True
        writes = []
        for record in guarded:
            computed = record._g2p_computed_again(kept, made)
            missing = [name for name in made if name not in computed]
            if missing:
                refuse_masked(self._fields[missing[0]])
            writes.append((record, dict(kept, **computed)))
        for record, values in writes:
            super(Base, record).write(values)
        return True

    def _g2p_values_holding_masks(self, vals):
        """{field name: whether the value is an echo} of the encrypted fields of ``vals`` whose
        value is, or holds, what an exit shows instead of these records' values. Fields delegated
        to another model (``_inherits``) are left to that model's write."""
        names = [
            name
            for name, value in vals.items()
            if value
            and isinstance(value, str)
            and isinstance(field := self._fields.get(name), EncryptedField)
            and not field.inherited
        ]
        if not names:
            return None
        # In the person's language, and in English (a form posted to a controller in sudo).
        shown = {
            text.casefold()
            for text in ("[encrypted]", "[unreadable]", self._g2p_mask_text(), _("[unreadable]"))
        }
        labels = None
        masked = {}
        for name in names:
            value = vals[name].strip().casefold()
            named = ()
            if self._fields[name].g2p_names_record:
                if labels is None:
                    # "Registrant #1", not the start of "Registrant #12".
                    labels = {record._g2p_label().casefold() for record in self}
                    found = re.compile("|".join(rf"{re.escape(label)}(?!\d)" for label in labels))
                named = labels
            if value in shown or value in named:
                masked[name] = True
            elif any(text in value for text in shown) or (named and found.search(value)):
                masked[name] = False
        return masked

    def _g2p_masked_at_exits(self, names):
        """The records of ``self`` whose values of ``names`` an exit masks: those in scope, and
        those out of it whose value is still stored encrypted."""
        in_scope = set(self.sudo()._g2p_in_scope()._ids)
        rest = self.sudo().browse([rid for rid in self._ids if rid not in in_scope])
        if rest:
            fields = [self._fields[name] for name in names if self._fields[name].g2p_encrypted]
            rest.fetch([field.name for field in fields])
            cache = self.env.cache
            for field in fields:
                stored = cache._get_field_cache(rest, field)
                for rid in rest._ids:
                    value = stored.get(rid)
                    if isinstance(value, AtRest | Unreadable) or is_ciphertext(value):
                        in_scope.add(rid)
        return self.browse([rid for rid in self._ids if rid in in_scope])

    def _g2p_computed_again(self, kept, names):
        """What the model's onchange methods make of ``names`` from the ``kept`` values that
        change the record, run in the server on the real values (the person's ran on masks)."""
        self.ensure_one()
        if self.env.transaction.__dict__.get("g2p_exit") is not None:
            return {}  # inside an exit it would compute from masks again
        try:
            with self.env.cr.savepoint():
                changed = [
                    name
                    for name in kept
                    if name in self._fields and not self._g2p_unchanged(name, kept[name])
                ]
                if not changed:
                    return {}
                answer = self.onchange(dict(kept), changed, dict.fromkeys(names, {}))
        except Exception:  # pylint: disable=broad-exception-caught
            # Not shown to the person: its message may quote the real values it computed from.
            _logger.warning(
                "%s %s: the onchange run again for %s failed", self._name, self.id, ", ".join(names)
            )
            return {}
        computed = answer.get("value", {})
        return {
            name: computed[name]
            for name in names
            if isinstance(computed.get(name), str)
            and not self._g2p_values_holding_masks({name: computed[name]})
        }

    def _g2p_unchanged(self, name, value):
        field = self._fields[name]
        if field.type in ("one2many", "many2many"):
            return False
        return field.convert_to_write(self[name], self) == value
