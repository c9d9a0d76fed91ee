# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""At rest: what reaches the columns, and what a value stored there is bound to."""

import logging

from markupsafe import Markup

from odoo.exceptions import UserError
from odoo.tests import tagged

from ..core import envelope
from ..models.encrypted_field import AtRest, EncryptedField, Masked, Unreadable
from ..models.encrypted_field_config import _dependencies
from ..models.encryption_exits import ExitState
from .common import RegistryCase, database_text, marker_fragments, marker_values


@tagged("post_install", "-at_install")
class TestRegistryStorage(RegistryCase):
    def test_columns_hold_ciphertext_and_server_code_reads_plaintext(self):
        partner = self.create_registrant(1)
        for name, value in marker_values(1).items():
            stored = self.raw_column(partner, name)
            self.assertTrue(stored.startswith(envelope.PREFIX_V2), (name, stored))
            self.assertNotIn(value.lower(), stored.lower())
        partner.invalidate_recordset()
        for name, value in marker_values(1).items():
            self.assertEqual(partner[name], value)
        # Stored fields computed from encrypted ones are encrypted too.
        for derived in ("complete_name", "email_normalized"):
            self.assertTrue(envelope.is_token(self.raw_column(partner, derived)), derived)
        self.assertEqual(partner.complete_name, marker_values(1)["name"])
        self.assertEqual(partner.email_normalized, marker_values(1)["email"])

    def test_companies_and_contacts_stay_in_the_clear(self):
        company = self.env["res.partner"].create({"name": "Zmarker0002 Company", "is_company": True})
        contact = self.env["res.partner"].create(
            {"name": "Zmarker0003 Contact", "email": "zmarker0003@x.org"}
        )
        self.assertEqual(self.raw_column(company, "name"), "Zmarker0002 Company")
        self.assertEqual(self.raw_column(contact, "email"), "zmarker0003@x.org")

    def test_contacts_and_addresses_under_a_registrant_are_encrypted(self):
        # Odoo copies a registrant's address into a contact under it, and the registrant's name
        # into the contact's complete name ("Registrant, Contact"): such contacts are in scope.
        values = marker_values(95)
        person = self.create_registrant(95)
        self.env.flush_all()
        partners = self.env["res.partner"]
        with self.assertLogs("odoo.sql_db", logging.DEBUG) as logs:  # inserted encrypted
            contact = partners.create({"name": "Zmarker0096 Kid", "parent_id": person.id, "type": "contact"})
            depot = partners.create(
                {
                    "name": "Zmarker0097 Depot",
                    "parent_id": contact.id,
                    "type": "other",
                    "street": "Zmarker0097 St",
                }
            )
            self.env.flush_all()
        self.assertIn("INSERT INTO", "\n".join(logs.output))
        self.assertNoMarker("\n".join(logs.output), [95, 96, 97])
        self.assertEqual((contact | depot).mapped("g2p_in_registry"), [True, True])
        for record, name in [(contact, n) for n in ("name", "complete_name", "street", "city", "zip")] + [
            (depot, n) for n in ("name", "complete_name", "street")
        ]:
            self.assertTrue(envelope.is_token(self.raw_column(record, name)), (record.name, name))
        self.env.cr.execute("SELECT * FROM res_partner WHERE id IN %s", ((contact.id, depot.id),))
        self.assertNoMarker(repr(self.env.cr.fetchall()), [95, 96, 97])
        self.env.invalidate_all()
        self.assertEqual((contact.street, contact.city), (values["street"], values["city"]))
        self.assertEqual(contact.complete_name, f"{values['name']}, Zmarker0096 Kid")
        self.assertEqual(depot.street, "Zmarker0097 St")
        # A contact stored in the clear that is put under a registrant is encrypted at once.
        moved = partners.create({"name": "Zmarker0098 Neighbour", "email": "zmarker0098@x.org"})
        self.assertEqual(self.raw_column(moved, "email"), "zmarker0098@x.org")
        moved.write({"parent_id": person.id, "type": "other"})
        self.assertTrue(envelope.is_token(self.raw_column(moved, "email")))
        self.assertTrue(envelope.is_token(self.raw_column(moved, "complete_name")))
        self.assertEqual(moved.email, "zmarker0098@x.org")
        # Out from under the registrant, what it stores next is in the clear again.
        moved.write({"parent_id": False})
        moved.write({"email": "zmarker0099@x.org"})
        self.assertFalse(moved.g2p_in_registry)
        self.assertEqual(self.raw_column(moved, "email"), "zmarker0099@x.org")

    def test_a_registrants_values_are_not_copied_into_partners_in_the_clear(self):
        partners = self.env["res.partner"]
        # Odoo copies the address of a company's first contact up into the company when it has none.
        company = partners.create({"name": "Zcompany Without Address", "is_company": True})
        self.create_registrant(92, parent_id=company.id, type="contact")
        self.assertFalse(self.raw_column(company, "street"))
        # A contact moved out from under a registrant: the tracked old parent is the registrant.
        person = self.create_registrant(93)
        kid = partners.create({"name": "Zmarker0094 Kid", "parent_id": person.id, "type": "contact"})
        self.env.flush_all()
        self.env.cr.precommit.run()
        kid.write({"parent_id": False})
        self.env.flush_all()
        self.env.cr.precommit.run()  # tracking values are written at commit
        trackings = kid.message_ids.tracking_value_ids
        self.assertIn("parent_id", trackings.field_id.mapped("name"))
        self.env.cr.execute(
            "SELECT old_value_char, new_value_char FROM mail_tracking_value WHERE id IN %s",
            (tuple(trackings.ids),),
        )
        self.assertNoMarker(repr(self.env.cr.fetchall()), [93, 94])
        self.assertIn(marker_values(93)["name"], trackings.mapped("old_value_char"))

    def test_an_exit_looks_up_the_scope_of_a_chatters_tracking_values_together(self):
        # Each tracking value names a record (the old and new parent): one look-up for them all,
        # not queries per value (a chatter of any document that tracks a contact).
        partners = self.env["res.partner"]
        first, second = partners.create([{"name": f"Zcompany {n}", "is_company": True} for n in (1, 2)])
        contacts = partners.create([{"name": f"Zcontact {n}", "parent_id": first.id} for n in range(12)])
        self.env.flush_all()
        self.env.cr.precommit.run()

        def move(records, parent):
            """Move ``records`` under ``parent``: (their tracking values, those an exit guards)."""
            records.write({"parent_id": parent.id})
            self.env.flush_all()
            self.env.cr.precommit.run()  # tracking values are written at commit
            trackings = contacts.message_ids.tracking_value_ids.sudo()
            self.env.invalidate_all()
            trackings = trackings.browse(trackings.ids)  # prefetched together, as a chatter's
            state, field = ExitState(False, True, "test"), trackings._fields["old_value_char"]
            with self.assertQueryCount(8):
                guarded = trackings.filtered(lambda tracking: state.protected(field, tracking, "x"))
            return trackings, guarded

        trackings, guarded = move(contacts, second)
        self.assertIn("parent_id", trackings.field_id.mapped("name"))
        self.assertGreaterEqual(len(trackings), 12)
        self.assertFalse(guarded)
        # A contact put under a registrant: its chatter is in scope (all of it), the others' not.
        person = self.create_registrant(89)
        trackings, guarded = move(contacts[0], person)
        self.assertEqual(guarded, trackings.filtered(lambda t: t.mail_message_id.res_id == contacts[0].id))
        # Out from under it again: the messages naming the registrant (as new, then old parent) stay
        # in scope, and only those.
        trackings, guarded = move(contacts[0], second)
        naming = trackings.filtered(lambda t: person.id in (t.old_value_integer, t.new_value_integer))
        self.assertTrue(naming)
        self.assertEqual(guarded, naming.mail_message_id.tracking_value_ids)

    def test_what_other_models_hold_for_a_partner_coming_into_scope_is_encrypted(self):
        partners, banks = self.env["res.partner"], self.env["res.partner.bank"]
        company = partners.create({"name": "Zcompany Bank", "is_company": True})
        company_account = banks.create({"partner_id": company.id, "acc_number": "ZACC0090"})
        self.assertEqual(self.raw_column(company_account, "acc_number"), "ZACC0090")
        person = self.create_registrant(91)
        neighbour = partners.create({"name": "Zmarker0099 Neighbour"})
        account = banks.create({"partner_id": neighbour.id, "acc_number": "ZACC0091"})
        self.assertEqual(self.raw_column(account, "acc_number"), "ZACC0091")
        neighbour.write({"parent_id": person.id, "type": "other"})
        self.env.flush_all()
        for name in ("acc_number", "sanitized_acc_number"):
            self.assertTrue(envelope.is_token(self.raw_column(account, name)), name)
        account.invalidate_recordset()
        self.assertEqual(account.acc_number, "ZACC0091")

    def test_each_record_of_a_multi_record_write_gets_its_own_ciphertext(self):
        people = self.create_registrants(range(10, 22))
        people.write({"city": "Zmarker0030ville"})
        tokens = {self.raw_column(person, "city") for person in people}
        self.assertEqual(len(tokens), len(people))
        people.invalidate_recordset()
        self.assertEqual(set(people.mapped("city")), {"Zmarker0030ville"})

    def test_the_update_of_a_batch_finds_its_rows_by_their_ids(self):
        # As Odoo's own UPDATE ... WHERE id IN: joined on the ids alone, the UPDATE of a batch's
        # tokens may read the whole table when the statistics predate the last inserts (an import).
        people = self.create_registrants(range(31, 37))
        self.env.flush_all()
        with self.assertLogs("odoo.sql_db", logging.DEBUG) as logs:
            people.write({"city": "Zmarker0031ville"})
            self.env.flush_all()
        [update] = [
            line.partition("query: ")[2] for line in logs.output if 'UPDATE "res_partner" AS t' in line
        ]
        self.env.cr.execute("EXPLAIN (FORMAT JSON) " + update)
        nodes, scans = [self.env.cr.fetchone()[0][0]["Plan"]], []
        while nodes:
            node = nodes.pop()
            nodes.extend(node.get("Plans", ()))
            if node.get("Relation Name") == "res_partner" and "Scan" in node["Node Type"]:
                scans.append(node)
        self.assertTrue(scans)
        for scan in scans:
            conditions = " ".join(scan.get(key, "") for key in ("Index Cond", "Recheck Cond", "Filter"))
            self.assertIn("ANY", conditions, scan)

    def test_a_write_tests_the_scope_of_records_not_in_the_cache_in_its_update(self):
        # A write whose records' scope is not in the cache (an import's, a job's: nothing read
        # their rows first) finds it in the table: the UPDATE of the tokens tests it, instead of
        # a read of the same wide rows. Records out of scope among them are written in the clear;
        # those in scope encrypted and indexed.
        people = self.create_registrants(range(40, 44))
        company = self.env["res.partner"].create({"name": "Zmarker0044 Company", "is_company": True})
        records = people | company
        self.env.flush_all()
        self.env.invalidate_all()
        # The flush's own call (a module's write may read the rows first: OpenG2P's does).
        with self.assertLogs("odoo.sql_db", logging.DEBUG) as logs:
            records._write({"city": "Zmarker0045ville"})
        queries = [line.partition("query: ")[2] for line in logs.output]
        reads = [query for query in queries if query.startswith("SELECT") and '"res_partner"' in query]
        self.assertFalse(reads)
        updates = [query for query in queries if query.startswith('UPDATE "res_partner" AS t')]
        self.assertEqual(len(updates), 1, queries)
        self.assertIn('CASE WHEN t."g2p_in_registry"', updates[0])
        # Through write, the values and the blind indexes are right, whichever path it took.
        records.with_context(tracking_disable=True).write({"email": "zmarker0045@x.org"})
        self.env.flush_all()
        for person in people:
            for name in ("city", "email", "email_normalized"):
                self.assertTrue(envelope.is_token(self.raw_column(person, name)), name)
        self.assertEqual(self.raw_column(company, "city"), "Zmarker0045ville")
        self.env.invalidate_all()
        self.assertEqual(set(people.mapped("city")), {"Zmarker0045ville"})
        found = self.env["res.partner"].search([("email", "=", "zmarker0045@x.org")])
        self.assertEqual(found, people | company)

    def test_a_write_waits_for_the_scope_its_records_are_getting(self):
        # Partners made registrants, their scope waiting to be recomputed when a partial flush
        # writes their other values: the table still says "out of scope", and must not be taken
        # at its word. No plaintext reaches PostgreSQL, not even within the transaction.
        partners = self.env["res.partner"].create([{"name": f"Zmarker00{n} C"} for n in (60, 61, 62)])
        self.env.flush_all()
        self.env.invalidate_all()
        with self.assertLogs("odoo.sql_db", logging.DEBUG) as logs:
            partners.with_context(tracking_disable=True).write(
                {"is_registrant": True, "city": "Zmarker0063ville"}
            )
            self.env["res.partner"].flush_model(["is_registrant"])  # as a search on it does
            self.env.flush_all()
        self.assertNoMarker("\n".join(logs.output), [63])
        for partner in partners:
            self.assertTrue(envelope.is_token(self.raw_column(partner, "city")))

    def test_a_flush_stores_the_computed_values_of_many_records_in_one_batch(self):
        # After a create, the flush writes each registrant's computed fields (its complete name,
        # encrypted, and its commercial partner, in the clear): one UPDATE for them all.
        with self.assertLogs("odoo.sql_db", logging.DEBUG) as logs:
            people = self.create_registrants(range(24, 30))
            self.env.flush_all()
        updates = [line for line in logs.output if "UPDATE" in line and '"res_partner"' in line]
        self.assertEqual(len(updates), 1, updates)
        self.env.cr.execute(
            "SELECT id, commercial_partner_id, partner_share, complete_name, write_uid IS NOT NULL "
            "FROM res_partner WHERE id IN %s ORDER BY id",
            (tuple(people.ids),),
        )
        for (record_id, commercial_id, share, complete_name, has_writer), number in zip(
            self.env.cr.fetchall(), range(24, 30), strict=True
        ):
            self.assertEqual((commercial_id, share, has_writer), (record_id, True, True))
            self.assertTrue(envelope.is_token(complete_name))
            self.assertNotIn(f"marker{number:04d}", complete_name.lower())
        people.invalidate_recordset()
        self.assertEqual(people.mapped("complete_name"), [marker_values(n)["name"] for n in range(24, 30)])
        self.assertEqual(people.mapped("commercial_partner_id"), people)

    def test_a_transaction_looks_its_active_keys_up_once(self):
        # A request that saves a registrant encrypts its values and indexes them: one query finds
        # the encryption key and the blind-index key, and later batches of the transaction trust
        # it while the ORM cache says the keys are active.
        provider = self.env["g2p.encryption.provider"].sudo()._get_registry_provider()
        for usage in ("encrypt", "index"):
            provider._active_key(usage)  # made on first use: made now
        self.env.invalidate_all()
        self.env.transaction.__dict__.pop("g2p_active_keys", None)
        with self.assertLogs("odoo.sql_db", logging.DEBUG) as logs:
            person = self.create_registrants([31])
            person.write({"city": "Zmarker0031town"})
            self.env.flush_all()
        lookups = [line for line in logs.output if 'FROM "g2p_encryption_key"' in line and "'active'" in line]
        self.assertEqual(len(lookups), 1, lookups)
        person.invalidate_recordset()
        self.assertEqual(person.city, "Zmarker0031town")
        self.assertEqual(person.search([("email", "=", person.email)]), person)

    def test_a_ciphertext_moved_to_another_record_does_not_decrypt_there(self):
        first, second = self.create_registrants([40, 41])
        token = self.raw_column(first, "name")
        self.env.cr.execute("UPDATE res_partner SET name = %s WHERE id = %s", (token, second.id))
        self.env.invalidate_all()
        with self.assertLogs("odoo.addons.g2p_encryption.models.encrypted_field", "WARNING") as logs:
            self.assertIsInstance(second.name, Unreadable)
        self.assertNotIn("marker0040", second.name.lower())
        self.assertEqual(first.name, marker_values(40)["name"])
        self.assertIn(f"ids {second.id}", logs.output[0])
        self.assertNotIn("marker", logs.output[0].lower())

    def test_the_holder_name_of_a_registrants_bank_account_is_encrypted(self):
        # Odoo computes it from the partner's name, declaring partner_id only as its dependency.
        person = self.create_registrant(46)
        account = self.env["res.partner.bank"].create({"partner_id": person.id, "acc_number": "ZM46"})
        self.env.flush_all()
        self.assertTrue(envelope.is_token(self.raw_column(account, "acc_holder_name")))
        self.env.invalidate_all()
        self.assertEqual(account.acc_holder_name, marker_values(46)["name"])

    def test_a_value_that_looks_like_a_token_is_encrypted_like_any_other(self):
        first, second = self.create_registrants([42, 43])
        token = self.raw_column(first, "name")
        company = self.env["res.partner"].create({"name": "Company", "is_company": True})
        second.name = token  # as a client with write access would send it over RPC
        company.name = token
        for record in (second, company):
            stored = self.raw_column(record, "name")
            self.assertNotEqual(stored, token)
            self.assertTrue(envelope.is_token(stored))
            record.invalidate_recordset()
            self.assertEqual(record.name, token)  # what was written, not the other person's name

    def test_a_partner_that_becomes_a_registrant_is_encrypted_at_once(self):
        partner = self.env["res.partner"].create(marker_values(50))
        self.assertEqual(self.raw_column(partner, "name"), marker_values(50)["name"])
        partner.is_registrant = True
        for name in ("name", "email", "street", "complete_name"):
            self.assertTrue(envelope.is_token(self.raw_column(partner, name)), name)
        partner.invalidate_recordset()
        self.assertEqual(partner.street, marker_values(50)["street"])

    def test_with_encrypt_registry_off_new_values_are_stored_in_the_clear(self):
        encrypted = self.create_registrant(60)
        self.set_registry(encrypt=False)
        clear = self.create_registrant(61)
        self.assertEqual(self.raw_column(clear, "name"), marker_values(61)["name"])
        encrypted.invalidate_recordset()
        self.assertEqual(encrypted.name, marker_values(60)["name"])  # still readable

    def test_a_mask_given_at_an_exit_cannot_be_stored(self):
        partner = self.create_registrant(70)
        with self.assertRaisesRegex(UserError, "masked value"):
            partner.write({"name": Masked("Registrant #70")})
            partner.flush_recordset()

    def test_values_written_by_version_1_stay_readable(self):
        partner = self.create_registrant(80)
        key = self.provider._active_key("encrypt")
        data_key = self.provider._keyring().key(key.key_id)
        legacy = envelope._seal_with(
            envelope._header(envelope.PREFIX_V1, key.key_id),
            envelope._aead(data_key),
            b"Zmarker0081 Legacy",
            b"res.partner|name",
        )
        self.env.cr.execute("UPDATE res_partner SET name = %s WHERE id = %s", (legacy, partner.id))
        self.env.invalidate_all()
        self.assertEqual(partner.name, "Zmarker0081 Legacy")
        self.assertIsInstance(partner.name, AtRest)

    def test_declared_and_derived_fields_are_encrypted_fields(self):
        partner_fields = self.env["res.partner"]._fields
        for name in ("name", "email", "phone", "street", "complete_name", "commercial_company_name"):
            self.assertIsInstance(partner_fields[name], EncryptedField, name)
            self.assertTrue(partner_fields[name].g2p_encrypted, name)
        self.assertEqual(partner_fields["email"].g2p_index_kind, "email")
        self.assertFalse(isinstance(partner_fields["ref"], EncryptedField))
        # A copy kept on another model follows the scope of the record it copies.
        self.assertEqual(self.env["res.company"]._g2p_scope_path, "partner_id.g2p_in_registry")
        self.assertEqual(self.env["res.company"]._fields["name"].column_type, ("varchar", "varchar"))

    def test_the_scan_of_derived_fields_follows_non_stored_fields(self):
        # res.users.signature depends on the user's name: a related field (not stored) of its
        # partner's encrypted name. The user model keeps it out of scope itself (no signature
        # for a registrant's user), so it is neither listed nor reported.
        registry = self.env.registry
        signature = self.env["res.users"]._fields["signature"]
        found = set(_dependencies(registry, signature))
        self.assertIn(self.env["res.partner"]._fields["name"], found)
        self.assertNotIn("res.users.signature", registry.g2p_unprotected_derived)
        self.assertFalse(self.env["res.users"]._g2p_encrypted)

    def test_the_sql_of_writes_and_reads_holds_no_plaintext(self):
        with self.assertLogs("odoo.sql_db", logging.DEBUG) as logs:
            partner = self.create_registrant(90)
            partner.write({"street": "Zmarker0090 Other Street", "phone": "+254 700000090"})
            self.env.flush_all()
            self.env.invalidate_all()
            self.assertEqual(partner.street, "Zmarker0090 Other Street")
        sql = "\n".join(logs.output)
        self.assertIn("INSERT INTO", sql)
        for fragment in marker_fragments(90):
            self.assertNotIn(fragment.lower(), sql.lower())

    def test_the_scope_of_many_messages_is_looked_up_together(self):
        company = self.env["res.partner"].create({"name": "Zmarker0040 Company", "is_company": True})
        queries = []
        for numbers in (range(41, 43), range(43, 53)):
            documents = self.create_registrants(numbers) + company
            messages = (
                self.env["mail.message"]
                .sudo()
                .create(
                    [
                        {"model": "res.partner", "res_id": document.id, "body": "A note"}
                        for document in documents
                    ]
                )
            )
            # Created in one batch: each message's copy of its document's name is encrypted when
            # its document is a registrant, and only then.
            for message, document in zip(messages, documents, strict=True):
                stored = self.raw_column(message, "record_name")
                self.assertEqual(envelope.is_token(stored), document != company, stored)
            self.env.invalidate_all()
            before = self.env.cr.sql_log_count
            in_scope = messages._g2p_in_scope()
            queries.append(self.env.cr.sql_log_count - before)
            self.assertEqual(in_scope, messages.filtered(lambda message: message.res_id != company.id))
        # As many queries for 3 documents as for 11.
        self.assertEqual(queries[0], queries[1])

    def test_a_registrants_user_named_in_a_tracking_value_is_encrypted(self):
        # A user's name is its partner's (``_inherits``): a registrant's portal user made the
        # salesperson of a company (``user_id``, tracked) leaves the registrant's name in the
        # company's chatter, and a message about the user holds it as its record name.
        person = self.create_registrant(170)
        user = self.env["res.users"].create(
            {
                "login": "zmarker0171",
                "partner_id": person.id,
                "groups_id": [(6, 0, [self.env.ref("base.group_portal").id])],
            }
        )
        company = self.env["res.partner"].create({"name": "Zcompany Tracked", "is_company": True})
        self.env.flush_all()
        self.env.cr.precommit.run()
        # Odoo's copies of the partner's values in the user's own columns and in the note on the
        # partner's chatter ("Portal Access Granted (e-mail)") are not made.
        self.assertNoMarker(database_text(self.env.cr), [170])
        document_message = self.env["mail.message"].create(
            {"model": "res.users", "res_id": user.id, "body": "About the user"}
        )
        self.assertTrue(envelope.is_token(self.raw_column(document_message, "record_name")))
        company.write({"user_id": user.id})
        self.env.flush_all()
        self.env.cr.precommit.run()  # tracking values are written at commit
        trackings = company.message_ids.tracking_value_ids
        self.assertEqual(trackings.field_id.mapped("name"), ["user_id"])
        self.env.cr.execute(
            "SELECT new_value_char FROM mail_tracking_value WHERE id IN %s", (tuple(trackings.ids),)
        )
        self.assertNoMarker(repr(self.env.cr.fetchall()), [170])
        self.env.invalidate_all()
        self.assertEqual(trackings.new_value_char, marker_values(170)["name"])

    def contact_with_portal_user(self, number):
        """An ordinary contact (stored in the clear) with marker values, and its portal user."""
        partner = self.env["res.partner"].create(marker_values(number))
        portal = self.env.ref("base.group_portal")
        user = self.env["res.users"].create(
            {"login": f"zmarker{number:04d}", "partner_id": partner.id, "groups_id": [(6, 0, portal.ids)]}
        )
        return partner, user

    def test_a_users_signature_goes_when_its_partner_comes_into_the_registry(self):
        # Odoo made the portal user's signature of its name while the partner was an ordinary
        # contact: it goes when the partner becomes a registrant.
        partner, user = self.contact_with_portal_user(173)
        self.assertIn(marker_values(173)["name"], str(user.signature))
        partner.is_registrant = True
        self.env.flush_all()
        self.env.cr.execute("SELECT signature FROM res_users WHERE id = %s", (user.id,))
        self.assertIsNone(self.env.cr.fetchone()[0])

    def test_the_chatter_of_a_users_partner_is_encrypted_when_it_comes_into_the_registry(self):
        # Messages about a portal user (and e-mails about the partner), written while the partner
        # was an ordinary contact (in the clear), are encrypted when it becomes a registrant.
        partner, user = self.contact_with_portal_user(181)
        name = marker_values(181)["name"]
        message = self.env["mail.message"].create(
            {"model": "res.users", "res_id": user.id, "body": f"<p>About {name}</p>", "subject": name}
        )
        # An e-mail to the partner waiting to be sent, and a translation (the chatter's Translate).
        email = self.env["mail.mail"].create(
            {
                "model": "res.partner",
                "res_id": partner.id,
                "body_html": f"<p>Dear {name}</p>",
                "subject": name,
            }
        )
        translation = self.env["mail.message.translation"].create(
            {
                "message_id": email.mail_message_id.id,
                "body": "<p>Cher</p>",
                "source_lang": "en",
                "target_lang": "fr",
            }
        )
        self.env.flush_all()
        self.assertEqual(self.raw_column(message, "subject"), name)
        self.assertEqual(self.raw_column(email, "body_html"), f"<p>Dear {name}</p>")
        partner.is_registrant = True
        self.env.flush_all()
        for column in ("subject", "body", "record_name"):
            self.assertTrue(envelope.is_token(self.raw_column(message, column)), column)
        self.assertTrue(envelope.is_token(self.raw_column(email, "body_html")))
        self.assertFalse(translation.exists())
        self.env.invalidate_all()
        self.assertEqual((message.subject, message.body), (name, Markup(f"<p>About {name}</p>")))

    def test_a_tracked_many2many_naming_a_registrant_is_encrypted(self):
        # Odoo keeps a tracked many2many or one2many as its records' names joined, without ids:
        # whether they name a registrant is noted when the value is made.
        people = self.create_registrants([172])
        contact = self.env["res.partner"].create({"name": "Zclear Contact"})
        company = self.env["res.partner"].create({"name": "Zcompany Listing", "is_company": True})
        info = company.fields_get(["child_ids"])["child_ids"]
        trackings = self.env["mail.tracking.value"]
        for tracked in (people | contact, contact):
            values = trackings._create_tracking_values(contact.browse(), tracked, "child_ids", info, company)
            message = company.message_post(body="Listed", tracking_value_ids=[(0, 0, values)])
            trackings |= message.sudo().tracking_value_ids
        self.env.flush_all()
        self.assertEqual(trackings.mapped("g2p_names_in_scope"), [True, False])
        self.env.cr.execute(
            "SELECT new_value_char FROM mail_tracking_value WHERE id IN %s ORDER BY id",
            (tuple(trackings.ids),),
        )
        (named,), (clear,) = self.env.cr.fetchall()
        self.assertTrue(envelope.is_token(named))
        self.assertEqual(clear, "Zclear Contact")
        self.env.invalidate_all()
        self.assertIn(marker_values(172)["name"], trackings[0].new_value_char)

    def test_the_chatter_keeps_no_plaintext_copy(self):
        partner = self.create_registrant(95)
        self.env.cr.precommit.run()
        partner.message_post(body="A note")
        partner.with_user(self.crypto_admin).write({"phone": "+254 700000096", "email": "zmarker0096@x.org"})
        self.env.cr.precommit.run()
        messages = partner.message_ids
        self.assertTrue(messages.tracking_value_ids)
        for message in messages:
            stored = self.raw_column(message, "record_name")
            self.assertTrue(not stored or envelope.is_token(stored), stored)
        for tracking in messages.tracking_value_ids:
            for column in ("old_value_char", "new_value_char"):
                stored = self.raw_column(tracking, column)
                self.assertTrue(not stored or envelope.is_token(stored), (column, stored))
        messages.invalidate_recordset()
        self.assertIn(marker_values(95)["name"], messages.mapped("record_name"))

    def test_what_a_message_about_a_registrant_says_is_encrypted(self):
        person = self.create_registrant(180)
        company = self.env["res.partner"].create({"name": "Zmessage Company", "is_company": True})
        name = marker_values(180)["name"]
        # An e-mail to the registrant through the full composer (its subject is the registrant's
        # name, as Odoo makes it), from a clerk who may read the registry.
        composer = (
            self.env["mail.compose.message"]
            .with_user(self.crypto_admin)
            .with_context(
                default_model="res.partner", default_res_ids=person.ids, mail_notify_force_send=False
            )
            .create({"body": f"<p>Dear {name}, your visit</p>", "partner_ids": person.ids})
        )
        self.assertEqual(composer.subject, name)
        composer.action_send_mail()
        self.env.flush_all()
        sent = person.message_ids.filtered(lambda message: message.message_type == "comment")
        self.assertEqual(len(sent), 1)
        self.env.cr.execute(
            "SELECT subject, body, email_from, reply_to, record_name FROM mail_message WHERE id = %s",
            (sent.id,),
        )
        row = self.env.cr.fetchone()
        self.assertTrue(all(envelope.is_token(value) for value in row if value), row)
        self.assertTrue(all(row), row)
        self.assertNoMarker(repr(row), [180])
        # The e-mail to the registrant, waiting to be sent: its own copy of the body and its
        # addresses are encrypted too; what Odoo sends is the real text.
        email = self.env["mail.mail"].sudo().search([("mail_message_id", "=", sent.id)])
        self.env.cr.execute("SELECT body_html, email_to, email_cc FROM mail_mail WHERE id = %s", (email.id,))
        stored = self.env.cr.fetchone()
        self.assertTrue(envelope.is_token(stored[0]), stored)
        self.assertTrue(all(envelope.is_token(value) for value in stored if value), stored)
        self.assertNoMarker(repr(stored), [180])
        self.env.invalidate_all()
        self.assertEqual(email.subject, name)
        self.assertIn(f"Dear {name}, your visit", email.body_html)
        other = self.env["mail.mail"].create(
            {
                "model": "res.partner",
                "res_id": company.id,
                "body_html": "<p>Hi</p>",
                "email_to": "z@example.org",
            }
        )
        self.env.flush_all()
        self.assertEqual(
            (self.raw_column(other, "body_html"), self.raw_column(other, "email_to")),
            ("<p>Hi</p>", "z@example.org"),
        )
        # Server code reads what was written.
        self.env.invalidate_all()
        self.assertEqual((sent.subject, sent.body), (name, Markup(f"<p>Dear {name}, your visit</p>")))
        self.assertEqual(sent.email_from, self.crypto_admin.email_formatted)
        # HTML is sanitised before it is encrypted, as Odoo does before it stores it in the clear.
        hostile = '<p>Noted</p><script>alert("x")</script><img src="x" onerror="alert(1)">'
        notes = self.env["mail.message"].create(
            [
                {"model": "res.partner", "res_id": document.id, "body": hostile}
                for document in (person, company)
            ]
        )
        self.env.flush_all()
        self.assertTrue(envelope.is_token(self.raw_column(notes[0], "body")))
        plain = self.raw_column(notes[1], "body")
        self.assertNotIn("<script", plain)
        self.env.invalidate_all()
        self.assertEqual(notes[0].body, Markup(plain))
        # And before an edit is encrypted.
        notes.write({"body": hostile.replace("Noted", "Edited")})
        notes[0].write({"body": hostile.replace("Noted", "Edited again")})
        self.env.flush_all()
        self.assertTrue(envelope.is_token(self.raw_column(notes[0], "body")))
        self.env.invalidate_all()
        self.assertEqual(notes[0].body, Markup(plain.replace("Noted", "Edited again")))
        notes[1].write({"body": hostile})
        # Discuss's search by text finds messages stored in the clear only (no error).
        found = self.env["mail.message"]._message_fetch(
            [("model", "=", "res.partner"), ("res_id", "in", (person | company).ids)], search_term="Noted"
        )["messages"]
        self.assertEqual(found, notes[1])

    def test_an_activity_keeps_its_documents_name_and_what_it_says_encrypted(self):
        partner = self.create_registrant(97)
        company = self.env["res.partner"].create({"name": "Zactivity Company", "is_company": True})
        activities = (partner | company).activity_schedule(
            "mail.mail_activity_data_todo", summary="Visit", note="<p>Bring the forms</p>"
        )
        activities.flush_recordset()
        for column in ("res_name", "summary", "note"):
            self.assertTrue(envelope.is_token(self.raw_column(activities[0], column)), column)
        self.assertEqual(
            [self.raw_column(activities[1], column) for column in ("res_name", "summary", "note")],
            ["Zactivity Company", "Visit", "<p>Bring the forms</p>"],
        )
        activities.invalidate_recordset()
        self.assertEqual(activities[0].res_name, marker_values(97)["name"])
        self.assertEqual(
            (activities[0].summary, str(activities[0].note)), ("Visit", "<p>Bring the forms</p>")
        )
