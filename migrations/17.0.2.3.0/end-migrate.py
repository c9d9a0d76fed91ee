# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""17.0.2.3.0, once every module is loaded: a user's scope is its partner's (``_inherits``), so the
chatter's copies of a registrant's user's name (a tracked many2one to ``res.users``, the messages
and activities about the user) are in scope. What they stored before is encrypted by registry
jobs, in the background, when the registry is encrypted: they read every message, tracking value
and activity once. The signature Odoo made of such a user's name (HTML, which is not encrypted)
is emptied. (A tracked many2many or one2many stored before names
its records without their ids: it is not known to name a registrant, and stays as it is.)"""

from odoo import SUPERUSER_ID, api


def migrate(cr, version):
    if not version:
        return
    # The signatures Odoo made of registrants' portal users' names ("--<br/>Name"), in the clear.
    cr.execute(
        """UPDATE res_users u SET signature = NULL FROM res_partner p
           WHERE p.id = u.partner_id AND p.g2p_in_registry AND u.share AND u.signature IS NOT NULL"""
    )
    env = api.Environment(cr, SUPERUSER_ID, {})
    if env["ir.config_parameter"].get_param("g2p_encryption.encrypt_registry"):
        provider = env["g2p.encryption.provider"]._get_registry_provider()
        for model_name in ("mail.message", "mail.tracking.value", "mail.activity"):
            env["g2p.encryption.job"]._start(provider, "encrypt", model_name)
