# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The JWKS endpoint over HTTP: every provider's public keys, and what a failing provider does."""

import jwt

from odoo.tests import HttpCase, tagged

from ..controllers.jwks import JWKS_PATH
from ..core import cache
from .test_signing import PRIVATE_MEMBERS


@tagged("post_install", "-at_install")
class TestJwksEndpoint(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.provider = cls.env.ref("g2p_encryption.encryption_provider_default")
        cls.second = cls.env["g2p.encryption.provider"].create(
            {"name": "Vouchers", "type": "local", "signing_algorithm": "ES256"}
        )

    def test_served_without_login_with_caching_headers(self):
        self.provider.jwt_sign({"warm": "up"})
        response = self.url_open(JWKS_PATH)
        self.assertEqual(response.status_code, 200)
        self.assertIn("max-age=", response.headers["Cache-Control"])
        self.assertIn("public", response.headers["Cache-Control"])
        self.assertTrue(response.json()["keys"])

    def test_holds_every_provider_and_no_private_member(self):
        self.provider.jwt_sign({"a": 1})
        self.second.jwt_sign({"a": 1})
        keys = self.url_open(JWKS_PATH).json()["keys"]
        self.assertEqual({k["kty"] for k in keys}, {"RSA", "EC"})
        for key in keys:
            self.assertFalse(PRIVATE_MEMBERS & set(key), key)

    def test_token_verifies_against_the_served_jwks_alone(self):
        token = self.second.jwt_sign({"voucher": "V-100", "amount": 500})
        jwks = jwt.PyJWKSet.from_dict(self.url_open(JWKS_PATH).json())
        kid = jwt.get_unverified_header(token)["kid"]
        key = next(k for k in jwks.keys if k.key_id == kid)
        claims = jwt.decode(token, key.key, algorithms=["ES256"])
        self.assertEqual(claims, {"voucher": "V-100", "amount": 500})


@tagged("post_install", "-at_install")
class TestJwksWithKeyManager(HttpCase):
    """A KeyManager provider next to a local one, KeyManager emulated on 127.0.0.1."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Imported here: the emulator is a test tool, not a dependency of the addon's models.
        from ..emulator import DEFAULT_CLIENT_SECRET, Emulator

        cls.emulator = Emulator().start()
        cls.addClassCleanup(cls.emulator.stop)
        cls.keymanager = cls.env["g2p.encryption.provider"].create(
            {
                "name": "KeyManager (JWKS)",
                "type": "keymanager",
                "keymanager_api_base_url": cls.emulator.keymanager_url,
                "keymanager_auth_url": cls.emulator.token_url,
                "keymanager_auth_client_secret": DEFAULT_CLIENT_SECRET,
                "keymanager_api_timeout": 2,
                "keymanager_api_retries": 0,
            }
        )
        cls.env.ref("g2p_encryption.encryption_provider_default").jwt_sign({"warm": "up"})

    def setUp(self):
        super().setUp()
        cache.clear_all()  # no certificates, tokens or remembered failures from earlier tests
        self.addCleanup(cache.clear_all)
        self.emulator.faults.clear()
        self.addCleanup(self.emulator.faults.clear)

    def kids(self, response):
        return {key["kid"] for key in response.json()["keys"]}

    def test_full_set_is_public_partial_set_is_not_stored(self):
        full = self.url_open(JWKS_PATH)
        self.assertEqual(full.headers["Cache-Control"], "public, max-age=300")
        keymanager_kids = {key["kid"] for key in self.keymanager.get_jwks()["keys"]}
        self.assertTrue(keymanager_kids and keymanager_kids <= self.kids(full))

        cache.clear_all()
        self.emulator.faults.go_down("503")
        with self.assertLogs("odoo.addons.g2p_encryption.controllers.jwks", level="WARNING") as logs:
            partial = self.url_open(JWKS_PATH)
        self.assertEqual(partial.status_code, 200)
        self.assertEqual(partial.headers["Cache-Control"], "no-store")
        self.assertFalse(keymanager_kids & self.kids(partial))
        self.assertTrue(self.kids(partial))  # the local provider's keys are still served
        self.assertIn(f"keys of provider {self.keymanager.id} left out", logs.output[0])

    def test_a_failing_provider_is_not_asked_again_at_once(self):
        self.emulator.faults.fail_next(100, status=503)  # every call fails, and is counted
        self.url_open(JWKS_PATH)
        self.assertTrue(self.emulator.counts)
        self.emulator.reset_counts()
        again = self.url_open(JWKS_PATH)  # within FAILURE_SECONDS: the failure is remembered
        self.assertEqual(self.emulator.counts, {})
        self.assertEqual(again.headers["Cache-Control"], "no-store")
        self.emulator.faults.clear()
        cache.clear_all()  # as when FAILURE_SECONDS have passed
        recovered = self.url_open(JWKS_PATH)
        self.assertEqual(recovered.headers["Cache-Control"], "public, max-age=300")
        self.assertTrue(self.emulator.counts.get("/getAllCertificates"))
