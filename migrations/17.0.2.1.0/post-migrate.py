# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""17.0.2.1.0: an activity's copy of its document's name (``mail.activity.res_name``) is
encrypted for documents in scope. Activities stored before are encrypted by a registry job, in the
background, when the registry is encrypted."""

from odoo import SUPERUSER_ID, api


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    if env["ir.config_parameter"].get_param("g2p_encryption.encrypt_registry"):
        provider = env["g2p.encryption.provider"]._get_registry_provider()
        env["g2p.encryption.job"]._start(provider, "encrypt", "mail.activity")
