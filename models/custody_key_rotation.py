# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Age-based rotation of data and signing keys, for every provider type.

Each key records when it became active (``activated_date``). A daily scheduled action replaces the
active data key and the active signing key of each provider once they are older than the
provider's ``rotate_after_days`` (0: never). Retired keys are kept: the key id in every ciphertext
finds its key, and the re-encryption job can later move the data to the new key. Blind-index keys
are never rotated (the indexes would stop matching).
"""

import logging
from datetime import timedelta

from odoo import _, api, fields, models
from odoo.exceptions import UserError

_logger = logging.getLogger(__name__)

AGE_ROTATED_USAGES = ("encrypt", "sign")


class EncryptionKeyAge(models.Model):
    _inherit = "g2p.encryption.key"

    activated_date = fields.Datetime(string="Active since", readonly=True, index=True, copy=False)
    age_days = fields.Integer(
        string="Age (days)", compute="_compute_age_days", help="Days since it became active."
    )

    record_count = fields.Integer(
        string="Records using it",
        compute="_compute_record_count",
        help="Records with at least one encrypted field still under this data key (a scan of the "
        "encrypted columns: shown on the key's form only).",
    )

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

    def _compute_record_count(self):
        tables = self._encrypted_tables()
        for key in self:
            count = 0
            if key.usage == "encrypt" and key.key_id:
                for table, provider, columns in tables:
                    if provider != key.provider_id:
                        continue
                    prefix = "g2pe_." + key.key_id + ".%"
                    # Table and column names come from the ORM's own models, not from input.
                    where = " OR ".join(f'"{column}" LIKE %s' for column in columns)
                    self.env.cr.execute(
                        f'SELECT count(*) FROM "{table}" WHERE {where}',  # pylint: disable=sql-injection
                        [prefix] * len(columns),
                    )
                    count += self.env.cr.fetchone()[0]
            key.record_count = count

    def _encrypted_tables(self):
        """[(table, provider, stored encrypted columns)] of the models using the encrypted mixin."""
        result = []
        provider = self.env["g2p.encryption.provider"]._get_registry_provider()
        for name, model in self.env.registry.models.items():
            if model._abstract or not model._auto or not model._g2p_encrypted:
                continue
            columns = [field_name for field_name in model._g2p_encrypted if model._fields[field_name].store]
            if columns:
                result.append((model._table, provider, columns))
        return result

    def _rotate_usage(self, provider, usage):
        """Retire the active keys of ``provider`` for ``usage`` and make a new one."""
        old = self.search(
            [("provider_id", "=", provider.id), ("usage", "=", usage), ("state", "=", "active")]
        )
        old.write({"state": "retired", "retired_date": fields.Datetime.now()})
        return old, self._generate(provider, usage)


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
        """Active data and signing keys of this provider older than ``rotate_after_days``."""
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
                    ("usage", "in", AGE_ROTATED_USAGES),
                    ("activated_date", "<=", limit),
                ]
            )
        )

    def _rotate_aged_keys(self, automatic=False):
        """Replace the aged keys of each provider; return the new keys."""
        keys = self.env["g2p.encryption.key"].sudo()
        made = keys.browse()
        for provider in self:
            aged = provider._aged_keys()
            for usage in AGE_ROTATED_USAGES:
                old = aged.filtered(lambda key, usage=usage: key.usage == usage)
                if not old:
                    continue
                retired, new = keys._rotate_usage(provider, usage)
                made |= new
                provider._custody_log(
                    "rotation",
                    detail=_(
                        "%(usage)s key %(old)s (%(days)s days old) replaced by %(new)s",
                        usage=usage,
                        old=", ".join(retired.mapped("key_id")),
                        days=max(retired.mapped("age_days") or [0]),
                        new=new.key_id,
                    ),
                    automatic=automatic,
                )
                _logger.info(
                    "Encryption provider %s: %s key %s rotated after %s days",
                    provider.id,
                    usage,
                    ", ".join(retired.mapped("key_id")),
                    provider.rotate_after_days,
                )
        return made

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
                provider._custody_log(
                    "rotation_failed", detail=str(error)[:500], success=False, automatic=True
                )
        return True

    def action_rotate_key(self):
        result = super().action_rotate_key()
        for provider in self:
            provider._custody_log("rotation", detail=_("data and signing keys rotated by hand"))
        return result
