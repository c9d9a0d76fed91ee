# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Who looked registrants up by an exact value, and how much: the lookups a person sends.

A blind index answers "which records hold this exact value" without decrypting anything; to a
logged-in user it is an oracle (try candidate values, see which match). So a person's lookups are
allowed to members of *Registry Search* only, capped (values in one search, lookups per minute),
and each one leaves a row here with the digests it asked for, never the values. Server code
(constraints, deduplication, a voucher run) looks up without these limits.
"""

from odoo import _, api, fields, models
from odoo.exceptions import UserError

from ..core import blind_index

PARAM_MAX_VALUES = "g2p_encryption.search_max_values"
PARAM_MAX_PER_MINUTE = "g2p_encryption.search_max_per_minute"
DEFAULT_MAX_VALUES = 20
DEFAULT_MAX_PER_MINUTE = 60
SEARCHER_GROUP = "g2p_encryption.registry_searcher"


class SearchLog(models.Model):
    _name = "g2p.search.log"
    _inherit = ["g2p.audit.chain"]
    _description = "Registry Lookup Log"
    _order = "id desc"
    _log_access = False
    _audit_chain_fields = (
        "date",
        "user_id",
        "res_model",
        "field_name",
        "value_count",
        "hit_count",
        "digests",
        "refused",
    )

    date = fields.Datetime(required=True, readonly=True, default=fields.Datetime.now, index=True)
    user_id = fields.Many2one("res.users", required=True, readonly=True, ondelete="restrict", index=True)
    res_model = fields.Char(string="Model", required=True, readonly=True)
    field_name = fields.Char(string="Field", required=True, readonly=True)
    value_count = fields.Integer(string="Values", readonly=True, help="Values asked for in one search.")
    hit_count = fields.Integer(string="Records found", readonly=True)
    digests = fields.Text(
        readonly=True,
        help="Keyed digest of each value asked for (HMAC under the registry's index key), cut to 16 "
        "hex digits: tells repeated lookups apart, not what was looked up, even by trying values.",
    )
    refused = fields.Char(readonly=True, help="Why the lookup was refused, if it was.")

    @api.depends("user_id", "res_model", "field_name", "value_count", "date")
    def _compute_display_name(self):
        for log in self:
            log.display_name = _(
                "%(user)s: %(count)s value(s) of %(model)s.%(field)s",
                user=log.user_id.name or "?",
                count=log.value_count,
                model=log.res_model,
                field=log.field_name,
            )

    @api.model
    def _digests(self, field_name, values):
        # Keyed: an unkeyed hash of a phone number or an ID is reversed by hashing every candidate.
        # The index key in a namespace of its own: these digests match no blind-index row.
        provider = self.env["g2p.encryption.provider"].sudo()._get_registry_provider()
        _key_id, key = provider._blind_index_key()
        namespace = f"lookup log|{field_name}"
        return ",".join(blind_index.blind_index(key, namespace, str(value))[:16] for value in values)

    @api.model
    def _check(self, res_model, field_name, values):
        """Check a person's lookup against the caps; returns the values of its log row (``_log``
        writes it with the hits). A refused lookup is logged too, in a transaction of its own that
        survives the refusal."""
        params = self.env["ir.config_parameter"].sudo()
        max_values = int(params.get_param(PARAM_MAX_VALUES, DEFAULT_MAX_VALUES))
        max_per_minute = int(params.get_param(PARAM_MAX_PER_MINUTE, DEFAULT_MAX_PER_MINUTE))
        vals = {
            "user_id": self.env.uid,
            "res_model": res_model,
            "field_name": field_name,
            "value_count": len(values),
            "digests": self._digests(field_name, values[:200]),
        }
        refused = None
        if not self._may_look_up():
            refused = _("%(user)s is not in the group Registry Search.", user=self.env.user.name)
        elif len(values) > max_values:
            refused = _(
                "A search for %(count)s values of %(field)s at once is refused: at most %(max)s.",
                count=len(values),
                field=field_name,
                max=max_values,
            )
        elif self._lookups_in_the_last_minute() >= max_per_minute:
            refused = _(
                "More than %(max)s lookups by exact value in one minute: wait a minute before the next.",
                max=max_per_minute,
            )
        if refused:
            self._write_refusal(dict(vals, refused=refused))
            raise UserError(refused)
        return vals

    @api.model
    def _may_look_up(self):
        """Whether the current person may look registrants up by exact value."""
        return self.env.user.has_group(SEARCHER_GROUP)

    @api.model
    def _log(self, vals, hits):
        # Inside the request, not at its commit (``_append_at_commit``): the chain's lock makes a
        # person's concurrent lookups wait and be replayed, and the replay's cap counts the rows
        # committed meanwhile. Appended apart, requests run side by side would each see none of
        # the others' rows, and a savepoint (which runs the pre-commit hooks) would take the
        # request's own rows out of its count.
        return self._append([dict(vals, hit_count=hits)])

    def _lookups_in_the_last_minute(self):
        self.env.cr.execute(
            """SELECT count(*) FROM g2p_search_log
               WHERE user_id = %s AND date > now() at time zone 'UTC' - interval '1 minute'""",
            (self.env.uid,),
        )
        return self.env.cr.fetchone()[0]

    def _write_refusal(self, vals):
        """The refusal rolls the request back: its row is written once the transaction has ended
        (rolled back, or committed by a caller that caught the error), in a transaction of its own."""
        registry, written = self.env.registry, []

        def write():
            if not written:
                written.append(True)
                with registry.cursor() as cr:
                    self.with_env(self.env(cr=cr, su=True))._append([vals])

        self.env.cr.postrollback.add(write)
        self.env.cr.postcommit.add(write)
