# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
import jwt

from odoo.tests import HttpCase, tagged

from .test_signing import PRIVATE_MEMBERS

JWKS_PATH = "/api/v1/security/.well-known/jwks.json"


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
