# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
from odoo.exceptions import AccessError, UserError

from ..core import envelope
from ..models.encrypted_mixin import MASK
from .common import ENCRYPTED_FIELDS, RegistryCase, database_text, marker_values


class TestRegistryWrite(RegistryCase):
    def test_create_stores_ciphertext_in_every_encrypted_column(self):
        partner = self.create_registrant(1)
        self.assertTrue(partner.is_encrypted)
        for name in ENCRYPTED_FIELDS:
            stored = self.raw_column(partner, name)
            self.assertTrue(envelope.is_token(stored), (name, stored))
            self.assertNotIn("0001", stored)

    def test_create_multi_encrypts_each_record(self):
        partners = self.env["res.partner"].create(
            [dict(marker_values(i), is_registrant=True) for i in range(2, 14)]
        )
        self.assertEqual(partners.mapped("is_encrypted"), [True] * 12)
        self.assertEqual(len(set(partners.mapped("name"))), 12)

    def test_ciphertext_is_bound_to_model_and_field(self):
        partner = self.create_registrant(3)
        aad = partner._field_aad("name")
        self.assertEqual(aad, b"res.partner|name")
        self.assertEqual(self.provider.decrypt_values([partner.name], aad)[0], b"Zmarker0003 Name")
        with self.assertRaisesRegex(UserError, "failed authentication"):
            self.provider.decrypt_values([partner.name], partner._field_aad("city"))

    def test_companies_and_ordinary_contacts_are_untouched(self):
        company = self.env["res.partner"].create(
            {"name": "Acme Ltd", "is_company": True, "email": "a@acme.test"}
        )
        contact = self.env["res.partner"].create({"name": "Ordinary Person", "city": "Nairobi"})
        for partner in company | contact:
            self.assertFalse(partner.is_encrypted)
        self.assertEqual(self.raw_column(company, "name"), "Acme Ltd")
        self.assertEqual(self.raw_column(contact, "city"), "Nairobi")

    def test_encryption_off_stores_plaintext(self):
        self.set_registry(encrypt=False)
        partner = self.create_registrant(4)
        self.assertFalse(partner.is_encrypted)
        self.assertEqual(self.raw_column(partner, "name"), "Zmarker0004 Name")

    def test_multi_record_write_keeps_each_records_own_values(self):
        partners = self.env["res.partner"].create(
            [dict(marker_values(i), is_registrant=True) for i in range(20, 32)]
        )
        partners.with_user(self.crypto_admin).write({"city": "Eldoret"})
        self.set_registry(decrypt=True)
        rows = partners.with_user(self.crypto_admin).read(["name", "email", "city"])
        for i, row in zip(range(20, 32), rows, strict=False):
            self.assertEqual(row["name"], f"Zmarker{i:04d} Name")
            self.assertEqual(row["email"], f"zmarker{i:04d}@example.org")
            self.assertEqual(row["city"], "Eldoret")

    def test_partial_write_re_encrypts_only_what_changed(self):
        partner = self.create_registrant(5)
        before = {name: self.raw_column(partner, name) for name in ENCRYPTED_FIELDS}
        partner.write({"phone": "+254 799 000 111"})
        after = {name: self.raw_column(partner, name) for name in ENCRYPTED_FIELDS}
        self.assertNotEqual(before["phone"], after["phone"])
        self.assertEqual(
            {k: v for k, v in before.items() if k != "phone"},
            {k: v for k, v in after.items() if k != "phone"},
        )

    def test_clearing_a_value_stores_nothing(self):
        partner = self.create_registrant(6)
        partner.write({"street2": False})
        self.assertIsNone(self.raw_column(partner, "street2"))

    def test_is_encrypted_cannot_be_forged(self):
        partner = self.create_registrant(7)
        with self.assertRaises(AccessError):
            partner.write({"is_encrypted": False})
        with self.assertRaises(AccessError):
            self.env["res.partner"].create({"name": "x", "is_encrypted": True})

    def test_derived_stored_values_hold_no_plaintext(self):
        partner = self.create_registrant(8)
        partner.flush_recordset()
        self.assertEqual(partner.complete_name, MASK)
        self.assertEqual(partner.display_name, MASK)
        self.assertNoMarker(database_text(self.env.cr), [8])

    def test_contact_of_a_company_does_not_leak_into_complete_name(self):
        group = self.create_registrant(9, is_company=True)
        member = self.create_registrant(10, parent_id=group.id)
        member.flush_recordset()
        self.assertNotIn("Zmarker", member.complete_name)
        self.assertNoMarker(database_text(self.env.cr), [9, 10])

    def test_turning_a_contact_into_a_registrant_encrypts_it(self):
        contact = self.env["res.partner"].create(dict(marker_values(11)))
        self.assertFalse(contact.is_encrypted)
        contact.write({"is_registrant": True})
        self.assertTrue(contact.is_encrypted)
        self.assertTrue(envelope.is_token(self.raw_column(contact, "name")))

    def test_writing_a_plaintext_registrant_encrypts_it_whole(self):
        self.set_registry(encrypt=False)
        partner = self.create_registrant(12)
        self.set_registry(encrypt=True)
        partner.write({"city": "Kisii"})
        self.assertTrue(partner.is_encrypted)
        for name in ENCRYPTED_FIELDS:
            self.assertTrue(envelope.is_token(self.raw_column(partner, name)), name)

    def test_a_duplicated_registrant_stays_encrypted_and_searchable(self):
        partner = self.create_registrant(13)
        duplicate = partner.copy()
        self.assertTrue(duplicate.is_encrypted)
        self.assertTrue(envelope.is_token(self.raw_column(duplicate, "name")))
        self.set_registry(decrypt=True)
        (row,) = duplicate.with_user(self.crypto_admin).read(["name"])
        self.assertEqual(row["name"], "Zmarker0013 Name")
        found = self.env["res.partner"].search(
            [("email", "=", "zmarker0013@example.org"), ("is_registrant", "=", True)]
        )
        self.assertEqual(found, partner | duplicate)
