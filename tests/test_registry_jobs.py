# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The registry jobs: encrypt what is stored in the clear, move ciphertext to the active key."""

import importlib.util
import os
from unittest.mock import patch

from odoo.tests import tagged

from ..core import envelope
from ..models.encryption_provider import clear_data_key_cache
from .common import RegistryCase, marker_values

COUNT = 600
BATCH = 100
FIRST = 1000


def end_migration(version):
    """The module of this addon's ``end-migrate.py`` script of ``version``."""
    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "migrations", version, "end-migrate.py")
    spec = importlib.util.spec_from_file_location(f"g2p_encryption_end_migrate_{version}", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    return migration


@tagged("post_install", "-at_install")
class TestRegistryJobs(RegistryCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.partners = cls.registrants_in_the_clear(range(FIRST, FIRST + COUNT))
        cls.contact = cls.env["res.partner"].create({"name": "Not a registrant", "city": "Nairobi"})

    def stored(self, records, column="name"):
        self.env.flush_all()
        self.env.cr.execute(
            f'SELECT id, "{column}" FROM res_partner WHERE id IN %s',  # pylint: disable=sql-injection
            (tuple(records.ids),),
        )
        return dict(self.env.cr.fetchall())

    def encrypted_count(self):
        return sum(1 for value in self.stored(self.partners).values() if envelope.is_token(value))

    def start(self, kind):
        jobs = self.env["g2p.encryption.job"]._start_registry(kind)
        jobs.batch_size = BATCH
        return jobs.filtered(lambda job: job.res_model == "res.partner")

    def test_the_upgrade_to_2_3_encrypts_tracking_values_naming_a_registrants_user(self):
        # Before 17.0.2.3.0 a user's scope was not its partner's: a registrant's portal user made
        # a company's salesperson left the registrant's name in the clear in the company's chatter.
        person = self.partners[0]
        user = self.env["res.users"].create(
            {
                "login": "zmarker_job_user",
                "partner_id": person.id,
                "groups_id": [(6, 0, [self.env.ref("base.group_portal").id])],
            }
        )
        company = self.env["res.partner"].create({"name": "Zcompany Upgraded", "is_company": True})
        self.env.cr.precommit.run()
        company.write({"user_id": user.id})
        self.env.flush_all()
        self.env.cr.precommit.run()
        tracking = company.message_ids.tracking_value_ids
        name = marker_values(FIRST)["name"]
        self.env.cr.execute(
            "UPDATE mail_tracking_value SET new_value_char = %s WHERE id = %s", (name, tracking.id)
        )
        migration = end_migration("17.0.2.3.0")
        # The signature Odoo made of the name before 17.0.2.3.0; another portal user's stays.
        other = self.env["res.users"].create(
            {
                "login": "zmarker_job_other",
                "name": "Zclear Portal User",
                "groups_id": [(6, 0, [self.env.ref("base.group_portal").id])],
            }
        )
        self.env.flush_all()
        self.env.cr.execute(
            "UPDATE res_users SET signature = %s WHERE id IN %s",
            ("<p>--<br>" + name + "</p>", (user.id, other.id)),
        )
        last_job = self.env["g2p.encryption.job"].search([], order="id desc", limit=1).id or 0
        migration.migrate(self.env.cr, "17.0.2.2.0")
        self.env.cr.execute(
            "SELECT id, signature IS NULL FROM res_users WHERE id IN %s", ((user.id, other.id),)
        )
        self.assertEqual(dict(self.env.cr.fetchall()), {user.id: True, other.id: False})
        jobs = self.env["g2p.encryption.job"].search([("id", ">", last_job)])
        self.assertEqual(
            set(jobs.mapped("res_model")), {"mail.message", "mail.tracking.value", "mail.activity"}
        )
        self.env["g2p.encryption.job"]._cron_run_jobs(commit=False)
        self.env.cr.execute("SELECT new_value_char FROM mail_tracking_value WHERE id = %s", (tracking.id,))
        self.assertTrue(envelope.is_token(self.env.cr.fetchone()[0]))
        self.env.invalidate_all()
        self.assertEqual(tracking.new_value_char, name)

    def test_the_upgrade_to_2_4_encrypts_what_messages_about_registrants_say(self):
        person = self.partners[0]
        company = self.env["res.partner"].create({"name": "Zcompany Messages", "is_company": True})
        name = marker_values(FIRST)["name"]
        self.env.flush_all()
        # 17.0.2.3.0's job for messages, planned before the upgrade (for the record name only)
        # and before these messages were written: its chunks end before them.
        provider = self.env["g2p.encryption.provider"]._get_registry_provider()
        jobs = self.env["g2p.encryption.job"]
        jobs.search([("state", "=", "running")]).state = "done"  # this test's jobs only
        earlier = jobs._start(provider, "encrypt", "mail.message")
        with patch.object(type(jobs), "_columns", lambda job: ["record_name"]):
            earlier._plan()
        messages = self.env["mail.message"].create(
            [
                {"model": "res.partner", "res_id": document.id, "body": "<p>Visited</p>", "subject": name}
                for document in (person, company)
            ]
        )
        self.env.flush_all()
        self.assertLess(max(earlier.chunk_ids.mapped("end_id") or [0]), messages[0].id)
        # A translation of the registrant's message (the chatter's Translate), in the clear.
        translations = self.env["mail.message.translation"].create(
            [
                {"message_id": message.id, "body": "<p>Visité</p>", "source_lang": "en", "target_lang": "fr"}
                for message in messages
            ]
        )
        # As stored before 17.0.2.4.0: in the clear.
        columns = {
            "body": "<p>Visited</p>",
            "subject": name,
            "email_from": f"{name} <zmarker1000@example.org>",
            "reply_to": f"Registry {name} <catchall@example.org>",
        }
        self.env.cr.execute(
            "UPDATE mail_message SET body = %s, subject = %s, email_from = %s, reply_to = %s WHERE id IN %s",
            (*columns.values(), tuple(messages.ids)),
        )
        last_job = jobs.search([], order="id desc", limit=1).id
        end_migration("17.0.2.4.0").migrate(self.env.cr, "17.0.2.3.0")
        started = jobs.search([("id", ">", last_job)])
        self.assertEqual(set(started.mapped("res_model")), {"mail.message", "mail.mail", "mail.activity"})
        self.assertEqual(earlier.state, "done")
        again = started.filtered(lambda job: job.res_model == "mail.message")
        self.assertIn(f"job {again.id}", earlier.message)
        self.assertEqual(translations.exists(), translations[1])
        for job in started:
            while job._run_batch():
                pass
        self.env.cr.execute(
            "SELECT body, subject, email_from, reply_to FROM mail_message WHERE id IN %s ORDER BY id",
            (tuple(messages.ids),),
        )
        encrypted, clear = self.env.cr.fetchall()
        self.assertTrue(all(map(envelope.is_token, encrypted)), encrypted)
        self.assertEqual(clear, tuple(columns.values()))
        self.env.invalidate_all()
        self.assertEqual(
            (str(messages[0].body), messages[0].subject, messages[0].email_from, messages[0].reply_to),
            tuple(columns.values()),
        )

    def test_the_job_encrypts_every_registrant_stored_in_the_clear(self):
        self.assertEqual(self.encrypted_count(), 0)
        job = self.start("encrypt")
        count_cron = self.env.ref("g2p_encryption.ir_cron_count_registry")
        triggers = self.env["ir.cron.trigger"].sudo().search_count([("cron_id", "=", count_cron.id)])
        self.env["g2p.encryption.job"]._cron_run_jobs(commit=False)
        self.assertEqual(job.state, "done")
        self.assertGreaterEqual(job.total, COUNT)
        # Settings' counts are counted again once the job is done.
        self.assertGreater(
            self.env["ir.cron.trigger"].sudo().search_count([("cron_id", "=", count_cron.id)]), triggers
        )
        self.assertEqual(self.encrypted_count(), COUNT)
        self.assertEqual(self.stored(self.contact)[self.contact.id], "Not a registrant")
        for column in ("email", "street", "complete_name", "email_normalized"):
            values = self.stored(self.partners[:5], column).values()
            self.assertTrue(all(envelope.is_token(value) for value in values), column)
        self.env.invalidate_all()
        self.assertEqual(self.partners[7].email, marker_values(FIRST + 7)["email"])
        self.assertEqual(
            self.env["res.partner"].search([("email", "=", marker_values(FIRST + 9)["email"])]),
            self.partners[9],
        )

    def test_a_record_that_a_constraint_would_refuse_does_not_stop_the_job(self):
        bad = self.partners[3]
        # Data written before a constraint existed, or by SQL: the job moves it as it is.
        self.env.cr.execute("UPDATE res_partner SET email = %s WHERE id = %s", ("not an e-mail", bad.id))
        self.start("encrypt")
        self.env["g2p.encryption.job"]._cron_run_jobs(commit=False)
        self.assertEqual(self.encrypted_count(), COUNT)
        self.env.invalidate_all()
        self.assertEqual(bad.email, "not an e-mail")

    def test_a_job_stopped_half_way_resumes_and_loses_nothing(self):
        job = self.start("encrypt")
        for _batch in range(2):
            job._run_batch()
        self.assertEqual(job.state, "running")
        halfway = job.last_id
        # The worker dies: its in-memory state is gone; the job record is what remains.
        clear_data_key_cache()
        self.env.invalidate_all()
        self.env["g2p.encryption.job"]._cron_run_jobs(commit=False)
        self.assertEqual(job.state, "done")
        self.assertGreater(job.last_id, halfway)
        self.assertEqual(self.encrypted_count(), COUNT)
        for partner in self.partners[:: COUNT // 10]:
            number = FIRST + self.partners.ids.index(partner.id)
            self.assertEqual(partner.name, marker_values(number)["name"])

    def test_the_history_in_the_chatter_is_encrypted_too(self):
        self.set_registry(encrypt=False)
        partner = self.partners[0]
        self.env.cr.precommit.run()  # the creation's own messages, pending since setUpClass
        # Tracked in the clear while encryption was off.
        partner.with_user(self.crypto_admin).write({"email": "zmarker1999@example.org"})
        self.env.cr.precommit.run()
        tracking = partner.message_ids.tracking_value_ids
        self.assertTrue(tracking)
        self.assertIn("zmarker1999", self.raw_column(tracking[0], "new_value_char"))
        self.set_registry(encrypt=True)
        self.env["g2p.encryption.job"]._start_registry("encrypt")
        self.env["g2p.encryption.job"]._cron_run_jobs(commit=False)
        for value in tracking:
            self.assertTrue(envelope.is_token(self.raw_column(value, "new_value_char")))
            self.assertTrue(envelope.is_token(self.raw_column(value, "old_value_char")))
        tracking.invalidate_recordset()
        self.assertEqual(tracking[0].new_value_char, "zmarker1999@example.org")

    def test_only_one_job_of_a_kind_runs_per_model(self):
        first = self.start("encrypt")
        self.assertEqual(self.start("encrypt"), first)

    def test_turning_encryption_on_in_settings_starts_the_jobs(self):
        self.set_registry(encrypt=False)
        settings = (
            self.env["res.config.settings"].with_user(self.settings_admin).create({"encrypt_registry": True})
        )
        settings.execute()
        jobs = self.env["g2p.encryption.job"].search([("kind", "=", "encrypt"), ("state", "=", "running")])
        self.assertIn("res.partner", jobs.mapped("res_model"))

    def test_reencryption_moves_data_to_the_active_key_and_search_still_works(self):
        self.start("encrypt")
        self.env["g2p.encryption.job"]._cron_run_jobs(commit=False)
        sample = self.partners[:50]
        old_key = envelope.key_id_of(self.stored(sample)[sample[0].id])
        self.provider.action_rotate_key()
        new_key = self.provider._active_key("encrypt").key_id
        self.provider.with_user(self.crypto_admin).action_reencrypt_registry()
        self.env["g2p.encryption.job"]._cron_run_jobs(commit=False)
        self.assertNotEqual(old_key, new_key)
        self.assertEqual({envelope.key_id_of(token) for token in self.stored(sample).values()}, {new_key})
        self.env.invalidate_all()
        self.assertEqual(sample[0].name, marker_values(FIRST)["name"])
        self.assertEqual(
            self.env["res.partner"].search([("email", "=", marker_values(FIRST + 1)["email"])]), sample[1]
        )

    def test_a_new_registry_provider_reads_the_old_ones_data_and_a_job_moves_it(self):
        self.start("encrypt")
        self.env["g2p.encryption.job"]._cron_run_jobs(commit=False)
        other = self.env["g2p.encryption.provider"].create({"name": "Second local provider"})
        settings = self.env["res.config.settings"].with_user(self.settings_admin)
        settings.create({"registry_encryption_provider_id": other.id, "encrypt_registry": True}).execute()
        self.assertEqual(self.env["g2p.encryption.provider"]._get_registry_provider(), other)
        self.env.invalidate_all()
        sample = self.partners[:20]
        self.assertEqual(sample[0].name, marker_values(FIRST)["name"])  # still readable
        email = marker_values(FIRST + 2)["email"]
        self.assertEqual(self.env["res.partner"].search([("email", "=", email)]), sample[2])  # still found
        self.env["g2p.encryption.job"]._cron_run_jobs(commit=False)  # started by the settings
        other_key = other._active_key("encrypt").key_id
        self.assertEqual({envelope.key_id_of(token) for token in self.stored(sample).values()}, {other_key})
        self.env.invalidate_all()
        self.assertEqual(sample[3].email, marker_values(FIRST + 3)["email"])
        self.assertEqual(self.env["res.partner"].search([("email", "=", email)]), sample[2])
