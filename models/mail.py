# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The chatter of encrypted records: its stored copies are encrypted, its display is an exit.

Mail keeps copies of a document's values: tracking values (old and new value of a tracked field,
the inline address...), the document's name on each message (``record_name``) and on each
activity (``res_name``); and what a message about it says (subject, body, addresses). For
documents in scope (registrants) those columns are encrypted like the document's own fields, bound
to their tracking value, message or activity; an e-mail (``mail.mail``) has its message's scope.
The chatter formats messages and followers for a person: that is an exit; and a message goes to
its recipients' inboxes and browsers, and its delivery status over the bus, formatted as for one
who may not read plaintext. A person who may not read a message about a registrant cannot edit it.
"""

from collections import defaultdict

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL, html2plaintext

from .encryption_exits import PARAM_ENCRYPT, exit_for, may_be_in_scope, person_request, reader_allowed

# What a message says (besides its document's name): a person's edit of it is checked.
MESSAGE_TEXT = ("subject", "body", "email_from", "reply_to")


# Documents without encrypted fields whose display name, which Odoo copies into each message about
# them (``record_name``), is made of the names of the records in these many2one fields: OpenG2P's
# relationship between two registrants ("Source / Destination"). Such a document is in scope for
# its chatter when one of them is.
NAMED_AFTER = {"g2p.reg.rel": ("source", "destination")}


def documents_in_scope(env, documents):
    """The ``(model name, res id)`` of ``documents`` that are in scope (``records_in_scope``, or
    named after records in scope: ``NAMED_AFTER``): each model's documents are looked at together
    (a few queries per model, not per document)."""
    ids_by_model = defaultdict(set)
    for model_name, res_id in documents:
        if (
            model_name
            and res_id
            and model_name in env
            and (model_name in NAMED_AFTER or may_be_in_scope(env[model_name]))
        ):
            ids_by_model[model_name].add(res_id)
    in_scope = set()
    for model_name, ids in ids_by_model.items():
        records = env[model_name].sudo().browse(ids).exists()
        links = NAMED_AFTER.get(model_name)
        records = named_after_in_scope(records, links) if links else records_in_scope(records)
        in_scope.update((model_name, record_id) for record_id in records.ids)
    return in_scope


def named_after_in_scope(records, links):
    """The ``records`` (sudo) one of whose many2one ``links`` is a record in scope."""
    records.fetch(list(links))
    named = set()
    for link in links:
        targets = records.mapped(link)
        named.update((link, target_id) for target_id in records_in_scope(targets)._ids)
    return records.filtered(lambda record: any((link, record[link].id) in named for link in links))


def records_in_scope(records):
    """The ``records`` in scope (``_g2p_in_scope``, in sudo); none of a model that has no
    encrypted fields and delegates to none that has (``may_be_in_scope``)."""
    return records.sudo()._g2p_in_scope() if may_be_in_scope(records) else records.browse()


def copies_in_scope(records, model_field, id_field):
    """The ``records`` (messages, activities: copies of a document's values) whose document, named
    by ``model_field`` and ``id_field``, is in scope."""
    documents = [(record[model_field], record[id_field]) for record in records]
    in_scope = documents_in_scope(records.env, documents)
    return records.browse(
        [
            record_id
            for record_id, document in zip(records._ids, documents, strict=True)
            if document in in_scope
        ]
    )


def tracked_records_in_scope(env, trackings):
    """For each ``(field id, old id, new id)`` of tracking values: whether the field is a many2one
    and its old or new value is a record in scope (its display name is then a copy of that
    record's values, whatever the document: a contact moved out from under a registrant)."""
    fields_by_id = {
        field.id: field
        for field in env["ir.model.fields"].sudo().browse({row[0] for row in trackings if row[0]})
    }
    named = []
    for field_id, old_id, new_id in trackings:
        field = fields_by_id.get(field_id)
        relation = field.relation if field and field.ttype == "many2one" else None
        named.append([(relation, old_id), (relation, new_id)] if relation else [])
    in_scope = documents_in_scope(env, [document for pair in named for document in pair])
    return [any(document in in_scope for document in pair) for pair in named]


def copy_rows_in_scope(env, stored_list, model_field, id_field):
    """``copies_in_scope`` of rows about to be stored: one boolean per row."""
    documents = [(stored.get(model_field), stored.get(id_field)) for stored in stored_list]
    in_scope = documents_in_scope(env, documents)
    return [document in in_scope for document in documents]


def check_text_edit(messages, values):
    """Refuse a person's edit that would store a mask over what messages about registrants say:
    one who may not read them is shown the mask (as soon as values are encrypted, or stored
    so), and a reader may have been shown it too (a notification over the bus). Emptying the
    text (deleting a message) stays possible; server code is not concerned."""
    names = [name for name in MESSAGE_TEXT if values.get(name)]
    env = messages.env
    if not names or not person_request(env):
        return
    in_scope = messages.sudo()._g2p_in_scope()
    if not in_scope:
        return
    if reader_allowed(env):
        mask = in_scope[:1]._g2p_mask_text()
        if any(mask in html2plaintext(str(values[name])) for name in names):
            raise UserError(
                _(
                    "The text holds the mask of an encrypted value (%(mask)s): saving it would "
                    "replace the real text. Reload the page and edit the text itself.",
                    mask=mask,
                )
            )
        return
    if not env["ir.config_parameter"].sudo().get_param(PARAM_ENCRYPT):
        env.cr.execute(
            SQL(
                "SELECT 1 FROM mail_message WHERE id IN %s AND (%s) LIMIT 1",
                tuple(in_scope._ids),
                SQL(" OR ").join(SQL("%s LIKE 'g2p%%'", SQL.identifier(name)) for name in names),
            )
        )
        if not env.cr.fetchone():
            return  # stored in the clear, shown as it is
    raise UserError(
        _(
            "This message is about a person in the registry, which you may not read: it "
            "cannot be edited (you would replace its text with the mask you see)."
        )
    )


class MailMessage(models.Model):
    _inherit = "mail.message"

    # A message about a registrant: its document's name, what was written (a note, an e-mail to
    # or from the registrant) and its addresses (Odoo names the document in ``reply_to``).
    _encrypted_fields = dict.fromkeys(("record_name", *MESSAGE_TEXT))

    def _g2p_in_scope(self):
        return copies_in_scope(self, "model", "res_id")

    @api.model
    def _g2p_rows_in_scope(self, stored_list):
        return copy_rows_in_scope(self.env, stored_list, "model", "res_id")

    def _message_format(self, fnames, format_reply=True):
        if not person_request(self.env):
            return super()._message_format(fnames, format_reply)
        with exit_for(self.env, "mail.message._message_format"):
            return super()._message_format(fnames, format_reply)

    def _notify_message_notification_update(self):
        # The messages' delivery status goes over the bus to their authors and to whoever changed
        # it (a failure, a bounce, a resend), formatted once for them all: as one who may not read
        # plaintext sees it (the recipients' names), without the text of messages about
        # registrants (``_message_notification_format``).
        transaction = self.env.transaction
        transaction.g2p_bus_update = True
        try:
            with exit_for(self.env, "mail.message notification update", allowed=False):
                return super()._notify_message_notification_update()
        finally:
            del transaction.g2p_bus_update

    def _message_notification_format(self):
        formatted = super()._message_notification_format()
        if self.env.transaction.__dict__.get("g2p_bus_update"):
            # A mask would replace, in the web client, the text a reader was shown (and an edit
            # would then save it): left out, the client keeps what it has.
            in_scope = set(self.sudo()._g2p_in_scope()._ids)
            for values in formatted:
                if values["id"] in in_scope:
                    values.pop("body", None)
        return formatted

    def write(self, vals):
        check_text_edit(self, vals)
        return super().write(vals)

    @api.model
    def _g2p_forget_translations(self, messages):
        """Delete the translations of ``messages`` in scope (the chatter's *Translate* kept them
        in the clear; it refuses such messages now)."""
        translations = (
            self.env["mail.message.translation"].sudo().search([("message_id", "in", messages.ids)])
        )
        in_scope = translations.message_id._g2p_in_scope()
        translations.filtered(lambda translation: translation.message_id in in_scope).unlink()


class MailMail(models.Model):
    _inherit = "mail.mail"

    # An e-mail keeps its own copy of the text (the body with Odoo's layout) and of its addresses
    # until it is sent, and after when it failed: encrypted for a message about a registrant.
    # Its subject and sender are its message's (``_inherits``).
    _encrypted_fields = {"body_html": None, "email_to": None, "email_cc": None}

    def _g2p_in_scope(self):
        return self._g2p_delegated_in_scope()

    @api.model
    def _g2p_rows_in_scope(self, stored_list):
        return self._g2p_delegated_rows_in_scope(stored_list)

    def _split_by_mail_configuration(self):
        # The senders pick the mail server: server code, in sudo, even when a person sends (Send
        # Now): a person's read is an exit, and a masked sender would pick a wrong server.
        return super(MailMail, self.sudo())._split_by_mail_configuration()


class MailTrackingValue(models.Model):
    _inherit = "mail.tracking.value"

    _encrypted_fields = {"old_value_char": None, "new_value_char": None}

    # Odoo stores a tracked many2many or one2many as its records' names joined, without their ids:
    # whether they name a record in scope is known when the value is made only.
    g2p_names_in_scope = fields.Boolean(
        "Names registry data",
        readonly=True,
        help="The tracked records (a many2many or one2many) included one in the registry when the "
        "value was made: the message's tracking values are encrypted.",
    )

    @api.model
    def _create_tracking_values(self, initial_value, new_value, col_name, col_info, record):
        values = super()._create_tracking_values(initial_value, new_value, col_name, col_info, record)
        if col_info["type"] in ("one2many", "many2many"):
            tracked = [value.sudo() for value in (initial_value, new_value) if value]
            if any(records_in_scope(records) for records in tracked):
                values["g2p_names_in_scope"] = True
        return values

    # A message's tracking values are in scope together: its document is in scope, or one of them
    # names a record in scope (the old parent of a contact moved out from under a registrant, whose
    # inline address, tracked in the same message, was the registrant's).
    def _g2p_in_scope(self):
        in_scope = self._g2p_messages_in_scope(self.sudo().mail_message_id)
        return self.filtered(lambda tracking: tracking.mail_message_id.id in in_scope)

    @api.model
    def _g2p_rows_in_scope(self, stored_list):
        message_ids = [stored.get("mail_message_id") for stored in stored_list]
        messages = (
            self.env["mail.message"].sudo().browse({message_id for message_id in message_ids if message_id})
        )
        in_scope = self._g2p_messages_in_scope(messages)
        named = tracked_records_in_scope(
            self.env,
            [
                (stored.get("field_id"), stored.get("old_value_integer"), stored.get("new_value_integer"))
                for stored in stored_list
            ],
        )
        in_scope.update(
            message_id
            for message_id, name, stored in zip(message_ids, named, stored_list, strict=True)
            if name or stored.get("g2p_names_in_scope")
        )
        return [message_id in in_scope for message_id in message_ids]

    @api.model
    def _g2p_messages_in_scope(self, messages):
        """Ids of ``messages`` (sudo) whose tracking values are in scope: their document is, or
        one of their tracking values names a record in scope."""
        trackings = messages.tracking_value_ids
        named = tracked_records_in_scope(
            self.env,
            [(row.field_id.id, row.old_value_integer, row.new_value_integer) for row in trackings],
        )
        naming = {
            row.mail_message_id.id
            for row, name in zip(trackings, named, strict=True)
            if name or row.g2p_names_in_scope
        }
        return set(messages._g2p_in_scope().ids) | naming


class MailActivity(models.Model):
    _inherit = "mail.activity"

    # Its document's name, and what it says (a visit planned, what was found).
    _encrypted_fields = {"res_name": None, "summary": None, "note": None}

    def _g2p_in_scope(self):
        return copies_in_scope(self, "res_model", "res_id")

    @api.model
    def _g2p_rows_in_scope(self, stored_list):
        return copy_rows_in_scope(self.env, stored_list, "res_model", "res_id")


class MailFollowers(models.Model):
    _inherit = "mail.followers"

    def _format_for_chatter(self):
        # Followers' names and e-mails for a person (``message_get_followers``, the chatter): the
        # related values are copies made outside any exit otherwise, which no scan recognises.
        if not person_request(self.env):
            return super()._format_for_chatter()
        with exit_for(self.env, "mail.followers._format_for_chatter"):
            return super()._format_for_chatter()


class DiscussChannel(models.Model):
    _inherit = "discuss.channel"

    def _notify_by_web_push_prepare_payload(self, message, msg_vals=False):
        # A channel names the author in its browser notifications, after mail's payload is made:
        # inside the same masked exit (a registrant's portal user in a chat).
        with exit_for(self.env, "discuss.channel web push", allowed=False):
            return super()._notify_by_web_push_prepare_payload(message, msg_vals=msg_vals)

    def add_members(self, *args, **kwargs):
        # Odoo posts "invited <display name> to the channel" (stored in the channel's messages,
        # which are not in scope, and read by every member) and sends the members' names and
        # e-mails over the bus: a registrant's label there, never its name.
        with exit_for(self.env, "discuss.channel.add_members", allowed=False):
            return super().add_members(*args, **kwargs)

    @api.model
    def create_group(self, *args, **kwargs):
        # A group chat with the partners chosen: the same, sent to each of them over the bus.
        with exit_for(self.env, "discuss.channel.create_group", allowed=False):
            return super().create_group(*args, **kwargs)

    @api.model
    def channel_get(self, partners_to, pin=True):
        # Odoo names a new chat after its two members (``name``, stored in the clear, sent to both
        # over the bus): a registrant's label there, never its name.
        with exit_for(self.env, "discuss.channel.channel_get", allowed=False):
            return super().channel_get(partners_to, pin=pin)


class MailThread(models.AbstractModel):
    _inherit = "mail.thread"

    def _notify_thread_by_inbox(self, message, recipients_data, msg_vals=False, **kwargs):
        # The message goes to its recipients' inboxes over the bus, formatted once for all of
        # them, whoever posts it (a person, or server code): as one who may not read plaintext
        # sees it. Each reads the message itself through an exit of their own.
        if not any(recipient["notif"] == "inbox" for recipient in recipients_data):
            return super()._notify_thread_by_inbox(message, recipients_data, msg_vals=msg_vals, **kwargs)
        with exit_for(self.env, "mail.thread inbox notification", allowed=False):
            return super()._notify_thread_by_inbox(message, recipients_data, msg_vals=msg_vals, **kwargs)

    def _message_update_content(self, message, body, *args, **kwargs):
        # The chatter's edit (the message in sudo, the person's environment here).
        check_text_edit(message.with_env(self.env), {"body": body})
        return super()._message_update_content(message, body, *args, **kwargs)

    def _notify_by_web_push_prepare_payload(self, message, msg_vals=False):
        # Browser notifications (title, text, tracked values) are made once for their recipients,
        # like the inboxes' message: as one who may not read plaintext sees it; for a message
        # about a registrant, read from the message, not from the values it was made of. (Odoo
        # makes the payload only when a recipient has a browser registered: not on every post.)
        if msg_vals and message.sudo()._g2p_in_scope():
            msg_vals = False
        with exit_for(self.env, "mail.thread web push", allowed=False):
            return super()._notify_by_web_push_prepare_payload(message, msg_vals=msg_vals)
