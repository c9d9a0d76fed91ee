# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The web client's doors out of the server, as exits (``models/encryption_exits.py``).

* ``/web/dataset/call_kw`` and ``call_button``: the read methods are exits of their own (on every
  model); the few ORM methods that hand out values without being one (``mapped``, ``copy_data``,
  ``name_get``) are run inside an exit. The answer of every JSON route a person calls, these and
  any other (``ir.http``, ``encryption_exits.scan_result``), is scanned for stored plaintext,
  which is masked (or audited) there.
* ``/mail/thread/data``: what the chatter loads with a record (its followers, the recipients it
  suggests: ``"Name" <email>`` of the record itself when it is a person) is read inside an exit,
  and so are the failed messages of ``/mail/load_message_failures`` and the contact cards of
  ``/web/partner/vcard``; a file's name (``ir.binary``: ``/web/image``, ``/web/content``) too.
* ``/report/...``: a report printed by a person is rendered inside an exit. Documents that
  business modules render for beneficiaries (vouchers, credentials) do not come this way and
  carry the real values.
"""

from odoo import http
from odoo.http import request

from odoo.addons.mail.controllers.thread import ThreadController
from odoo.addons.mail.controllers.webclient import WebclientController
from odoo.addons.web.controllers.dataset import DataSet
from odoo.addons.web.controllers.report import ReportController
from odoo.addons.web.controllers.vcard import Partner as VcardController

from ..models.encryption_exits import exit_for, person_request

# Public ORM methods that return field values without being an exit themselves: run inside one.
# ``onchange`` computes values from stored ones (a composer's subject from the record's name, an
# SMS composer's number from the phone) before it reads them.
VALUE_METHODS = frozenset({"mapped", "copy_data", "name_get", "onchange"})
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
    }
)


class DataSetExits(DataSet):
    def _call_kw(self, model, method, args, kwargs):
        env = request.env
        entry_point = f"{model}.{method}"
        if not person_request(env):
            return super()._call_kw(model, method, args, kwargs)
        if method in SEARCH_METHODS:
            env.transaction.g2p_person_search = True
        if method in VALUE_METHODS:
            with exit_for(env, entry_point):
                return super()._call_kw(model, method, args, kwargs)
        return super()._call_kw(model, method, args, kwargs)  # its answer is scanned (ir.http)


class ThreadExits(ThreadController):
    @http.route()
    def mail_thread_data(self, thread_model, thread_id, request_list):
        # A read only (followers, attachments, activities, suggested recipients): an exit as a
        # whole, so that values made from encrypted ones ("Name" <email>) are made from masks.
        with exit_for(request.env, f"{thread_model}.mail_thread_data"):
            return super().mail_thread_data(thread_model, thread_id, request_list)


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
