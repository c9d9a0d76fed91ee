# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
import base64
import hashlib
import json
import time

import jwt
from cryptography import x509
from jwcrypto import jwk

from odoo.exceptions import UserError

from .common import G2PEncryptionCase

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k"}


def _b64url_json(segment):
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


class TestSigning(G2PEncryptionCase):
    def _header(self, token):
        return _b64url_json(token.split(".")[0])

    def test_sign_and_verify_claims(self):
        claims = {"voucher": "V-001", "amount": 250, "currency": "KES"}
        token = self.provider.jwt_sign(claims)
        self.assertEqual(self.provider.jwt_verify(token), claims)
        self.assertEqual(self._header(token)["alg"], "RS256")

    def test_es256_is_selectable(self):
        provider = self.env["g2p.encryption.provider"].create(
            {"name": "EC", "type": "local", "signing_algorithm": "ES256"}
        )
        token = provider.jwt_sign({"voucher": "V-002"})
        self.assertEqual(self._header(token)["alg"], "ES256")
        self.assertEqual(provider.jwt_verify(token), {"voucher": "V-002"})

    def test_kid_is_the_rfc7638_thumbprint(self):
        token = self.provider.jwt_sign({"a": 1})
        (published,) = self.provider.get_jwks()["keys"]
        thumbprint = jwk.JWK(
            **{k: v for k, v in published.items() if k not in ("x5c", "x5t#S256")}
        ).thumbprint()
        self.assertEqual(self._header(token)["kid"], thumbprint)
        self.assertEqual(published["kid"], thumbprint)

    def test_certificate_and_hash_when_asked(self):
        plain = self.provider.jwt_sign({"a": 1})
        self.assertNotIn("x5c", self._header(plain))
        self.assertNotIn("x5t#S256", self._header(plain))
        header = self._header(
            self.provider.jwt_sign({"a": 1}, include_certificate=True, include_cert_hash=True)
        )
        der = base64.b64decode(header["x5c"][0])
        certificate = x509.load_der_x509_certificate(der)
        (published,) = self.provider.get_jwks()["keys"]
        public_numbers = certificate.public_key().public_numbers()
        self.assertEqual(
            base64.urlsafe_b64decode(published["n"] + "==="), public_numbers.n.to_bytes(256, "big")
        )
        expected_hash = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
        self.assertEqual(header["x5t#S256"], expected_hash)

    def test_detached_payload(self):
        payload = json.dumps({"voucher": "V-003"}).encode()
        token = self.provider.jwt_sign(payload, include_payload=False)
        header, body, signature = token.split(".")
        self.assertEqual(body, "")
        self.assertTrue(header and signature)
        self.assertEqual(self.provider.jwt_verify(token, payload=payload), {"voucher": "V-003"})
        with self.assertRaises(UserError):
            self.provider.jwt_verify(token, payload=b'{"voucher": "V-999"}')

    def test_tampered_token_is_rejected(self):
        header, _body, signature = self.provider.jwt_sign({"amount": 10}).split(".")
        forged = base64.urlsafe_b64encode(b'{"amount":10000}').rstrip(b"=").decode()
        with self.assertRaises(UserError):
            self.provider.jwt_verify(f"{header}.{forged}.{signature}")

    def test_token_of_another_provider_is_rejected(self):
        other = self.env["g2p.encryption.provider"].create({"name": "Other", "type": "local"})
        with self.assertRaisesRegex(UserError, "(?i)key"):
            self.provider.jwt_verify(other.jwt_sign({"a": 1}))

    def test_expired_token_is_rejected(self):
        token = self.provider.jwt_sign({"voucher": "V-004", "exp": int(time.time()) - 60})
        with self.assertRaisesRegex(UserError, "(?i)expired"):
            self.provider.jwt_verify(token)

    def test_jwks_has_public_members_only(self):
        self.provider.jwt_sign({"a": 1})
        jwks = self.provider.get_jwks()
        self.assertTrue(jwks["keys"])
        for key in jwks["keys"]:
            self.assertFalse(PRIVATE_MEMBERS & set(key), key.keys())
            self.assertEqual(key["use"], "sig")

    def test_old_tokens_verify_after_rotation(self):
        token = self.provider.jwt_sign({"before": True})
        self.provider.action_rotate_key()
        newer = self.provider.jwt_sign({"after": True})
        self.assertNotEqual(self._header(token)["kid"], self._header(newer)["kid"])
        self.assertEqual(len(self.provider.get_jwks()["keys"]), 2)
        self.assertEqual(self.provider.jwt_verify(token), {"before": True})

    def test_independent_library_verifies_with_the_jwks(self):
        token = self.provider.jwt_sign({"voucher": "V-005"}, include_certificate=True)
        kid = self._header(token)["kid"]
        (published,) = [k for k in self.provider.get_jwks()["keys"] if k["kid"] == kid]
        public_key = jwt.PyJWK(published).key
        self.assertEqual(jwt.decode(token, public_key, algorithms=["RS256"]), {"voucher": "V-005"})

    def test_signing_key_is_stored_wrapped(self):
        self.provider.jwt_sign({"a": 1})
        key = self.provider.key_ids.filtered(lambda k: k.usage == "sign")
        self.assertNotIn("PRIVATE KEY", key.wrapped_key)
        self.assertTrue(key.wrapped_key.startswith("g2pw1."))
        self.assertEqual(json.loads(key.public_jwk)["kid"], key.key_id)
