# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The admin flow in a real browser: Odoo tours (static/tests/tours/) in headless Chromium.

A Crypto Admin turns "Decrypt registry" on in Settings and reads a registrant's real name; a
clerk reads the mask. The tours need a Chrome or Chromium on PATH (tools/setup.sh installs
Debian's ``chromium``) and the ``web_tour`` module (installed with ``contacts``); without either
the tests are skipped, saying why.
"""

import shutil

from odoo.tests import HttpCase, new_test_user, tagged

from ..models.encryption_exits import PARAM_DECRYPT, PARAM_ENCRYPT
from .common import marker_values

# Must match static/tests/tours/g2p_encryption_tours.js.
REAL_NAME = "Zmarker Tour Amina"
# The names Odoo 17's HttpCase looks for on PATH (odoo.tests.common._find_executable).
BROWSERS = ("google-chrome", "chromium", "chromium-browser", "google-chrome-stable")


def skip_without_browser(case):
    """Skip ``case`` (saying why) when no Chromium or no tour support is there."""
    if not any(shutil.which(name) for name in BROWSERS):
        case.skipTest(
            f"no Chrome/Chromium on PATH ({', '.join(BROWSERS)}): "
            "run tools/test as root to install Debian's chromium"
        )
    web_tour = case.env["ir.module.module"].search([("name", "=", "web_tour")])
    if web_tour.state != "installed":
        case.skipTest("the web_tour module is not installed (install contacts, or web_tour)")


@tagged("post_install", "-at_install")
class TestAdminTour(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        params = cls.env["ir.config_parameter"].sudo()
        params.set_param(PARAM_ENCRYPT, "True")
        params.set_param(PARAM_DECRYPT, "")
        cls.registrant = cls.env["res.partner"].create(
            dict(marker_values(9301), name=REAL_NAME, is_registrant=True)
        )
        cls.crypto_admin = new_test_user(
            cls.env,
            login="g2p_tour_crypto_admin",
            name="Tour Crypto Admin",
            groups="base.group_user,base.group_partner_manager,base.group_system,g2p_encryption.crypto_admin",
        )
        cls.clerk = new_test_user(
            cls.env,
            login="g2p_tour_clerk",
            name="Tour Clerk",
            groups="base.group_user,base.group_partner_manager",
        )

    def setUp(self):
        super().setUp()
        skip_without_browser(self)

    def _logs(self, user):
        logs = (
            self.env["g2p.decryption.log"]
            .sudo()
            .search([("user_id", "=", user.id), ("res_model", "=", "res.partner")])
        )
        return logs.filtered(lambda log: str(self.registrant.id) in (log.res_ids or "").split(","))

    def test_crypto_admin_turns_decryption_on_and_reads_the_name(self):
        self.assertFalse(self._logs(self.crypto_admin))

        self.start_tour(
            f"/web?g2p_registrant={self.registrant.id}",
            "g2p_encryption_admin_decrypt",
            login=self.crypto_admin.login,
            timeout=120,
        )

        self.env.invalidate_all()
        self.assertEqual(self.env["ir.config_parameter"].sudo().get_param(PARAM_DECRYPT), "True")
        self.assertTrue(self._logs(self.crypto_admin), "the Crypto Admin's read was not audited")

    def test_clerk_sees_the_mask(self):
        self.env["ir.config_parameter"].sudo().set_param(PARAM_DECRYPT, "True")

        self.start_tour(
            f"/web#model=res.partner&id={self.registrant.id}&view_type=form",
            "g2p_encryption_clerk_masked",
            login=self.clerk.login,
            timeout=60,
        )

        self.assertFalse(self._logs(self.clerk), "the clerk's read was logged as a decryption")
