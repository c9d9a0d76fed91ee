# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The chatter of encrypted records: its stored copies are encrypted, its display is an exit.

Mail keeps copies of a document's values: tracking values (old and new value of a tracked field,
the inline address...) and the document's name on each message (``record_name``). For documents
in scope (registrants) those columns are encrypted like the document's own fields, bound to their
tracking value or message. The chatter formats messages for a person: that is an exit.
"""

from odoo import api, models

from .encryption_exits import exit_for, person_request


def document_in_scope(env, model_name, res_id):
    """Whether the document ``model_name``/``res_id`` has encrypted fields and is in scope."""
    if not model_name or not res_id or model_name not in env:
        return False
    model = env[model_name]
    return bool(model._g2p_encrypted) and bool(model.sudo().browse(res_id).exists()._g2p_in_scope())


class MailMessage(models.Model):
    _inherit = "mail.message"

    _encrypted_fields = {"record_name": None}

    def _g2p_in_scope(self):
        return self.filtered(lambda message: document_in_scope(self.env, message.model, message.res_id))

    @api.model
    def _g2p_vals_in_scope(self, stored):
        return document_in_scope(self.env, stored.get("model"), stored.get("res_id"))

    def _message_format(self, fnames, format_reply=True):
        if not person_request(self.env):
            return super()._message_format(fnames, format_reply)
        with exit_for(self.env, "mail.message._message_format"):
            return super()._message_format(fnames, format_reply)


class MailTrackingValue(models.Model):
    _inherit = "mail.tracking.value"

    _encrypted_fields = {"old_value_char": None, "new_value_char": None}

    def _g2p_in_scope(self):
        return self.filtered(
            lambda tracking: document_in_scope(
                self.env, tracking.mail_message_id.model, tracking.mail_message_id.res_id
            )
        )

    @api.model
    def _g2p_vals_in_scope(self, stored):
        message = self.env["mail.message"].sudo().browse(stored.get("mail_message_id"))
        return bool(message) and document_in_scope(self.env, message.model, message.res_id)
