# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""17.0.2.4.0, once every module is loaded: what a message about a registrant says (its subject,
its body, its sender and reply-to addresses) is encrypted like its record name, and so are an
e-mail's own copy of the body and its recipients' addresses, and an activity's summary and note.
What messages, e-mails and activities stored before is encrypted by registry jobs, in the
background, when the registry is encrypted: they read every message, e-mail and activity once (a
job still running for one of these models, 17.0.2.3.0's, is superseded: it was planned for fewer
fields). Translations of messages about registrants (the chatter's *Translate*, kept in the
clear) are deleted."""

from odoo import SUPERUSER_ID, api


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    translated = env["mail.message.translation"].search([]).message_id
    env["mail.message"]._g2p_forget_translations(translated)
    if env["ir.config_parameter"].get_param("g2p_encryption.encrypt_registry"):
        provider = env["g2p.encryption.provider"]._get_registry_provider()
        for model_name in ("mail.message", "mail.mail", "mail.activity"):
            env["g2p.encryption.job"]._start_again(provider, "encrypt", model_name)
