# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The admin's screens: what the Settings block counts, and the decryption log's links."""

from unittest.mock import patch

from odoo import fields
from odoo.exceptions import AccessError
from odoo.tests import tagged

from ..models import res_config_settings
from .common import RegistryCase, RegistryHttpCase, marker_values
from .web_client import WebClient, form_spec


@tagged("post_install", "-at_install")
class TestRegistryAdmin(RegistryCase):
    def test_the_settings_block_shows_the_last_count_of_the_registry(self):
        partners = self.env["res.partner"]
        before = partners._g2p_count_registry()
        self.create_registrants(range(900, 903))
        self.set_registry(encrypt=False)
        self.create_registrants(range(903, 905))
        self.set_registry(encrypt=True)
        self.env.flush_all()
        settings = self.env["res.config.settings"].with_user(self.settings_admin).create({})
        # The count of before: opening Settings reads no registrant row.
        self.assertEqual(settings.g2p_registrant_count, before["registrants"])
        # The daily scheduled action counts again (as its user, the superuser).
        self.env.ref("g2p_encryption.ir_cron_count_registry").method_direct_trigger()
        settings = self.env["res.config.settings"].with_user(self.settings_admin).create({})
        self.assertEqual(settings.g2p_registrant_count - before["registrants"], 5)
        self.assertEqual(settings.g2p_encrypted_count - before["encrypted"], 3)
        self.assertEqual(settings.g2p_pending_count - before["pending"], 2)
        self.assertEqual(
            fields.Datetime.to_string(settings.g2p_counted_at),
            partners._g2p_last_registry_counts()["counted_at"],
        )
        action = settings.action_g2p_open_registrants()
        self.assertEqual(action["domain"], [("is_registrant", "=", True)])
        # Custody on this server, as the provider's form says it (key file, sealed, unsealed).
        provider = self.env["g2p.encryption.provider"]._get_registry_provider()
        self.assertEqual(settings.g2p_custody_status, provider.custody_status)
        self.assertTrue(settings.g2p_custody_status)
        # What the page shows: the web client opens Settings with onchange() on a new record.
        env = self.env(user=self.settings_admin)
        shown = env["res.config.settings"].onchange({}, [], form_spec(env, "res.config.settings"))["value"]
        names = (
            "g2p_registrant_count",
            "g2p_encrypted_count",
            "g2p_pending_count",
            "g2p_counted_at",
            "g2p_custody_status",
        )
        self.assertEqual({name: shown[name] for name in names}, {name: settings[name] for name in names})

    def test_the_counts_are_the_counts_own(self):
        params = self.env["ir.config_parameter"]
        forged = '{"registrants": 5, "encrypted": 5, "pending": 0, "counted_at": "2026-01-01 00:00:00"}'
        for user in (self.crypto_admin, self.settings_admin):
            with self.assertRaises(AccessError):
                params.with_user(user).set_param("g2p_encryption.registry_counts", forged)
        # Whatever the parameter holds, Settings opens: anything but a count is no count.
        partners = self.env["res.partner"]
        for held in (
            "not json",
            "[1]",
            '{"registrants": "x"}',
            forged.replace('"2026-01-01 00:00:00"', '"never"'),
            forged.replace('"2026-01-01 00:00:00"', "null"),
            forged.replace('"pending": 0', '"pending": -1'),
        ):
            params.sudo().set_param("g2p_encryption.registry_counts", held)
            self.assertEqual(partners._g2p_last_registry_counts(), {})
            settings = self.env["res.config.settings"].with_user(self.settings_admin).create({})
            self.assertFalse(settings.g2p_counted_at)
        params.sudo().set_param("g2p_encryption.registry_counts", forged)
        self.assertEqual(partners._g2p_last_registry_counts()["registrants"], 5)

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


@tagged("post_install", "-at_install")
class TestRegistryCountNow(RegistryHttpCase):
    """*Count now* in Settings, pressed in the web client."""

    def spec(self):
        # The page as its user's view shows it (the block is a Crypto Admin's; on an OpenG2P
        # registry the superuser's view holds settings this user may not read).
        return form_spec(self.env(user=self.settings_admin), "res.config.settings")

    def shown_counts(self, client):
        shown = client.call("res.config.settings", "onchange", [], {}, [], self.spec())["value"]
        return {name: shown[f"g2p_{name}_count"] for name in ("registrant", "encrypted", "pending")}

    def press_count_now(self, client):
        [settings] = client.call("res.config.settings", "web_save", [], {}, specification=self.spec())
        return client.call_button("res.config.settings", "action_g2p_count_registry", [settings["id"]])

    def test_count_now_counts_a_small_registry_at_once(self):
        client = WebClient(self, self.settings_admin.login)
        self.press_count_now(client)
        before = self.shown_counts(client)
        self.create_registrants(range(920, 923))
        self.env.flush_all()
        self.assertEqual(self.shown_counts(client), before)
        action = self.press_count_now(client)
        self.assertEqual(action["tag"], "reload")
        after = self.shown_counts(client)
        self.assertEqual(after["registrant"] - before["registrant"], 3)
        self.assertEqual(after["encrypted"] - before["encrypted"], 3)
        self.assertEqual(after["pending"], before["pending"])

    def test_count_now_counts_a_large_registry_in_the_background(self):
        cron = self.env.ref("g2p_encryption.ir_cron_count_registry")
        triggers = self.env["ir.cron.trigger"].sudo().search([("cron_id", "=", cron.id)])
        counted = self.env["res.partner"]._g2p_last_registry_counts()
        client = WebClient(self, self.settings_admin.login)
        with patch.object(res_config_settings, "COUNT_AT_ONCE_BYTES", 0):
            action = self.press_count_now(client)
        self.assertEqual(action["tag"], "display_notification")
        self.assertTrue(self.env["ir.cron.trigger"].sudo().search([("cron_id", "=", cron.id)]) - triggers)
        self.assertEqual(self.env["res.partner"]._g2p_last_registry_counts(), counted)
