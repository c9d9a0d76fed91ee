# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Search on encrypted fields (an extension of ``base``, beside ``encrypted_model.py``).

A condition on an encrypted field matches the plaintext of records stored in the clear, and
records stored encrypted through their blind index (exact values only); it never matches
ciphertext. A person's lookups by value are capped and logged (``search_log.py``). Grouping by an
encrypted field is refused.
"""

from odoo import _, api, models
from odoo.exceptions import UserError
from odoo.osv import expression

from ..core import blind_index
from .encryption_exits import SUGGESTIONS, TYPED_ADDRESSES, person_search, person_search_kind

MATCHING_OPERATORS = ("=", "in", "ilike", "like", "=ilike", "=like")
CONTAINS_OPERATORS = ("ilike", "like")
NEGATIVE_OPERATORS = {"!=": "=", "not in": "in", "not ilike": "ilike", "not like": "like"}


class EncryptedModelSearch(models.AbstractModel):
    _inherit = "base"

    @api.model
    def _search(self, domain, offset=0, limit=None, order=None, access_rights_uid=None):
        if self._g2p_encrypted and domain:
            domain = self._g2p_rewrite_domain(domain)
        return super()._search(domain, offset, limit, order, access_rights_uid)

    @api.model
    def _g2p_rewrite_domain(self, domain):
        rewritten = []
        for leaf in expression.normalize_domain(domain):
            if (
                expression.is_leaf(leaf)
                and isinstance(leaf[0], str)
                and leaf[0] in self._g2p_encrypted
                and leaf[2] is not False
                and leaf[2] is not None
            ):
                rewritten.extend(self._g2p_rewrite_leaf(*leaf))
            else:
                rewritten.append(leaf)
        return rewritten

    @api.model
    def _g2p_rewrite_leaf(self, name, operator, value):
        """A domain for ``(name, operator, value)`` on an encrypted field (see the module doc)."""
        positive = NEGATIVE_OPERATORS.get(operator, operator)
        not_ciphertext = ["!", (name, "=like", "g2pe%"), "!", (name, "=like", "g2pkm%")]
        if positive not in MATCHING_OPERATORS:
            return expression.AND([[(name, operator, value)], not_ciphertext])
        ids = self._g2p_index_lookup(name, positive, value)
        if positive == operator:
            return expression.OR(
                [[("id", "in", ids)], expression.AND([[(name, operator, value)], not_ciphertext])]
            )
        # Negative: encrypted records outside the hits, plaintext records by the condition.
        ciphertext = ["|", (name, "=like", "g2pe%"), (name, "=like", "g2pkm%")]
        return expression.AND(
            [[("id", "not in", ids)], expression.OR([ciphertext, [(name, operator, value)]])]
        )

    @api.model
    def _g2p_index_lookup(self, name, operator, value):
        """Ids of the records whose blind index of ``name`` matches ``value`` exactly."""
        kind = self._g2p_encrypted[name].index_kind
        if not kind:
            return []
        values = value if operator == "in" and isinstance(value, list | tuple) else [value]
        if operator in ("=like", "=ilike"):
            values = [v for v in values if isinstance(v, str) and "%" not in v and "_" not in v]
        values = [v for v in values if isinstance(v, str) and v.strip()]
        if not values:
            return []
        log = None
        if person_search(self.env):
            lookups = self.env["g2p.search.log"]
            looking_up, contains = person_search_kind(self.env), operator in CONTAINS_OPERATORS
            if contains and looking_up == SUGGESTIONS:
                # Suggestions as one types ("@" mentions): a lookup per keystroke would use up
                # the caps; registrants are found through the search bar.
                return []
            if (contains or looking_up == TYPED_ADDRESSES) and not lookups._may_look_up():
                # Odoo's own "contains" searches (a many2one completion, the search bar's default)
                # and addresses typed as recipients keep working for people without Registry
                # Search: they find what is stored in the clear, and no lookup by value is made.
                return []
            log = lookups._check(self._name, name, values)
        # Pending values (a stored compute not flushed yet) reach the index when flushed.
        self.flush_model([name])
        spec = self._g2p_encrypted[name]
        ids = self.env["g2p.blind.index"]._lookup(self._name, name, kind, values, spec.index_lengths)
        # Rows of every length still in use (a field set back to full digests keeps truncated rows
        # until the re-encryption job rewrites them): any truncated one makes candidates to check.
        if min(spec.index_lengths) < blind_index.DIGEST_BITS and ids:
            ids = self._g2p_exact_matches(name, kind, values, ids)
        if log:
            self.env["g2p.search.log"]._log(log, len(ids))
        return ids

    @api.model
    def _g2p_exact_matches(self, name, kind, values, candidate_ids):
        """The candidates of a truncated blind index whose value really is one of ``values``:
        decrypted here (server code), never shown."""
        wanted = {blind_index.normalize(value, kind) for value in values}
        candidates = self.sudo().browse(candidate_ids).with_context(active_test=False)
        return [
            record.id
            for record in candidates
            if record[name] and blind_index.normalize(str(record[name]), kind) in wanted
        ]

    @api.model
    def _read_group(self, domain, groupby=(), aggregates=(), having=(), offset=0, limit=None, order=None):
        if self._g2p_encrypted:
            for spec in list(groupby) + list(aggregates):
                name = spec.split(":")[0].split(".")[0]
                if name in self._g2p_encrypted and spec != "__count":
                    raise UserError(
                        _(
                            "%(field)s is encrypted: records cannot be grouped or aggregated by it.",
                            field=self._fields[name].string,
                        )
                    )
        return super()._read_group(domain, groupby, aggregates, having, offset, limit, order)
