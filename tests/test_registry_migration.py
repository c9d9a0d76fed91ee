# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
import base64
import json

from ..core import envelope
from ..core.encoding import b64url_decode
from .common import KeyManagerCase, database_text, marker_values

PLACEHOLDER = "encrypted@placeholder.invalid"  # what OpenG2P's module left in the columns


class TestOpenG2PMigration(KeyManagerCase):
    """Registrants encrypted by OpenG2P's g2p_registry_encryption: a JSON blob of the fields in
    ``encrypted_val`` (KeyManager, direct mode, the provider's salt and aad), placeholders in the
    columns. The migration job reads them and stores them the way this module does."""

    def setUp(self):
        super().setUp()
        self.legacy = self.make_direct_provider(name="OpenG2P KeyManager")
        self.env.cr.execute("ALTER TABLE res_partner ADD COLUMN encrypted_val bytea")
        self.partners = self.env["res.partner"].create(
            [{"name": PLACEHOLDER, "email": PLACEHOLDER, "is_registrant": True} for _i in range(5)]
        )
        for number, partner in enumerate(self.partners, start=300):
            markers = marker_values(number)
            values = {name: markers[name] for name in ("name", "email", "phone", "city")}
            token = self.legacy.encrypt_data(json.dumps(values).encode()).decode()
            raw = b64url_decode(token.removeprefix("g2pkm1."))  # what OpenG2P's module kept
            self.env.cr.execute(
                "UPDATE res_partner SET encrypted_val = %s WHERE id = %s", (base64.b64encode(raw), partner.id)
            )
        self.env["ir.config_parameter"].sudo().set_param("g2p_encryption.encrypt_registry", "True")

    def run_migration(self):
        job = self.env["g2p.encryption.job"]._start(self.legacy, "migrate_openg2p", "res.partner")
        job.batch_size = 2
        self.env["g2p.encryption.job"]._cron_run_jobs(commit=False)
        return job

    def test_blobs_are_read_and_stored_the_new_way(self):
        job = self.run_migration()
        self.assertEqual((job.state, job.done, job.total), ("done", 5, 5))
        self.env.cr.execute("SELECT count(*) FROM res_partner WHERE encrypted_val IS NOT NULL")
        self.assertEqual(self.env.cr.fetchone()[0], 0)
        for partner in self.partners:
            self.assertTrue(envelope.is_token(self.raw_column(partner, "name")))
        rows = self.partners.read(["name", "email", "city", "street"])
        for number, row in enumerate(rows, start=300):
            self.assertEqual(row["name"], marker_values(number)["name"])
            self.assertEqual(row["city"], marker_values(number)["city"])
        self.assertNoMarkers()

    def test_migrated_registrants_are_found_by_blind_index(self):
        self.run_migration()
        found = self.env["res.partner"].search(
            [("email", "=", marker_values(302)["email"]), ("is_registrant", "=", True)]
        )
        self.assertEqual(found, self.partners[2])

    def raw_column(self, record, field_name):
        record.flush_recordset()
        self.env.cr.execute(
            f'SELECT "{field_name}" FROM res_partner WHERE id = %s',
            (record.id,),  # pylint: disable=sql-injection
        )
        return self.env.cr.fetchone()[0]

    def assertNoMarkers(self):
        dump = database_text(self.env.cr).lower()
        for number in range(300, 305):
            self.assertNotIn(f"marker{number:04d}", dump)
