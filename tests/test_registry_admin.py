# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The admin's screens: what the Settings block counts, and the decryption log's links."""

from odoo.exceptions import AccessError
from odoo.tests import tagged

from .common import RegistryCase, marker_values
from .web_client import form_spec


@tagged("post_install", "-at_install")
class TestRegistryAdmin(RegistryCase):
    def test_the_settings_block_counts_what_the_registry_holds(self):
        before = self.env["res.partner"]._g2p_registry_counts()
        self.create_registrants(range(900, 903))
        self.set_registry(encrypt=False)
        self.create_registrants(range(903, 905))
        self.set_registry(encrypt=True)
        self.env.flush_all()
        settings = self.env["res.config.settings"].with_user(self.settings_admin).create({})
        self.assertEqual(settings.g2p_registrant_count - before["registrants"], 5)
        self.assertEqual(settings.g2p_encrypted_count - before["encrypted"], 3)
        self.assertEqual(settings.g2p_pending_count - before["pending"], 2)
        action = settings.action_g2p_open_registrants()
        self.assertEqual(action["domain"], [("is_registrant", "=", True)])
        # Custody on this server, as the provider's form says it (key file, sealed, unsealed).
        provider = self.env["g2p.encryption.provider"]._get_registry_provider()
        self.assertEqual(settings.g2p_custody_status, provider.custody_status)
        self.assertTrue(settings.g2p_custody_status)
        # What the page shows: the web client opens Settings with onchange() on a new record.
        env = self.env(user=self.settings_admin)
        shown = env["res.config.settings"].onchange({}, [], form_spec(env, "res.config.settings"))["value"]
        names = ("g2p_registrant_count", "g2p_encrypted_count", "g2p_pending_count", "g2p_custody_status")
        self.assertEqual({name: shown[name] for name in names}, {name: settings[name] for name in names})

    def test_a_decryption_log_row_opens_the_records_it_names(self):
        people = self.create_registrants(range(910, 912))
        self.env["g2p.decryption.log"]._write_row("exit", "/test", "res.partner", {"name"}, people.ids)
        row = self.env["g2p.decryption.log"].sudo().search([], order="id desc", limit=1)
        action = row.with_user(self.crypto_admin).action_open_records()
        self.assertEqual(action["domain"], [("id", "in", people.ids)])
        self.assertIn("res.partner", row.display_name)
        with self.assertRaises(AccessError):
            row.with_user(self.clerk).action_open_records()
        self.assertIn(marker_values(910)["name"], people.mapped("name"))
