# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Signing through KeyManager /jwtSign and /jwtVerify, and the JWKS of /getAllCertificates."""

import datetime
import hashlib
import json
import time

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from odoo.exceptions import UserError

from ..core.encoding import b64decode, b64encode, b64url_decode, b64url_encode
from .common import KeyManagerCase

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k"}


def _segment(segment):
    return json.loads(b64url_decode(segment))


class TestKeyManagerSigning(KeyManagerCase):
    def header(self, token):
        return _segment(token.split(".")[0])

    def signing_generation(self):
        return self.emulator.keystore.current("ID_REPO", "")

    def test_sign_with_payload_and_verify(self):
        claims = {"voucher": "V-001", "amount": 250, "currency": "KES", "name": "Zoë"}
        token = self.km_provider.jwt_sign(claims)
        header_b64, payload_b64, signature = token.split(".")
        self.assertTrue(payload_b64 and signature)
        # dict -> compact JSON bytes
        self.assertEqual(
            b64url_decode(payload_b64),
            json.dumps(claims, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode(),
        )
        header = _segment(header_b64)
        self.assertEqual(header, {"kid": self.signing_generation().key_id, "alg": "RS256"})
        self.assertEqual(self.km_provider.jwt_verify(token), claims)
        self.assertEqual(self.km_counts().get("/jwtSign"), 1)
        self.assertEqual(self.km_counts().get("/jwtVerify"), 1)

    def test_detached_when_payload_is_not_included(self):
        payload = json.dumps({"voucher": "V-003"}).encode()
        token = self.km_provider.jwt_sign(payload, include_payload=False)
        _header, body, signature = token.split(".")
        self.assertEqual(body, "")
        self.assertTrue(signature)
        self.assertEqual(self.km_provider.jwt_verify(token, payload=payload), {"voucher": "V-003"})
        with self.assertRaises(UserError):
            self.km_provider.jwt_verify(token, payload=b'{"voucher": "V-999"}')
        with self.assertRaisesRegex(UserError, "payload must be given"):
            self.km_provider.jwt_verify(token)

    def test_certificate_and_hash_when_asked(self):
        plain = self.header(self.km_provider.jwt_sign({"a": 1}))
        self.assertNotIn("x5c", plain)
        self.assertNotIn("x5t#S256", plain)
        with_cert = self.header(self.km_provider.jwt_sign({"a": 1}, include_certificate=True))
        self.assertIn("x5c", with_cert)
        self.assertNotIn("x5t#S256", with_cert)
        der = b64decode(with_cert["x5c"][0])
        self.assertEqual(der, self.signing_generation().certificate_der)
        x509.load_der_x509_certificate(der)
        with_hash = self.header(self.km_provider.jwt_sign({"a": 1}, include_cert_hash=True))
        self.assertNotIn("x5c", with_hash)
        self.assertEqual(with_hash["x5t#S256"], b64url_encode(hashlib.sha256(der).digest()))

    def test_a_certificate_in_the_header_verifies_only_when_it_is_the_providers(self):
        # KeyManager checks the signature against the header's x5c as given: a token that
        # brings its own key and certificate must not verify.
        token = self.km_provider.jwt_sign({"voucher": "V-020"}, include_certificate=True)
        self.assertEqual(self.km_provider.jwt_verify(token), {"voucher": "V-020"})
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Zmarker forger")])
        now = datetime.datetime.utcnow()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256())
        )
        x5c = [b64encode(certificate.public_bytes(serialization.Encoding.DER))]
        forged = jwt.encode(
            {"voucher": "V-020", "amount": 10000},
            key,
            algorithm="RS256",
            headers={"x5c": x5c, "kid": self.header(token)["kid"]},
        )
        # The emulator, as KeyManager, finds its signature valid against its own certificate.
        verdict = self.km_provider._keymanager_client().jwt_verify(forged, "ID_REPO", "")
        self.assertIs(verdict["signatureValid"], True)
        with self.assertRaisesRegex(UserError, "not one of the provider's signing certificates"):
            self.km_provider.jwt_verify(forged)
        with self.assertRaisesRegex(UserError, "malformed x5c"):
            self.km_provider.jwt_verify(jwt.encode({"a": 1}, key, algorithm="RS256", headers={"x5c": "Zm9v"}))

    def test_str_and_bytes_payloads(self):
        token = self.km_provider.jwt_sign("plain text ✓")
        self.assertEqual(self.km_provider.jwt_verify(token), "plain text ✓")
        token = self.km_provider.jwt_sign(b'{"b": 2}')
        self.assertEqual(self.km_provider.jwt_verify(token), {"b": 2})

    def test_verifies_with_pyjwt_against_get_jwks(self):
        claims = {"voucher": "V-010", "amount": 5, "exp": int(time.time()) + 600}
        token = self.km_provider.jwt_sign(claims)
        jwks = self.km_provider.get_jwks()
        kid = self.header(token)["kid"]
        (entry,) = [key for key in jwks["keys"] if key["kid"] == kid]
        self.assertEqual(entry["use"], "sig")
        public_key = jwt.PyJWK(entry).key
        self.assertEqual(jwt.decode(token, public_key, algorithms=["RS256"]), claims)

    def test_tampered_token_makes_verify_raise(self):
        header, _body, signature = self.km_provider.jwt_sign({"amount": 10}).split(".")
        forged = b64url_encode(b'{"amount":10000}')
        with self.assertLogs("odoo.addons.g2p_encryption", level="WARNING") as logs:
            with self.assertRaisesRegex(UserError, "signature is not valid"):
                self.km_provider.jwt_verify(f"{header}.{forged}.{signature}")
        # The warning names the operation and KeyManager's verdict.
        self.assertTrue(any("/jwtVerify failed" in line and "not valid" in line for line in logs.output))
        with self.assertRaises(UserError):
            self.km_provider.jwt_verify("not.a-token")

    def test_expired_token_is_refused(self):
        token = self.km_provider.jwt_sign({"voucher": "V-011", "exp": int(time.time()) - 10})
        with self.assertRaisesRegex(UserError, "expired"):
            self.km_provider.jwt_verify(token)

    def test_tokens_signed_before_a_rotation_still_verify(self):
        before = self.km_provider.jwt_sign({"v": "before"})
        self.km_provider.get_jwks()  # cached list with the old certificate only
        self.emulator.rotate("ID_REPO", "")
        after = self.km_provider.jwt_sign({"v": "after"})
        self.assertNotEqual(self.header(before)["kid"], self.header(after)["kid"])
        self.assertEqual(self.km_provider.jwt_verify(before), {"v": "before"})
        # The new kid is not in the cached list: it is fetched again once.
        self.assertEqual(self.km_provider.jwt_verify(after), {"v": "after"})
        verify_requests = [r for r in self.emulator.requests if r["endpoint"] == "/jwtVerify"]
        self.assertEqual(len(verify_requests), 2)
        kids = {key["kid"] for key in self.km_provider.get_jwks()["keys"] if key["use"] == "sig"}
        self.assertEqual(kids, {self.header(before)["kid"], self.header(after)["kid"]})

    def test_jwks_has_encryption_and_signing_keys_and_no_private_member(self):
        self.km_provider.encrypt_data(b"x")  # KeyManager makes the REGISTRATION/ENCRYPT base key
        jwks = self.km_provider.get_jwks()
        uses = sorted(key["use"] for key in jwks["keys"])
        self.assertEqual(uses, ["enc", "sig"])
        for key in jwks["keys"]:
            self.assertFalse(PRIVATE_MEMBERS & set(key))
            self.assertEqual(key["kty"], "RSA")
            self.assertIn("x5c", key)
            self.assertIn("x5t#S256", key)
        (enc,) = [key for key in jwks["keys"] if key["use"] == "enc"]
        self.assertEqual(enc["kid"], self.emulator.keystore.current("REGISTRATION", "ENCRYPT").key_id)

    def test_jwks_query_strings_and_cache(self):
        self.km_provider.get_jwks()
        paths = [r["path"] for r in self.emulator.requests if r["endpoint"] == "/getAllCertificates"]
        self.assertEqual(
            sorted(paths),
            sorted(
                [
                    "/v1/keymanager/getAllCertificates?applicationId=REGISTRATION&referenceId=ENCRYPT",
                    "/v1/keymanager/getAllCertificates?applicationId=ID_REPO",
                ]
            ),
        )
        self.emulator.reset_counts()
        self.km_provider.get_jwks()
        self.assertEqual(self.km_counts(), {})  # cached: no call

    def test_jwks_cache_has_a_time_limit(self):
        self.km_provider.keymanager_jwks_cache_seconds = 0
        self.km_provider.get_jwks()
        self.km_provider.get_jwks()
        self.assertEqual(self.km_counts().get("/getAllCertificates"), 4)

    def test_sign_reference_id_is_sent_when_set(self):
        provider = self.make_keymanager_provider(
            name="Kernel sign", keymanager_sign_application_id="KERNEL", keymanager_sign_reference_id="SIGN"
        )
        provider.get_jwks()
        paths = [r["path"] for r in self.emulator.requests if r["endpoint"] == "/getAllCertificates"]
        self.assertIn("/v1/keymanager/getAllCertificates?applicationId=KERNEL&referenceId=SIGN", paths)
        token = provider.jwt_sign({"k": 1})
        self.assertEqual(provider.jwt_verify(token), {"k": 1})
