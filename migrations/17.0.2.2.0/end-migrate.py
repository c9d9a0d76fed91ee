# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""17.0.2.2.0, once every module is loaded (OpenG2P's IDs and phone numbers too): contacts and
addresses under a registrant are in scope (``g2p_in_registry``, set by one statement when its
column is made). What they stored before is encrypted by registry jobs, in the background, when
the registry is encrypted."""

from odoo import SUPERUSER_ID, api


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    if env["ir.config_parameter"].get_param("g2p_encryption.encrypt_registry"):
        # Every model: the bank accounts, IDs and chatter copies of such contacts are in scope too.
        env["g2p.encryption.job"]._start_registry_encryption()
