# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Settings ‣ G2P Encryption: registry provider, "Encrypt registry", "Decrypt registry".

Only a Crypto Admin changes them, and turning "Decrypt registry" on asks for the password again
(as Odoo asks before showing API keys). The values live in ``ir.config_parameter`` under
``g2p_encryption.*``, which only a Crypto Admin may write directly too.
"""

from odoo import _, api, fields, models
from odoo.exceptions import AccessError

from .encryption_exits import PARAM_DECRYPT, PARAM_ENCRYPT, PARAM_READER_GROUP
from .res_partner import PARAM_COUNTS
from .rpc_guard import identity_if, internal, is_internal

PARAM_PREFIX = "g2p_encryption."
PARAM_PROVIDER = "g2p_encryption.registry_encryption_provider_id"
# Changed in Settings only, which checks who asks (and his password, to turn decryption on) and
# then writes them as superuser: never through System Parameters, whatever its access rights say
# (OpenG2P's registry opens ir.config_parameter to every user).
SETTINGS_PARAMS = (PARAM_ENCRYPT, PARAM_DECRYPT, PARAM_READER_GROUP, PARAM_PROVIDER)
CRYPTO_ADMIN = "g2p_encryption.crypto_admin"
# Registry tables up to this size together (rows, TOAST and indexes) are counted within the
# request: about a second when they are in memory.
COUNT_AT_ONCE_BYTES = 256 * 1024 * 1024
# The fields of _compute_g2p_state: what the block shows.
G2P_STATE_FIELDS = (
    "g2p_registrant_count",
    "g2p_encrypted_count",
    "g2p_pending_count",
    "g2p_unreadable_count",
    "g2p_counted_at",
    "g2p_key_age_days",
    "g2p_running_job_count",
    "g2p_custody_status",
)


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    registry_encryption_provider_id = fields.Many2one(
        "g2p.encryption.provider",
        string="Registry provider",
        config_parameter=PARAM_PROVIDER,
        help="Provider whose keys encrypt registrant data from now on. Data encrypted under another "
        "provider stays readable; the re-encryption job moves it.",
    )
    encrypt_registry = fields.Boolean(
        config_parameter=PARAM_ENCRYPT,
        help="Store the encrypted fields of registrants as ciphertext; registrants stored in the clear "
        "are encrypted in the background, in batches.",
    )
    decrypt_registry = fields.Boolean(
        config_parameter=PARAM_DECRYPT,
        help="Let the members of the plaintext readers' group see registrant data in the clear. "
        "Every such read is recorded in the decryption log.",
    )
    plaintext_group_id = fields.Many2one(
        "res.groups",
        string="Plaintext readers",
        config_parameter=PARAM_READER_GROUP,
        help="Who reads registrant data in the clear while Decrypt registry is on (default: Crypto Admin).",
    )

    # What the block shows (Odoo's own blocks say "3 Active Users ‣ Manage Users") --------------
    g2p_registrant_count = fields.Integer(compute="_compute_g2p_state")
    g2p_encrypted_count = fields.Integer(compute="_compute_g2p_state")
    g2p_pending_count = fields.Integer(compute="_compute_g2p_state")
    g2p_unreadable_count = fields.Integer(compute="_compute_g2p_state")
    g2p_counted_at = fields.Datetime(string="Counted on", compute="_compute_g2p_state")
    g2p_key_age_days = fields.Integer(compute="_compute_g2p_state")
    g2p_running_job_count = fields.Integer(compute="_compute_g2p_state")
    g2p_custody_status = fields.Char(compute="_compute_g2p_state")

    @api.model
    def default_get(self, fields_list):
        # The web client opens Settings with onchange() on a new record, whose first call gives
        # every field without a default False and does not compute these: the block said
        # "0 registrants" and no custody status. Their values are the defaults of the page.
        values = super().default_get(fields_list)
        wanted = [name for name in fields_list if name in G2P_STATE_FIELDS]
        # Any RPC caller may ask for defaults: the state is for those who may open Settings.
        if wanted and self.check_access_rights("read", raise_exception=False):
            state = self.new({})
            values.update({name: state[name] for name in wanted})
        return values

    def _compute_g2p_state(self):
        # The last count, not a new one: counting reads every registrant row (minutes on a
        # registry of millions), and Settings opens for every setting of every module.
        partners = self.env["res.partner"]
        counts = partners._g2p_last_registry_counts() if self.env.user.has_group(CRYPTO_ADMIN) else {}
        provider = self.env["g2p.encryption.provider"]._get_registry_provider()
        key = (
            self.env["g2p.encryption.key"]
            .sudo()
            .search(
                [("provider_id", "=", provider.id), ("usage", "=", "encrypt"), ("state", "=", "active")],
                limit=1,
            )
        )
        jobs = self.env["g2p.encryption.job"].sudo()
        unreadable = sum(
            len([i for i in (job.skipped_ids or "").split(",") if i])
            for job in jobs.search(
                [("kind", "=", "reencrypt"), ("state", "=", "done")], order="id desc", limit=20
            )
        )
        for settings in self:
            settings.g2p_registrant_count = counts.get("registrants", 0)
            settings.g2p_encrypted_count = counts.get("encrypted", 0)
            settings.g2p_pending_count = counts.get("pending", 0)
            settings.g2p_unreadable_count = unreadable
            settings.g2p_counted_at = counts.get("counted_at") or False
            settings.g2p_key_age_days = key.age_days if key and "age_days" in key._fields else 0
            settings.g2p_running_job_count = jobs.search_count([("state", "=", "running")])
            settings.g2p_custody_status = provider.sudo().custody_status

    def action_g2p_open_registrants(self):
        self._check_g2p_settings_rights()
        return {
            "type": "ir.actions.act_window",
            "name": _("Registrants"),
            "res_model": "res.partner",
            "view_mode": "tree,form",
            "domain": [("is_registrant", "=", True)],
        }

    def action_g2p_count_registry(self):
        """Count the registry again: at once when its tables are small, in the background (the
        scheduled action *count the registry*) when reading them would hold the request long."""
        self._check_g2p_settings_rights()
        cron = self.env.ref("g2p_encryption.ir_cron_count_registry", raise_if_not_found=False)
        tables = {"res_partner"} | {
            self.env[name]._table for name in self.env["g2p.encryption.job"]._registry_models()
        }
        self.env.cr.execute(
            "SELECT sum(pg_total_relation_size(t::regclass)) FROM unnest(%s::text[]) AS t", [sorted(tables)]
        )
        if self.env.cr.fetchone()[0] <= COUNT_AT_ONCE_BYTES or not (cron and cron.sudo().active):
            # Small enough, or nothing would count it in the background (its scheduled action
            # archived): counted now, as asked.
            self.env["res.partner"].sudo()._g2p_count_registry()
            return {"type": "ir.actions.client", "tag": "reload"}
        cron.sudo()._trigger()
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "info",
                "message": _(
                    "The registry is being counted in the background; "
                    "reload Settings in a few minutes to see the counts."
                ),
            },
        }

    def action_g2p_open_jobs(self):
        self._check_g2p_settings_rights()
        return self.env["ir.actions.act_window"]._for_xml_id("g2p_encryption.encryption_job_action")

    @identity_if(lambda settings: settings._g2p_turning_decryption_on())
    def execute(self):
        self.ensure_one()
        if self._g2p_settings_changed():
            self._check_g2p_settings_rights()
        # set_values, an RPC endpoint too, switches decryption on only from here: after the
        # password was asked for (a channel no client reaches).
        return super(ResConfigSettings, internal(self)).execute()

    def _check_g2p_settings_rights(self):
        if not self.env.user.has_group(CRYPTO_ADMIN):
            raise AccessError(_("Only a Crypto Admin changes the registry encryption settings."))

    def _g2p_turning_decryption_on(self):
        return self.decrypt_registry and not self.env["ir.config_parameter"].sudo().get_param(PARAM_DECRYPT)

    def _g2p_settings_changed(self):
        params = self.env["ir.config_parameter"].sudo()
        current = {
            "registry_encryption_provider_id": int(
                params.get_param("g2p_encryption.registry_encryption_provider_id") or 0
            ),
            "encrypt_registry": bool(params.get_param(PARAM_ENCRYPT)),
            "decrypt_registry": bool(params.get_param(PARAM_DECRYPT)),
            "plaintext_group_id": int(params.get_param(PARAM_READER_GROUP) or 0),
        }
        wanted = {
            "registry_encryption_provider_id": self.registry_encryption_provider_id.id,
            "encrypt_registry": self.encrypt_registry,
            "decrypt_registry": self.decrypt_registry,
            "plaintext_group_id": self.plaintext_group_id.id,
        }
        if not wanted["registry_encryption_provider_id"]:
            wanted["registry_encryption_provider_id"] = current["registry_encryption_provider_id"]
        return wanted != current

    def set_values(self):
        if self._g2p_settings_changed():
            self._check_g2p_settings_rights()
            if self._g2p_turning_decryption_on() and not is_internal(self):
                raise AccessError(_("Turning Decrypt registry on asks for your password: use Settings."))
        params = self.env["ir.config_parameter"].sudo()
        was_encrypting = bool(params.get_param(PARAM_ENCRYPT))
        old_provider = params.get_param("g2p_encryption.registry_encryption_provider_id")
        result = super().set_values()
        jobs = self.env["g2p.encryption.job"].sudo()
        if self.encrypt_registry and not was_encrypting:
            jobs._start_registry("encrypt")
        new_provider = params.get_param("g2p_encryption.registry_encryption_provider_id")
        if old_provider and new_provider != old_provider:
            self.env.registry.clear_cache()
            jobs._start_registry("reencrypt")
        return result


class IrConfigParameter(models.Model):
    _inherit = "ir.config_parameter"

    @api.model_create_multi
    def create(self, vals_list):
        self._check_g2p_parameters([vals.get("key") or "" for vals in vals_list])
        return super().create(vals_list)

    def write(self, vals):
        self._check_g2p_parameters(self.mapped("key") + [vals.get("key") or ""])
        return super().write(vals)

    def unlink(self):
        self._check_g2p_parameters(self.mapped("key"))
        return super().unlink()

    def _check_g2p_parameters(self, keys):
        """The encryption settings are a Crypto Admin's (Settings writes them in sudo after its
        own check); a Settings admin cannot switch decryption on through System Parameters."""
        if self.env.su or not any(key.startswith(PARAM_PREFIX) for key in keys):
            return
        if any(key in SETTINGS_PARAMS for key in keys):
            raise AccessError(
                _("The registry's encryption settings are changed in Settings ‣ G2P Encryption only.")
            )
        if PARAM_COUNTS in keys:
            raise AccessError(_("The registry's counts are written by the count itself (Count now)."))
        if not self.env.user.has_group(CRYPTO_ADMIN):
            raise AccessError(_("Only a Crypto Admin changes the g2p_encryption parameters."))
