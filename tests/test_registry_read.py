# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
from odoo.exceptions import AccessError

from ..models.encrypted_mixin import MASK
from .common import RegistryCase, marker_values

READ_FIELDS = ["name", "email", "phone", "street", "city", "display_name"]
SPEC = {name: {} for name in READ_FIELDS}


class TestRegistryRead(RegistryCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.partners = cls.env["res.partner"].create(
            [dict(marker_values(i), is_registrant=True) for i in range(100, 112)]
        )
        cls.domain = [("id", "in", cls.partners.ids)]

    def audit_count(self):
        return self.env["g2p.decryption.log"].sudo().search_count([])

    def read_paths(self, user):
        Partner = self.env["res.partner"].with_user(user)
        records = self.partners.with_user(user)
        return {
            "read": records.read(READ_FIELDS),
            "search_read": Partner.search_read(self.domain, READ_FIELDS, order="id"),
            "web_search_read": Partner.web_search_read(self.domain, SPEC, order="id")["records"],
            "web_read": records.web_read(SPEC),
        }

    def assertAllMasked(self, rows):
        for row in rows:
            for name in READ_FIELDS:
                self.assertEqual(row[name], MASK, (name, row[name]))

    def assertAllPlain(self, rows):
        for i, row in zip(range(100, 112), rows, strict=False):
            expected = marker_values(i)
            for name in ("name", "email", "phone", "street", "city"):
                self.assertEqual(row[name], expected[name])
            self.assertEqual(row["display_name"], expected["name"])

    def test_clerk_sees_the_mask_with_decryption_off(self):
        for path, rows in self.read_paths(self.clerk).items():
            with self.subTest(path=path):
                self.assertEqual(len(rows), 12)
                self.assertAllMasked(rows)

    def test_clerk_sees_the_mask_with_decryption_on(self):
        self.set_registry(decrypt=True)
        for path, rows in self.read_paths(self.clerk).items():
            with self.subTest(path=path):
                self.assertAllMasked(rows)

    def test_crypto_admin_sees_the_mask_while_decryption_is_off(self):
        for path, rows in self.read_paths(self.crypto_admin).items():
            with self.subTest(path=path):
                self.assertAllMasked(rows)

    def test_crypto_admin_reads_plaintext_while_decryption_is_on(self):
        self.set_registry(decrypt=True)
        for path, rows in self.read_paths(self.crypto_admin).items():
            with self.subTest(path=path):
                self.assertAllPlain(rows)

    def test_each_plaintext_read_is_audited_once_per_request(self):
        self.set_registry(decrypt=True)
        before = self.audit_count()
        self.env["res.partner"].with_user(self.crypto_admin).web_search_read(self.domain, SPEC)
        self.assertEqual(self.audit_count(), before + 1)
        log = self.env["g2p.decryption.log"].sudo().search([], limit=1)
        self.assertEqual(log.user_id, self.crypto_admin)
        self.assertEqual(log.res_model, "res.partner")
        self.assertEqual(log.record_count, 12)
        self.assertEqual(sorted(map(int, log.res_ids.split(","))), sorted(self.partners.ids))
        self.assertEqual(set(log.field_names.split(",")), {"name", "email", "phone", "street", "city"})

    def test_masked_reads_are_not_audited(self):
        before = self.audit_count()
        self.read_paths(self.clerk)
        self.read_paths(self.crypto_admin)  # decryption off
        self.assertEqual(self.audit_count(), before)

    def test_clerk_cannot_read_the_audit_log(self):
        with self.assertRaises(AccessError):
            self.env["g2p.decryption.log"].with_user(self.clerk).search([])

    def test_display_name_of_the_orm_is_never_plaintext(self):
        self.set_registry(decrypt=True)
        for partner in self.partners.with_user(self.crypto_admin):
            self.assertEqual(partner.display_name, MASK)

    def test_export_masks_for_clerk_and_decrypts_for_crypto_admin(self):
        for user in (self.clerk, self.crypto_admin):
            user.groups_id |= self.env.ref("base.group_allow_export")
        rows = self.partners.with_user(self.clerk).export_data(["name", "email", "city", "id"])["datas"]
        self.assertEqual(len(rows), 12)
        self.assertEqual({row[0] for row in rows}, {MASK})
        self.set_registry(decrypt=True)
        before = self.audit_count()
        rows = self.partners.with_user(self.crypto_admin).export_data(["name", "email"])["datas"]
        self.assertEqual([row[0] for row in rows], [marker_values(i)["name"] for i in range(100, 112)])
        self.assertEqual(self.audit_count(), before + 1)

    def test_many2one_to_a_registrant_shows_the_mask(self):
        child = self.env["res.partner"].create({"name": "Caseworker note", "parent_id": self.partners[0].id})
        self.set_registry(decrypt=True)
        (row,) = child.with_user(self.clerk).read(["parent_id"])
        self.assertEqual(row["parent_id"][1], MASK)
        self.assertNotIn("Zmarker", child.with_user(self.clerk).display_name)

    def test_plaintext_records_read_normally(self):
        contact = self.env["res.partner"].create({"name": "Plain Contact", "email": "plain@example.org"})
        (row,) = contact.with_user(self.clerk).read(["name", "email"])
        self.assertEqual(row["name"], "Plain Contact")

    def test_tampered_value_shows_unreadable_not_a_crash(self):
        victim = self.partners[0]
        other = self.partners[1]
        # Another record's ciphertext of another field fails authentication (AAD): unreadable.
        self.env.cr.execute("UPDATE res_partner SET name = city WHERE id = %s", (victim.id,))
        victim.invalidate_recordset()
        self.set_registry(decrypt=True)
        rows = (victim | other).with_user(self.crypto_admin).read(["name"])
        self.assertEqual(rows[0]["name"], "[unreadable]")
        self.assertEqual(rows[1]["name"], marker_values(101)["name"])
