# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""17.0.2.3.0, once every module is loaded: a user's scope is its partner's (``_inherits``), so the
chatter's copies of a registrant's user's name (a tracked many2one to ``res.users``, the messages
and activities about the user) are in scope. What they stored before is encrypted by registry
jobs, in the background, when the registry is encrypted: they read every message, tracking value
and activity once. The signatures of registrants' portal users (HTML, which is not encrypted:
Odoo makes them of the user's name) are emptied. (A tracked many2many or one2many stored before
names its records without their ids: it is not known to name a registrant, and stays as it is.)"""

from odoo import SUPERUSER_ID, api


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    env["res.users"]._g2p_forget_signatures()
    if env["ir.config_parameter"].get_param("g2p_encryption.encrypt_registry"):
        provider = env["g2p.encryption.provider"]._get_registry_provider()
        for model_name in ("mail.message", "mail.tracking.value", "mail.activity"):
            env["g2p.encryption.job"]._start(provider, "encrypt", model_name)
