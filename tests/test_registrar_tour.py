# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The registrar's tour in a real browser (static/tests/tours/g2p_encryption_registrar_tours.js)."""

from odoo.tests import new_test_user, tagged

from .common import RegistryHttpCase
from .test_admin_tour import skip_without_browser

# Must match the tour.
NAME = "Zmarker Registrar Tour"
EMAIL = "zmarker.registrar.tour@example.org"
PHONE = "+254 700 123 321"


@tagged("post_install", "-at_install")
class TestRegistrarTour(RegistryHttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.registrant = cls.env["res.partner"].create(
            # A household (a company in Contacts): the new contact's company field completes it.
            {"name": NAME, "email": EMAIL, "phone": PHONE, "is_registrant": True, "is_company": True}
        )
        cls.registrar = new_test_user(
            cls.env,
            login="g2p_tour_registrar",
            groups="base.group_user,base.group_partner_manager,g2p_encryption.registry_searcher",
        )

    def test_a_registrar_finds_people_by_exact_values_and_reads_labels(self):
        skip_without_browser(self)
        self.start_tour(
            "/web#action=contacts.action_contacts&view_type=list",
            "g2p_encryption_registrar_find",
            login=self.registrar.login,
            timeout=120,
        )
        logs = self.env["g2p.search.log"].sudo().search([("user_id", "=", self.registrar.id)])
        self.assertGreaterEqual(len(logs), 3)
        self.assertFalse(self.decryption_rows(kind="exit", user_id=self.registrar.id))
