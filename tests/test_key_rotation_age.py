# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Age-based rotation: a daily scheduled action replaces keys older than the provider's limit."""

from datetime import timedelta
from unittest.mock import patch

from freezegun import freeze_time
from psycopg2 import IntegrityError

from odoo import fields
from odoo.tools import mute_logger

from ..core import envelope
from ..models.encryption_provider import clear_data_key_cache
from .test_custody import CustodyCase


class TestKeyRotationByAge(CustodyCase):
    def setUp(self):
        super().setUp()
        self.sealed_provider.jwt_sign({"voucher": "V-1"})
        self.start = fields.Datetime.now()

    def active(self, usage="encrypt", provider=None):
        provider = provider or self.sealed_provider
        return provider.key_ids.filtered(lambda k: k.usage == usage and k.state == "active")

    def run_cron_at(self, days):
        with freeze_time(self.start + timedelta(days=days)):
            self.env.ref("g2p_encryption.ir_cron_rotate_aged_keys").method_direct_trigger()
            self.sealed_provider.invalidate_recordset()
            clear_data_key_cache()

    def test_default_is_ninety_days(self):
        self.assertEqual(self.sealed_provider.rotate_after_days, 90)
        cron = self.env.ref("g2p_encryption.ir_cron_rotate_aged_keys")
        self.assertEqual((cron.interval_number, cron.interval_type, cron.active), (1, "days", True))

    def test_the_overview_shows_when_each_key_rotates_and_which_are_overdue(self):
        data_key, sign_key = self.active(), self.active("sign")
        due = (data_key.activated_date + timedelta(days=90)).date()
        self.assertEqual((data_key.rotation_due, sign_key.rotation_due), (due, due))
        self.assertFalse(self.active("index").rotation_due)  # never rotated
        keys = self.env["g2p.encryption.key"]
        mine = [("provider_id", "=", self.sealed_provider.id)]
        with freeze_time(self.start + timedelta(days=89)):
            self.assertFalse(keys.search(mine + [("rotation_due", "<", fields.Date.today())]))
        with freeze_time(self.start + timedelta(days=91)):  # the action failed (sealed...)
            overdue = keys.search(mine + [("rotation_due", "<", fields.Date.today())])
        self.assertEqual(overdue, data_key | sign_key)
        self.sealed_provider.rotate_after_days = 0
        self.assertFalse(data_key.rotation_due)

    def test_nothing_is_rotated_before_its_time(self):
        keys = self.active() | self.active("sign")
        self.run_cron_at(89)
        self.assertEqual(self.active() | self.active("sign"), keys)
        self.assertEqual(set(keys.mapped("state")), {"active"})

    def test_aged_keys_are_replaced_and_old_data_still_reads(self):
        old_data_key, old_sign_key = self.active(), self.active("sign")
        self.run_cron_at(91)
        new_data_key = self.active()
        self.assertEqual(len(new_data_key), 1)
        self.assertNotEqual(new_data_key, old_data_key)
        self.assertNotEqual(self.active("sign"), old_sign_key)
        self.assertEqual((old_data_key.state, old_sign_key.state), ("retired", "retired"))
        with freeze_time(self.start + timedelta(days=91)):
            self.assertEqual(
                self.sealed_provider.decrypt_data(self.old_token, aad=b"res.partner|name"), b"Amina Wanjiru"
            )
            token = self.sealed_provider.encrypt_data(b"after rotation")
        self.assertEqual(envelope.key_id_of(token.decode()), new_data_key.key_id)
        logs = self.env["g2p.encryption.event"].search(
            [("provider_id", "=", self.sealed_provider.id), ("event", "=", "rotation")]
        )
        self.assertEqual(len(logs), 2)
        self.assertTrue(all(logs.mapped("automatic")))
        self.assertIn(old_data_key.key_id, " ".join(logs.mapped("detail")))

    def test_a_fresh_key_is_not_rotated_again_the_next_day(self):
        self.run_cron_at(91)
        key = self.active()
        self.run_cron_at(92)
        self.assertEqual(self.active(), key)
        self.run_cron_at(91 + 91)
        self.assertNotEqual(self.active(), key)

    def test_the_limit_is_per_provider(self):
        self.sealed_provider.rotate_after_days = 30
        key = self.active()
        default_key = self.active(provider=self.provider) if self.active(provider=self.provider) else None
        self.run_cron_at(31)
        self.assertNotEqual(self.active(), key)
        if default_key:
            self.assertEqual(self.active(provider=self.provider), default_key)

    def test_zero_means_never(self):
        self.sealed_provider.rotate_after_days = 0
        key = self.active()
        self.run_cron_at(3650)
        self.assertEqual(self.active(), key)

    def test_negative_limit_is_refused(self):
        with self.assertRaises(IntegrityError), mute_logger("odoo.sql_db"), self.env.cr.savepoint():
            self.sealed_provider.rotate_after_days = -1
            self.sealed_provider.flush_recordset()

    def test_a_sealed_provider_is_skipped_and_the_others_rotated(self):
        other = self.env["g2p.encryption.provider"].create({"name": "Other", "type": "local"})
        other.encrypt_data(b"x")
        self.initialise()
        self.restart()
        sealed_key, other_key = self.active(), self.active(provider=other)
        self.run_cron_at(100)
        self.assertEqual(self.active(), sealed_key)
        self.assertNotEqual(self.active(provider=other), other_key)
        failure = self.env["g2p.encryption.event"].search(
            [("provider_id", "=", self.sealed_provider.id), ("event", "=", "rotation_failed")]
        )
        self.assertIn("is sealed", failure.detail)
        self.assertFalse(failure.success)

    def test_an_unsealed_provider_rotates_under_its_sealed_master_key(self):
        self.initialise()
        self.run_cron_at(91)
        new_key = self.active()
        self.assertEqual(new_key.wrapped_by, self.sealed_provider.custody_id.master_key_id)

    def test_key_list_shows_age(self):
        key = self.active()
        self.assertEqual(key.age_days, 0)
        self.assertTrue(key.activated_date)
        with freeze_time(self.start + timedelta(days=12, hours=1)):
            key.invalidate_recordset(["age_days"])
            self.assertEqual(key.age_days, 12)

    def test_rotation_by_hand_is_audited(self):
        self.sealed_provider.action_rotate_key()
        logs = self.env["g2p.encryption.event"].search(
            [("provider_id", "=", self.sealed_provider.id), ("event", "=", "rotation")]
        )
        self.assertEqual(len(logs), 2)  # the data key and the signing key
        self.assertEqual((logs.user_id, set(logs.mapped("automatic"))), (self.env.user, {False}))
        self.assertIn("by hand", logs[0].detail)

    def test_one_rotation_path_with_the_provider_usages(self):
        with patch.object(type(self.sealed_provider), "_rotated_key_usages", return_value=("encrypt",)):
            self.run_cron_at(91)
            key = self.active("sign")
            self.assertEqual(key.state, "active")
            self.sealed_provider.action_rotate_key()
            self.assertEqual(self.active("sign"), key)

    def test_key_form_shows_the_records_under_a_key_at_the_last_count(self):
        self.env["ir.config_parameter"].sudo().set_param("g2p_encryption.encrypt_registry", "True")
        registry_provider = self.env["g2p.encryption.provider"]._get_registry_provider()
        registry_provider._active_key("encrypt")
        key = self.active(provider=registry_provider)

        def count():
            self.env["res.partner"]._g2p_count_registry()
            self.env.invalidate_all()

        count()
        before = key.record_count  # what the database already holds under it (demo data, OpenG2P)
        self.assertTrue(key.records_counted_at)
        # Registrants alone: Odoo's "Contact created" messages about them would be records under
        # the key too (their text is encrypted).
        partners = self.env["res.partner"].with_context(mail_create_nolog=True, tracking_disable=True)
        people = partners.create([{"name": f"Zrotation{i} Person", "is_registrant": True} for i in range(3)])
        people.flush_recordset()
        self.env.invalidate_all()
        # The form reads no registry table: it shows the last count until the next one.
        self.assertEqual(key.record_count, before)
        count()
        self.assertEqual(key.record_count, before + 3)
        registry_provider.action_rotate_key()
        partners.create({"name": "Zrotation new", "is_registrant": True}).flush_recordset()
        new_key = self.active(provider=registry_provider)
        count()
        self.assertEqual((key.record_count, new_key.record_count), (before + 3, 1))
        # A record with values under both keys (written since the rotation) counts for each.
        people[0].with_context(tracking_disable=True).write({"email": "zrotation0@example.org"})
        people[0].flush_recordset()
        count()
        self.assertEqual((key.record_count, new_key.record_count), (before + 3, 2))
