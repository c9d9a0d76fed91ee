# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
from odoo.exceptions import UserError

from .common import RegistryCase

REGISTRANTS = [("is_registrant", "=", True)]


class TestRegistrySearch(RegistryCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.amina = cls.env["res.partner"].create(
            {
                "name": "Amina Yusuf",
                "email": "Amina.Yusuf@Example.org",
                "phone": "+254 700 100 201",
                "is_registrant": True,
            }
        )
        cls.joseph = cls.env["res.partner"].create(
            {
                "name": "Joseph Mwangi",
                "email": "joseph@example.org",
                "mobile": "+254 711 300 455",
                "is_registrant": True,
            }
        )
        cls.contact = cls.env["res.partner"].create({"name": "Amina Contact", "email": "amina@plain.example"})

    def search(self, domain, user=None):
        return self.env["res.partner"].with_user(user or self.clerk).search(domain)

    def test_equal_on_a_blind_indexed_field_finds_the_record(self):
        self.assertEqual(self.search([("email", "=", "amina.yusuf@example.org")] + REGISTRANTS), self.amina)

    def test_blind_index_normalises_email_and_phone(self):
        self.assertEqual(self.search([("email", "=", "  AMINA.YUSUF@example.ORG ")]), self.amina)
        self.assertEqual(self.search([("phone", "=", "+254700100201")]), self.amina)
        self.assertEqual(self.search([("mobile", "=", "+254 (711) 300-455")]), self.joseph)

    def test_in_on_a_blind_indexed_field(self):
        found = self.search(
            [("email", "in", ["joseph@example.org", "amina.yusuf@example.org"])] + REGISTRANTS
        )
        self.assertEqual(found, self.amina | self.joseph)

    def test_equal_still_finds_plaintext_contacts(self):
        self.assertEqual(self.search([("email", "=", "amina@plain.example")]), self.contact)

    def test_a_wrong_value_finds_nothing(self):
        self.assertFalse(self.search([("email", "=", "nobody@example.org")] + REGISTRANTS))

    def test_index_follows_writes(self):
        self.amina.write({"email": "amina.new@example.org"})
        self.assertFalse(self.search([("email", "=", "amina.yusuf@example.org")] + REGISTRANTS))
        self.assertEqual(self.search([("email", "=", "amina.new@example.org")] + REGISTRANTS), self.amina)

    def test_ilike_on_an_encrypted_field_raises_for_registrants(self):
        with self.assertRaisesRegex(UserError, "encrypted"):
            self.search([("name", "ilike", "Amina")] + REGISTRANTS)
        with self.assertRaisesRegex(UserError, "exact value"):
            self.search([("email", "ilike", "amina")] + REGISTRANTS)

    def test_equal_on_a_field_without_blind_index_raises_for_registrants(self):
        with self.assertRaisesRegex(UserError, "cannot be searched"):
            self.search([("name", "=", "Amina Yusuf")] + REGISTRANTS)

    def test_mixed_search_never_matches_ciphertext(self):
        # Contact searches all over Odoo (many2one completion) keep working, and leave the
        # encrypted registrants out instead of matching their ciphertext.
        found = self.search([("name", "ilike", "Amina")])
        self.assertIn(self.contact, found)
        self.assertNotIn(self.amina, found)
        self.assertFalse(self.search([("name", "ilike", "g2pe1")]))

    def test_name_search_keeps_working_for_contacts(self):
        names = [name for _id, name in self.env["res.partner"].with_user(self.clerk).name_search("Amina")]
        self.assertIn("Amina Contact", names)
        self.assertNotIn("Amina Yusuf", names)

    def test_order_by_an_encrypted_field_raises(self):
        with self.assertRaisesRegex(UserError, "cannot be searched, sorted or grouped"):
            self.env["res.partner"].search(REGISTRANTS, order="name")

    def test_group_by_an_encrypted_field_raises(self):
        with self.assertRaisesRegex(UserError, "encrypted"):
            self.env["res.partner"].read_group(REGISTRANTS, ["city"], ["city"])

    def test_null_test_needs_no_index(self):
        self.assertIn(self.joseph, self.search([("phone", "=", False)] + REGISTRANTS))

    def test_index_rows_hold_no_plaintext(self):
        rows = self.env["g2p.blind.index"].sudo().search([("res_id", "=", self.amina.id)])
        self.assertEqual(set(rows.mapped("field_name")), {"email", "phone"})
        for row in rows:
            self.assertNotIn("amina", row.digest.lower())
            self.assertEqual(len(row.digest), 64)
