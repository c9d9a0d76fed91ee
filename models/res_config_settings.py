# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
from odoo import fields, models


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    registry_encryption_provider_id = fields.Many2one(
        "g2p.encryption.provider",
        string="Registry provider",
        config_parameter="g2p_encryption.registry_encryption_provider_id",
        help="Provider whose keys encrypt registrant data.",
    )
    encrypt_registry = fields.Boolean(
        config_parameter="g2p_encryption.encrypt_registry",
        help="Encrypt the configured fields of registrants; registrants stored in plaintext are "
        "encrypted in the background, in batches.",
    )
    decrypt_registry = fields.Boolean(
        config_parameter="g2p_encryption.decrypt_registry",
        help="Let members of Crypto Admin read registrant data in the clear. Every such read is "
        "recorded in the decryption log.",
    )

    def set_values(self):
        was_encrypting = self.env["g2p.encrypted.mixin"]._encryption_enabled()
        result = super().set_values()
        if self.encrypt_registry and not was_encrypting:
            self.env["g2p.encryption.job"]._start_registry_encryption()
        return result
