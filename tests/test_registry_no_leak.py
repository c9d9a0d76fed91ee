# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
import logging
import subprocess

from odoo import SUPERUSER_ID, api
from odoo.tests import tagged

from .common import G2PEncryptionCase, RegistryCase, database_text, marker_fragments, marker_values

MARKERS = range(200, 216)


def edit_as_crypto_admin(env, user):
    params = env["ir.config_parameter"].sudo()
    params.set_param("g2p_encryption.encrypt_registry", "True")
    params.set_param("g2p_encryption.decrypt_registry", "True")
    Partner = env["res.partner"].with_user(user)
    people = Partner.create([dict(marker_values(i), is_registrant=True) for i in range(200, 212)])
    group = Partner.create(dict(marker_values(212), is_registrant=True, is_company=True))
    other_group = Partner.create(dict(marker_values(213), is_registrant=True, is_company=True))
    people.write({"city": "Zmarker0214ville", "phone": "+254 700 0000214"})  # multi-record
    people[0].write({"parent_id": group.id, "type": "contact"})  # address copied from parent
    people[1].write({"parent_id": other_group.id})
    people[1].write({"parent_id": group.id})  # moved under another parent
    people[2].write({"name": "Zmarker0215 Renamed", "email": "zmarker0215@example.org"})
    group.write({"street": "Zmarker0213 Street"})  # synced down to its contacts
    people[3].write({"comment": "edited another field"})
    Partner.web_search_read([("id", "in", people.ids)], {"name": {}, "email": {}, "display_name": {}})
    people[0].web_read({"name": {}, "parent_id": {"fields": {"display_name": {}}}})
    people.flush_recordset()
    env.cr.precommit.run()  # mail tracking values are written at commit time: now
    return people | group | other_group


@tagged("post_install", "-at_install")
class TestNoPlaintextLeaks(RegistryCase):
    """Crypto Admin with decryption on edits registrants the ways a registry clerk would; no
    marker may reach any column (tracking values included: contacts puts mail tracking on),
    nor the log."""

    def test_no_marker_in_any_column_nor_in_the_log(self):
        with self.assertLogs("odoo", level=logging.DEBUG) as logs:
            records = edit_as_crypto_admin(self.env, self.crypto_admin)
            self.env.flush_all()
        dump = database_text(self.env.cr)
        self.assertIn(str(records[0].id), dump)  # the scan does see the rows
        self.assertNoMarker(dump, MARKERS)
        self.assertNoMarker("\n".join(logs.output), MARKERS)

    def test_values_survive_the_edits(self):
        records = edit_as_crypto_admin(self.env, self.crypto_admin)
        self.set_registry(decrypt=True)
        rows = {
            row["id"]: row for row in records.with_user(self.crypto_admin).read(["name", "city", "street"])
        }
        self.assertEqual(rows[records[2].id]["name"], "Zmarker0215 Renamed")
        self.assertEqual(rows[records[5].id]["city"], "Zmarker0214ville")
        self.assertEqual(rows[records[0].id]["street"], "Zmarker0213 Street")  # synced from the group


@tagged("post_install", "-at_install")
class TestCommittedDump(G2PEncryptionCase):
    # No setUpClass settings here: the test commits in a cursor of its own, which would wait
    # forever on rows that the test transaction holds.

    def test_pg_dump_of_committed_data_holds_no_marker(self):
        # pg_dump sees only committed rows: commit in a cursor of our own, then clean up.
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            cr.execute("SELECT max(id) FROM g2p_encryption_key")
            last_key_id = cr.fetchone()[0] or 0
            cr.execute("SELECT chain, sequence, row_hash FROM g2p_audit_chain_head")
            heads = cr.fetchall()
            records = edit_as_crypto_admin(env, env.ref("base.user_admin"))
            cr.commit()  # pylint: disable=invalid-commit
            try:
                dump = subprocess.run(
                    ["pg_dump", "--data-only", "--no-owner", cr.dbname],
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=120,
                ).stdout
                self.assertIn("g2pe2.", dump)  # the ciphertext is there
                for number in MARKERS:
                    for fragment in marker_fragments(number):
                        self.assertNotIn(fragment.lower(), dump.lower())
            finally:
                records.sudo().unlink()
                # Keys are never deleted through Odoo; this test's own are, so that it leaves the
                # database as it found it.
                cr.execute("DELETE FROM g2p_encryption_key WHERE id > %s", (last_key_id,))
                cr.execute(
                    "DELETE FROM g2p_decryption_log WHERE user_id = %s", (env.ref("base.user_admin").id,)
                )
                # The logs' chains end where they ended before the test.
                cr.execute("DELETE FROM g2p_audit_chain_head")
                for chain, sequence, row_hash in heads:
                    cr.execute(
                        "INSERT INTO g2p_audit_chain_head (chain, sequence, row_hash) VALUES (%s, %s, %s)",
                        (chain, sequence, row_hash),
                    )
                params = env["ir.config_parameter"].sudo()
                params.set_param("g2p_encryption.encrypt_registry", "")
                params.set_param("g2p_encryption.decrypt_registry", "")
                cr.commit()  # pylint: disable=invalid-commit
