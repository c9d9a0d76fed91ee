# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
import base64
import logging
import os
import stat
import tempfile
from unittest.mock import patch

from odoo.exceptions import UserError
from odoo.tools import config

from ..core import envelope
from ..models.encryption_provider_local import MASTER_KEY_ENV, forget_master_keys, local_master_key
from .common import (
    G2PEncryptionCase,
    active_data_key,
    database_text,
    decrypt_values,
    encrypt_values,
    master_key_file,
)

SIZES = (0, 1, 15, 16, 17, 255, 4096, 100_000)


class TestLocalProvider(G2PEncryptionCase):
    def test_default_provider_is_local(self):
        self.assertEqual(self.provider.type, "local")
        self.assertEqual(self.env["g2p.encryption.provider"]._get_registry_provider(), self.provider)

    def test_round_trip_of_many_sizes(self):
        for size in SIZES:
            data = os.urandom(size)
            with self.subTest(size=size):
                token = self.provider.encrypt_data(data)
                self.assertIsInstance(token, bytes)
                self.assertEqual(self.provider.decrypt_data(token), data)

    def test_round_trip_of_unicode(self):
        text = "Zoë Ñúñez — 山田太郎 — Ахмед — 🇰🇪 — عائشة".encode()
        token = self.provider.encrypt_data(text, aad=b"res.partner|name")
        self.assertNotIn(text, token)
        self.assertEqual(self.provider.decrypt_data(token, aad=b"res.partner|name"), text)

    def test_ciphertext_is_self_describing(self):
        token = self.provider.encrypt_data(b"Amina").decode()
        key = self.provider.key_ids.filtered(lambda k: k.usage == "encrypt" and k.state == "active")
        self.assertEqual(envelope.key_id_of(token), key.key_id)
        self.assertTrue(token.startswith(envelope.PREFIX))

    def test_same_plaintext_gives_different_ciphertexts(self):
        self.assertNotEqual(self.provider.encrypt_data(b"Amina"), self.provider.encrypt_data(b"Amina"))

    def test_tampered_ciphertext_is_rejected(self):
        token = bytearray(self.provider.encrypt_data(b"Joseph Mwangi"))
        token[-5] = ord("A") if token[-5] != ord("A") else ord("B")
        with self.assertRaises(UserError):
            self.provider.decrypt_data(bytes(token))

    def test_wrong_aad_is_rejected(self):
        token = self.provider.encrypt_data(b"+254700100201", aad=b"res.partner|phone")
        with self.assertRaisesRegex(UserError, "failed authentication"):
            self.provider.decrypt_data(token, aad=b"res.partner|mobile")
        with self.assertRaises(UserError):
            self.provider.decrypt_data(token)

    def test_garbage_is_rejected_clearly(self):
        with self.assertRaises(UserError):
            self.provider.decrypt_data(b"Joseph Mwangi")

    def test_batch_uses_one_key(self):
        values = [f"registrant {i}".encode() for i in range(50)]
        tokens = encrypt_values(self.provider, values, aad=b"x")
        self.assertEqual(len({envelope.key_id_of(t) for t in tokens}), 1)
        self.assertEqual(decrypt_values(self.provider, tokens, aad=b"x"), values)

    def test_rotation_keeps_old_data_readable(self):
        old_token = self.provider.encrypt_data(b"before rotation")
        old_key = self.provider.key_ids.filtered(lambda k: k.usage == "encrypt" and k.state == "active")
        self.provider.action_rotate_key()
        new_token = self.provider.encrypt_data(b"after rotation")
        self.assertNotEqual(envelope.key_id_of(old_token.decode()), envelope.key_id_of(new_token.decode()))
        self.assertEqual(old_key.state, "retired")
        self.assertTrue(old_key.retired_date)
        self.assertEqual(self.provider.decrypt_data(old_token), b"before rotation")
        self.assertEqual(self.provider.decrypt_data(new_token), b"after rotation")
        active = self.provider.key_ids.filtered(
            lambda k: k.state == "active" and k.usage in ("encrypt", "sign")
        )
        self.assertEqual(sorted(active.mapped("usage")), ["encrypt", "sign"])

    def test_rotation_retires_and_lists_keys_with_dates(self):
        self.provider.encrypt_data(b"x")
        self.provider.action_rotate_key()
        self.provider.action_rotate_key()
        data_keys = self.provider.key_ids.filtered(lambda k: k.usage == "encrypt")
        self.assertEqual(sorted(data_keys.mapped("state")), ["active", "retired", "retired"])
        for key in data_keys:
            self.assertTrue(key.create_date)
        self.assertTrue(all(data_keys.filtered(lambda k: k.state == "retired").mapped("retired_date")))

    def test_ciphertext_of_another_database_is_refused(self):
        other = self.env["g2p.encryption.provider"].create({"name": "Other", "type": "local"})
        token = other.encrypt_data(b"secret")
        with self.assertRaisesRegex(UserError, "no data key"):
            self.provider.decrypt_data(token)

    def test_unknown_type_gives_a_clear_error(self):
        # What a module's new type meets before it defines its methods.
        with patch.object(type(self.provider), "_encrypt_data_local", None):
            with self.assertRaisesRegex(UserError, "does not implement encrypt_data"):
                self.provider.encrypt_data(b"x")


class TestMasterKey(G2PEncryptionCase):
    def setUp(self):
        super().setUp()
        # A provider of its own: its keys are made under the master key each test configures.
        self.provider = self.env["g2p.encryption.provider"].create({"name": "Master key test"})

    def test_without_the_key_file_nothing_decrypts(self):
        token = self.provider.encrypt_data(b"Grace Otieno")
        with master_key_file():  # the database restored on a server with another key
            with self.assertRaisesRegex(UserError, "(?i)master key"):
                self.provider.decrypt_data(token)
        self.assertEqual(self.provider.decrypt_data(token), b"Grace Otieno")

    def test_the_same_key_file_elsewhere_decrypts(self):
        key = os.urandom(32)
        with master_key_file(key):
            token = self.provider.encrypt_data(b"Grace Otieno")
        with master_key_file(key):
            self.assertEqual(self.provider.decrypt_data(token), b"Grace Otieno")

    def test_no_key_in_the_clear_in_the_database(self):
        key = os.urandom(32)
        with master_key_file(key):
            self.provider.encrypt_data(b"x")
            self.provider.jwt_sign({"a": 1})
            data_key_id, data_key = active_data_key(self.provider)
            dump = database_text(self.env.cr)
        for secret in (key, data_key):
            forms = (base64.b64encode(secret), base64.urlsafe_b64encode(secret).rstrip(b"="), secret.hex())
            for form in forms:
                self.assertNotIn(form if isinstance(form, str) else form.decode(), dump)
        self.assertIn(data_key_id, dump)  # the scan does see the key records

    def test_missing_key_file_is_reported(self):
        with patch.dict(config.options, {"g2p_encryption_master_key_file": "/nonexistent/master.key"}):
            forget_master_keys()
            self.addCleanup(forget_master_keys)
            with self.assertRaisesRegex(UserError, "/nonexistent/master.key"):
                self.provider.encrypt_data(b"x")

    def test_generated_once_in_the_data_dir_with_a_warning(self):
        with tempfile.TemporaryDirectory() as data_dir:
            options = {
                "g2p_encryption_master_key_file": "",
                "g2p_encryption_master_key": "",
                "data_dir": data_dir,
            }
            with patch.dict(config.options, options), patch.dict(os.environ, {MASTER_KEY_ENV: ""}):
                forget_master_keys()
                self.addCleanup(forget_master_keys)
                with self.assertLogs("odoo.addons.g2p_encryption", level=logging.WARNING) as logs:
                    first = local_master_key()
                path = os.path.join(data_dir, "g2p_encryption", "master.key")
                self.assertIn(path, "\n".join(logs.output))
                self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
                forget_master_keys()
                self.assertEqual(local_master_key().key_id, first.key_id)  # read back, not regenerated

    def test_key_file_from_the_environment(self):
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "env.key")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, base64.b64encode(os.urandom(32)))
            os.close(fd)
            with (
                patch.dict(config.options, {"g2p_encryption_master_key_file": ""}),
                patch.dict(os.environ, {MASTER_KEY_ENV: path}),
            ):
                forget_master_keys()
                self.addCleanup(forget_master_keys)
                token = self.provider.encrypt_data(b"from env")
                key_record = self.provider.key_ids.filtered(lambda k: k.usage == "encrypt")
                self.assertEqual(key_record.wrapped_by, local_master_key().key_id)
                self.assertEqual(self.provider.decrypt_data(token), b"from env")
