# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The admin flow in a real browser: Odoo tours (static/tests/tours/) in headless Chromium.

A Crypto Admin turns "Decrypt registry" on in Settings and reads a registrant's real name; a
clerk reads the mask. A whole key ceremony: a Crypto Admin initialises sealed custody (2 of 3), the
dialog shows 3 shares, two custodians confirm theirs, the admin seals, the custodians unseal from
the banner, and the registrant reads again. The tours need a Chrome or Chromium on PATH
(tools/setup.sh installs Debian's ``chromium``) and the ``web_tour`` module (installed with
``contacts``); without either the tests are skipped, saying why.
"""

import re
import shutil
from urllib.parse import quote, urlencode

from odoo.tests import HttpCase, new_test_user, tagged

from ..models.custody_server import ServerMemory
from ..models.encryption_exits import PARAM_DECRYPT, PARAM_ENCRYPT
from ..models.encryption_provider import clear_data_key_cache
from .common import marker_values
from .web_client import WebClient

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


class TourCase(HttpCase):
    """Skips, saying why, when no browser or no web_tour is there."""

    def setUp(self):
        super().setUp()
        skip_without_browser(self)


@tagged("post_install", "-at_install")
class TestAdminTour(TourCase):
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


@tagged("post_install", "-at_install")
class TestCustodyTour(TourCase):
    """The whole key ceremony in a real browser, as a Crypto Admin and two custodians do it."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        env = cls.env
        cls.provider = env["g2p.encryption.provider"].create({"name": "Tour custody", "type": "local"})
        params = env["ir.config_parameter"].sudo()
        params.set_param(PARAM_ENCRYPT, "True")
        params.set_param(PARAM_DECRYPT, "True")
        params.set_param("g2p_encryption.registry_encryption_provider_id", str(cls.provider.id))
        env.registry.clear_cache()
        cls.registrant = env["res.partner"].create(
            dict(marker_values(9302), name=REAL_NAME, is_registrant=True)
        )
        cls.admin = new_test_user(
            env,
            login="g2p_tour_custody_admin",
            groups="base.group_user,base.group_partner_manager,g2p_encryption.crypto_admin",
        )
        cls.custodians = [
            new_test_user(
                env, login=f"g2p_tour_custodian_{n}", groups="base.group_user,g2p_encryption.key_custodian"
            )
            for n in (1, 2)
        ]

    def setUp(self):
        super().setUp()
        self.addCleanup(lambda: ServerMemory(self.env, self.provider.id).forget())
        self.addCleanup(clear_data_key_cache)

    def tour(self, user, url, name, **query):
        query = {"g2p_password": user.login, **query}
        separator = "&" if "?" in url else "?"
        path, _hash, fragment = url.partition("#")
        url = f"{path}{separator}{urlencode(query, quote_via=quote)}" + (f"#{fragment}" if fragment else "")
        self.start_tour(url, name, login=user.login, timeout=120)
        self.env.invalidate_all()

    def test_initialise_hand_out_confirm_seal_unseal_and_read(self):
        self.env.cr.execute("SELECT name FROM res_partner WHERE id = %s", [self.registrant.id])
        self.assertTrue(self.env.cr.fetchone()[0].startswith("g2pe"))
        provider_url = f"/web#model=g2p.encryption.provider&id={self.provider.id}&view_type=form"
        self.tour(self.admin, provider_url, "g2p_encryption_custody_initialise")
        ceremony = self.env["g2p.encryption.custody.ceremony"].search(
            [("provider_id", "=", self.provider.id)]
        )
        self.assertEqual((ceremony.state, self.provider.custody_mode), ("shown", "key_file"))
        # What the dialog showed the admin: read the way the browser reads it.
        shown = WebClient(self, self.admin.login).web_read(ceremony._name, ceremony.ids)[0]["shares_html"]
        shares = re.findall(r'<code class="o_g2p_share[^>]*>([^<]+)</code>', shown)
        self.assertEqual(len(shares), 3)

        self.tour(self.admin, "/web", "g2p_encryption_custody_hand_out")
        self.assertEqual(ceremony.state, "confirming")
        self.tour(self.custodians[0], "/web", "g2p_encryption_custody_confirm", g2p_share=shares[2])
        self.assertEqual((ceremony.state, self.provider.custody_mode), ("confirming", "key_file"))
        self.tour(self.custodians[1], "/web", "g2p_encryption_custody_confirm", g2p_share=shares[0])
        self.assertEqual((ceremony.state, self.provider.custody_mode), ("done", "sealed"))

        custody_url = f"/web#model=g2p.encryption.custody&id={self.provider.custody_id.id}&view_type=form"
        self.tour(self.admin, custody_url, "g2p_encryption_custody_seal")
        self.assertEqual(self.provider.custody_state, "sealed")

        self.tour(
            self.custodians[1],
            "/web",
            "g2p_encryption_custody_unseal",
            g2p_share=shares[1],
            g2p_banner="0 of 2 shares entered",
        )
        self.assertEqual(self.provider.custody_state, "sealed")
        self.tour(
            self.custodians[0],
            "/web",
            "g2p_encryption_custody_unseal",
            g2p_share=shares[2],
            g2p_banner="1 of 2 shares entered",
        )
        self.assertEqual(self.provider.custody_state, "unsealed")

        # The custodian who unsealed reads only the mask; the Crypto Admin reads the registrant again.
        self.tour(
            self.custodians[0],
            "/web",
            "g2p_encryption_custody_read",
            g2p_registrant=self.registrant.id,
            g2p_expect=f"Registrant #{self.registrant.id}",
        )
        self.tour(
            self.admin,
            "/web",
            "g2p_encryption_custody_read",
            g2p_registrant=self.registrant.id,
            g2p_expect=REAL_NAME,
        )
