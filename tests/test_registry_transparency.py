# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Inside the server: every module's code reads plaintext, decrypted lazily and in batches."""

from unittest.mock import patch

from odoo.exceptions import UserError
from odoo.tests import tagged

from ..core import envelope
from .common import RegistryCase, marker_values, master_key_file

NUMBERS = range(600, 640)


@tagged("post_install", "-at_install")
class TestRegistryTransparency(RegistryCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.people = cls.env["res.partner"].create(
            [dict(marker_values(n), is_registrant=True) for n in NUMBERS]
        )

    def setUp(self):
        super().setUp()
        self.env.invalidate_all()

    def count_openings(self):
        """Patch the envelope's decryption and count (batches, values)."""
        calls = []
        original = envelope.open_many

        def counting(tokens, key_lookup, aad=b""):
            tokens = list(tokens)
            calls.append(len(tokens))
            return original(tokens, key_lookup, aad)

        patcher = patch.object(envelope, "open_many", counting)
        patcher.start()
        self.addCleanup(patcher.stop)
        return calls

    def test_server_code_reads_plaintext_everywhere(self):
        people = self.people
        self.assertEqual(people[0].name, marker_values(600)["name"])
        self.assertEqual(
            people.mapped("email")[:2], [marker_values(600)["email"], marker_values(601)["email"]]
        )
        found = people.filtered_domain([("email", "ilike", "zmarker0605@")])
        self.assertEqual(found, people[5])
        self.assertEqual(people[1].display_name, marker_values(601)["name"])
        self.assertEqual(people[2].email_normalized, marker_values(602)["email"])
        self.assertEqual(people[3].read(["city"])[0]["city"], marker_values(603)["city"])

    def test_decryption_is_lazy_and_batched(self):
        calls = self.count_openings()
        self.assertTrue(all(person.is_registrant for person in self.people))
        self.assertEqual(calls, [], "reading other fields decrypts nothing")
        names = [person.name for person in self.people]
        self.assertEqual(calls, [len(self.people)], "one batch for the whole prefetch set")
        self.assertEqual(names[7], marker_values(607)["name"])
        again = [person.name for person in self.people]
        self.assertEqual(calls, [len(self.people)], "decrypted once per transaction")
        self.assertEqual(again, names)

    def test_a_read_of_several_fields_decrypts_them_in_one_batch(self):
        calls = self.count_openings()
        names = ["name", "email", "phone", "city"]
        rows = self.people.read(names)
        self.assertEqual(calls, [len(names) * len(self.people)], "one batch for the fields of the read")
        self.assertEqual(rows[4]["phone"], marker_values(604)["phone"])
        self.assertEqual(rows[7]["city"], marker_values(607)["city"])
        self.assertEqual(self.people[2].street, marker_values(602)["street"])  # not read: decrypted apart
        self.assertEqual(len(calls), 2)

    def test_what_server_code_decrypted_is_logged_once_per_transaction(self):
        self.people.mapped("name")
        self.people[:3].mapped("email")
        rows = self.decryption_rows(kind="server")
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows.res_model, "res.partner")
        self.assertEqual(set(rows.field_names.split(",")), {"email", "name"})
        self.assertEqual(rows.record_count, len(self.people))
        self.assertEqual(rows.user_id, self.env.user)

    def test_a_failing_provider_fails_the_read_with_its_cause(self):
        with master_key_file():  # another master key: the data keys no longer unwrap
            with self.assertRaisesRegex(UserError, "master key"):
                _name = self.people[0].name
