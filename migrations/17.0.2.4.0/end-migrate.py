# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""17.0.2.4.0, once every module is loaded: what a message about a registrant says (its subject,
its body, its sender and reply-to addresses) is encrypted like its record name. What messages
stored before is encrypted by a registry job, in the background, when the registry is encrypted:
it reads every message once (a job still running for messages is superseded: it was planned for
fewer fields)."""

from odoo import SUPERUSER_ID, api


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    if env["ir.config_parameter"].get_param("g2p_encryption.encrypt_registry"):
        provider = env["g2p.encryption.provider"]._get_registry_provider()
        # A job still running for messages (17.0.2.3.0's) found only the records it had to
        # encrypt then: planned again.
        env["g2p.encryption.job"]._start_again(provider, "encrypt", "mail.message")
