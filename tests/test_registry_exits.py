# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""At the exits: what a person receives over the web client's JSON-RPC, as a clerk and as a
Crypto Admin with "Decrypt registry" off and on; and the decryption log of each plaintext exit."""

import functools
import importlib.util
import json
import xmlrpc.client
from urllib.parse import urlencode

from markupsafe import Markup

from odoo.exceptions import UserError
from odoo.tests import new_test_user, tagged
from odoo.tests.common import JsonRpcException

from ..core import envelope
from ..core.redaction import SeenValues
from ..models.encrypted_field import AtRest
from ..models.encryption_exits import (
    EXTERNAL_VALUE_METHODS,
    exit_for,
    holds_stored,
    is_external_exit,
    scan_result,
    strike_out,
    wrap_external_value_methods,
)
from .common import RegistryHttpCase, marker_values
from .web_client import RpcError, WebClient

NUMBERS = range(500, 506)
FIELDS = ["name", "email", "phone", "street", "city", "complete_name", "display_name"]
SPEC = {name: {} for name in FIELDS}


@tagged("post_install", "-at_install")
class TestRegistryExits(RegistryHttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.people = cls.create_people()
        cls.company = cls.env["res.partner"].create({"name": "Zmarker0599 Company", "is_company": True})
        cls.child = cls.env["res.partner"].create(
            {"name": "Ordinary Child", "parent_id": cls.people[0].id, "type": "other"}
        )
        cls.portal = new_test_user(cls.env, login="g2p_portal", groups="base.group_portal")
        cls.clerk.groups_id += cls.env.ref("base.group_allow_export") | cls.env.ref(
            "g2p_encryption.registry_searcher"
        )

    @classmethod
    def create_people(cls):
        return cls.env["res.partner"].create([dict(marker_values(n), is_registrant=True) for n in NUMBERS])

    def label(self, person):
        return f"Registrant #{person.id}"

    def search_read(self, user):
        return self.rpc(
            user, "res.partner", "web_search_read", [("id", "in", self.people.ids)], SPEC, order="id"
        )["records"]

    def test_create_company_keeps_a_registrants_address_out_of_the_company(self):
        # The button beside *Company Name* on the partner form: the company it makes is stored
        # in the clear, without the registrant's address; the registrant keeps its own.
        person = self.env["res.partner"].create(
            dict(marker_values(598), is_registrant=True, company_name="Zmarker0597 Cooperative")
        )
        kid = self.env["res.partner"].create(
            {"name": "Zmarker0596 Kid", "parent_id": person.id, "type": "contact"}
        )
        WebClient(self, self.clerk.login).call_button("res.partner", "create_company", [person.id])
        self.env.invalidate_all()
        company = person.parent_id
        self.assertEqual((company.name, company.is_company), ("Zmarker0597 Cooperative", True))
        self.env.cr.execute("SELECT * FROM res_partner WHERE id = %s", (company.id,))
        self.assertNoMarker(repr(self.env.cr.fetchall()), [598])
        # The registrant's own contacts stay under it, in the registry.
        self.assertEqual((kid.parent_id, kid.g2p_in_registry), (person, True))
        self.assertTrue(envelope.is_token(self.raw_column(kid, "complete_name")))
        self.assertEqual(person.street, marker_values(598)["street"])
        self.assertTrue(envelope.is_token(self.raw_column(person, "street")))

    def test_create_company_takes_nothing_out_of_the_registry(self):
        client = WebClient(self, self.clerk.login)
        # A contact under a registrant would leave the registry, put under the company: refused.
        person = self.env["res.partner"].create(dict(marker_values(594), is_registrant=True))
        kid = self.env["res.partner"].create(
            {"name": "Zmarker0595 Kid", "parent_id": person.id, "type": "contact"}
        )
        kid.company_name = "Zco"
        with self.assertRaises(RpcError) as refused:
            client.call_button("res.partner", "create_company", [kid.id])
        self.assertEqual(refused.exception.name, "odoo.exceptions.UserError")
        self.env.invalidate_all()
        self.assertEqual(kid.parent_id, person)
        # While the registry is not encrypted, the company gets no address either: companies
        # stay in the clear once it is.
        self.set_registry(encrypt=False)
        other = self.env["res.partner"].create(
            dict(marker_values(593), is_registrant=True, company_name="Zmarker0592 Cooperative")
        )
        client.call_button("res.partner", "create_company", [other.id])
        self.env.invalidate_all()
        self.env.cr.execute("SELECT * FROM res_partner WHERE id = %s", (other.parent_id.id,))
        self.assertNoMarker(repr(self.env.cr.fetchall()), [593])
        self.assertFalse(other.parent_id.is_registrant)
        # With the tax ID encrypted (an admin's choice), a registrant who has one is refused:
        # Odoo would copy it into the company.
        self.set_registry(encrypt=True)
        partner_class = type(self.env["res.partner"])
        specs = partner_class._g2p_encrypted
        self.patch(partner_class, "_g2p_encrypted", dict(specs, vat=specs["street"]))
        taxed = self.env["res.partner"].create(
            dict(marker_values(591), is_registrant=True, vat="ZVAT0591", company_name="Zco 591")
        )
        with self.assertRaises(RpcError):
            client.call_button("res.partner", "create_company", [taxed.id])
        untaxed = self.env["res.partner"].create(
            dict(marker_values(590), is_registrant=True, company_name="Zco 590")
        )
        client.call_button("res.partner", "create_company", [untaxed.id])
        self.env.invalidate_all()
        self.assertEqual((taxed.parent_id.id, untaxed.parent_id.name), (False, "Zco 590"))

    def assertMasked(self, rows):
        for person, row in zip(self.people, rows, strict=True):
            for name in ("email", "phone", "street", "city"):
                self.assertEqual(row[name], "[encrypted]", (name, row))
            for name in ("name", "complete_name", "display_name"):
                self.assertEqual(row[name], self.label(person), (name, row))

    def assertPlain(self, rows):
        for number, row in zip(NUMBERS, rows, strict=True):
            expected = marker_values(number)
            for name in ("name", "email", "phone", "street", "city"):
                self.assertEqual(row[name], expected[name])
            self.assertEqual(row["display_name"], expected["name"])

    def test_a_clerk_sees_labels_and_masks_whatever_the_switch(self):
        self.assertMasked(self.search_read(self.clerk))
        self.set_registry(decrypt=True)
        self.assertMasked(self.search_read(self.clerk))
        self.assertFalse(self.decryption_rows(kind="exit"))

    def test_a_crypto_admin_reads_plaintext_only_while_decryption_is_on(self):
        self.assertMasked(self.search_read(self.crypto_admin))
        self.set_registry(decrypt=True)
        self.assertPlain(self.search_read(self.crypto_admin))

    def test_each_plaintext_exit_is_audited_once(self):
        self.set_registry(decrypt=True)
        self.search_read(self.crypto_admin)
        rows = self.decryption_rows(kind="exit", res_model="res.partner")
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows.user_id, self.crypto_admin)
        self.assertEqual(rows.entry_point, "/web/dataset/call_kw/res.partner/web_search_read")
        self.assertEqual(sorted(map(int, rows.res_ids.split(","))), sorted(self.people.ids))
        self.assertEqual(rows.record_count, len(self.people))
        self.assertLessEqual({"name", "email", "city"}, set(rows.field_names.split(",")))
        # The values the exit let through are in its row: the answer's scan adds none for them.
        self.assertEqual(self.decryption_rows(kind="exit"), rows)

    def thread_data(self, user, person):
        """What the web client's chatter loads with a registrant's form."""
        self.login(user)
        return self.make_jsonrpc_request(
            "/mail/thread/data",
            {
                "thread_model": "res.partner",
                "thread_id": person.id,
                "request_list": ["activities", "followers", "attachments", "suggestedRecipients"],
            },
        )

    def test_stored_values_in_the_answer_of_any_json_route_are_masked_or_counted(self):
        # The composer's recipients: Odoo finds the partners of the e-mails typed and answers
        # with their names and e-mails, as stored; they leave through no read exit. (Finding a
        # registrant by an address typed is a lookup for Registry Search members.)
        self.crypto_admin.groups_id += self.env.ref("g2p_encryption.registry_searcher")
        person = self.people[3]
        route, params = "/mail/partner/from_email", {"emails": [marker_values(503)["email"]]}
        self.login(self.clerk)
        answer = self.make_jsonrpc_request(route, params)
        self.assertEqual(answer, [{"id": person.id, "name": "[encrypted]", "email": "[encrypted]"}])
        self.set_registry(decrypt=True)
        self.login(self.crypto_admin)
        answer = self.make_jsonrpc_request(route, params)
        self.assertEqual(answer[0]["name"], marker_values(503)["name"])
        rows = self.decryption_rows(kind="exit")
        self.assertEqual(rows.mapped("res_model"), ["(values)"])
        self.assertEqual((rows.entry_point, rows.record_count), (route, 2))

    def login(self, user):
        self.authenticate(user.login, user.login)
        self._rpc_login = user.login

    def test_a_file_named_after_a_registrant_carries_its_label(self):
        person = self.people[1]
        self.login(self.clerk)
        names = {}
        for query in ("", "?filename_field=email"):
            response = self.url_open(f"/web/image/res.partner/{person.id}/avatar_128{query}")
            self.assertEqual(response.status_code, 200)
            names[query] = response.headers["Content-Disposition"]
            self.assertNoMarker(names[query], [501])
        self.assertIn(f"Registrant #{person.id}", names[""])
        self.assertIn("[encrypted]", names["?filename_field=email"])
        self.set_registry(decrypt=True)
        self.login(self.crypto_admin)
        response = self.url_open(f"/web/image/res.partner/{person.id}/avatar_128")
        self.assertIn("zmarker0501", response.headers["Content-Disposition"].lower())
        self.assertEqual(self.decryption_rows(kind="exit").res_ids, str(person.id))

    def test_a_contact_card_is_an_exit(self):
        if importlib.util.find_spec("vobject") is None:
            self.skipTest("vobject is not installed: Odoo makes no contact cards")
        person = self.people[1]
        self.login(self.clerk)
        response = self.url_open(f"/web/partner/vcard?partner_ids={person.id}")
        self.assertEqual(response.status_code, 200)
        self.assertNoMarker(response.text + response.headers["Content-Disposition"], [501])
        self.assertIn(f"Registrant #{person.id}", response.text)
        self.set_registry(decrypt=True)
        self.login(self.crypto_admin)
        response = self.url_open(f"/web/partner/vcard?partner_ids={person.id}")
        self.assertIn(marker_values(501)["email"], response.text)

    def test_an_onchange_computes_from_masks(self):
        # The full composer of a registrant's chatter: Odoo computes its subject from the record's
        # display name before the onchange reads it.
        person = self.people[2]
        context = {"default_model": "res.partner", "default_res_ids": person.ids}
        spec = dict.fromkeys(("model", "res_ids", "composition_mode", "subject", "record_name"), {})
        answer = self.rpc(self.clerk, "mail.compose.message", "onchange", [], {}, [], spec, context=context)
        self.assertNoMarker(str(answer), [502])
        self.assertEqual(answer["value"]["record_name"], self.label(person))

    def test_a_wizard_a_clerk_opens_over_rpc_is_made_of_masks(self):
        # Not the web client's path (an onchange first): the composer is created straight from
        # RPC, where Odoo computes its record name and subject from the registrant, and read
        # back then, or in later requests where nothing is decrypted any more.
        person = self.people[2]
        context = {"default_model": "res.partner", "default_res_ids": person.ids}
        spec = dict.fromkeys(("subject", "record_name", "display_name", "body"), {})
        web_client = WebClient(self, self.clerk.login)
        for call in (
            lambda method, *args, **kwargs: web_client.call("mail.compose.message", method, *args, **kwargs),
            lambda method, *args, **kwargs: self.external_call(
                self.clerk, "mail.compose.message", method, list(args), kwargs
            ),
        ):
            saved = call("web_save", [], {}, specification=spec, context=context)
            wizard_id = call("create", {}, context=context)
            answers = [
                saved,
                call("read", [wizard_id], list(spec)),
                call("web_read", [wizard_id], spec),
                call("onchange", [wizard_id], {}, [], spec),
                call("mapped", [wizard_id], "record_name"),
                call("copy_data", [wizard_id]),
                call("export_data", [wizard_id], ["subject"]),
                call("search_read", [("id", "=", wizard_id)], list(spec)),
            ]
            self.assertNoMarker(str(answers), [502])
            self.assertEqual(answers[1][0]["record_name"], self.label(person))
            # Stored so: the wizard is made of what the clerk may see.
            wizard = self.env["mail.compose.message"].browse(wizard_id)
            self.assertEqual(wizard.record_name, self.label(person))

    def test_a_wizard_server_code_makes_for_a_clerk_renders_real_values(self):
        # A templated message posted by a button: Odoo makes a composer in server code, which
        # renders the template for the registrant; the message is e-mailed as written.
        person = self.people[3]
        template = self.env["mail.template"].create(
            {
                "name": "Dear",
                "model_id": self.env.ref("base.model_res_partner").id,
                "body_html": '<p>Dear <t t-out="object.name"/></p>',
            }
        )
        self.env["ir.model.data"].create(
            {"module": "g2p_encryption_test", "name": "dear", "model": "mail.template", "res_id": template.id}
        )
        WebClient(self, self.clerk.login).call(
            "res.partner", "message_post_with_source", person.ids, "g2p_encryption_test.dear"
        )
        message = self.env["mail.message"].search(
            [("model", "=", "res.partner"), ("res_id", "=", person.id)], order="id desc", limit=1
        )
        self.assertIn(f"Dear {marker_values(503)['name']}", message.body)

    def test_another_users_wizard_is_not_for_a_clerk(self):
        # A Crypto Admin's invitation to follow a registrant names it in its message; Odoo 17
        # keeps no wizard to its maker unless the model has a rule of its own (this one has none).
        person = self.people[2]
        self.set_registry(decrypt=True)
        context = {"default_res_model": "res.partner", "default_res_id": person.id}
        admin = WebClient(self, self.crypto_admin.login)
        wizard_id = admin.call("mail.wizard.invite", "create", {}, context=context)
        message = admin.call("mail.wizard.invite", "read", [wizard_id], ["message"])[0]["message"]
        self.assertIn(marker_values(502)["name"], message)
        self.set_registry(decrypt=False)
        web_client = WebClient(self, self.clerk.login)
        for call in (
            lambda method, *args: web_client.call("mail.wizard.invite", method, *args),
            lambda method, *args: self.external_call(self.clerk, "mail.wizard.invite", method, list(args)),
        ):
            for method, args in (
                ("read", [[wizard_id], ["message"]]),
                ("web_read", [[wizard_id], {"message": {}}]),
                ("mapped", [[wizard_id], "message"]),
                ("copy_data", [[wizard_id]]),
                ("export_data", [[wizard_id], ["message"]]),
                # Adding oneself as a recipient, then sending: the message is e-mailed to them.
                ("write", [[wizard_id], {"partner_ids": [(6, 0, self.clerk.partner_id.ids)]}]),
                ("add_followers", [[wizard_id]]),
                ("unlink", [[wizard_id]]),
            ):
                with self.assertRaisesRegex(RpcError, "AccessError", msg=method):
                    call(method, *args)
            for method, args in (
                ("search_read", [[("id", "=", wizard_id)], ["message"]]),
                ("search_count", [[("message", "ilike", "Zmarker0502")]]),
                ("read_group", [[("id", "=", wizard_id)], ["message"], ["message"]]),
            ):
                self.assertFalse(call(method, *args), method)
        self.assertFalse(self.env["mail.wizard.invite"].browse(wizard_id).partner_ids)

    def test_the_failed_messages_of_a_clerk_name_no_registrant(self):
        person = self.people[4]
        message = self.env["mail.message"].create(
            {
                "model": "res.partner",
                "res_id": person.id,
                "message_type": "email",
                "author_id": self.clerk.partner_id.id,
                "body": "Hello",
            }
        )
        self.env["mail.notification"].create(
            {
                "mail_message_id": message.id,
                "res_partner_id": person.id,
                "author_id": self.clerk.partner_id.id,
                "notification_type": "email",
                "notification_status": "exception",
                "failure_type": "mail_smtp",
            }
        )
        self.login(self.clerk)
        answer = self.make_jsonrpc_request("/mail/load_message_failures", {})
        self.assertIn(message.id, [row["id"] for row in answer])
        self.assertNoMarker(str(answer), [504])

    def test_a_clerk_cannot_edit_a_message_on_a_registrant_they_may_not_read(self):
        person = self.people[4]
        message = person.with_user(self.clerk).message_post(body="First", message_type="comment")
        self.login(self.clerk)
        # What is written about a registrant is registry data: a clerk who may not read it sees
        # the mask, even of what they wrote; saving an edit would store the mask over the text.
        with self.assertRaises(JsonRpcException) as refused:
            self.make_jsonrpc_request(
                "/mail/message/update_content",
                {"message_id": message.id, "body": "[encrypted] and more", "attachment_ids": []},
            )
        self.assertEqual(refused.exception.args[0], "odoo.exceptions.UserError")
        self.env.invalidate_all()
        self.assertEqual(message.body, Markup("<p>First</p>"))
        self.env.cr.execute("SELECT body FROM mail_message WHERE id = %s", (message.id,))
        self.assertTrue(envelope.is_token(self.env.cr.fetchone()[0]))
        # Nor through the ORM's write over RPC (the author may write their message).
        with self.assertRaises(RpcError) as refused:
            WebClient(self, self.clerk.login).call("mail.message", "write", message.ids, {"body": "Third"})
        self.assertEqual(refused.exception.name, "odoo.exceptions.UserError")
        # Deleting it (an empty body) stays possible; a reader edits it.
        other = person.with_user(self.clerk).message_post(body="Typo", message_type="comment")
        answer = self.make_jsonrpc_request(
            "/mail/message/update_content", {"message_id": other.id, "body": "", "attachment_ids": []}
        )
        self.assertNoMarker(str(answer), [504])
        self.set_registry(decrypt=True)
        own = person.with_user(self.crypto_admin).message_post(body="First", message_type="comment")
        self.login(self.crypto_admin)
        answer = self.make_jsonrpc_request(
            "/mail/message/update_content",
            {"message_id": own.id, "body": "Second", "attachment_ids": []},
        )
        self.assertIn("Second", answer["body"])
        self.env.invalidate_all()
        self.assertEqual(own.body, Markup("<p>Second</p>"))
        # ... unless the text holds the mask (shown by a notification over the bus, before a reload).
        with self.assertRaises(JsonRpcException):
            self.make_jsonrpc_request(
                "/mail/message/update_content",
                {"message_id": own.id, "body": "[encrypted] and more", "attachment_ids": []},
            )
        self.env.invalidate_all()
        self.assertEqual(own.body, Markup("<p>Second</p>"))

    def test_an_email_about_a_registrant_is_masked_and_sent_with_its_real_sender(self):
        # ``mail.mail`` delegates to its message (``_inherits``): an e-mail has its message's
        # scope, and Send Now picks the mail server from the real senders.
        person = self.people[3]
        mails = self.env["mail.mail"].create(
            [
                {
                    "model": "res.partner",
                    "res_id": document.id,
                    "subject": f"About {document.name}",
                    "body_html": "<p>Hello</p>",
                    "email_from": "zsender@example.org",
                    "email_to": "zrecipient@example.org",
                }
                for document in (person, self.company)
            ]
        )
        fields = ["subject", "email_from", "email_to", "body_html"]
        rows = self.rpc(self.settings_admin, "mail.mail", "read", mails.ids, fields)
        self.assertNoMarker(str(rows), [503])
        self.assertEqual(
            [tuple(row[name] for name in fields) for row in rows],
            [
                ("[encrypted]",) * 4,
                (
                    f"About {self.company.name}",
                    "zsender@example.org",
                    "zrecipient@example.org",
                    "<p>Hello</p>",
                ),
            ],
        )
        senders = []
        find_mail_server = type(self.env["ir.mail_server"])._find_mail_server

        def spy(server, email_from, *args, **kwargs):
            senders.append(email_from)
            return find_mail_server(server, email_from, *args, **kwargs)

        self.patch(type(self.env["ir.mail_server"]), "_find_mail_server", spy)
        self.rpc(self.settings_admin, "mail.mail", "send", mails.ids)
        self.assertEqual(set(senders), {"zsender@example.org"})

    def test_a_browser_notification_about_a_registrant_is_masked(self):
        # Five browsers or more: Odoo stores the notification (``mail.notification.web.push``)
        # for a cron to send, made once for the recipients from the message being posted.
        person = self.people[2]
        params = self.env["ir.config_parameter"].sudo()
        params.set_param("mail.web_push_vapid_private_key", "zprivate")
        params.set_param("mail.web_push_vapid_public_key", "zpublic")
        self.env["mail.partner.device"].sudo().create(
            [
                {
                    "partner_id": self.clerk.partner_id.id,
                    "endpoint": f"https://push.invalid/{i}",
                    "keys": "{}",
                }
                for i in range(5)
            ]
        )
        name = marker_values(502)["name"]
        pushes = self.env["mail.notification.web.push"].sudo()
        for document, text in ((person, f"Visit {name}"), (self.company, "Visit the company")):
            before = pushes.search([]).ids
            document.with_user(self.crypto_admin).message_post(
                body=text,
                message_type="comment",
                subtype_xmlid="mail.mt_comment",
                partner_ids=self.clerk.partner_id.ids,
            )
            payloads = " ".join(pushes.search([("id", "not in", before)]).mapped("payload"))
            self.assertEqual(text in payloads, document == self.company, payloads)
        self.assertNoMarker(payloads + " ".join(pushes.search([]).mapped("payload")), [502])

    def test_a_chat_with_a_registrant_is_named_after_its_label(self):
        # The avatar card's "Send message": Odoo names the new chat after its members, stored.
        person = self.people[0]
        self.set_registry(decrypt=True)
        for user in (self.clerk, self.crypto_admin):
            self.rpc(user, "discuss.channel", "channel_get", [person.id])
            channel = self.env["discuss.channel"].search(
                [("channel_type", "=", "chat"), ("channel_member_ids.partner_id", "=", user.partner_id.id)]
            )
            self.env.flush_all()
            self.env.cr.execute("SELECT name FROM discuss_channel WHERE id = %s", channel.ids)
            [(stored,)] = self.env.cr.fetchall()
            self.assertIn(self.label(person), stored)
            self.assertIn(user.name, stored)
            self.assertNoMarker(stored, [500])

    def test_inviting_a_registrant_to_a_channel_names_its_label(self):
        # Odoo posts "invited <display name>" into the channel (stored in the clear: a channel is
        # not in scope) and sends the members over the bus; the context can ask the display name
        # for address and e-mail.
        person, other = self.people[0], self.people[1]
        self.set_registry(decrypt=True)
        bus = self.env["bus.bus"].sudo()
        before = bus.search([], order="id desc", limit=1).id or 0
        context = {"show_email": True, "show_address": True}
        for user in (self.clerk, self.crypto_admin):
            channel = self.rpc(user, "discuss.channel", "channel_create", "Zmarker room", False)
            self.rpc(
                user,
                "discuss.channel",
                "add_members",
                [channel["id"]],
                partner_ids=person.ids,
                context=context,
            )
            self.rpc(user, "discuss.channel", "create_group", person.ids + other.ids, context=context)
        self.env.flush_all()
        channels = self.env["discuss.channel"].search([("channel_member_ids.partner_id", "=", person.id)])
        self.env.cr.execute(
            "SELECT body FROM mail_message WHERE model = 'discuss.channel' AND res_id IN %s",
            [tuple(channels.ids)],
        )
        bodies = " ".join(body for (body,) in self.env.cr.fetchall())
        self.assertIn(self.label(person), bodies)
        self.env.cr.execute("SELECT name FROM discuss_channel WHERE id IN %s", [tuple(channels.ids)])
        names = " ".join(name or "" for (name,) in self.env.cr.fetchall())
        payloads = " ".join(bus.search([("id", ">", before)]).mapped("message"))
        self.assertNoMarker(bodies + names + payloads, [500, 501])

    def test_a_message_about_a_registrant_is_not_sent_for_translation(self):
        person = self.people[1]
        self.env["ir.config_parameter"].sudo().set_param("mail.google_translate_api_key", "zkey")
        message = person.message_post(body="Visited", message_type="comment")
        self.set_registry(decrypt=True)
        self.login(self.crypto_admin)
        answer = self.make_jsonrpc_request("/mail/message/translate", {"message_id": message.id})
        self.assertIn("not sent to a translation service", answer["error"])
        self.assertFalse(
            self.env["mail.message.translation"].sudo().search([("message_id", "=", message.id)])
        )

    def test_a_delivery_failure_goes_over_the_bus_without_the_text(self):
        person = self.people[0]
        name = marker_values(500)["name"]
        messages = person.message_post(body=f"Dear {name}", message_type="comment")
        messages |= self.company.message_post(body="Dear company", message_type="comment")
        self.set_registry(decrypt=True)
        bus = self.env["bus.bus"].sudo()
        before = bus.search([], order="id desc", limit=1).id or 0
        # Changed by a Crypto Admin (a resend): the update goes to the author and to them, once
        # for all. The text of the message about the registrant is left out (a mask would replace,
        # on a reader's screen, the text they were shown); the company's is there.
        messages.with_user(self.crypto_admin)._notify_message_notification_update()
        sent = bus.search([("id", ">", before), ("message", "like", "mail.message/notification_update")])
        self.assertTrue(sent)
        self.assertNoMarker(" ".join(sent.mapped("message")), [500])
        elements = {
            element["id"]: element
            for notification in sent
            for element in json.loads(notification.message)["payload"]["elements"]
        }
        self.assertNotIn("body", elements[messages[0].id])
        self.assertEqual(elements[messages[1].id]["body"], "<p>Dear company</p>")

    def test_a_users_name_has_its_partners_scope(self):
        # ``res.users`` delegates to ``res.partner``: a registrant's portal user is masked for a
        # clerk, a member of staff is not.
        portal = self.env["res.users"].create(
            {
                "login": "zmarker0590",
                "partner_id": self.people[5].id,
                "groups_id": [(6, 0, [self.env.ref("base.group_portal").id])],
            }
        )
        rows = self.rpc(self.clerk, "res.users", "read", [portal.id, self.crypto_admin.id], ["name"])
        self.assertEqual([row["name"] for row in rows], [self.label(self.people[5]), self.crypto_admin.name])
        self.assertNoMarker(str(rows), [505])

    def external_call(self, user, model, method, args, kwargs=None):
        """``model.method(*args, **kwargs)`` as ``user`` through the external API (JSON-RPC
        ``execute_kw``)."""
        args = [self.env.cr.dbname, user.id, user.login, model, method, args, kwargs or {}]
        payload = {"jsonrpc": "2.0", "method": "call", "id": 1}
        payload["params"] = {"service": "object", "method": "execute_kw", "args": args}
        answer = self.url_open(
            "/jsonrpc", data=json.dumps(payload), headers={"Content-Type": "application/json"}
        ).json()
        if "error" in answer:
            raise RpcError(answer["error"]["data"]["name"], answer["error"]["data"]["message"])
        return answer["result"]

    def external_read(self, user, person):
        """``read`` of ``person``'s name through the external API."""
        return self.external_call(user, "res.partner", "read", [person.ids], {"fields": ["name"]})[0]["name"]

    def test_methods_that_compare_records_by_their_values_are_refused_over_rpc(self):
        # grouped answers with the values as keys; sorted and filtered_domain order and pick
        # records by their decrypted values: oracles without cap or log, for any person.
        person, other = self.people[0], self.people[1]
        calls = {
            "grouped": [person.ids + other.ids, "name"],
            "sorted": [person.ids + other.ids, "name"],
            "filtered": [person.ids, "email"],
            "filtered_domain": [person.ids + other.ids, [("email", "=", marker_values(500)["email"])]],
        }
        self.set_registry(decrypt=True)
        for user in (self.clerk, self.crypto_admin):
            client = WebClient(self, user.login)
            for method, args in calls.items():
                with self.assertRaises(RpcError, msg=method) as caught:
                    client.call("res.partner", method, *args)
                self.assertIn("cannot be called over RPC", caught.exception.message)
                args = [self.env.cr.dbname, user.id, user.login, "res.partner", method, args, {}]
                payload = {"jsonrpc": "2.0", "method": "call", "id": 1}
                payload["params"] = {"service": "object", "method": "execute_kw", "args": args}
                answer = self.url_open(
                    "/jsonrpc", data=json.dumps(payload), headers={"Content-Type": "application/json"}
                ).json()
                self.assertIn("cannot be called over RPC", answer["error"]["data"]["message"], method)
        self.assertFalse(self.decryption_rows(kind="exit"))

    def test_plaintext_keying_a_dict_in_an_answer_is_masked(self):
        # A method's answer may key a dict by a value: the keys are scanned as the values are.
        person = self.people[0]
        name = person.name
        self.assertIsInstance(name, AtRest)
        scanned = scan_result(self.env(user=self.clerk), {name: [person.id]}, "res.partner.x")
        self.assertEqual(scanned, {"[encrypted]": [person.id]})
        self.assertTrue(holds_stored({name: [person.id]}))  # the external API's answer is scanned

    def test_the_external_api_follows_the_policy(self):
        person = self.people[0]
        self.assertEqual(self.external_read(self.clerk, person), self.label(person))
        rows = self.xmlrpc_object.execute_kw(
            self.env.cr.dbname,
            self.clerk.id,
            self.clerk.login,
            "res.partner",
            "read",
            [person.ids],
            {"fields": ["email"]},
        )
        self.assertEqual(rows[0]["email"], "[encrypted]")
        self.set_registry(decrypt=True)
        self.assertEqual(self.external_read(self.crypto_admin, person), marker_values(500)["name"])
        rows = self.xmlrpc_object.execute_kw(
            self.env.cr.dbname,
            self.crypto_admin.id,
            self.crypto_admin.login,
            "res.partner",
            "read",
            [person.ids],
            {"fields": ["email"]},
        )
        self.assertEqual(rows[0]["email"], marker_values(500)["email"])
        self.assertEqual(set(self.decryption_rows(kind="exit").mapped("entry_point")), {"res.partner.read"})

    def test_the_external_api_runs_the_value_methods_in_an_exit_and_scans_every_answer(self):
        # As the web client's calls: mapped, copy_data, name_get and onchange run inside an exit,
        # and any other method's answer is scanned for stored values (a message's author here).
        person = self.people[1]
        call = functools.partial(self.external_call, self.clerk, "res.partner")
        self.assertEqual(call("mapped", [person.ids, "name"]), [self.label(person)])
        self.assertEqual(call("mapped", [person.ids, "email"]), ["[encrypted]"])
        copied = call("copy_data", [person.ids])
        self.assertEqual((copied[0] if isinstance(copied, list) else copied)["email"], "[encrypted]")
        self.assertEqual(call("name_get", [person.ids]), [[person.id, self.label(person)]])
        spec = dict.fromkeys(("parent_id", "type", "street", "city", "zip"), {})
        contact = call("onchange", [[], {"parent_id": person.id, "type": "contact"}, ["parent_id"], spec])
        self.assertEqual(contact["value"]["street"], "[encrypted]")
        names = self.xmlrpc_object.execute_kw(
            self.env.cr.dbname, self.clerk.id, self.clerk.login, "res.partner", "mapped", [person.ids, "name"]
        )
        self.assertEqual(names, [self.label(person)])
        self.assertFalse(self.decryption_rows(kind="exit"))
        # A Crypto Admin with decryption on: plaintext, in the exit's own row (not the scan's).
        self.set_registry(decrypt=True)
        call = functools.partial(self.external_call, self.crypto_admin, "res.partner")
        self.assertEqual(call("mapped", [person.ids, "email"]), [marker_values(501)["email"]])
        self.assertEqual(call("name_get", [person.ids]), [[person.id, marker_values(501)["name"]]])
        rows = self.decryption_rows(kind="exit")
        self.assertEqual(set(rows.mapped("res_model")), {"res.partner"})
        self.assertEqual(sorted(rows.mapped("entry_point")), ["res.partner.mapped", "res.partner.name_get"])

    def test_the_exit_of_an_external_value_method_encloses_the_models_own_overrides(self):
        # Wrapped on the model's class above its modules' overrides: one that reads a value and
        # then calls super runs inside the exit too, as in the web client's call of it.
        for name in self.env.registry:
            for method in EXTERNAL_VALUE_METHODS:
                self.assertTrue(is_external_exit(getattr(type(self.env[name]), method)), (name, method))
        person, model_class = self.people[1], type(self.env["res.partner"])
        registered = model_class.copy_data
        if "copy_data" in vars(model_class):  # wrapped there already (mail.thread's override)
            self.addCleanup(setattr, model_class, "copy_data", registered)
        else:
            self.addCleanup(delattr, model_class, "copy_data")

        def copy_data(records, default=None):  # an override of a module loaded after this addon
            return [dict(vals, comment=records.email.upper()) for vals in registered(records, default)]

        model_class.copy_data = copy_data
        wrap_external_value_methods(self.env.registry)  # as when the registry is set up again
        self.assertIs(model_class.copy_data.__wrapped__, copy_data)
        copied = self.external_call(self.clerk, "res.partner", "copy_data", [person.ids])
        self.assertEqual(copied[0]["comment"], "[ENCRYPTED]")
        self.assertNoMarker(str(copied), [501])

    def test_the_answer_of_an_external_api_call_is_scanned_for_stored_values(self):
        # What any other method returns: the mention suggestions are partners' names and e-mails
        # as stored, read by server code. Masked for a clerk; counted in the log for a Crypto
        # Admin, after Odoo has committed the call.
        person, email = self.people[3], marker_values(503)["email"]
        suggested = self.external_call(self.clerk, "res.partner", "get_mention_suggestions", [email])
        self.assertEqual(
            [(p["id"], p["name"], p["email"]) for p in suggested], [(person.id, "[encrypted]", "[encrypted]")]
        )
        self.assertFalse(self.decryption_rows(kind="exit"))
        self.set_registry(decrypt=True)
        self.crypto_admin.groups_id += self.env.ref("g2p_encryption.registry_searcher")  # an exact lookup
        suggested = self.external_call(self.crypto_admin, "res.partner", "get_mention_suggestions", [email])
        self.assertEqual(suggested[0]["email"], email)
        counted = self.decryption_rows(kind="exit", res_model="(values)")
        self.assertEqual(counted.mapped("entry_point"), ["res.partner.get_mention_suggestions"])
        self.assertEqual(counted.user_id, self.crypto_admin)

    def test_the_followers_of_a_registrant_are_formatted_in_an_exit(self):
        # ``message_get_followers``: names and e-mails are related copies, made by server code
        # outside any exit, which no answer's scan recognises.
        person, follower = self.people[1], self.people[2]
        person.message_subscribe(partner_ids=follower.ids)
        for followers in (
            self.external_call(self.clerk, "res.partner", "message_get_followers", [person.ids]),
            self.rpc(self.clerk, "res.partner", "message_get_followers", person.ids),
        ):
            self.assertEqual([f["email"] for f in followers], ["[encrypted]"])
            self.assertEqual([f["name"] for f in followers], [self.label(follower)])
        self.set_registry(decrypt=True)
        followers = self.external_call(
            self.crypto_admin, "res.partner", "message_get_followers", [person.ids]
        )
        self.assertEqual(followers[0]["email"], marker_values(502)["email"])
        self.assertTrue(self.decryption_rows(kind="exit", res_model="res.partner"))

    def test_a_message_on_a_registrant_reaches_the_inboxes_masked(self):
        # A Crypto Admin who reads plaintext posts on a registrant followed by a clerk: the clerk's
        # inbox notification (over the bus) must not carry the name the author saw.
        person = self.people[5]
        self.clerk.notification_type = "inbox"
        person.message_subscribe(partner_ids=self.clerk.partner_id.ids)
        self.set_registry(decrypt=True)
        bus = self.env["bus.bus"].sudo()
        before = bus.search([], order="id desc", limit=1).id
        self.login(self.crypto_admin)
        posted = self.make_jsonrpc_request(
            "/mail/message/post",
            {
                "thread_model": "res.partner",
                "thread_id": person.id,
                "post_data": {
                    "body": "Visit planned",
                    "message_type": "comment",
                    "subtype_xmlid": "mail.mt_comment",
                },
            },
        )
        self.assertEqual(posted["record_name"], marker_values(505)["name"])  # the author's own exit
        sent = bus.search([("id", ">", before), ("message", "like", "mail.message/inbox")])
        self.assertTrue(sent)
        self.assertNoMarker(" ".join(sent.mapped("message")), [505])
        self.assertIn(self.label(person), " ".join(sent.mapped("message")))
        # Posted while a Crypto Admin's exit lets plaintext through (server code run by a report,
        # an onchange): the inboxes get the masked message all the same.
        admin_env = self.env(user=self.crypto_admin)
        with exit_for(admin_env, "test") as state:
            self.assertTrue(state.allowed)
            admin_env["res.partner"].browse(person.id).message_post(
                body="Second visit", message_type="comment", subtype_xmlid="mail.mt_comment"
            )
        sent = bus.search([("id", ">", before), ("message", "like", "mail.message/inbox")]) - sent
        self.assertTrue(sent)
        self.assertNoMarker(" ".join(sent.mapped("message")), [505])
        self.assertNotIn("Second visit", " ".join(sent.mapped("message")))

    def test_the_chatter_of_a_registrant_suggests_no_plaintext_recipient(self):
        person, follower = self.people[3], self.people[4]
        person.message_subscribe(partner_ids=follower.ids)
        person.activity_schedule("mail.mail_activity_data_todo", summary="Visit")
        answer = self.thread_data(self.clerk, person)
        self.assertNoMarker(str(answer), [503, 504])
        self.assertEqual(len(answer["activities"]), 1)
        followers = {row["partner_id"]: row for row in answer["followers"]}
        self.assertEqual(followers[follower.id]["name"], self.label(follower))
        # Odoo suggests the person itself as a recipient ("Name" <email>): its label here.
        self.assertEqual([row[0] for row in answer["suggestedRecipients"]], person.ids)
        self.assertIn(self.label(person), answer["suggestedRecipients"][0][1])
        self.assertFalse(self.decryption_rows(kind="exit"))
        self.set_registry(decrypt=True)
        answer = self.thread_data(self.crypto_admin, person)
        followers = {row["partner_id"]: row for row in answer["followers"]}
        self.assertEqual(followers[follower.id]["email"], marker_values(504)["email"])
        self.assertIn(marker_values(503)["email"], answer["suggestedRecipients"][0][1])
        rows = self.decryption_rows(kind="exit")
        self.assertEqual(set(rows.mapped("entry_point")), {"/mail/thread/data"})
        self.assertEqual(sorted(rows.mapped("res_model")), ["mail.activity", "res.partner"])
        partners = rows.filtered(lambda row: row.res_model == "res.partner")
        self.assertEqual(sorted(map(int, partners.res_ids.split(","))), sorted((person | follower).ids))

    def test_every_read_method_is_an_exit(self):
        domain = [("id", "in", self.people.ids)]
        answers = {
            "read": self.rpc(self.clerk, "res.partner", "read", self.people.ids, FIELDS),
            "search_read": self.rpc(self.clerk, "res.partner", "search_read", domain, FIELDS, order="id"),
            "web_read": self.rpc(self.clerk, "res.partner", "web_read", self.people.ids, SPEC),
        }
        for method, rows in answers.items():
            with self.subTest(method=method):
                self.assertMasked(rows)
        names = self.rpc(self.clerk, "res.partner", "mapped", self.people.ids, "name")
        self.assertEqual(names, [self.label(person) for person in self.people])
        emails = self.rpc(self.clerk, "res.partner", "mapped", self.people.ids, "email")
        self.assertEqual(set(emails), {"[encrypted]"})
        copied = self.rpc(self.clerk, "res.partner", "copy_data", self.people[0].ids)
        copied = copied[0] if isinstance(copied, list) else copied
        self.assertEqual(copied["email"], "[encrypted]")
        exported = self.rpc(self.clerk, "res.partner", "export_data", self.people.ids, ["name", "email"])
        self.assertEqual(exported["datas"][0], [self.label(self.people[0]), "[encrypted]"])

    def test_many2one_display_names_and_name_search_show_labels(self):
        child = self.rpc(
            self.clerk,
            "res.partner",
            "web_read",
            self.child.ids,
            {"parent_id": {"fields": {"display_name": {}}}},
        )[0]
        self.assertEqual(child["parent_id"]["display_name"], self.label(self.people[0]))
        classic = self.rpc(self.clerk, "res.partner", "read", self.child.ids, ["parent_id"])[0]
        self.assertEqual(classic["parent_id"][1], self.label(self.people[0]))
        found = self.rpc(self.clerk, "res.partner", "name_search", marker_values(501)["name"])
        self.assertEqual(found, [[self.people[1].id, self.label(self.people[1])]])
        self.set_registry(decrypt=True)
        classic = self.rpc(self.crypto_admin, "res.partner", "read", self.child.ids, ["parent_id"])[0]
        self.assertEqual(classic["parent_id"][1], marker_values(500)["name"])

    def test_a_contact_under_a_registrant_is_masked_with_its_own_label(self):
        # Its complete name holds the registrant's ("Registrant, Contact"): in scope, as its own.
        fields = ["name", "display_name", "complete_name"]
        row = self.rpc(self.clerk, "res.partner", "read", self.child.ids, fields)[0]
        label = f"Contact #{self.child.id}"
        self.assertEqual(
            [row[name] for name in fields], [label, f"{self.label(self.people[0])}, {label}", label]
        )
        self.set_registry(decrypt=True)
        row = self.rpc(self.crypto_admin, "res.partner", "read", self.child.ids, fields)[0]
        full = f"{marker_values(500)['name']}, Ordinary Child"
        self.assertEqual([row[name] for name in fields], ["Ordinary Child", full, full])

    def test_companies_and_ordinary_contacts_are_not_masked(self):
        row = self.rpc(self.clerk, "res.partner", "read", self.company.ids, ["name"])[0]
        self.assertEqual(row["name"], "Zmarker0599 Company")

    def test_onchange_of_a_new_registrant_shows_what_the_clerk_typed(self):
        values = dict(marker_values(520), is_registrant=True)
        spec = {name: {} for name in (*values, "display_name")}
        answer = self.rpc(self.clerk, "res.partner", "onchange", [], values, [], spec)
        self.assertEqual(answer["value"].get("display_name"), values["name"])
        saved = self.rpc(self.clerk, "res.partner", "web_save", [], values, {"name": {}, "email": {}})[0]
        partner = self.env["res.partner"].browse(saved["id"])
        self.assertEqual(saved["name"], self.label(partner))  # once stored, it is a registrant's
        self.assertTrue(envelope.is_token(self.raw_column(partner, "email")))
        self.assertEqual(partner.email, values["email"])

    def test_onchange_of_an_existing_registrant_reveals_nothing(self):
        spec = {name: {} for name in ("name", "email", "city", "display_name")}
        answer = self.rpc(
            self.clerk, "res.partner", "onchange", self.people[2].ids, {"city": "Elsewhere"}, ["city"], spec
        )
        for value in answer.get("value", {}).values():
            self.assertNotIn("marker0502", str(value).lower())

    def test_what_an_exit_showed_is_not_saved_back_over_the_data(self):
        # As the web client saves a form: the values it holds, masks and labels included.
        person, other = self.people[3], self.people[4]
        sent = {"email": "[encrypted]", "name": self.label(person), "city": "Zmarkercity"}
        saved = self.rpc(self.clerk, "res.partner", "web_save", person.ids, sent, {"name": {}, "email": {}})[
            0
        ]
        self.assertEqual((saved["name"], saved["email"]), (self.label(person), "[encrypted]"))
        person.invalidate_recordset()
        self.assertEqual(
            (person.name, person.email, person.city),
            (marker_values(503)["name"], marker_values(503)["email"], "Zmarkercity"),
        )
        # A value made from a label that nothing computes again is refused.
        with self.assertRaises(JsonRpcException):
            self.rpc(
                self.clerk, "res.partner", "write", person.ids, {"name": f"{self.label(person)} (edited)"}
            )
        # Another number is not this record's label.
        self.rpc(self.clerk, "res.partner", "write", person.ids, {"name": f"{self.label(person)}5"})
        self.assertEqual(person.name, f"{self.label(person)}5")
        # Nor by server code in sudo (a portal form's controller), in another letter case, nor
        # the placeholder of a value that does not decrypt.
        person.sudo().write({"street": "[ENCRYPTED]", "street2": " [unreadable]"})
        person.invalidate_recordset()
        self.assertEqual(
            (person.street, person.street2), (marker_values(503)["street"], marker_values(503)["street2"])
        )
        # Taken out of the registry, a partner's values stay encrypted, and masked: the same.
        other.is_registrant = False
        self.rpc(self.clerk, "res.partner", "write", other.ids, {"zip": "[encrypted]"})
        other.invalidate_recordset()
        self.assertEqual(other.zip, marker_values(504)["zip"])
        # A contact whose values are stored in the clear keeps what was typed, in the same write.
        records = (self.company | person).ids
        self.rpc(self.clerk, "res.partner", "write", records, {"street": "[encrypted]"})
        (self.company | person).invalidate_recordset()
        self.assertEqual((self.company.street, person.street), ("[encrypted]", marker_values(503)["street"]))

    def test_grouping_by_an_encrypted_field_is_refused_and_other_groups_are_labelled(self):
        with self.assertRaises(JsonRpcException):
            self.rpc(
                self.clerk, "res.partner", "read_group", [("id", "in", self.people.ids)], ["name"], ["name"]
            )
        with self.assertRaisesRegex(UserError, "encrypted"):
            self.env["res.partner"].read_group([("id", "in", self.people.ids)], ["name"], ["name"])
        groups = self.rpc(
            self.clerk,
            "res.partner",
            "read_group",
            [("id", "=", self.child.id)],
            ["parent_id"],
            ["parent_id"],
        )
        self.assertEqual(groups[0]["parent_id"][1], self.label(self.people[0]))

    def test_the_chatter_of_a_registrant_masks_tracked_values(self):
        self.people[3].with_user(self.crypto_admin).write({"email": "zmarker0530@example.org"})
        self.env.cr.precommit.run()  # tracking values are written at commit
        messages = self.people[3].message_ids.filtered("tracking_value_ids")
        self.assertTrue(messages)
        stored = messages.tracking_value_ids
        for tracking in stored:
            self.assertTrue(envelope.is_token(self.raw_column(tracking, "new_value_char")))
        formatted = self.rpc(self.clerk, "mail.message", "message_format", messages.ids)
        text = str(formatted).lower()
        self.assertNotIn("zmarker0530", text)
        self.assertNotIn("marker0503", text)

    def test_a_method_that_returns_a_stored_value_is_masked(self):
        answer = self.rpc(self.clerk, "res.partner", "address_get", self.people[4].ids, ["contact"])
        self.assertEqual(answer, {"contact": self.people[4].id})  # ids pass
        # A public method handing out a value read from storage (here Odoo's own) is masked.
        self.assertNotIn(
            "marker0504",
            str(
                self.rpc(self.clerk, "res.partner", "mapped", self.people[4].ids, "email_normalized")
            ).lower(),
        )

    def test_moving_a_ciphertext_over_rpc_never_shows_another_persons_data(self):
        first, second = self.people[:2]
        token = self.raw_column(first, "name")
        self.rpc(self.clerk, "res.partner", "write", second.ids, {"name": token})
        self.set_registry(decrypt=True)
        row = self.rpc(self.crypto_admin, "res.partner", "read", second.ids, ["name"])[0]
        self.assertEqual(row["name"], token)
        self.assertNotEqual(row["name"], marker_values(500)["name"])

    def test_a_person_who_may_not_read_a_registrant_neither_copies_it_nor_takes_it_out(self):
        # A copy, or a partner taken out of the registry, would hold its data in the clear (its
        # full name computed again from the real one): refused to whoever may not read it.
        person = self.people[5]
        self.set_registry(decrypt=True)
        clerk = WebClient(self, self.clerk.login)
        for default in ({}, {"is_registrant": False}):
            with self.assertRaisesRegex(RpcError, "duplicate"):
                clerk.call("res.partner", "copy", person.ids, default)
        for record, vals in (
            (person, {"is_registrant": False, "is_company": True}),
            (self.child, {"parent_id": False}),
        ):
            with self.assertRaisesRegex(RpcError, "may read the registry's data"):
                clerk.call("res.partner", "write", record.ids, vals)
        # Deleting a registrant takes the contacts under it out (Odoo empties their parent), the
        # archived ones too.
        archived = self.env["res.partner"].create(
            {"name": "Archived Child", "parent_id": self.people[1].id, "active": False}
        )
        for registrant in (self.people[0], self.people[1]):
            with self.assertRaisesRegex(RpcError, "may read the registry's data"):
                clerk.call("res.partner", "unlink", registrant.ids)
        self.assertTrue(archived.g2p_in_registry)
        # Merging a registrant with a contact out of the registry copies its values into the one kept.
        wizard = clerk.web_save(
            "base.partner.merge.automatic.wizard",
            [],
            {"partner_ids": [(6, 0, [person.id, self.company.id])], "dst_partner_id": self.company.id},
        )
        with self.assertRaisesRegex(RpcError, "merge a contact of the registry"):
            clerk.call_button("base.partner.merge.automatic.wizard", "action_merge", [wizard["id"]])
        (person | self.child).invalidate_recordset()
        self.assertTrue(person.g2p_in_registry and self.child.g2p_in_registry)
        self.assertTrue(self.people[0].exists())
        self.assertEqual(person.name, marker_values(505)["name"])
        # A Crypto Admin may copy it, while decryption is on: a plaintext exit, logged.
        copied = self.rpc(self.crypto_admin, "res.partner", "copy", person.ids, {"is_registrant": False})
        [copy] = self.env["res.partner"].browse(copied if isinstance(copied, list) else [copied])
        self.assertEqual(copy.email, marker_values(505)["email"])
        shown = {
            int(i) for row in self.decryption_rows(kind="exit") for i in (row.res_ids or "").split(",") if i
        }
        self.assertIn(person.id, shown)

    def test_default_values_computed_from_a_registrant_are_masked(self):
        # Odoo's invitation wizard writes the document's name into its text.
        context = {"default_res_model": "res.partner", "default_res_id": self.people[1].id}
        answer = self.rpc(
            self.clerk,
            "mail.wizard.invite",
            "default_get",
            ["message", "res_model", "res_id"],
            context=context,
        )
        self.assertNotIn("marker0501", str(answer).lower())
        self.assertIn(self.label(self.people[1]), str(answer))

    def test_an_error_message_names_no_registrant_to_whoever_may_not_read_it(self):
        # Odoo refuses to archive a contact that has an active user, naming the users (in sudo).
        person = self.people[4]
        name = marker_values(504)["name"]
        new_test_user(
            self.env, login="g2p_portal_of_504", groups="base.group_portal", partner_id=person.id, name=name
        )
        for user, shown in ((self.clerk, False), (self.crypto_admin, True)):
            self.set_registry(decrypt=shown)
            with self.assertRaises(RpcError) as refused:
                WebClient(self, user.login).call("res.partner", "write", person.ids, {"active": False})
            self.assertIn("Linked active users", refused.exception.message)
            self.assertEqual(name in refused.exception.message, shown, refused.exception.message)
            # The same call over the external API (XML-RPC: a Fault with the message).
            with self.assertRaises(xmlrpc.client.Fault) as fault:
                self.xmlrpc_object.execute_kw(
                    self.env.cr.dbname,
                    user.id,
                    user.login,
                    "res.partner",
                    "write",
                    [person.ids, {"active": False}],
                )
            self.assertIn("Linked active users", fault.exception.faultString)
            self.assertEqual(name in fault.exception.faultString, shown)
        person.invalidate_recordset()
        self.assertTrue(person.active)

    def test_the_exceptions_an_error_was_raised_from_are_struck_out_too(self):
        # A traceback (sent with the error) shows the messages of the exceptions it was raised from.
        name = marker_values(503)["name"]
        seen = SeenValues()
        seen.add([name])
        try:
            try:
                raise ValueError(f"cannot render {name}")
            except ValueError as cause:
                raise UserError(f"Rendering failed for {name}") from cause
        except UserError as error:
            strike_out(error, seen)
            self.assertEqual(error.args, ("Rendering failed for [encrypted]",))
            self.assertEqual(error.__cause__.args, ("cannot render [encrypted]",))

    def test_a_portal_user_reads_no_registrant(self):
        with self.assertRaises(JsonRpcException):
            self.rpc(self.portal, "res.partner", "read", self.people.ids, ["name"])

    def test_a_report_printed_by_a_person_is_an_exit(self):
        view = self.env["ir.ui.view"].create(
            {
                "name": "g2p_test_registrant_card",
                "type": "qweb",
                "key": "g2p_encryption.g2p_test_registrant_card",
                "arch": '<t t-name="g2p_encryption.g2p_test_registrant_card">'
                '<t t-foreach="docs" t-as="o"><p class="card"><t t-out="o.name"/> <t t-out="o.email"/></p>'
                "</t></t>",
            }
        )
        report = self.env["ir.actions.report"].create(
            {
                "name": "Registrant card",
                "model": "res.partner",
                "report_type": "qweb-html",
                "report_name": view.key,
            }
        )
        self.authenticate(self.clerk.login, self.clerk.login)
        self._rpc_login = self.clerk.login
        page = self.url_open(f"/report/html/{view.key}/{self.people[5].id}").text
        self.assertIn(self.label(self.people[5]), page)
        self.assertNotIn("marker0505", page.lower())
        # Server code rendering the same document (a voucher run) gets the real values.
        html = self.env["ir.actions.report"]._render_qweb_html(view.key, self.people[5].ids)[0].decode()
        self.assertIn(marker_values(505)["name"], html)
        # The web client's download names the file after the record (print_report_name).
        report.write({"report_type": "qweb-text", "print_report_name": "'Card of %s' % object.name"})
        data = json.dumps([f"/report/text/{view.key}/{self.people[5].id}", "qweb-text"])
        response = self.url_open(f"/report/download?{urlencode({'data': data})}")
        self.assertEqual(response.status_code, 200)
        self.assertNoMarker(response.headers["Content-Disposition"] + response.text, [505])
        self.assertIn(f"Registrant%20%23{self.people[5].id}", response.headers["Content-Disposition"])
