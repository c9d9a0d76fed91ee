# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
from odoo.exceptions import AccessError, UserError

from .common import G2PEncryptionCase, active_data_key


class TestKeySecurity(G2PEncryptionCase):
    def setUp(self):
        super().setUp()
        self.provider.encrypt_data(b"make a key")
        self.data_key = self.provider.key_ids.filtered(lambda k: k.usage == "encrypt")

    def test_clerk_cannot_read_providers(self):
        with self.assertRaises(AccessError):
            self.provider.with_user(self.clerk).read(["name"])

    def test_clerk_cannot_search_providers(self):
        with self.assertRaises(AccessError):
            self.env["g2p.encryption.provider"].with_user(self.clerk).search([])

    def test_clerk_cannot_change_or_create_providers(self):
        with self.assertRaises(AccessError):
            self.provider.with_user(self.clerk).write({"name": "mine"})
        with self.assertRaises(AccessError):
            self.env["g2p.encryption.provider"].with_user(self.clerk).create({"name": "mine"})

    def test_clerk_cannot_read_keys(self):
        with self.assertRaises(AccessError):
            self.data_key.with_user(self.clerk).read(["wrapped_key"])

    def test_a_clerk_registers_people_without_using_the_keys_himself(self):
        # Field values are encrypted by the engine; the provider's public methods are not his.
        self.env["ir.config_parameter"].sudo().set_param("g2p_encryption.encrypt_registry", "True")
        partner = (
            self.env["res.partner"].with_user(self.clerk).create({"name": "Amina", "is_registrant": True})
        )
        self.assertEqual(partner.name, "Amina")
        provider = self.provider.with_user(self.clerk)
        with self.assertRaises(AccessError):
            provider.encrypt_data(b"Amina")
        token = self.provider.sudo().encrypt_data(b"Amina")
        with self.assertRaises(AccessError):
            provider.decrypt_data(token)

    def test_crypto_admin_reads_providers_and_keys(self):
        provider = self.provider.with_user(self.crypto_admin)
        self.assertEqual(provider.name, self.provider.name)
        self.assertTrue(provider.key_ids)

    def test_key_material_is_written_only_by_the_provider(self):
        with self.assertRaises(AccessError):
            self.data_key.with_user(self.crypto_admin).write({"wrapped_key": "g2pw1.x.y"})
        with self.assertRaises(AccessError):
            self.data_key.sudo().write({"key_id": "forged"})
        with self.assertRaises(AccessError):
            self.env["g2p.encryption.key"].sudo().create(
                {"provider_id": self.provider.id, "key_id": "forged", "usage": "encrypt", "wrapped_key": "x"}
            )

    def test_keys_are_never_deleted(self):
        with self.assertRaises(AccessError):
            self.data_key.with_user(self.crypto_admin).unlink()
        with self.assertRaisesRegex(UserError, "never deleted"):
            self.data_key.sudo().unlink()

    def test_wrapped_key_is_not_the_key(self):
        key_id, key = active_data_key(self.provider)
        self.assertEqual(key_id, self.data_key.key_id)
        self.assertNotIn(key.hex(), self.data_key.wrapped_key)
        self.assertTrue(self.data_key.wrapped_key.startswith("g2pw1."))

    def test_a_provider_with_keys_is_never_deleted(self):
        with self.assertRaisesRegex(UserError, "never deleted"):
            self.provider.unlink()
        empty = self.env["g2p.encryption.provider"].create({"name": "Unused"})
        empty.unlink()
        self.assertFalse(empty.exists())
