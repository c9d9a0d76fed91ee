# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The pkcs11 provider on a real SoftHSM2 token: registry, HSM operation counts, unexportable keys,
dumps, a restore elsewhere, vouchers against the JWKS endpoint, rotation, faults, the RPC surface."""

import base64
import os
import subprocess
import unittest
from unittest.mock import patch

import jwt

from odoo import SUPERUSER_ID, api
from odoo.exceptions import AccessError, UserError
from odoo.tests.common import tagged
from odoo.tools import config

from ..controllers.jwks import JWKS_PATH
from ..core import cache, envelope
from ..core import pkcs11 as p11
from ..core.errors import HsmAbsentError, HsmBusyError, HsmKeyError, HsmPinError, HsmSessionLostError
from ..core.pkcs11 import session as p11_session
from ..core.tests.softhsm import SoftHSM, missing
from ..exceptions import RemoteServiceUserError
from ..models.encryption_provider import clear_data_key_cache
from .common import (
    G2PEncryptionCase,
    RegistryCase,
    RegistryHttpCase,
    active_data_key,
    database_text,
    decrypt_values,
    encrypt_values,
    marker_fragments,
    marker_values,
)

SKIP = missing()
TOKEN, FAULTS, PIN_TOKEN = "g2p-odoo", "g2p-odoo-faults", "g2p-odoo-pin"


def hsm_operations():
    """Wrap and unwrap operations the tokens did since the last reset."""
    counts = p11.operation_counts()
    return counts.get("wrap", 0) + counts.get("unwrap", 0)


def secret_forms(secret):
    """How a key could be written in a dump or a file."""
    return [
        base64.b64encode(secret).decode(),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
        secret.hex(),
    ]


class SoftHsmSetup:
    """A SoftHSM2 with two tokens for the test class, and a pkcs11 provider on the first."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.hsm = SoftHSM(TOKEN, FAULTS, PIN_TOKEN).start()
        cls.addClassCleanup(cls.hsm.stop)
        cls.hsm_provider = cls.make_pkcs11_provider("HSM")

    @classmethod
    def make_pkcs11_provider(cls, name, token=TOKEN, pin=None, **values):
        vals = {
            "name": name,
            "type": "pkcs11",
            "pkcs11_library": cls.hsm.library,
            "pkcs11_token_label": token,
            "pkcs11_key_label": f"master-{name.lower().replace(' ', '-')}",
            "pkcs11_signing_key_label": f"signing-{name.lower().replace(' ', '-')}",
        }
        provider = cls.env["g2p.encryption.provider"].create(dict(vals, **values))
        option = f"g2p_encryption_pkcs11_pin_{provider.id}"
        cls.startClassPatcher(patch.dict(config.options, {option: pin or cls.hsm.pin}))
        return provider

    def setUp(self):
        super().setUp()
        cache.clear_all()  # data keys, presence checks: cold, as a new worker
        p11.reset_operation_counts()
        self.addCleanup(cache.clear_all)

    def use_as_registry_provider(self, provider):
        params = self.env["ir.config_parameter"].sudo()
        params.set_param("g2p_encryption.registry_encryption_provider_id", str(provider.id))
        params.set_param("g2p_encryption.encrypt_registry", "True")
        self.env.registry.clear_cache()

    def binding_session(self, label=TOKEN):
        """A session of our own on the token (the process is logged in already)."""
        pkcs11 = p11.binding()
        session = pkcs11.lib(self.hsm.library).get_token(token_label=label).open(rw=True)
        self.addCleanup(session.close)
        return pkcs11, session


@unittest.skipIf(SKIP, SKIP)
class TestPkcs11Provider(SoftHsmSetup, RegistryCase):
    def test_registrants_encrypt_and_decrypt_through_the_token(self):
        self.use_as_registry_provider(self.hsm_provider)
        partner = self.create_registrant(1)
        stored = self.raw_column(partner, "email")
        self.assertTrue(envelope.is_token(stored))
        data_key = self.hsm_provider.key_ids.filtered(lambda key: key.usage == "encrypt")
        self.assertEqual(envelope.key_id_of(stored), data_key.key_id)
        self.assertTrue(data_key.wrapped_key.startswith(p11.WRAP_PREFIX))
        self.assertEqual(data_key.wrapped_by, f"PKCS#11 token '{TOKEN}': master-hsm")
        partner.invalidate_recordset()
        self.assertEqual(partner.email, marker_values(1)["email"])
        self.assertEqual(self.env["res.partner"].search([("email", "=", marker_values(1)["email"])]), partner)
        self.assertNoMarker(database_text(self.env.cr), [1])

    def test_a_thousand_values_cost_at_most_two_token_operations(self):
        self.use_as_registry_provider(self.hsm_provider)
        self.hsm_provider._active_key("encrypt")  # a registry in use: its keys exist
        self.hsm_provider._blind_index_key()
        clear_data_key_cache()
        p11.reset_operation_counts()
        partners = self.create_registrants(range(100, 225))  # 125 registrants × 8 fields
        self.env.flush_all()
        self.assertLessEqual(hsm_operations(), 2, p11.operation_counts())

        clear_data_key_cache()
        p11.reset_operation_counts()
        self.env.invalidate_all()
        self.assertEqual(partners.mapped("city")[0], marker_values(100)["city"])
        self.assertEqual(len(set(partners.mapped("email"))), 125)
        self.assertLessEqual(hsm_operations(), 2, p11.operation_counts())

        values = [f"registrant {i}".encode() for i in range(1000)]
        clear_data_key_cache()
        p11.reset_operation_counts()
        tokens = encrypt_values(self.hsm_provider, values, aad=b"res.partner|name")
        self.assertEqual(decrypt_values(self.hsm_provider, tokens, aad=b"res.partner|name"), values)
        self.assertEqual(hsm_operations(), 1, p11.operation_counts())  # one unwrap, then the cache

    def test_the_master_key_cannot_be_exported(self):
        self.hsm_provider.encrypt_data(b"x")
        self.hsm_provider.sudo().jwt_sign({"a": 1})
        pkcs11, session = self.binding_session()
        master = session.get_key(object_class=pkcs11.ObjectClass.SECRET_KEY, label="master-hsm")
        self.assertRaises(pkcs11.exceptions.AttributeSensitive, master.__getitem__, pkcs11.Attribute.VALUE)
        wrapping = session.generate_key(
            pkcs11.KeyType.AES,
            256,
            template={pkcs11.Attribute.WRAP: True, pkcs11.Attribute.EXTRACTABLE: True},
        )
        with self.assertRaises(pkcs11.exceptions.KeyUnextractable):
            wrapping.wrap_key(master, mechanism=pkcs11.Mechanism.AES_KEY_WRAP_PAD)
        signing = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label="signing-hsm")
        self.assertRaises(
            pkcs11.exceptions.AttributeSensitive, signing.__getitem__, pkcs11.Attribute.PRIVATE_EXPONENT
        )
        with self.assertRaises(pkcs11.exceptions.KeyUnextractable):
            wrapping.wrap_key(signing, mechanism=pkcs11.Mechanism.AES_KEY_WRAP_PAD)
        facts = self.hsm_provider._pkcs11_token().key_facts("master-hsm")
        self.assertTrue(facts["never_extractable"] and facts["always_sensitive"] and facts["local"])

    def test_a_database_restored_elsewhere_decrypts_nothing(self):
        token = self.hsm_provider.encrypt_data(b"Grace Otieno")
        self.hsm_provider.sudo().jwt_sign({"a": 1})
        with SoftHSM(TOKEN):  # another server's HSM: a token of the same label, without our keys
            clear_data_key_cache()
            with self.assertRaisesRegex(UserError, "holds no AES key labelled 'master-hsm'"):
                self.hsm_provider.decrypt_data(token)
            with self.assertRaisesRegex(UserError, "holds no private key labelled 'signing-hsm'"):
                self.hsm_provider.sudo().jwt_sign({"a": 2})
        clear_data_key_cache()
        self.assertEqual(self.hsm_provider.decrypt_data(token), b"Grace Otieno")

    def test_rotation_makes_new_token_keys_and_keeps_old_data_readable(self):
        provider = self.make_pkcs11_provider("Rotated")
        provider._blind_index_key()
        old_token = provider.encrypt_data(b"before rotation")
        old_voucher = provider.sudo().jwt_sign({"v": 1})
        old_sign = provider.key_ids.filtered(lambda key: key.usage == "sign")
        provider.action_rotate_key()
        self.assertRegex(provider.pkcs11_key_label, r"^master-rotated-\d{8}T\d{6}Z$")
        new_token = provider.encrypt_data(b"after rotation")
        new_key = provider._active_key("encrypt")
        self.assertIn(provider.pkcs11_key_label, new_key.wrapped_by)
        self.assertEqual(p11.parse_wrapped(new_key.wrapped_key)[0], provider.pkcs11_key_label)
        self.assertNotEqual(envelope.key_id_of(old_token.decode()), envelope.key_id_of(new_token.decode()))
        new_voucher = provider.sudo().jwt_sign({"v": 2})
        new_sign = provider._active_key("sign")
        self.assertEqual(old_sign.state, "retired")
        self.assertRegex(p11.label_of_reference(new_sign.wrapped_key), r"^signing-rotated-\d{8}T\d{6}Z$")
        clear_data_key_cache()
        self.assertEqual(provider.decrypt_data(old_token), b"before rotation")
        self.assertEqual(provider.decrypt_data(new_token), b"after rotation")
        self.assertEqual(provider.jwt_verify(old_voucher), {"v": 1})
        self.assertEqual(provider.jwt_verify(new_voucher), {"v": 2})
        kids = {key["kid"] for key in provider.get_jwks()["keys"]}
        self.assertEqual(kids, {old_sign.key_id, new_sign.key_id})
        # The blind-index key is never rotated: it stays under the first master key.
        index_key = provider._active_key("index")
        self.assertEqual(p11.parse_wrapped(index_key.wrapped_key)[0], "master-rotated")

    def test_an_es256_provider_signs_in_the_token(self):
        provider = self.make_pkcs11_provider("Elliptic", signing_algorithm="ES256")
        voucher = provider.sudo().jwt_sign(
            {"voucher": "V-9"}, include_certificate=True, include_cert_hash=True
        )
        header = jwt.get_unverified_header(voucher)
        self.assertEqual(header["alg"], "ES256")
        self.assertIn("x5c", header)
        public = jwt.PyJWK(provider.get_jwks()["keys"][0]).key
        self.assertEqual(jwt.decode(voucher, public, algorithms=["ES256"]), {"voucher": "V-9"})

    def test_no_pin_or_key_in_the_database(self):
        self.hsm_provider.encrypt_data(b"x")
        _key_id, data_key = active_data_key(self.hsm_provider)
        dump = database_text(self.env.cr)
        self.assertNotIn(self.hsm.pin, dump)
        for form in secret_forms(data_key):
            self.assertNotIn(form, dump)
        self.assertIn(
            f"read from g2p_encryption_pkcs11_pin_{self.hsm_provider.id}", self.hsm_provider.pkcs11_pin_source
        )

    def test_the_pin_comes_from_the_environment_too(self):
        provider = self.make_pkcs11_provider("From env", pin="unused")
        with patch.dict(config.options, {f"g2p_encryption_pkcs11_pin_{provider.id}": ""}):
            with patch.dict(os.environ, {f"G2P_ENCRYPTION_PKCS11_PIN_{provider.id}": self.hsm.pin}):
                self.assertEqual(provider.decrypt_data(provider.encrypt_data(b"y")), b"y")
                provider.invalidate_recordset(["pkcs11_pin_source"])
                self.assertIn(f"G2P_ENCRYPTION_PKCS11_PIN_{provider.id}", provider.pkcs11_pin_source)
            provider.invalidate_recordset(["pkcs11_pin_source"])
            self.assertIn("not configured", provider.pkcs11_pin_source)

    def test_test_connection(self):
        action = self.hsm_provider.with_user(self.crypto_admin).action_test_connection()
        self.assertEqual(action["params"]["type"], "success", action["params"]["message"])
        self.assertIn("Session opened with token g2p-odoo", action["params"]["message"])
        self.assertIn("Master key master-hsm", action["params"]["message"])
        self.hsm_provider.sudo().jwt_sign({"a": 1})
        action = self.hsm_provider.action_test_connection()
        self.assertIn("a test JWS signed and verified", action["params"]["message"])
        with self.assertRaises(AccessError):
            self.hsm_provider.with_user(self.clerk).action_test_connection()
        wrong = self.make_pkcs11_provider("Wrong PIN test", token=PIN_TOKEN, pin="not-the-pin")
        p11.forget_sessions()
        params = wrong.action_test_connection()["params"]
        self.assertEqual(params["type"], "danger")
        self.assertIn("CKR_PIN_INCORRECT", params["message"])


@unittest.skipIf(SKIP, SKIP)
class TestPkcs11Faults(SoftHsmSetup, RegistryCase):
    """Each fault: a UserError naming its cause, and no plaintext stored."""

    def assertFaultNamed(self, provider, error_class, pattern, number):
        self.use_as_registry_provider(provider)
        with self.assertLogs("odoo.addons.g2p_encryption", level="WARNING"):
            with self.assertRaisesRegex(RemoteServiceUserError, pattern) as caught:
                with self.env.cr.savepoint():
                    self.env["res.partner"].create(dict(marker_values(number), is_registrant=True))
        self.assertIsInstance(caught.exception.error, error_class)
        dump = database_text(self.env.cr).lower()
        for fragment in marker_fragments(number):
            self.assertNotIn(fragment.lower(), dump)
        return caught.exception

    def test_wrong_pin(self):
        p11.forget_sessions()
        provider = self.make_pkcs11_provider("Wrong PIN", token=PIN_TOKEN, pin="not-the-pin")
        error = self.assertFaultNamed(
            provider,
            HsmPinError,
            "Wrong PIN: PKCS#11 token 'g2p-odoo-pin' C_Login \\(CKR_PIN_INCORRECT\\)",
            11,
        )
        self.assertNotIn("not-the-pin", str(error))

    def test_token_absent(self):
        provider = self.make_pkcs11_provider("Absent", token="no-such-token")
        self.assertFaultNamed(
            provider, HsmAbsentError, "PKCS#11 token 'no-such-token' .*the token is absent", 12
        )

    def test_library_absent(self):
        provider = self.make_pkcs11_provider("No library", pkcs11_library="/nonexistent/libhsm.so")
        self.assertFaultNamed(provider, HsmAbsentError, "no PKCS#11 library at /nonexistent/libhsm.so", 13)

    def test_session_lost_is_reopened(self):
        token = self.hsm_provider.encrypt_data(b"Amina")
        session = p11_session._sessions[self.hsm_provider._pkcs11_token()._key()]
        session.session.close()  # the HSM dropped it
        clear_data_key_cache()
        self.assertEqual(self.hsm_provider.decrypt_data(token), b"Amina")

    def test_session_lost_for_good(self):
        self.hsm_provider.encrypt_data(b"Amina")
        self.hsm_provider.invalidate_recordset()
        clear_data_key_cache()
        lost = p11.binding().exceptions.SessionHandleInvalid
        with patch.object(p11_session._Session, "find_key", side_effect=lost()):
            self.assertFaultNamed(self.hsm_provider, HsmSessionLostError, "CKR_SESSION_HANDLE_INVALID", 14)

    def test_token_busy(self):
        self.hsm_provider.encrypt_data(b"Amina")
        clear_data_key_cache()
        busy = p11.binding().exceptions.OperationActive
        with patch.object(p11_session._Session, "find_key", side_effect=busy()):
            self.assertFaultNamed(self.hsm_provider, HsmBusyError, "the token is busy", 15)

    def test_token_pulled_out_stops_cached_keys(self):
        p11.forget_sessions()
        provider = self.make_pkcs11_provider("Pulled", token=FAULTS, pkcs11_check_seconds=0)
        token = provider.encrypt_data(b"Amina")
        self.assertEqual(provider.decrypt_data(token), b"Amina")  # the data key is cached
        self.hsm.delete_token(FAULTS)
        with self.assertLogs("odoo.addons.g2p_encryption", level="WARNING"):
            with self.assertRaisesRegex(RemoteServiceUserError, "the token is (absent|gone)"):
                provider.decrypt_data(token)
        self.assertFalse(
            [name for name, _key in cache_items() if name[0] == (self.env.cr.dbname, provider.id)]
        )

    def test_missing_key_in_the_token_is_named(self):
        provider = self.make_pkcs11_provider("Missing key")
        token = provider.encrypt_data(b"Amina")
        pkcs11, session = self.binding_session()
        session.get_key(object_class=pkcs11.ObjectClass.SECRET_KEY, label="master-missing-key").destroy()
        p11.forget_sessions()
        clear_data_key_cache()
        with self.assertRaises(RemoteServiceUserError) as caught:
            provider.decrypt_data(token)
        self.assertIsInstance(caught.exception.error, HsmKeyError)


def cache_items():
    from ..models.encryption_provider import DATA_KEYS

    return DATA_KEYS.items()


@unittest.skipIf(SKIP, SKIP)
@tagged("post_install", "-at_install")
class TestPkcs11Http(SoftHsmSetup, RegistryHttpCase):
    def test_a_voucher_signed_by_the_token_verifies_against_the_jwks_endpoint(self):
        voucher = self.hsm_provider.sudo().jwt_sign({"voucher": "V-1", "amount": 250})
        jwks = jwt.PyJWKSet.from_dict(self.url_open(JWKS_PATH).json())
        kid = jwt.get_unverified_header(voucher)["kid"]
        key = next(key for key in jwks.keys if key.key_id == kid)
        self.assertEqual(
            jwt.decode(voucher, key.key, algorithms=["RS256"]), {"voucher": "V-1", "amount": 250}
        )
        self.assertEqual(kid, self.hsm_provider._active_key("sign").key_id)

    def test_public_methods_check_who_calls(self):
        for method, args in (
            ("encrypt_data", ["x"]),
            ("decrypt_data", ["x"]),
            ("jwt_sign", [{"a": 1}]),
            ("action_test_connection", []),
        ):
            with self.subTest(method=method):
                with self.assertRaisesRegex(Exception, "AccessError|Only"):
                    self.rpc(self.clerk, "g2p.encryption.provider", method, [self.hsm_provider.id], *args)
        for method in ("_encrypt_data_pkcs11", "_decrypt_data_pkcs11", "_jwt_sign_pkcs11"):
            with (
                self.subTest(method=method),
                self.assertRaisesRegex(Exception, "AccessError"),
            ):  # private: not callable over RPC
                self.rpc(self.clerk, "g2p.encryption.provider", method, [self.hsm_provider.id], "x")


@unittest.skipIf(SKIP, SKIP)
@tagged("post_install", "-at_install")
class TestPkcs11CommittedDump(SoftHsmSetup, G2PEncryptionCase):
    """A pg_dump of committed keys and the server's data directory hold no key material."""

    @classmethod
    def setUpClass(cls):
        super(SoftHsmSetup, cls).setUpClass()  # no provider in the test transaction: commits below
        cls.hsm = SoftHSM(TOKEN).start()
        cls.addClassCleanup(cls.hsm.stop)

    def test_pg_dump_and_data_dir_hold_no_key_material(self):
        with (
            self.registry.cursor() as cr,
            patch.dict(config.options, {"g2p_encryption_pkcs11_pin": self.hsm.pin}),
        ):
            env = api.Environment(cr, SUPERUSER_ID, {})
            provider = env["g2p.encryption.provider"].create(
                {
                    "name": "Dumped HSM",
                    "type": "pkcs11",
                    "pkcs11_library": self.hsm.library,
                    "pkcs11_token_label": TOKEN,
                }
            )
            try:
                provider.encrypt_data(b"x")
                provider.jwt_sign({"a": 1})
                secrets = [active_data_key(provider)[1], provider._blind_index_key()[1]]
                cr.commit()  # pylint: disable=invalid-commit
                dump = subprocess.run(
                    ["pg_dump", "--data-only", "--no-owner", cr.dbname],
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=120,
                ).stdout
                self.assertIn(p11.WRAP_PREFIX, dump)  # the wrapped keys are there
                files = []
                for root, _dirs, names in os.walk(config["data_dir"]):
                    for name in names:
                        with open(os.path.join(root, name), "rb") as handle:
                            files.append(handle.read())
                data_dir = b"\n".join(files)
                self.assertNotIn(self.hsm.pin, dump)
                self.assertNotIn(self.hsm.pin.encode(), data_dir)
                for secret in secrets:
                    self.assertNotIn(secret, data_dir)
                    for form in secret_forms(secret):
                        self.assertNotIn(form, dump)
                        self.assertNotIn(form.encode(), data_dir)
            finally:
                # Keys are never deleted through Odoo; this test's own are, to leave the database as it was.
                cr.rollback()
                cr.execute("DELETE FROM g2p_encryption_key WHERE provider_id = %s", (provider.id,))
                cr.execute("DELETE FROM g2p_encryption_provider WHERE id = %s", (provider.id,))
                cr.commit()  # pylint: disable=invalid-commit
