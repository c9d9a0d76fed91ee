# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""17.0.2.5.0, once every module is loaded: the scan of fields computed from encrypted ones
follows dependencies through non-stored fields (a partner's display name), so it finds Odoo's
``account.move.invoice_partner_display_name``: a registrant's name on each of their invoices and
payments, stored in the clear before. It is listed (derived) when the registry loads. Two
defaults are added: the holder's name of a bank account (``res.partner.bank.acc_holder_name``,
which Odoo computes from the partner's name) and the account number OpenG2P copies into each
payment (``g2p.payment.account_number``). What they stored before is encrypted by registry jobs,
in the background, when the registry is encrypted, and so is the chatter of registrants' invoices
and payments (its messages, e-mails and activities: every one is read once).
(A field of another module found the same way is named in the log, *Encrypting stored fields
computed from encrypted fields*: run *Encrypt registry* for its model.)"""

from odoo import SUPERUSER_ID, api


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    found = env["g2p.encrypted.field"]._protect_derived_fields()
    models = {model_name for model_name, _field, _scope in found}
    if "account.move" in env and env["account.move"]._g2p_encrypted:
        models.add("account.move")  # listed already, by a start of this version before the upgrade
        # The chatter of registrants' invoices and payments (an invoice's e-mail names its
        # customer) has their scope from now on.
        models.update(("mail.message", "mail.tracking.value", "mail.mail", "mail.activity"))
    # New defaults: the holder's name of a bank account, the account number copied into payments.
    models.update(name for name in ("res.partner.bank", "g2p.payment") if name in env)
    if models and env["ir.config_parameter"].get_param("g2p_encryption.encrypt_registry"):
        provider = env["g2p.encryption.provider"]._get_registry_provider()
        tables = {name for name in models if name in env and env[name]._auto and not env[name]._abstract}
        for model_name in sorted(tables):
            env["g2p.encryption.job"]._start_again(provider, "encrypt", model_name)
