# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The web client's doors out of the server, as exits (``models/encryption_exits.py``).

* ``/web/dataset/call_kw`` and ``call_button``: the read methods are exits of their own (on every
  model); the few ORM methods that hand out values without being one (``mapped``, ``copy_data``,
  ``copy``, ``default_get``, ``name_get``, ``onchange``) are run inside an exit. The answer of
  every JSON route a person calls, these and any other (``ir.http``,
  ``encryption_exits.scan_result``), is scanned for stored plaintext, which is masked (or
  audited) there.
* ``/mail/thread/data``: what the chatter loads with a record (its followers, the recipients it
  suggests: ``"Name" <email>`` of the record itself when it is a person) is read inside an exit,
  and so are the failed messages of ``/mail/load_message_failures``, the message a person edits
  (``/mail/message/update_content``, formatted in sudo) and the contact cards of
  ``/web/partner/vcard``; a file's name (``ir.binary``: ``/web/image``, ``/web/content``) too.
  A message about a registrant is not sent to Google for translation (``/mail/message/translate``).
* The external API (XML-RPC, ``/jsonrpc``): Odoo runs its calls without the request, so the thread
  is marked while it serves one (``external_api``): as over the web client, its read methods are
  exits, the value methods run inside one, its exact lookups are capped and logged, and the answer
  is scanned (after Odoo has committed the call: the policy is read in a transaction of its own).
* ``/report/...``: a report printed by a person is rendered inside an exit, and named there
  (``/report/download``). Documents that
  business modules render for beneficiaries (vouchers, credentials) do not come this way and
  carry the real values.
"""

import contextlib
import xmlrpc.client

from odoo import _, http
from odoo.http import dispatch_rpc, request

from odoo.addons.base.controllers.rpc import RPC, OdooMarshaller
from odoo.addons.mail.controllers.google_translate import GoogleTranslateController
from odoo.addons.mail.controllers.thread import ThreadController
from odoo.addons.mail.controllers.webclient import WebclientController
from odoo.addons.web.controllers.dataset import DataSet
from odoo.addons.web.controllers.report import ReportController
from odoo.addons.web.controllers.vcard import Partner as VcardController

from ..models.encrypted_field import AtRest, Given, Masked, PlainAtRest, Shown, Unreadable
from ..models.encryption_exits import (
    SUGGESTIONS,
    VALUE_METHODS,
    WIZARD_WRITE_METHODS,
    exit_for,
    external_api,
    person_request,
    refuse_recordset_method,
    scan_external_answer,
    strike_out_external,
    typed_addresses,
)

# The value methods (VALUE_METHODS, models/encryption_exits.py), public methods that return
# field values without being an exit themselves, run inside one. ``onchange`` and ``default_get``
# compute values from stored ones (a composer's subject from the record's name, an SMS composer's
# number from the phone, an invitation's text) before they read them; ``copy`` stores what it read
# in a new record, which may be out of scope (in the clear): a person who may not read the values
# gets masks, which are refused (check_not_masked).

# Methods whose domain comes from the person: their lookups by exact value are capped and logged
# (models/search_log.py); lookups of server code run by a button are not.
SEARCH_METHODS = frozenset(
    {
        "search",
        "search_count",
        "search_read",
        "search_fetch",
        "web_search_read",
        "name_search",
        "read_group",
        "web_read_group",
        "read_progress_bar",
        # The search panel's counts: whether a domain the person gives finds someone; so do
        # the activity view's rows.
        "search_panel_select_range",
        "search_panel_select_multi_range",
        "get_activity_data",
    }
)
# What the composer and Discuss suggest as the person types ("@" mentions, invitations): their
# "contains" searches find only what is stored in the clear, for everyone.
SUGGESTION_METHODS = frozenset(
    {
        "get_mention_suggestions",
        "get_mention_suggestions_from_channel",
        "im_search",
        "search_for_channel_invite",
    }
)
# Methods that find partners by the e-mail addresses a person types, else make contacts of them:
# a lookup of the person's too, which finds only what is stored in the clear for one who may not
# look registrants up (``typed_addresses``).
TYPED_ADDRESS_METHODS = frozenset({"find_or_create"})


class DataSetExits(DataSet):
    def _call_kw(self, model, method, args, kwargs):
        env = request.env
        entry_point = f"{model}.{method}"
        if not person_request(env):
            return super()._call_kw(model, method, args, kwargs)
        refuse_recordset_method(model, method)
        if method in SEARCH_METHODS:
            env.transaction.g2p_person_search = True
        elif method in SUGGESTION_METHODS:
            env.transaction.g2p_person_search = SUGGESTIONS
        if method in TYPED_ADDRESS_METHODS:
            with typed_addresses(env):
                return super()._call_kw(model, method, args, kwargs)
        if method in WIZARD_WRITE_METHODS and env[model]._transient:
            env.transaction.g2p_served_wizard = model  # Base.create
        if method in VALUE_METHODS:
            with exit_for(env, entry_point):
                return super()._call_kw(model, method, args, kwargs)
        return super()._call_kw(model, method, args, kwargs)  # its answer is scanned (ir.http)


# XML-RPC writes a value by its exact type: the types that tell where a plaintext came from (and
# masks) are written as the strings they are.
for kind in (AtRest, Shown, PlainAtRest, Given, Masked, Unreadable):
    OdooMarshaller.dispatch[kind] = OdooMarshaller.dispatch[str]


class ExternalApiExits(RPC):
    """XML-RPC and /jsonrpc: their calls are a person's. Read methods are exits, the value
    methods run in one, exact lookups are capped and logged, and the answer is scanned."""

    def _xmlrpc(self, service):
        # Odoo's, with the answer scanned before it is written.
        params, method = xmlrpc.client.loads(request.httprequest.get_data())
        result = self._serve_external(service, method, params)
        return xmlrpc.client.dumps((result,), methodresponse=1, allow_none=False)

    @http.route()
    def jsonrpc(self, service, method, args):
        return self._serve_external(service, method, args)

    def _serve_external(self, service, method, params):
        model = orm_method = None
        if service == "object" and method in ("execute", "execute_kw") and len(params) > 4:
            model, orm_method = params[3], params[4]
            refuse_recordset_method(model, orm_method)
        with external_api(model, orm_method) as call:
            try:
                result = dispatch_rpc(service, method, params)
            except Exception as error:
                if call.seen:  # plaintext was decrypted: the call's user is known
                    strike_out_external(params[0], params[1], error, call.seen)
                raise
            if orm_method is None:
                return result
            # The credentials were checked: the call ran as that user.
            return scan_external_answer(params[0], int(params[1]), f"{model}.{orm_method}", result)


class ThreadExits(ThreadController):
    @http.route()
    def mail_thread_data(self, thread_model, thread_id, request_list):
        # A read only (followers, attachments, activities, suggested recipients): an exit as a
        # whole, so that values made from encrypted ones ("Name" <email>) are made from masks.
        with exit_for(request.env, f"{thread_model}.mail_thread_data"):
            return super().mail_thread_data(thread_model, thread_id, request_list)

    @http.route()
    def mail_thread_partner_from_email(self, emails, additional_values=None):
        # The composer's recipients typed as addresses: partners found (or made) from them.
        with typed_addresses(request.env):
            return super().mail_thread_partner_from_email(emails, additional_values)

    @http.route()
    def mail_message_post(self, thread_model, thread_id, post_data, context=None):
        # ``partner_emails``: the addresses typed as the message's new recipients.
        typed = post_data.get("partner_emails")
        with typed_addresses(request.env) if typed else contextlib.nullcontext():
            return super().mail_message_post(thread_model, thread_id, post_data, context=context)

    @http.route()
    def mail_message_update_content(
        self, message_id, body, attachment_ids, attachment_tokens=None, partner_ids=None
    ):
        # Answers with the message formatted in sudo (the document's name): an exit. What it
        # writes is the message's body only.
        with exit_for(request.env, "mail.message update_content"):
            return super().mail_message_update_content(
                message_id, body, attachment_ids, attachment_tokens=attachment_tokens, partner_ids=partner_ids
            )


class TranslateExits(GoogleTranslateController):
    @http.route()
    def translate(self, message_id):
        # The chatter's Translate (when a Google Translate key is set) sends the message's text to
        # Google and keeps the translation in the clear: never for a message about a registrant.
        message = request.env["mail.message"].search([("id", "=", message_id)])
        if message and message.sudo()._g2p_in_scope():
            return {
                "error": _("Messages about people in the registry are not sent to a translation service.")
            }
        return super().translate(message_id)


class MessageFailureExits(WebclientController):
    @http.route()
    def mail_load_message_failures(self):
        # The messages of this user that failed to reach their recipients (read in sudo): the
        # recipients' names.
        with exit_for(request.env, "mail.message failures"):
            return super().mail_load_message_failures()


class VcardExits(VcardController):
    @http.route()
    def download_vcard(self, partner_ids=None, partner=None, **kwargs):
        # A contact card holds name, address, e-mail and phones, and is named after the partner.
        with exit_for(request.env, "res.partner vcard"):
            return super().download_vcard(partner_ids=partner_ids, partner=partner, **kwargs)


class ReportExits(ReportController):
    @http.route()
    def report_routes(self, reportname, docids=None, converter=None, **data):
        with exit_for(request.env, f"report {reportname}"):
            return super().report_routes(reportname, docids=docids, converter=converter, **data)

    @http.route()
    def report_download(self, data, context=None, token=None):
        # The web client's download: the report, and its file name (``print_report_name``, often
        # made from the record's name), in one exit.
        with exit_for(request.env, "report download"):
            return super().report_download(data, context=context, token=token)
