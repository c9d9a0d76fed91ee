# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Searching encrypted fields: exact values through the blind index, never ciphertext."""

from odoo.exceptions import UserError
from odoo.tests import tagged

from .common import RegistryCase, marker_values

NUMBERS = range(700, 706)


@tagged("post_install", "-at_install")
class TestRegistrySearch(RegistryCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.people = cls.env["res.partner"].create(
            [dict(marker_values(n), is_registrant=True) for n in NUMBERS]
        )
        cls.company = cls.env["res.partner"].create(
            {"name": "Zmarker0799 Company", "email": "ZMARKER0799@example.org", "is_company": True}
        )
        cls.mine = cls.people | cls.company

    def search(self, domain):
        return self.env["res.partner"].search(domain + [("id", "in", self.mine.ids)])

    def test_exact_values_find_registrants_through_the_blind_index(self):
        person = self.people[1]
        values = marker_values(701)
        self.assertEqual(self.search([("email", "=", values["email"].upper())]), person)  # normalised
        self.assertEqual(self.search([("phone", "=", values["phone"].replace(" ", ""))]), person)
        self.assertEqual(self.search([("name", "=", values["name"].lower())]), person)
        self.assertEqual(self.search([("name", "ilike", values["name"])]), person)  # a whole value
        emails = [marker_values(n)["email"] for n in (702, 703)]
        self.assertEqual(self.search([("email", "in", emails)]), self.people[2:4])
        self.assertEqual(self.search([("complete_name", "=", values["name"])]), person)

    def test_companies_are_found_as_before(self):
        self.assertEqual(self.search([("name", "ilike", "Zmarker0799")]), self.company)
        self.assertEqual(self.search([("email", "=", "ZMARKER0799@example.org")]), self.company)

    def test_partial_values_never_match_registrants_nor_ciphertext(self):
        self.assertFalse(self.search([("name", "ilike", "Zmarker070")]))
        self.assertFalse(self.search([("name", "ilike", "g2pe")]))
        self.assertFalse(self.search([("city", "=", marker_values(700)["city"])]))  # no blind index

    def test_negative_conditions_keep_their_meaning(self):
        person = self.people[4]
        others = self.search([("email", "!=", marker_values(704)["email"])])
        self.assertEqual(others, self.mine - person)
        self.assertEqual(
            self.search([("email", "not in", [marker_values(704)["email"]])]), self.mine - person
        )
        self.assertEqual(self.search([("email", "=", False)]), self.env["res.partner"])

    def test_name_search_and_related_paths_use_the_index(self):
        values = marker_values(705)
        found = self.env["res.partner"].name_search(values["name"], [("id", "in", self.mine.ids)])
        self.assertEqual([row[0] for row in found], [self.people[5].id])
        child = self.env["res.partner"].create(
            {"name": "Child", "parent_id": self.people[5].id, "type": "other"}
        )
        self.assertEqual(
            self.env["res.partner"].search(
                [("parent_id.email", "=", values["email"]), ("id", "=", child.id)]
            ),
            child,
        )

    def test_grouping_by_an_encrypted_field_is_refused(self):
        with self.assertRaisesRegex(UserError, "encrypted"):
            self.env["res.partner"]._read_group([("id", "in", self.people.ids)], ["city"], ["__count"])
        groups = self.env["res.partner"]._read_group(
            [("id", "in", self.people.ids)], ["is_registrant"], ["__count"]
        )
        self.assertEqual(groups, [(True, len(self.people))])

    def test_ordering_by_an_encrypted_field_still_returns_every_record(self):
        self.assertEqual(len(self.env["res.partner"].search([("id", "in", self.mine.ids)], order="name")), 7)
