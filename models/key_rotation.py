# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Key rotation, for every provider type: one path, by hand or by age.

``_rotate_keys`` is the one rotation path: it retires the active keys of the usages the provider
rotates (``_rotated_key_usages``: data and signing keys of a local provider, data keys of
KeyManager; never blind-index keys, whose indexes would stop matching), makes new ones and
records the event. *Rotate key* (Crypto Admin, password asked again) and the daily scheduled
action both go through it: the action replaces keys older than the provider's
``rotate_after_days`` (0: never). Each key records when it became active (``activated_date``).
Retired keys are kept: the key id in every ciphertext finds its key, and the re-encryption job can
later move the data to the new key.
"""

import logging
from datetime import timedelta

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL

from ..core import envelope
from .rpc_guard import CRYPTO_ADMIN, requires

_logger = logging.getLogger(__name__)


class EncryptionKeyAge(models.Model):
    _inherit = "g2p.encryption.key"

    activated_date = fields.Datetime(string="Active since", readonly=True, index=True, copy=False)
    age_days = fields.Integer(
        string="Age (days)", compute="_compute_age_days", help="Days since it became active."
    )

    rotation_due = fields.Date(
        compute="_compute_rotation_due",
        search="_search_rotation_due",
        help='When the daily scheduled action replaces this key (the provider\'s "Rotate keys after"). '
        "Empty: never (a retired key, a blind-index key, or age-based rotation turned off). A date in "
        "the past means the action could not rotate it (a sealed provider, KeyManager unreachable): "
        "the key events say why.",
    )

    record_count = fields.Integer(
        string="Records using it",
        compute="_compute_record_count",
        help="Records with at least one encrypted field still under this data key, at the registry's "
        "last count (daily, after each registry job, and on Settings ‣ Count now).",
    )
    records_counted_at = fields.Datetime(string="Counted on", compute="_compute_record_count")

    def init(self):
        result = super().init()
        # Keys made before this field existed became active when they were created.
        self.env.cr.execute(
            "UPDATE g2p_encryption_key SET activated_date = create_date WHERE activated_date IS NULL"
        )
        return result

    @api.model_create_multi
    def create(self, vals_list):
        now = fields.Datetime.now()
        for vals in vals_list:
            vals.setdefault("activated_date", now)
        return super().create(vals_list)

    @api.depends("activated_date")
    def _compute_age_days(self):
        now = fields.Datetime.now()
        for key in self:
            since = key.activated_date or key.create_date
            key.age_days = (now - since).days if since else 0

    @api.depends("activated_date", "state", "usage", "provider_id.rotate_after_days")
    def _compute_rotation_due(self):
        for key in self:
            due = key._rotation_due_datetime()
            key.rotation_due = due.date() if due else False

    def _rotation_due_datetime(self):
        provider = self.provider_id
        if (
            self.state != "active"
            or provider.rotate_after_days <= 0
            or self.usage not in provider._rotated_key_usages()
            or not (self.activated_date or self.create_date)
        ):
            return False
        return (self.activated_date or self.create_date) + timedelta(days=provider.rotate_after_days)

    def _search_rotation_due(self, operator, value):
        """Keys are few (a handful per provider): compared in Python."""
        if operator not in ("<", "<=", ">", ">=", "=", "!="):
            raise UserError(_("Rotation due cannot be searched with %(operator)s.", operator=operator))
        value = fields.Date.to_date(value) if value else False
        keys = self.search([("state", "=", "active")])
        compare = {
            "<": lambda due: due < value,
            "<=": lambda due: due <= value,
            ">": lambda due: due > value,
            ">=": lambda due: due >= value,
            "=": lambda due: due == value,
            "!=": lambda due: due != value,
        }[operator]
        if value is False:
            matched = keys.filtered(lambda key: compare(key.rotation_due))
        else:
            matched = keys.filtered(lambda key: key.rotation_due and compare(key.rotation_due))
        return [("id", "in", matched.ids)]

    def _compute_record_count(self):
        # The last count, not a new one: counting reads every encrypted column of the registry.
        counts = self.env["res.partner"].sudo()._g2p_last_registry_counts()
        by_key = counts.get("keys", {})
        for key in self:
            key.record_count = by_key.get(key.key_id, 0) if key.usage == "encrypt" else 0
            key.records_counted_at = counts.get("counted_at") or False

    @api.model
    def _records_by_key(self):
        """{data key id: records with at least one value under that key}, one pass over each
        registry model (part of the registry's count, ``res.partner._g2p_count_registry``)."""
        counts = {}
        for model_name in self.env["g2p.encryption.job"]._registry_models():
            model = self.env[model_name]
            columns = [name for name in model._g2p_encrypted if model._fields[name].store]
            values = SQL(", ").join(SQL("%s::text", SQL.identifier(column)) for column in columns)
            # Each record's distinct key ids (its values are under one key but during a rotation).
            self.env.cr.execute(
                SQL(
                    """SELECT k.key_id, count(*) FROM %s t CROSS JOIN LATERAL (
                           SELECT DISTINCT split_part(v, '.', 2) AS key_id FROM unnest(ARRAY[%s]) AS v
                            WHERE v LIKE %s OR v LIKE %s) k
                       GROUP BY k.key_id""",
                    SQL.identifier(model._table),
                    values,
                    f"{envelope.PREFIX_V1}%",
                    f"{envelope.PREFIX_V2}%",
                )
            )
            for key_id, count in self.env.cr.fetchall():
                counts[key_id] = counts.get(key_id, 0) + count
        return counts


class EncryptionProviderRotation(models.Model):
    _inherit = "g2p.encryption.provider"

    rotate_after_days = fields.Integer(
        string="Rotate keys after (days)",
        default=90,
        help="A scheduled action replaces the active data and signing keys once they are this many days "
        "old; older keys keep decrypting by their key id. 0 turns age-based rotation off.",
    )

    _sql_constraints = [
        (
            "rotate_after_days_positive",
            "CHECK(rotate_after_days >= 0)",
            "Rotate after a positive number of days.",
        ),
    ]

    def _aged_keys(self, now=None):
        """Active keys of this provider, of the usages it rotates, older than ``rotate_after_days``."""
        self.ensure_one()
        if self.rotate_after_days <= 0:
            return self.env["g2p.encryption.key"]
        limit = (now or fields.Datetime.now()) - timedelta(days=self.rotate_after_days)
        return (
            self.env["g2p.encryption.key"]
            .sudo()
            .search(
                [
                    ("provider_id", "=", self.id),
                    ("state", "=", "active"),
                    ("usage", "in", self._rotated_key_usages()),
                    ("activated_date", "<=", limit),
                ]
            )
        )

    def _rotate_keys(self, usages=None, automatic=False, reason=""):
        """The one rotation path: retire the active keys of ``usages`` (default: every usage the
        provider rotates) and make new ones; record each rotation. Returns the new keys."""
        keys = self.env["g2p.encryption.key"].sudo()
        made = keys.browse()
        for provider in self:
            for usage in provider._rotated_key_usages():
                if usages is not None and usage not in usages:
                    continue
                retired = keys.search(
                    [("provider_id", "=", provider.id), ("usage", "=", usage), ("state", "=", "active")]
                )
                ages = retired.mapped("age_days")
                retired.write({"state": "retired", "retired_date": fields.Datetime.now()})
                new = keys._generate(provider, usage)
                made |= new
                detail = _(
                    "%(usage)s key %(old)s (%(days)s days old) replaced by %(new)s",
                    usage=usage,
                    old=", ".join(retired.mapped("key_id")) or "-",
                    days=max(ages or [0]),
                    new=new.key_id,
                )
                provider._log_key_event(
                    "rotation", f"{detail}; {reason}" if reason else detail, automatic=automatic
                )
                _logger.info(
                    "Encryption provider %s: %s key %s rotated (%s)",
                    provider.id,
                    usage,
                    ", ".join(retired.mapped("key_id")) or "-",
                    "scheduled" if automatic else "by hand",
                )
        return made

    def _rotate_aged_keys(self, automatic=False):
        """Replace the aged keys of each provider; return the new keys."""
        made = self.env["g2p.encryption.key"].sudo().browse()
        for provider in self:
            aged = set(provider._aged_keys().mapped("usage"))
            if aged:
                made |= provider._rotate_keys(usages=aged, automatic=automatic, reason=_("aged"))
        return made

    def _log_key_event(self, event, detail="", success=True, automatic=False):
        self.ensure_one()
        return self.env["g2p.encryption.event"]._record(self, event, detail, success, automatic)

    @api.model
    def _cron_rotate_aged_keys(self):
        """Scheduled daily: rotate aged keys provider by provider; one failing does not stop the rest."""
        providers = self.sudo().search([("rotate_after_days", ">", 0)])
        for provider in providers:
            try:
                with self.env.cr.savepoint():
                    provider._rotate_aged_keys(automatic=True)
            except UserError as error:
                # A sealed provider, or KeyManager unreachable: try again at the next run.
                _logger.warning("Encryption provider %s: aged keys not rotated: %s", provider.id, error)
                provider._log_key_event("rotation_failed", str(error)[:500], success=False, automatic=True)
        return True

    @requires(CRYPTO_ADMIN, identity=True)
    def action_rotate_key(self):
        """Retire the active keys and make new ones; data under retired keys stays readable."""
        self.sudo()._rotate_keys(reason=_("by hand"))
        return True
