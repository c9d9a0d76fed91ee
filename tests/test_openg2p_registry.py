# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""An OpenG2P registry with "Encrypt registry" on: register, read, find, pay.

Runs on a database with OpenG2P's registry, program and voucher modules (``tools/openg2p_test``);
skipped elsewhere. A registrar (OpenG2P's group) and a Crypto Admin go through the web client's
own JSON-RPC paths; a voucher is rendered and signed the way ``g2p_payment_files`` does it.
"""

import json
import unittest
from unittest.mock import patch

import jwt

from odoo import fields
from odoo.tests import new_test_user, tagged

from ..core import envelope
from ..models.encrypted_field_config import _derived_scope
from .common import RegistryHttpCase, database_text
from .web_client import WebClient, form_spec

OPENG2P_MODELS = (
    "g2p.reg.id",
    "g2p.phone.number",
    "g2p.group.membership",
    "g2p.program_membership",
    "g2p.payment.file.qrcode.config",
)

PEOPLE = [
    {
        "family_name": "Zmarkerfam0901",
        "given_name": "Amina",
        "email": "zmarker0901@example.org",
        "phone": "+254700000901",
    },
    {
        "family_name": "Zmarkerfam0902",
        "given_name": "Baraka",
        "email": "zmarker0902@example.org",
        "phone": "+254700000902",
    },
]
NATIONAL_IDS = ["ZM0901NID", "ZM0902NID"]


@tagged("post_install", "-at_install", "g2p_openg2p")
class TestOpenG2PRegistry(RegistryHttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        missing = [model for model in OPENG2P_MODELS if model not in cls.env]
        if missing:
            raise unittest.SkipTest(
                f"OpenG2P's modules are not installed ({', '.join(missing)}): see tools/openg2p_test"
            )
        cls.registrar = new_test_user(
            cls.env,
            login="g2p_openg2p_registrar",
            groups="base.group_user,base.group_partner_manager,g2p_registry_base.group_g2p_registrar",
        )
        cls.crypto_admin.groups_id += cls.env.ref("g2p_registry_base.group_g2p_admin")
        cls.id_type = cls.env["g2p.id.type"].create({"name": "Zmarker National ID"})

    def register_individual(self, user, person):
        """As the web client does: onchange of a new record (OpenG2P computes the name), then save."""
        values = dict(person, is_registrant=True, is_group=False)
        spec = {name: {} for name in (*values, "name")}
        answer = self.rpc(user, "res.partner", "onchange", [], values, [], spec)
        name = answer["value"]["name"]
        saved = self.rpc(user, "res.partner", "web_save", [], dict(values, name=name), {"name": {}})
        return self.env["res.partner"].browse(saved[0]["id"]), name

    def register_household(self):
        people = []
        for person, national_id in zip(PEOPLE, NATIONAL_IDS, strict=True):
            partner, name = self.register_individual(self.registrar, person)
            self.assertEqual(name.strip(), f"{person['family_name']}, {person['given_name']}".upper())
            self.rpc(
                self.registrar,
                "g2p.reg.id",
                "create",
                {"partner_id": partner.id, "id_type": self.id_type.id, "value": national_id},
            )
            self.rpc(
                self.registrar,
                "g2p.phone.number",
                "create",
                {"partner_id": partner.id, "phone_no": person["phone"]},
            )
            people.append(partner)
        group = self.env["res.partner"].create(
            {"name": "Zmarkerhouse0900", "is_registrant": True, "is_group": True, "is_company": True}
        )
        for person in people:
            self.env["g2p.group.membership"].create({"group": group.id, "individual": person.id})
        # A relationship between the two, and a note about it: a message about a relationship is
        # named after both (its display name, "Source / Destination").
        relation = self.env["g2p.relationship"].create(
            {"name": "Zsibling", "name_inverse": "Zsibling", "source_type": "i", "destination_type": "i"}
        )
        relationship = self.rpc(
            self.registrar,
            "g2p.reg.rel",
            "create",
            {"source": people[0].id, "destination": people[1].id, "relation": relation.id},
        )
        self.rpc(self.registrar, "g2p.reg.rel", "message_post", [relationship], body="Checked")
        return self.env["res.partner"].concat(*people), group

    def test_registration_works_and_the_database_holds_no_personal_data(self):
        people, _group = self.register_household()
        self.env.flush_all()
        self.env.cr.precommit.run()
        self.assertEqual(people[0].email, PEOPLE[0]["email"])  # the server reads it: constraints ran
        for column in ("name", "family_name", "given_name", "email", "phone"):
            self.assertTrue(envelope.is_token(self.raw_column(people[0], column)), column)
        reg_id = self.env["g2p.reg.id"].search([("partner_id", "=", people[1].id)])
        self.assertTrue(envelope.is_token(self.raw_column(reg_id, "value")))
        self.assertEqual(reg_id.value, NATIONAL_IDS[1])
        dump = database_text(self.env.cr).lower()
        for fragment in ("zmarkerfam0901", "zmarker0902@", "700000901", "zm0901nid", "zmarkerhouse0900"):
            self.assertNotIn(fragment, dump)

    def test_a_registrar_sees_labels_and_a_crypto_admin_names(self):
        people, group = self.register_household()
        spec = {"individual": {"fields": {"display_name": {}}}, "group": {"fields": {"display_name": {}}}}
        domain = [("group", "=", group.id)]
        members = self.rpc(self.registrar, "g2p.group.membership", "web_search_read", domain, spec)["records"]
        shown = {row["individual"]["display_name"] for row in members}
        self.assertEqual(shown, {f"Registrant #{person.id}" for person in people})
        ids = self.rpc(
            self.registrar,
            "g2p.reg.id",
            "web_search_read",
            [("partner_id", "in", people.ids)],
            {"value": {}, "partner_id": {"fields": {"display_name": {}}}, "display_name": {}},
        )["records"]
        self.assertEqual({row["value"] for row in ids}, {"[encrypted]"})
        self.assertNotIn("zmarker", json.dumps(ids).lower())
        self.set_registry(decrypt=True)
        members = self.rpc(self.crypto_admin, "g2p.group.membership", "web_search_read", domain, spec)[
            "records"
        ]
        self.assertIn("ZMARKERFAM0901, AMINA", {row["individual"]["display_name"].strip() for row in members})
        rows = self.decryption_rows(kind="exit", user_id=self.crypto_admin.id)
        self.assertEqual(len(rows), 1)
        self.assertEqual(sorted(map(int, rows.res_ids.split(","))), sorted((people | group).ids))

    def test_ids_and_phone_numbers_are_found_by_their_exact_value(self):
        people, _group = self.register_household()
        found = self.env["g2p.reg.id"].search([("value", "=", NATIONAL_IDS[0].lower())])
        self.assertEqual(found.partner_id, people[0])
        by_name = self.env["g2p.reg.id"]._name_search(people[1].name)
        self.assertIn(self.env["g2p.reg.id"].search([("partner_id", "=", people[1].id)]).id, list(by_name))
        phone = self.env["g2p.phone.number"].search([("phone_no", "=", PEOPLE[1]["phone"])])
        self.assertEqual(phone.partner_id, people[1])

    def test_a_voucher_carries_the_real_name_and_verifies_offline(self):
        people, _group = self.register_household()
        config = self.env["g2p.payment.file.qrcode.config"].create(
            {
                "name": "Voucher",
                "type": "qrcode",
                "data_type": "jwt",
                "body_string": '{"name": "{{ object.name }}", "email": "{{ object.email }}"}',
            }
        )
        provider = self.env.ref("g2p_encryption.encryption_provider_default")
        datas = config._render_data("jwt", config.body_string, "res.partner", people.ids, provider)
        token = datas[people[0].id]
        jwks = self.url_open("/api/v1/security/.well-known/jwks.json").json()
        header = jwt.get_unverified_header(token)
        key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
        claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=[header["alg"]])
        self.assertEqual(claims["name"].strip(), people[0].name.strip())
        self.assertEqual(claims["email"], PEOPLE[0]["email"])

    def test_a_membership_made_in_its_form_by_a_registrar_leaves_the_registrants_data_whole(self):
        # The form shows the registrant's own fields (delegated: email, address), masked to a
        # registrar; the web client sends every value of a new record back on save (those of
        # both onchanges: opening the form, choosing the registrant), and Odoo writes the
        # delegated ones into the registrant. A name OpenG2P's onchange would not make stays.
        people, _group = self.register_household()
        people[0].write({"address": "Zmarkerstreet 0901", "name": "Amina Zmarkerfam0901 (as registered)"})
        program = self.env["g2p.program"].create({"name": "Zmarker Program"})
        model = "g2p.program_membership"
        fields = self.env[model]._fields
        spec = form_spec(self.env, model)
        client = WebClient(self, self.registrar.login)

        def held(answer):  # what the web client keeps and sends: not the read-only fields
            return {
                name: value
                for name, value in answer["value"].items()
                if not isinstance(value, list | dict) and not fields[name].readonly
            }

        sent = held(client.call(model, "onchange", [], {}, [], spec))
        sent.update(partner_id=people[0].id, program_id=program.id)
        shown = held(client.call(model, "onchange", [], sent, ["partner_id"], spec))
        self.assertEqual((shown["email"], shown["address"]), ("[encrypted]", "[encrypted]"))
        self.assertIn("is_group", sent)
        sent.update(shown)
        saved = client.call(model, "web_save", [], sent, {"email": {}})[0]
        self.assertEqual(saved["email"], "[encrypted]")
        people.invalidate_recordset()
        self.assertEqual(
            (people[0].email, people[0].address, people[0].name),
            (PEOPLE[0]["email"], "Zmarkerstreet 0901", "Amina Zmarkerfam0901 (as registered)"),
        )

    def test_a_registrar_who_changes_a_given_name_sees_no_name_and_keeps_it_whole(self):
        # OpenG2P makes the name from the family and given names in an onchange: the answer
        # names the person, and the web client saves it with the given name.
        people, _group = self.register_household()
        spec = {name: {} for name in ("name", "family_name", "given_name", "display_name")}
        changed = {"given_name": "Zmarkernew"}
        shown = self.rpc(
            self.registrar, "res.partner", "onchange", people[0].ids, changed, ["given_name"], spec
        )
        self.assertNotIn("zmarkerfam", json.dumps(shown).lower())
        sent = dict(changed, **{name: value for name, value in shown["value"].items() if name == "name"})
        saved = self.rpc(self.registrar, "res.partner", "web_save", people[0].ids, sent, {"name": {}})[0]
        self.assertEqual(saved["name"], f"Registrant #{people[0].id}")
        people.invalidate_recordset()
        self.assertEqual(people[0].given_name, "Zmarkernew")
        self.assertEqual(people[0].name, "ZMARKERFAM0901, ZMARKERNEW ")  # OpenG2P's own form of it

    def test_the_chatter_of_a_membership_is_encrypted_when_its_partner_enters_the_registry(self):
        # A membership delegates to its partner (``_inherits``): its chatter has the partner's
        # scope, and what it says is encrypted as soon as the partner becomes a registrant.
        partner = self.env["res.partner"].create({"name": "Zmarkerlate0903"})
        program = self.env["g2p.program"].create({"name": "Zmarker Program"})
        membership = self.env["g2p.program_membership"].create(
            {"partner_id": partner.id, "program_id": program.id}
        )
        message = membership.message_post(body="Zmarkerlate0903 was called")
        self.env.flush_all()
        self.assertIn("Zmarkerlate0903", self.raw_column(message, "body"))
        partner.is_registrant = True
        self.env.flush_all()
        for column in ("body", "record_name"):
            self.assertTrue(envelope.is_token(self.raw_column(message, column)), column)
        self.env.invalidate_all()
        self.assertIn("Zmarkerlate0903 was called", message.body)

    def test_the_name_on_a_registrants_invoice_is_encrypted(self):
        # account.move.invoice_partner_display_name is computed from the partner's display name
        # (not stored), itself from the encrypted complete name: found by the scan of derived
        # fields, encrypted when the partner is a registrant, masked to an invoicing clerk.
        people, _group = self.register_household()
        company = self.env["res.partner"].create({"name": "Zmarkersupplies Ltd", "is_company": True})
        journal = self.env["account.journal"].search(
            [("type", "=", "sale"), ("company_id", "=", self.env.company.id)], limit=1
        )
        moves = self.env["account.move"].create(
            [
                {"move_type": "out_invoice", "partner_id": partner.id, "journal_id": journal.id}
                for partner in (people[0], company)
            ]
        )
        self.env.flush_all()
        self.assertTrue(envelope.is_token(self.raw_column(moves[0], "invoice_partner_display_name")))
        self.assertEqual(self.raw_column(moves[1], "invoice_partner_display_name"), "Zmarkersupplies Ltd")
        self.assertNotIn("zmarkerfam0901", database_text(self.env.cr).lower())
        self.env.invalidate_all()
        self.assertEqual(moves[0].invoice_partner_display_name, people[0].display_name)
        clerk = new_test_user(
            self.env, login="g2p_openg2p_invoicing", groups="base.group_user,account.group_account_invoice"
        )
        rows = self.rpc(
            clerk,
            "account.move",
            "web_search_read",
            [("id", "in", moves.ids)],
            {"invoice_partner_display_name": {}},
        )["records"]
        shown = {row["id"]: row["invoice_partner_display_name"] for row in rows}
        self.assertEqual(shown, {moves[0].id: "[encrypted]", moves[1].id: "Zmarkersupplies Ltd"})

    def test_fields_computed_through_fields_not_stored_take_their_partners_scope(self):
        # calendar.attendee.common_name depends on partner_id.name and on email, a related field
        # (not stored) of partner_id.email; the invoice's name on partner_id.display_name. Both
        # are listed with their partner's scope, as the scan finds them on a fresh database
        # (before the listing made their model one with encrypted fields).
        listed = self.env["g2p.encrypted.field"].search(
            [("origin", "=", "derived"), ("model_name", "in", ("calendar.attendee", "account.move"))]
        )
        self.assertEqual(
            {(row.model_name, row.field_name, row.scope) for row in listed},
            {
                ("calendar.attendee", "common_name", "partner_id.g2p_in_registry"),
                ("account.move", "invoice_partner_display_name", "partner_id.g2p_in_registry"),
            },
        )
        for model_name, field_name in (
            ("calendar.attendee", "common_name"),
            ("account.move", "invoice_partner_display_name"),
        ):
            model = self.env[model_name]
            with patch.object(type(model), "_g2p_encrypted", {}):
                scope = _derived_scope(self.env.registry, model, model._fields[field_name])
            self.assertEqual(scope, "partner_id.g2p_in_registry", model_name)
        # A field whose encrypted values come through a link other than its scope's is unknown.
        move = self.env["account.move"]
        shipping = fields.Char(compute="_compute_g2p_test", store=True)
        shipping.model_name, shipping.name = "account.move", "x_g2p_shipping_name"
        with patch.dict(self.env.registry.field_depends, {shipping: ("partner_shipping_id.display_name",)}):
            self.assertIs(_derived_scope(self.env.registry, move, shipping), False)

    def test_the_attendees_of_a_meeting_are_shown_as_labels(self):
        # calendar's get_attendee_detail (the calendar view, the attendees widget): display names,
        # with address and e-mail when the context asks; inside an exit.
        people, _group = self.register_household()
        event = (
            self.env["calendar.event"]
            .with_context(no_mail_to_attendees=True)
            .create({"name": "Zmarker visit", "partner_ids": [(6, 0, people[:1].ids)]})
        )
        client = WebClient(self, self.registrar.login)
        details = client.call(
            "res.partner",
            "get_attendee_detail",
            people[:1].ids,
            event.ids,
            context={"show_email": True, "show_address": True},
        )
        (detail,) = details
        self.assertTrue(detail["name"].startswith(f"Registrant #{people[0].id}"), detail["name"])
        self.assertNotIn("zmarker0901", json.dumps(details).lower())

    def test_the_account_number_of_a_payment_and_the_holders_name_are_encrypted(self):
        # OpenG2P copies a beneficiary's account number into each payment; Odoo computes a bank
        # account's holder name from its partner (declaring partner_id only as its dependency).
        people, _group = self.register_household()
        account = self.env["res.partner.bank"].create({"partner_id": people[0].id, "acc_number": "ZM0901ACC"})
        program = self.env["g2p.program"].create({"name": "Zmarker Program"})
        cycle = self.env["g2p.cycle"].create(
            {
                "name": "Zmarker cycle",
                "program_id": program.id,
                "start_date": "2026-01-01",
                "end_date": "2026-12-31",
            }
        )
        entitlement = self.env["g2p.entitlement"].create(
            {"partner_id": people[0].id, "cycle_id": cycle.id, "initial_amount": 10}
        )
        payment = self.env["g2p.payment"].create({"entitlement_id": entitlement.id, "amount_issued": 10})
        payment.account_number = account.acc_number  # as g2p_programs' payment manager does
        self.env.flush_all()
        self.assertTrue(envelope.is_token(self.raw_column(account, "acc_holder_name")))
        self.assertTrue(envelope.is_token(self.raw_column(payment, "account_number")))
        self.assertNotIn("zm0901acc", database_text(self.env.cr).lower())
        self.env.invalidate_all()
        self.assertEqual(payment.account_number, "ZM0901ACC")
        self.assertEqual(account.acc_holder_name, people[0].name)
        self.assertEqual(self.env["g2p.payment"].search([("account_number", "=", "zm0901acc")]), payment)
        # A partner who enters the registry later: its payments' account numbers are encrypted.
        late = self.env["res.partner"].create({"name": "Zmarkerlate0904"})
        entitlement = self.env["g2p.entitlement"].create(
            {"partner_id": late.id, "cycle_id": cycle.id, "initial_amount": 5}
        )
        late_payment = self.env["g2p.payment"].create(
            {"entitlement_id": entitlement.id, "amount_issued": 5, "account_number": "ZM0904ACC"}
        )
        self.env.flush_all()
        self.assertEqual(self.raw_column(late_payment, "account_number"), "ZM0904ACC")
        late.is_registrant = True
        self.env.flush_all()
        self.assertTrue(envelope.is_token(self.raw_column(late_payment, "account_number")))

    def test_an_invoicing_clerk_duplicates_a_registrants_invoice(self):
        # The customer's name is computed again on the copy, under its own scope: nothing of the
        # registrant is copied in the clear, so the duplicate (a credit note's too) is not refused.
        people, _group = self.register_household()
        journal = self.env["account.journal"].search(
            [("type", "=", "sale"), ("company_id", "=", self.env.company.id)], limit=1
        )
        move = self.env["account.move"].create(
            {"move_type": "out_invoice", "partner_id": people[0].id, "journal_id": journal.id}
        )
        clerk = new_test_user(
            self.env, login="g2p_openg2p_invoicing2", groups="base.group_user,account.group_account_invoice"
        )
        copied = self.rpc(clerk, "account.move", "copy", [move.id])
        self.env.flush_all()
        copy = self.env["account.move"].browse(copied if isinstance(copied, int) else copied[0])
        self.assertTrue(envelope.is_token(self.raw_column(copy, "invoice_partner_display_name")))
