# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The keymanager provider against the emulator: both modes, batches, AAD, rotation, the form."""

import base64
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from odoo.exceptions import AccessError, UserError

from ..core import envelope
from ..core.cache import clear_all
from ..core.encoding import b64url_decode
from ..core.errors import G2PCryptoError
from ..core.keymanager_format import DIRECT_PREFIX
from ..models.encrypted_field import Unreadable
from ..models.encryption_provider import clear_data_key_cache
from .common import (
    KeyManagerCase,
    active_data_key,
    database_text,
    decrypt_values,
    encrypt_values,
    marker_fragments,
    marker_values,
    master_key_file,
)

SIZES = (0, 1, 15, 16, 17, 255, 4096, 65_536)
UNICODE = "Zoë Ñúñez — 山田太郎 — Ахмед — 🇰🇪 — عائشة".encode()

# KEYMANAGER_API.md §4.6, the reference routine, as the specification gives it.
KEY_SPLITTER = b"#KEY_SPLITTER#"
VER_R2 = b"VER_R2"
OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def b64_any(s):
    core = s.strip().rstrip("=")
    pad = "=" * (-len(core) % 4)
    if set(core) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"):
        return base64.urlsafe_b64decode(core + pad)
    return base64.b64decode(core + pad, validate=True)


def _gcm_dec(key, iv, ct_tag, aad):
    d = Cipher(algorithms.AES(key), modes.GCM(iv, ct_tag[-16:])).decryptor()
    if aad:
        d.authenticate_additional_data(aad)
    return d.update(ct_tag[:-16]) + d.finalize()


def mosip_split(blob):
    raw = b64_any(blob)
    i = raw.find(KEY_SPLITTER)
    kp, enc = raw[:i], raw[i + len(KEY_SPLITTER) :]
    hdr = kp.startswith(VER_R2)
    kp = kp[6:] if hdr else kp
    return hdr, kp[:32], kp[32:], enc


def mosip_decrypt(private_key, blob, salt=None, aad=None):
    hdr, _thumb, wrapped, enc = mosip_split(blob)
    key = private_key.decrypt(wrapped, OAEP)
    if salt:
        return _gcm_dec(key, salt, enc, aad)
    if hdr:
        return _gcm_dec(key, enc[:12], enc[32:], enc[:32])
    return _gcm_dec(key, enc[-16:], enc[:-16], aad)


class TestKeyManagerEnvelope(KeyManagerCase):
    def test_round_trip_of_many_sizes_and_unicode(self):
        for size in SIZES:
            data = os.urandom(size)
            with self.subTest(size=size):
                token = self.km_provider.encrypt_data(data)
                self.assertTrue(token.startswith(envelope.PREFIX.encode()))
                self.assertEqual(self.km_provider.decrypt_data(token), data)
        token = self.km_provider.encrypt_data(UNICODE, aad=b"res.partner|name")
        self.assertEqual(self.km_provider.decrypt_data(token, aad=b"res.partner|name"), UNICODE)

    def test_data_key_is_wrapped_by_keymanager_with_its_key_id_as_aad(self):
        self.km_provider.encrypt_data(b"x")
        key = self.km_provider.key_ids.filtered(lambda k: k.usage == "encrypt")
        self.assertEqual(key.wrapped_by, "KeyManager REGISTRATION/ENCRYPT")
        hdr, thumbprint, _wrapped, _enc = mosip_split(key.wrapped_key)
        self.assertFalse(hdr)  # mode C: aad given, no salt
        generation = self.emulator.keystore.by_thumbprint(thumbprint)
        self.assertEqual((generation.application_id, generation.reference_id), ("REGISTRATION", "ENCRYPT"))
        aad = f"g2p_encryption|data-key|{key.key_id}".encode()
        data_key = mosip_decrypt(generation.private_key, key.wrapped_key, aad=aad)
        self.assertEqual(data_key, active_data_key(self.km_provider)[1])
        with self.assertRaises(InvalidTag):  # bound to its key id
            mosip_decrypt(generation.private_key, key.wrapped_key, aad=b"g2p_encryption|data-key|other")

    def test_a_thousand_values_cost_at_most_two_keymanager_calls(self):
        values = [f"registrant {i} Zoë".encode() for i in range(1000)]
        tokens = encrypt_values(self.km_provider, values, aad=b"res.partner|name")
        self.assertLessEqual(self.km_calls(), 2, self.km_counts())
        self.assertEqual(self.km_counts().get("token"), 1)
        self.emulator.reset_counts()
        more = encrypt_values(self.km_provider, values, aad=b"res.partner|name")
        self.assertEqual(decrypt_values(self.km_provider, tokens + more, aad=b"res.partner|name"), values * 2)
        self.assertEqual(self.km_counts(), {})  # cached data key: no call at all

    def test_batch_decrypt_after_cache_clear_costs_one_decrypt_per_data_key(self):
        first = encrypt_values(self.km_provider, [b"a%d" % i for i in range(200)])
        self.km_provider.action_rotate_key()
        second = encrypt_values(self.km_provider, [b"b%d" % i for i in range(200)])
        self.assertNotEqual(envelope.key_id_of(first[0]), envelope.key_id_of(second[0]))
        clear_data_key_cache()
        self.emulator.reset_counts()
        plaintexts = decrypt_values(self.km_provider, first + second)
        self.assertEqual(plaintexts[0], b"a0")
        self.assertEqual(plaintexts[-1], b"b199")
        self.assertEqual(self.km_counts().get("/decrypt"), 2)
        self.assertNotIn("/encrypt", self.km_counts())

    def test_wrong_aad_is_rejected(self):
        token = self.km_provider.encrypt_data(b"+254700100201", aad=b"res.partner|phone")
        with self.assertRaises(UserError):
            self.km_provider.decrypt_data(token, aad=b"res.partner|mobile")
        with self.assertRaises(UserError):
            self.km_provider.decrypt_data(token)

    def test_rotation_keeps_old_data_readable(self):
        old = self.km_provider.encrypt_data(b"before rotation")
        # KeyManager rotates its own key too: the new data key is wrapped under its new generation.
        self.emulator.rotate("REGISTRATION", "ENCRYPT")
        self.km_provider.action_rotate_key()
        new = self.km_provider.encrypt_data(b"after rotation")
        clear_data_key_cache()
        self.assertEqual(self.km_provider.decrypt_data(old), b"before rotation")
        self.assertEqual(self.km_provider.decrypt_data(new), b"after rotation")
        thumbprints = {
            mosip_split(key.wrapped_key)[1]
            for key in self.km_provider.key_ids.filtered(lambda k: k.usage == "encrypt")
        }
        self.assertEqual(len(thumbprints), 2)
        self.assertTrue(
            self.km_provider._is_stale_ciphertext_keymanager(
                old.decode(), active_data_key(self.km_provider)[0]
            )
        )

    def test_data_key_cache_limits_come_from_the_provider(self):
        self.km_provider.write({"keymanager_data_key_cache_seconds": 60, "keymanager_data_key_cache_uses": 2})
        self.assertEqual(
            self.km_provider._optional_dispatch("_data_key_cache_limits", (3600.0, 10**9)), (60.0, 2)
        )
        self.assertEqual(
            self.provider._optional_dispatch("_data_key_cache_limits", (3600.0, 10**9)), (3600.0, 10**9)
        )
        token = self.km_provider.encrypt_data(b"x")  # generates, unwraps and caches for 2 uses
        self.emulator.reset_counts()
        self.km_provider.decrypt_data(token)
        self.km_provider.decrypt_data(token)
        self.assertNotIn("/decrypt", self.km_counts())
        self.km_provider.decrypt_data(token)  # uses exhausted: unwrapped again
        self.assertEqual(self.km_counts().get("/decrypt"), 1)

    def test_registrants_are_stored_encrypted(self):
        self.use_as_registry_provider(self.km_provider)
        partners = self.env["res.partner"].create(
            [dict(marker_values(i), is_registrant=True) for i in range(900, 950)]
        )
        # A data key and a blind-index key, each wrapped then unwrapped once: O(1), not O(records).
        self.assertLessEqual(self.km_calls(), 4, self.km_counts())
        self.emulator.reset_counts()
        self.env["res.partner"].create([dict(marker_values(i), is_registrant=True) for i in range(950, 1000)])
        self.assertEqual(self.km_calls(), 0, self.km_counts())  # keys cached in the worker
        partners.flush_recordset()
        dump = database_text(self.env.cr).lower()
        for i in range(900, 950):
            for fragment in marker_fragments(i):
                self.assertNotIn(fragment.lower(), dump)
        self.env.cr.execute("SELECT email FROM res_partner WHERE id = %s", (partners[0].id,))
        self.assertTrue(self.env.cr.fetchone()[0].startswith(envelope.PREFIX))


class TestKeyManagerDirect(KeyManagerCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.direct = cls.make_direct_provider()

    def test_round_trip_of_many_sizes_and_unicode(self):
        for size in SIZES:
            data = os.urandom(size)
            with self.subTest(size=size):
                token = self.direct.encrypt_data(data)
                self.assertEqual(token == DIRECT_PREFIX.encode(), size == 0)
                self.assertTrue(token.startswith(DIRECT_PREFIX.encode()))
                self.assertEqual(self.direct.decrypt_data(token), data)
        token = self.direct.encrypt_data(UNICODE)
        self.assertEqual(self.direct.decrypt_data(token), UNICODE)

    def test_each_value_is_one_keymanager_call(self):
        values = [b"v%d" % i for i in range(20)]
        tokens = encrypt_values(self.direct, values)
        self.assertEqual(self.km_counts().get("/encrypt"), 20)
        self.assertEqual(decrypt_values(self.direct, tokens), values)
        self.assertEqual(self.km_counts().get("/decrypt"), 20)
        self.assertEqual(self.km_counts().get("token"), 1)  # one token for all of them
        self.assertFalse(self.direct.key_ids)  # no data key in direct mode

    def test_ciphertext_decrypts_with_the_reference_routine(self):
        plaintext = b'{"name":"Jane"}' + os.urandom(103)  # 118 bytes, as in the specification
        token = self.direct.encrypt_data(plaintext).decode()
        blob = token[len(DIRECT_PREFIX) :]
        hdr, thumbprint, wrapped, enc = mosip_split(blob)
        self.assertFalse(hdr)
        self.assertEqual(len(thumbprint) + len(wrapped), 288)
        self.assertEqual(len(b64_any(blob)), 436)  # mode A total of §4.4
        self.assertEqual(len(enc), len(plaintext) + 16)
        generation = self.emulator.keystore.by_thumbprint(thumbprint)
        salt = b64_any(self.direct.keymanager_encrypt_salt)
        aad = b64_any(self.direct.keymanager_encrypt_aad)
        self.assertEqual(len(salt), 32)
        self.assertEqual(mosip_decrypt(generation.private_key, blob, salt=salt, aad=aad), plaintext)

    def test_caller_aad_is_bound_too(self):
        token = self.direct.encrypt_data(b"Amina", aad=b"res.partner|name").decode()
        self.assertEqual(self.direct.decrypt_data(token, aad=b"res.partner|name"), b"Amina")
        with self.assertRaisesRegex(UserError, "KER-FSE-004"):
            self.direct.decrypt_data(token, aad=b"res.partner|email")
        with self.assertRaisesRegex(UserError, "KER-FSE-004"):
            self.direct.decrypt_data(token)
        # The reference routine needs the provider's aad joined to the caller's.
        blob = token[len(DIRECT_PREFIX) :]
        generation = self.emulator.keystore.by_thumbprint(mosip_split(blob)[1])
        aad = b64_any(self.direct.keymanager_encrypt_aad) + b"|res.partner|name"
        salt = b64_any(self.direct.keymanager_encrypt_salt)
        self.assertEqual(mosip_decrypt(generation.private_key, blob, salt=salt, aad=aad), b"Amina")

    def test_data_of_openg2p_module_stays_readable(self):
        # What OpenG2P's module did: /encrypt with the provider's salt and aad, then stored the
        # base64url-decoded answer (raw bytes); some callers kept the answer string itself.
        client = self.direct._keymanager_client()
        answer = client.encrypt(
            b"OpenG2P value",
            "REGISTRATION",
            "ENCRYPT",
            salt=self.direct.keymanager_encrypt_salt,
            aad=self.direct.keymanager_encrypt_aad,
        )
        raw = b64url_decode(answer)
        self.assertIn(KEY_SPLITTER, raw)
        self.assertEqual(self.direct.decrypt_data(raw), b"OpenG2P value")
        self.assertEqual(self.direct.decrypt_data(answer), b"OpenG2P value")
        self.assertEqual(self.direct.decrypt_data(answer.encode()), b"OpenG2P value")
        # An envelope-mode provider with the same salt and aad reads it too.
        self.km_provider.write(
            {
                "keymanager_encrypt_salt": self.direct.keymanager_encrypt_salt,
                "keymanager_encrypt_aad": self.direct.keymanager_encrypt_aad,
            }
        )
        self.assertEqual(self.km_provider.decrypt_data(raw), b"OpenG2P value")

    def test_garbage_is_refused_clearly(self):
        with self.assertRaisesRegex(UserError, "not a KeyManager ciphertext"):
            self.direct.decrypt_data("Joseph Mwangi ✓")
        with self.assertRaisesRegex(UserError, "KER-CRY-003"):
            self.direct.decrypt_data(DIRECT_PREFIX + "Sm9zZXBo")

    def test_is_ciphertext_and_staleness(self):
        token = encrypt_values(self.direct, [b"Amina"])[0]
        self.assertTrue(self.direct._is_ciphertext_keymanager(token))
        self.assertTrue(self.km_provider._is_ciphertext_keymanager(token))
        self.assertFalse(self.direct._is_ciphertext_keymanager("Amina"))
        self.assertFalse(self.direct._is_stale_ciphertext_keymanager(token, None))
        # Values written while the provider was in envelope mode stay readable in direct mode.
        self.direct.keymanager_mode = "envelope"
        envelope_token = encrypt_values(self.direct, [b"Amina"])[0]
        self.direct.keymanager_mode = "direct"
        self.assertTrue(self.direct._is_stale_ciphertext_keymanager(envelope_token, None))
        self.assertEqual(decrypt_values(self.direct, [envelope_token, token]), [b"Amina", b"Amina"])
        # Envelope mode moves direct-mode values to its data key.
        self.assertTrue(self.km_provider._is_stale_ciphertext_keymanager(token, "any"))
        # After KeyManager rotates its key, direct values are stale but still readable.
        self.emulator.rotate("REGISTRATION", "ENCRYPT")
        clear_all()
        self.assertTrue(self.direct._is_stale_ciphertext_keymanager(token, None))
        self.assertEqual(decrypt_values(self.direct, [token]), [b"Amina"])
        self.assertFalse(
            self.direct._is_stale_ciphertext_keymanager(encrypt_values(self.direct, [b"x"])[0], None)
        )

    def test_registrants_in_direct_mode(self):
        self.use_as_registry_provider(self.direct)
        partner = self.env["res.partner"].create(dict(marker_values(960), is_registrant=True))
        partner.flush_recordset()
        self.env.cr.execute("SELECT email FROM res_partner WHERE id = %s", (partner.id,))
        self.assertTrue(self.env.cr.fetchone()[0].startswith(DIRECT_PREFIX))
        dump = database_text(self.env.cr).lower()
        for fragment in marker_fragments(960):
            self.assertNotIn(fragment.lower(), dump)

    def test_a_value_moved_to_another_record_in_direct_mode_is_unreadable_there_alone(self):
        # KeyManager refuses it (KER-FSE-004, the AAD names another record) with HTTP 200: that
        # value is unreadable; the read of the others goes on.
        self.use_as_registry_provider(self.direct)
        first, second = self.env["res.partner"].create(
            [dict(marker_values(n), is_registrant=True) for n in (965, 966)]
        )
        self.env.flush_all()
        self.env.cr.execute("SELECT name FROM res_partner WHERE id = %s", (first.id,))
        self.env.cr.execute(
            "UPDATE res_partner SET name = %s WHERE id = %s", (self.env.cr.fetchone()[0], second.id)
        )
        self.env.invalidate_all()
        with self.assertLogs("odoo.addons.g2p_encryption", "WARNING") as logs:
            names = (first | second).mapped("name")
        self.assertEqual(names[0], marker_values(965)["name"])
        self.assertIsInstance(names[1], Unreadable)
        self.assertTrue(any("KER-FSE-004" in line for line in logs.output), logs.output)
        self.assertTrue(any(f"ids {second.id}" in line for line in logs.output), logs.output)

    def test_a_read_in_direct_mode_of_which_no_value_decrypts_fails_with_the_cause(self):
        # Every value refused is KeyManager's configuration (a salt pasted wrong), not values
        # tampered with one by one: the read fails naming it; a registry job skips them.
        self.use_as_registry_provider(self.direct)
        people = self.env["res.partner"].create(
            [dict(marker_values(n), is_registrant=True) for n in (967, 968)]
        )
        self.env.flush_all()
        self.direct.keymanager_encrypt_salt = "c2FsdC1wYXN0ZWQtd3Jvbmc"
        clear_all()
        self.env.invalidate_all()
        with self.assertLogs("odoo.addons.g2p_encryption", "WARNING"):
            with self.assertRaisesRegex(UserError, "KER-FSE-004"):
                people.mapped("name")
            self.env.invalidate_all()
            job = self.env["g2p.encryption.job"]._start(self.direct, "reencrypt", "res.partner")
            _done, _changed, skipped = job._convert(min(people.ids), max(people.ids))
        self.assertEqual(set(skipped), set(people.ids))

    def test_a_write_in_direct_mode_sends_only_values_in_scope(self):
        # Direct mode encrypts each value in KeyManager: a write of records some of which are
        # out of scope reads their scope first, and sends KeyManager theirs only.
        self.use_as_registry_provider(self.direct)
        people = self.env["res.partner"].create(
            [dict(marker_values(n), is_registrant=True) for n in (961, 962)]
        )
        company = self.env["res.partner"].create({"name": "Zmarker0963 Company", "is_company": True})
        records = (people | company).with_context(tracking_disable=True)
        self.env.flush_all()
        self.env.invalidate_all()
        self.emulator.reset_counts()
        records.write({"city": "Zmarker0964ville"})
        self.env.flush_all()
        self.assertEqual(self.km_counts().get("/encrypt"), 2)
        self.env.cr.execute("SELECT city FROM res_partner WHERE id = %s", (company.id,))
        self.assertEqual(self.env.cr.fetchone()[0], "Zmarker0964ville")


class TestKeyManagerConfiguration(KeyManagerCase):
    def test_defaults_are_openg2p_s(self):
        provider = self.env["g2p.encryption.provider"].create({"name": "Defaults", "type": "keymanager"})
        self.assertEqual(provider.keymanager_api_base_url, "http://keymanager.keymanager/v1/keymanager")
        self.assertEqual(
            provider.keymanager_auth_url,
            "http://keycloak.keycloak/realms/openg2p/protocol/openid-connect/token",
        )
        self.assertEqual(provider.keymanager_auth_client_id, "openg2p-admin-client")
        self.assertEqual(provider.keymanager_auth_grant_type, "client_credentials")
        self.assertEqual(provider.keymanager_auth_method, "client_secret_post")
        self.assertEqual(provider.keymanager_api_timeout, 10)
        self.assertEqual(provider.keymanager_encrypt_application_id, "REGISTRATION")
        self.assertEqual(provider.keymanager_encrypt_reference_id, "ENCRYPT")
        self.assertEqual(provider.keymanager_sign_application_id, "ID_REPO")
        self.assertFalse(provider.keymanager_sign_reference_id)
        self.assertEqual(provider.keymanager_mode, "envelope")

    def test_salt_and_aad_are_generated_per_provider(self):
        other = self.make_direct_provider(name="Other")
        values = {
            self.km_provider.keymanager_encrypt_salt,
            self.km_provider.keymanager_encrypt_aad,
            other.keymanager_encrypt_salt,
            other.keymanager_encrypt_aad,
        }
        self.assertEqual(len(values), 4)
        for value in values:
            self.assertRegex(value, r"^[A-Za-z0-9_-]{43}$")
            self.assertEqual(len(b64_any(value)), 32)

    def test_basic_client_authentication(self):
        provider = self.make_keymanager_provider(name="Basic", keymanager_auth_method="client_secret_basic")
        self.assertEqual(provider.decrypt_data(provider.encrypt_data(b"x")), b"x")
        token_requests = [r for r in self.emulator.requests if r["endpoint"] == "token"]
        self.assertEqual(token_requests[-1]["client_auth"], "basic")

    def test_client_secret_is_stored_wrapped_by_the_master_key(self):
        secret = "Zsecret-" + os.urandom(8).hex()
        provider = self.make_keymanager_provider(name="Wrapped secret", keymanager_auth_client_secret=secret)
        wrapped = provider.sudo().keymanager_auth_client_secret_wrapped
        self.assertTrue(wrapped.startswith("g2pw1."))
        self.assertEqual(provider.sudo().keymanager_auth_client_secret, secret)
        provider.flush_recordset()
        self.assertNotIn(secret, database_text(self.env.cr))
        with master_key_file():  # the database restored elsewhere: the secret is unusable
            provider.invalidate_recordset()
            with self.assertRaises(G2PCryptoError):
                provider.sudo()._compute_keymanager_auth_client_secret()

    def test_client_secret_is_readable_only_by_crypto_admin(self):
        field = self.km_provider._fields["keymanager_auth_client_secret"]
        self.assertEqual(field.groups, "g2p_encryption.crypto_admin")
        as_admin = self.km_provider.with_user(self.crypto_admin)
        self.assertEqual(
            as_admin.read(["keymanager_auth_client_secret"])[0]["keymanager_auth_client_secret"],
            self.client_secret,
        )
        with self.assertRaises(AccessError):
            self.km_provider.with_user(self.clerk).read(["keymanager_auth_client_secret"])
        clerk_fields = self.env["g2p.encryption.provider"].with_user(self.clerk).fields_get()
        self.assertNotIn("keymanager_auth_client_secret", clerk_fields)
        self.assertIn("keymanager_auth_client_secret", as_admin.fields_get())
        # Without the group, even a user that may read providers does not get it.
        reader = self.env["res.users"].create(
            {
                "name": "Provider reader",
                "login": "g2p_provider_reader",
                "groups_id": [(6, 0, [self.env.ref("base.group_system").id])],
            }
        )
        self.assertNotIn(
            "keymanager_auth_client_secret",
            self.env["g2p.encryption.provider"].with_user(reader).fields_get(),
        )

    def test_the_form_shows_the_keymanager_page(self):
        arch = (
            self.env["g2p.encryption.provider"]
            .with_user(self.crypto_admin)
            .get_view(view_type="form")["arch"]
        )
        self.assertIn('name="keymanager"', arch)
        self.assertIn("action_test_connection", arch)
        self.assertIn("keymanager_monitoring_html", arch)
        self.assertRegex(arch, r'name="keymanager_auth_client_secret"[^>]*password="True"')
        self.assertNotIn("attrs=", arch)

    def test_monitoring_table_counts_calls(self):
        self.km_provider.encrypt_data(b"x")
        self.km_provider.invalidate_recordset(["keymanager_monitoring_html"])
        html = str(self.km_provider.keymanager_monitoring_html)
        self.assertIn("<table", html)
        self.assertRegex(html, r"KeyManager</td>\s*<td>/encrypt</td>\s*<td class=\"text-end\">1<")
        self.assertRegex(html, r"Keycloak</td>\s*<td>token</td>\s*<td class=\"text-end\">1<")
        self.assertNotIn(self.client_secret, html)
        self.assertFalse(self.provider.keymanager_monitoring_html)

    def test_monitoring_shows_the_last_error(self):
        self.emulator.faults.error_next(
            1, "KER-CRY-011", "Not Allowed to preform encryption", endpoint="/encrypt"
        )
        with self.assertRaises(UserError):
            self.km_provider.encrypt_data(b"x")
        self.km_provider.invalidate_recordset(["keymanager_monitoring_html"])
        html = str(self.km_provider.keymanager_monitoring_html)
        self.assertIn("keymanager: 1", html)
        self.assertIn("KER-CRY-011", html)

    def test_connection_test_success(self):
        action = self.km_provider.action_test_connection()
        self.assertEqual(action["tag"], "display_notification")
        params = action["params"]
        self.assertEqual(params["type"], "success")
        self.assertIn("Keycloak: token obtained", params["message"])
        self.assertIn("KeyManager: certificate of ID_REPO obtained", params["message"])
        self.assertEqual(self.km_counts().get("/getCertificate"), 1)
        self.assertIn("applicationId=ID_REPO", self.emulator.requests[-1]["path"])
        self.assertNotIn("referenceId", self.emulator.requests[-1]["path"])

    def test_connection_test_is_for_crypto_admins_only(self):
        with self.assertRaises(AccessError):
            self.km_provider.with_user(self.clerk).action_test_connection()
        self.assertEqual(self.km_counts(), {})  # refused before any call
        action = self.km_provider.with_user(self.crypto_admin).action_test_connection()
        self.assertEqual(action["params"]["type"], "success")

    def test_connection_test_names_the_failing_service(self):
        self.emulator.faults.reject_secret()
        params = self.km_provider.action_test_connection()["params"]
        self.assertEqual(params["type"], "danger")
        self.assertIn("Keycloak", params["message"])
        self.assertIn("HTTP 401", params["message"])
        self.assertIn("unauthorized_client", params["message"])
        self.emulator.faults.clear()
        self.emulator.faults.fail_next(5, 502, endpoint="/getCertificate")
        params = self.km_provider.action_test_connection()["params"]
        self.assertEqual(params["type"], "danger")
        self.assertIn("Keycloak: token obtained", params["message"])
        self.assertTrue(re.search(r"KeyManager /getCertificate \(HTTP 502\)", params["message"]), params)
