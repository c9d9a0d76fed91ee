# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Finding people without an oracle: a person's exact-value lookups are for Registry Search
members, capped, logged with digests only; a truncated index still finds exactly the right
records."""

import hashlib
from unittest.mock import patch

from lxml import etree

from odoo.exceptions import UserError
from odoo.tests import new_test_user, tagged
from odoo.tests.common import JsonRpcException, TransactionCase

from ..models import encrypted_search as search_model
from .common import RegistryHttpCase, marker_values

NUMBERS = range(800, 806)


@tagged("post_install", "-at_install")
class TestRegistryLookups(RegistryHttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.people = cls.env["res.partner"].create(
            [dict(marker_values(n), is_registrant=True) for n in NUMBERS]
        )
        cls.searcher = new_test_user(
            cls.env,
            login="g2p_registry_searcher",
            groups="base.group_user,base.group_partner_manager,g2p_encryption.registry_searcher",
        )
        params = cls.env["ir.config_parameter"].sudo()
        params.set_param("g2p_encryption.search_max_values", "3")
        params.set_param("g2p_encryption.search_max_per_minute", "5")

    def find(self, user, domain):
        return self.rpc(user, "res.partner", "search", domain + [("id", "in", self.people.ids)])

    def logs(self, user):
        return self.env["g2p.search.log"].sudo().search([("user_id", "=", user.id)], order="id")

    def test_a_member_of_registry_search_finds_people_and_each_lookup_is_logged(self):
        email = marker_values(801)["email"]
        self.assertEqual(self.find(self.searcher, [("email", "=", email)]), self.people[1].ids)
        phone = marker_values(802)["phone"]
        found = self.rpc(
            self.searcher,
            "res.partner",
            "name_search",
            marker_values(803)["name"],
            [("id", "in", self.people.ids)],
        )
        self.assertEqual([row[0] for row in found], self.people[3].ids)
        self.assertEqual(self.find(self.searcher, [("phone", "=", phone)]), self.people[2].ids)
        logs = self.logs(self.searcher)
        # A name search looks up each searchable field of the name (full name, e-mail).
        self.assertEqual(logs.mapped("field_name"), ["email", "complete_name", "email", "phone"])
        self.assertEqual((logs[0].value_count, logs[0].hit_count), (1, 1))
        for log in logs:
            self.assertEqual(len(log.digests), 16)
            self.assertNotIn("marker", (log.digests or "").lower())
        # Keyed: hashing candidate phone numbers does not find the one looked up.
        self.assertNotEqual(logs[-1].digests, hashlib.sha256(phone.encode()).hexdigest()[:16])
        self.find(self.searcher, [("phone", "=", phone)])
        self.assertEqual(self.logs(self.searcher)[-1].digests, logs[-1].digests)  # the same value

    def test_others_are_refused(self):
        with self.assertRaises(JsonRpcException):
            self.find(self.clerk_without_search(), [("email", "=", marker_values(800)["email"])])

    def test_others_complete_names_from_the_clear_only(self):
        """A many2one completion of someone without Registry Search works, finds contacts stored
        in the clear, and makes no lookup by value (so nothing to log, no oracle)."""
        clerk = self.clerk_without_search()
        contact = self.env["res.partner"].create({"name": "Zcontact In The Clear"})
        registrant = self.people[0]
        for name, expected in ((contact.name, contact.ids), (marker_values(800)["name"], [])):
            found = self.rpc(
                clerk, "res.partner", "name_search", name, [("id", "in", [contact.id, registrant.id])]
            )
            self.assertEqual([row[0] for row in found], expected)
        self.assertFalse(self.logs(clerk))

    def test_search_views_offer_the_exact_searches_to_registry_search_only(self):
        labels = ["Full name (exact)", "E-mail (exact)", "Phone (exact)", "National ID (exact)"]
        for user, expected in ((self.searcher, labels), (self.clerk_without_search(), [])):
            view = self.env["res.partner"].with_user(user).get_view(view_type="search")
            strings = etree.fromstring(view["arch"]).xpath("//field/@string")
            self.assertEqual([s for s in strings if s.endswith("(exact)")], expected)

    def clerk_without_search(self):
        return self.env["res.users"].search([("login", "=", "g2p_clerk_no_search")]) or new_test_user(
            self.env, login="g2p_clerk_no_search", groups="base.group_user,base.group_partner_manager"
        )

    def test_the_search_panel_looks_people_up_as_a_search_does(self):
        # Its counts answer whether a domain finds someone: a lookup by value, capped and logged.
        domain = [("email", "=", marker_values(804)["email"]), ("id", "in", self.people.ids)]
        with self.assertRaises(JsonRpcException):
            self.rpc(
                self.clerk_without_search(),
                "res.partner",
                "search_panel_select_range",
                "type",
                search_domain=domain,
                enable_counters=True,
            )
        answer = self.rpc(
            self.searcher,
            "res.partner",
            "search_panel_select_range",
            "type",
            search_domain=domain,
            enable_counters=True,
        )
        counts = {value["id"]: value.get("__count", 0) for value in answer["values"]}
        self.assertEqual(sum(counts.values()), 1)
        self.assertEqual(self.logs(self.searcher).mapped("field_name"), ["email"])

    def test_the_activity_view_looks_people_up_as_a_search_does(self):
        domain = [("email", "=", marker_values(804)["email"]), ("id", "in", self.people.ids)]
        with self.assertRaises(JsonRpcException):
            self.rpc(self.clerk_without_search(), "mail.activity", "get_activity_data", "res.partner", domain)
        self.rpc(self.searcher, "mail.activity", "get_activity_data", "res.partner", domain)
        self.assertEqual(self.logs(self.searcher).mapped("field_name"), ["email"])

    def test_enumeration_is_refused_by_the_caps(self):
        emails = [marker_values(n)["email"] for n in NUMBERS]
        with self.assertRaises(JsonRpcException):
            self.find(self.searcher, [("email", "in", emails)])  # more values than the cap of 3
        self.assertEqual(len(self.find(self.searcher, [("email", "in", emails[:3])])), 3)
        for number in NUMBERS[:4]:
            self.find(self.searcher, [("email", "=", marker_values(number)["email"])])
        with self.assertRaises(JsonRpcException):
            self.find(self.searcher, [("email", "=", emails[5])])  # the 6th lookup in a minute

    def test_the_lookups_of_one_request_count_towards_the_cap(self):
        # A request's rows join the log when it commits: the cap counts those still waiting too.
        leaves = [("email", "=", marker_values(number)["email"]) for number in NUMBERS]
        with self.assertRaises(JsonRpcException):
            self.find(self.searcher, ["|"] * (len(leaves) - 1) + leaves)  # 6 lookups, cap of 5

    def from_email(self, user, emails):
        """The composer's request for the partners of the addresses ``user`` typed."""
        if getattr(self, "_rpc_login", None) != user.login:
            self.authenticate(user.login, user.login)
            self._rpc_login = user.login
        return self.make_jsonrpc_request("/mail/partner/from_email", {"emails": emails})

    def find_or_create(self, user, email):
        """The partner ``res.partner.find_or_create`` answers ``user`` over RPC (its id)."""
        return self.env["res.partner"].browse(self.rpc(user, "res.partner", "find_or_create", email))

    def test_addresses_typed_into_a_composer_are_a_capped_and_logged_lookup(self):
        person = self.people[4]
        email = marker_values(804)["email"]
        answer = self.from_email(self.searcher, [email])
        self.assertEqual([row["id"] for row in answer], person.ids)
        logs = self.logs(self.searcher)
        self.assertEqual(logs.mapped("field_name"), ["email_normalized"])
        self.assertEqual((logs.value_count, logs.hit_count), (1, 1))
        self.assertEqual(logs.digests, self.env["g2p.search.log"]._digests("email_normalized", [email]))
        with self.assertRaises(JsonRpcException):  # more addresses than the cap of 3
            self.from_email(self.searcher, [marker_values(n)["email"] for n in NUMBERS[:4]])
        # The same lookup through res.partner's public find_or_create.
        logged = len(self.logs(self.searcher))
        self.assertEqual(self.find_or_create(self.searcher, email), person)
        new_rows = self.logs(self.searcher)[logged:]
        self.assertEqual([(row.value_count, row.hit_count) for row in new_rows], [(1, 1)])

    def test_others_typing_a_registrants_address_get_a_new_contact_not_the_registrant(self):
        """No oracle: the address of a registrant is not found (no lookup by value is made), as
        an address nobody has; Odoo makes a contact of it, stored in the clear."""
        clerk = self.clerk_without_search()
        email = marker_values(805)["email"]
        (answer,) = self.from_email(clerk, [email])
        self.assertNotIn(answer["id"], self.people.ids)
        self.assertEqual(answer["email"], email)
        contact = self.env["res.partner"].browse(answer["id"])
        self.assertFalse(contact.is_registrant)
        self.assertEqual(self.raw_column(contact, "email"), email)
        self.assertFalse(self.logs(clerk))
        # A contact stored in the clear is found again by its address, the registrant never.
        (again,) = self.from_email(clerk, [email])
        self.assertEqual(again["id"], contact.id)
        self.assertEqual(self.find_or_create(clerk, email), contact)
        other = marker_values(803)["email"]
        made = self.find_or_create(clerk, other)
        self.assertEqual((made.email, made.is_registrant), (other, False))
        self.assertNotIn(made.id, self.people.ids)
        # A message posted to an address typed as a new recipient.
        thread = self.env["res.partner"].create({"name": "Zthread In The Clear"})
        self.make_jsonrpc_request(
            "/mail/message/post",
            {
                "thread_model": "res.partner",
                "thread_id": thread.id,
                "post_data": {"body": "Hello", "partner_emails": [marker_values(802)["email"]]},
            },
        )
        message = self.env["mail.message"].search([("model", "=", "res.partner"), ("res_id", "=", thread.id)])
        self.assertEqual(message.partner_ids.mapped("is_registrant"), [False])
        self.assertFalse(self.logs(clerk))

    def test_suggestions_as_one_types_find_contacts_in_the_clear_only(self):
        """The composer's "@" suggestions: a whole name or e-mail typed finds no registrant, for
        members of Registry Search too (no lookup per keystroke to use up their caps); contacts
        in the clear are suggested as before."""
        contact = self.env["res.partner"].create(
            {"name": "Zsuggested Contact", "email": "zsuggested@example.org"}
        )
        # Discuss suggests users: a registrant who is one (an officer registered as a beneficiary).
        officer = new_test_user(self.env, login="g2p_registered_officer", groups="base.group_user")
        officer.partner_id.write(dict(marker_values(809), is_registrant=True))
        for user in (self.clerk_without_search(), self.searcher):
            for typed in (marker_values(801)["email"], marker_values(801)["name"], contact.email):
                found = self.rpc(user, "res.partner", "get_mention_suggestions", typed)
                ids = [row["id"] for row in found]
                self.assertEqual(ids, contact.ids if typed == contact.email else [], typed)
            for typed in (marker_values(809)["email"], marker_values(809)["name"]):
                invite = self.rpc(user, "res.partner", "search_for_channel_invite", typed)
                self.assertEqual(invite["partners"], [], typed)
            found = self.rpc(user, "res.partner", "im_search", marker_values(809)["name"])
            self.assertNotIn(officer.partner_id.id, [row["id"] for row in found])
            self.assertFalse(self.logs(user))

    def test_server_code_is_not_capped(self):
        emails = [marker_values(n)["email"] for n in NUMBERS]
        partners = self.env["res.partner"].with_user(self.clerk)
        self.assertEqual(len(partners.search([("email", "in", emails)])), len(NUMBERS))
        self.assertFalse(self.logs(self.clerk))

    def test_a_truncated_index_still_finds_exactly_the_right_records(self):
        config = self.env["g2p.encrypted.field"].search(
            [("model_name", "=", "res.partner"), ("field_name", "=", "email")]
        )
        config.index_bits = 8  # 256 digests in all: most lookups give false candidates
        self.addCleanup(self.restore_bits, config)
        people = self.env["res.partner"].create(
            [dict(marker_values(n), is_registrant=True) for n in range(820, 860)]
        )
        self.env.cr.execute(
            """SELECT length(digest) FROM g2p_blind_index
               WHERE res_model = 'res.partner' AND field_name = 'email' AND res_id = %s""",
            (people[0].id,),
        )
        self.assertEqual(self.env.cr.fetchone()[0], 2)
        for number, person in zip(range(820, 860), people, strict=True):
            found = self.env["res.partner"].search(
                [("email", "=", marker_values(number)["email"]), ("id", "in", people.ids)]
            )
            self.assertEqual(found, person)
        # Back to full digests: the 8-bit rows stay until rewritten, and still find exactly.
        config.index_bits = 256
        for number, person in zip(range(820, 860), people, strict=True):
            found = self.env["res.partner"].search(
                [("email", "=", marker_values(number)["email"]), ("id", "in", people.ids)]
            )
            self.assertEqual(found, person)
        # Rows written before the change (full length) are still found.
        self.assertEqual(
            self.env["res.partner"].search([("email", "=", marker_values(800)["email"])]), self.people[0]
        )

    def restore_bits(self, config):
        config.write({"index_bits": 256, "index_bits_used": False})


@tagged("post_install", "-at_install")
class TestLookupRefusalsAreLogged(TransactionCase):
    """A refusal rolls the request back; its log row is written in a transaction of its own once
    the request's has ended. (In an HttpCase every request shares the test's transaction, so the
    row cannot outlive the request's rollback there: this runs the same path with real cursors.)"""

    def test_a_refused_lookup_leaves_a_row_after_the_rollback(self):
        with self.registry.cursor() as cr:
            cr.execute("SELECT sequence, row_hash FROM g2p_audit_chain_head WHERE chain = 'g2p.search.log'")
            head_before = cr.fetchone()
        admin = self.env.ref("base.user_admin")
        admin.groups_id -= self.env.ref("g2p_encryption.registry_searcher")
        with patch.object(search_model, "person_search", return_value=True):
            with self.assertRaisesRegex(UserError, "Registry Search"):
                self.env["res.partner"].with_user(admin).search([("email", "=", "zmarker0899@example.org")])
        self.env.cr.postrollback.run()  # as the request's rollback would
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT id, refused, digests FROM g2p_search_log WHERE user_id = %s ORDER BY id DESC LIMIT 1",
                (admin.id,),
            )
            row_id, refused, digests = cr.fetchone()
            # Leave the database as found: the row, and the head of its chain.
            cr.execute("DELETE FROM g2p_search_log WHERE id = %s", (row_id,))
            if head_before:
                cr.execute(
                    """UPDATE g2p_audit_chain_head SET sequence = %s, row_hash = %s
                       WHERE chain = 'g2p.search.log'""",
                    head_before,
                )
            else:
                cr.execute("DELETE FROM g2p_audit_chain_head WHERE chain = 'g2p.search.log'")
        self.assertIn("Registry Search", refused)
        self.assertNotIn("zmarker", digests)
