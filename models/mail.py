# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The chatter of encrypted records: its stored copies are encrypted, its display is an exit.

Mail keeps copies of a document's values: tracking values (old and new value of a tracked field,
the inline address...), the document's name on each message (``record_name``) and on each
activity (``res_name``). For documents in scope (registrants) those columns are encrypted like the
document's own fields, bound to their tracking value, message or activity. The chatter formats
messages for a person: that is an exit.
"""

from collections import defaultdict

from odoo import api, models

from .encryption_exits import exit_for, person_request


def documents_in_scope(env, documents):
    """The ``(model name, res id)`` of ``documents`` that have encrypted fields and are in scope:
    each model's documents are looked at together (a query or two per model, not per document)."""
    ids_by_model = defaultdict(set)
    for model_name, res_id in documents:
        if model_name and res_id and model_name in env and env[model_name]._g2p_encrypted:
            ids_by_model[model_name].add(res_id)
    in_scope = set()
    for model_name, ids in ids_by_model.items():
        records = env[model_name].sudo().browse(ids).exists()._g2p_in_scope()
        in_scope.update((model_name, record_id) for record_id in records.ids)
    return in_scope


class MailMessage(models.Model):
    _inherit = "mail.message"

    _encrypted_fields = {"record_name": None}

    def _g2p_in_scope(self):
        in_scope = documents_in_scope(self.env, [(message.model, message.res_id) for message in self])
        return self.filtered(lambda message: (message.model, message.res_id) in in_scope)

    @api.model
    def _g2p_rows_in_scope(self, stored_list):
        documents = [(stored.get("model"), stored.get("res_id")) for stored in stored_list]
        in_scope = documents_in_scope(self.env, documents)
        return [document in in_scope for document in documents]

    def _message_format(self, fnames, format_reply=True):
        if not person_request(self.env):
            return super()._message_format(fnames, format_reply)
        with exit_for(self.env, "mail.message._message_format"):
            return super()._message_format(fnames, format_reply)


class MailTrackingValue(models.Model):
    _inherit = "mail.tracking.value"

    _encrypted_fields = {"old_value_char": None, "new_value_char": None}

    def _g2p_in_scope(self):
        messages = self.mail_message_id._g2p_in_scope()
        return self.filtered(lambda tracking: tracking.mail_message_id in messages)

    @api.model
    def _g2p_rows_in_scope(self, stored_list):
        message_ids = [stored.get("mail_message_id") for stored in stored_list]
        messages = (
            self.env["mail.message"].sudo().browse({message_id for message_id in message_ids if message_id})
        )
        in_scope = set(messages._g2p_in_scope().ids)
        return [message_id in in_scope for message_id in message_ids]


class MailActivity(models.Model):
    _inherit = "mail.activity"

    _encrypted_fields = {"res_name": None}

    def _g2p_in_scope(self):
        documents = [(activity.res_model, activity.res_id) for activity in self]
        in_scope = documents_in_scope(self.env, documents)
        return self.filtered(lambda activity: (activity.res_model, activity.res_id) in in_scope)

    @api.model
    def _g2p_rows_in_scope(self, stored_list):
        documents = [(stored.get("res_model"), stored.get("res_id")) for stored in stored_list]
        in_scope = documents_in_scope(self.env, documents)
        return [document in in_scope for document in documents]
