# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
from ..core import envelope
from ..models.encryption_provider import clear_data_key_cache
from .common import RegistryCase, marker_values

COUNT = 2000
BATCH = 300


class TestRegistryJobs(RegistryCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.set_registry(encrypt=False)
        cls.partners = cls.env["res.partner"].create(
            [dict(marker_values(i), is_registrant=True) for i in range(1000, 1000 + COUNT)]
        )
        cls.contact = cls.env["res.partner"].create({"name": "Not a registrant", "city": "Nairobi"})
        cls.set_registry(encrypt=True)

    def encrypted_count(self):
        self.env.flush_all()
        self.env.cr.execute(
            "SELECT count(*) FROM res_partner WHERE id IN %s AND is_encrypted AND name LIKE 'g2pe1.%%'",
            (tuple(self.partners.ids),),
        )
        return self.env.cr.fetchone()[0]

    def test_batches_encrypt_every_plaintext_registrant(self):
        job = self.env["g2p.encryption.job"]._start(self.provider, "encrypt")
        job.batch_size = BATCH
        self.assertGreaterEqual(job.total, COUNT)
        batches = 0
        while job._run_batch():
            batches += 1
        self.assertGreaterEqual(batches, COUNT // BATCH)
        self.assertEqual(job.state, "done")
        self.assertEqual(self.encrypted_count(), COUNT)
        self.assertFalse(self.contact.is_encrypted)

    def test_a_job_stopped_half_way_resumes_and_loses_nothing(self):
        job = self.env["g2p.encryption.job"]._start(self.provider, "encrypt")
        job.batch_size = BATCH
        for _batch in range(3):
            job._run_batch()
        self.assertEqual(job.state, "running")
        halfway = job.last_id
        self.assertEqual(self.encrypted_count(), 3 * BATCH)
        # The worker dies: its in-memory state is gone; the job record is what remains.
        clear_data_key_cache()
        self.env.invalidate_all()
        self.env["g2p.encryption.job"]._cron_run_jobs(commit=False)
        self.assertEqual(job.state, "done")
        self.assertGreater(job.last_id, halfway)
        self.assertEqual(self.encrypted_count(), COUNT)
        self.set_registry(decrypt=True)
        sample = self.partners[:: COUNT // 20].with_user(self.crypto_admin)
        for partner, row in zip(sample, sample.read(["name", "email"]), strict=True):
            number = 1000 + self.partners.ids.index(partner.id)
            self.assertEqual(row["name"], marker_values(number)["name"])
            self.assertEqual(row["email"], marker_values(number)["email"])

    def test_only_one_job_of_a_kind_runs(self):
        first = self.env["g2p.encryption.job"]._start(self.provider, "encrypt")
        self.assertEqual(self.env["g2p.encryption.job"]._start(self.provider, "encrypt"), first)

    def test_turning_encryption_on_in_settings_starts_the_job(self):
        self.set_registry(encrypt=False)
        settings = self.env["res.config.settings"].create({"encrypt_registry": True})
        settings.execute()
        job = self.env["g2p.encryption.job"].search([("kind", "=", "encrypt"), ("state", "=", "running")])
        self.assertEqual(len(job), 1)

    def test_reencryption_moves_data_to_the_active_key(self):
        job = self.env["g2p.encryption.job"]._start(self.provider, "encrypt")
        job.batch_size = 1000
        self.env["g2p.encryption.job"]._cron_run_jobs(commit=False)
        sample = self.partners[:50]
        old_key = envelope.key_id_of(sample[0].name)
        self.provider.action_rotate_key()
        new_key = self.provider._active_data_key()[0]
        self.provider.action_reencrypt_registry()
        self.env["g2p.encryption.job"]._cron_run_jobs(commit=False)
        self.assertNotEqual(old_key, new_key)
        self.assertEqual({envelope.key_id_of(p.name) for p in sample}, {new_key})
        self.set_registry(decrypt=True)
        rows = sample.with_user(self.crypto_admin).read(["name"])
        self.assertEqual(rows[0]["name"], marker_values(1000)["name"])
