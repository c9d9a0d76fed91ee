# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The registry jobs as a provider starts them: its buttons, and who may press them."""

from odoo import _, api, fields, models
from odoo.exceptions import AccessError


class EncryptionProviderJobs(models.Model):
    _inherit = "g2p.encryption.provider"

    job_ids = fields.One2many("g2p.encryption.job", "provider_id", string="Registry jobs")

    def action_encrypt_registry(self):
        """Encrypt, in chunks, the values of records in scope still stored in the clear."""
        self._check_crypto_admin()
        self.env["g2p.encryption.job"].sudo()._start_registry("encrypt")
        return True

    def action_reencrypt_registry(self):
        """Move every encrypted value to the registry provider's active key, in chunks."""
        self._check_crypto_admin()
        self.env["g2p.encryption.job"].sudo()._start_registry("reencrypt")
        return True

    def action_migrate_openg2p_registry(self):
        """Read registrants encrypted by OpenG2P's g2p_registry_encryption with this provider and
        store them encrypted by the registry provider, in chunks."""
        self.ensure_one()
        self._check_crypto_admin()
        self.env["g2p.encryption.job"].sudo()._start(self, "migrate_openg2p", "res.partner")
        return True

    @api.model
    def _check_crypto_admin(self):
        if not self.env.user.has_group("g2p_encryption.crypto_admin"):
            raise AccessError(_("Only a Crypto Admin starts registry jobs."))
