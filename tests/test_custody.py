# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Sealed key custody of the local provider: initialise, unseal, seal, rekey, on real PostgreSQL.

A "restart" is simulated the two ways a real one looks to the code: the memory store of this
server is emptied, or the server instance id changes (new master pid or start time).
"""

import itertools
import os
from unittest.mock import patch

from odoo.exceptions import UserError

from ..core import custody, envelope
from ..core.errors import G2PCryptoError
from ..core.master_key import MasterKey
from ..models import key_custody
from ..models.encryption_provider import clear_data_key_cache
from ..models.encryption_provider_local import local_master_key
from .common import G2PEncryptionCase

SEALED = r"is sealed: %d of %d shares entered"


def alter_one_word(share, position=12):
    words = share.split()
    words[position] = "academic" if words[position] != "academic" else "acid"
    return " ".join(words)


class CustodyCase(G2PEncryptionCase):
    """A fresh local provider with data under its key-file master key (no tests here)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sealed_provider = cls.env["g2p.encryption.provider"].create(
            {"name": "Custody test", "type": "local"}
        )

    def setUp(self):
        super().setUp()
        self.addCleanup(self.forget_memory)
        self.old_token = self.sealed_provider.encrypt_data(b"Amina Wanjiru", aad=b"res.partner|name")

    def forget_memory(self):
        """What a restart does to this server's memory store and worker caches."""
        key_custody.custody_store().remove_scope(self.sealed_provider._custody_scope())
        clear_data_key_cache()

    def initialise(self, threshold=3, share_count=5, provider=None):
        provider = provider or self.sealed_provider
        return provider._custody_initialise(threshold, share_count)

    def enter(self, shares, kind="unseal", provider=None):
        provider = provider or self.sealed_provider
        return [provider._custody_enter_share(share, kind) for share in shares]

    def restart(self):
        self.forget_memory()
        self.sealed_provider.invalidate_recordset()

    def assertSealed(self, entered=0, threshold=3, provider=None):
        provider = provider or self.sealed_provider
        with self.assertRaisesRegex(UserError, SEALED % (entered, threshold)):
            provider.encrypt_data(b"x")
        self.assertEqual(provider.custody_state, "sealed")

    def log_events(self, provider=None):
        provider = provider or self.sealed_provider
        logs = self.env["g2p.encryption.custody.log"].search([("provider_id", "=", provider.id)], order="id")
        return logs.mapped("event")


class TestInitialise(CustodyCase):
    def test_initialise_moves_to_sealed_and_keeps_data_readable(self):
        keys_before = {key.key_id: key.wrapped_key for key in self.sealed_provider.key_ids}
        share_set = self.initialise()
        self.assertEqual(len(share_set.shares), 5)
        provider = self.sealed_provider
        self.assertEqual(provider.custody_mode, "sealed")
        self.assertEqual((provider.custody_threshold, provider.custody_share_count), (3, 5))
        self.assertEqual(provider.custody_state, "unsealed")  # the initialising server keeps the key
        # Same data keys (nothing re-encrypted), wrapped anew under the sealed master key.
        self.assertEqual(set(keys_before), set(provider.key_ids.mapped("key_id")))
        for key in provider.key_ids:
            self.assertNotEqual(key.wrapped_key, keys_before[key.key_id])
            self.assertEqual(key.wrapped_by, provider.custody_master_key_id)
        self.assertNotEqual(provider.custody_master_key_id, local_master_key().key_id)
        clear_data_key_cache()
        self.assertEqual(provider.decrypt_data(self.old_token, aad=b"res.partner|name"), b"Amina Wanjiru")
        self.assertIn("initialise", self.log_events())

    def test_every_key_usage_and_state_is_rewrapped(self):
        self.sealed_provider.jwt_sign({"voucher": 1})
        self.sealed_provider.action_rotate_key()  # retired data and signing keys too
        self.sealed_provider.encrypt_data(b"after rotation")
        keys = self.sealed_provider.key_ids
        self.assertEqual(set(keys.mapped("state")), {"active", "retired"})
        self.assertEqual(set(keys.mapped("usage")), {"encrypt", "sign"})
        self.initialise()
        self.assertEqual(set(keys.mapped("wrapped_by")), {self.sealed_provider.custody_master_key_id})
        clear_data_key_cache()
        token = self.sealed_provider.jwt_sign({"voucher": 2})
        self.assertEqual(self.sealed_provider.jwt_verify(token)["voucher"], 2)
        self.assertEqual(
            self.sealed_provider.decrypt_data(self.old_token, aad=b"res.partner|name"), b"Amina Wanjiru"
        )

    def test_the_key_file_no_longer_opens_the_keys(self):
        self.initialise()
        key = self.sealed_provider.key_ids.filtered(lambda k: k.usage == "encrypt")[:1]
        with self.assertRaises(G2PCryptoError):
            local_master_key().unwrap(key.key_id, key.wrapped_key, key._wrap_purpose())

    def test_split_parameters_are_checked(self):
        for threshold, count in ((1, 3), (4, 3), (3, 11), (0, 0)):
            with (
                self.subTest(threshold=threshold, count=count),
                self.assertRaisesRegex(UserError, "Cannot split"),
            ):
                self.initialise(threshold, count)
        self.assertEqual(self.sealed_provider.custody_mode, "key_file")

    def test_initialising_twice_is_refused(self):
        self.initialise()
        with self.assertRaisesRegex(UserError, "already in sealed custody"):
            self.initialise()

    def test_key_file_providers_have_no_custody_actions(self):
        with self.assertRaisesRegex(UserError, "not in sealed custody"):
            self.sealed_provider._custody_enter_share("x")
        with self.assertRaisesRegex(UserError, "not in sealed custody"):
            self.sealed_provider.action_custody_seal()
        with self.assertRaisesRegex(UserError, "not in sealed custody"):
            self.sealed_provider._custody_rekey("shares", 3, 5)

    def test_key_file_providers_are_untouched(self):
        self.initialise()
        self.assertEqual(self.provider.custody_mode, "key_file")
        self.assertEqual(self.provider.custody_state, "key_file")
        token = self.provider.encrypt_data(b"default provider")
        self.assertEqual(self.provider.decrypt_data(token), b"default provider")
        key = self.provider.key_ids.filtered(lambda k: k.usage == "encrypt" and k.state == "active")
        self.assertEqual(key.wrapped_by, local_master_key().key_id)


class TestUnseal(CustodyCase):
    def setUp(self):
        super().setUp()
        self.share_set = self.initialise()
        self.shares = self.share_set.shares
        self.restart()

    def test_a_restart_seals(self):
        self.assertSealed()
        with self.assertRaisesRegex(UserError, SEALED % (0, 3)):
            self.sealed_provider.decrypt_data(self.old_token, aad=b"res.partner|name")

    def test_any_three_shares_unseal(self):
        combinations = list(itertools.combinations(range(5), 3))
        for combination in (combinations[0], combinations[4], combinations[-1], (4, 0, 2)):
            with self.subTest(shares=combination):
                results = self.enter([self.shares[i] for i in combination])
                self.assertEqual([r["status"] for r in results], ["accepted", "accepted", "unsealed"])
                self.assertEqual(results[1]["count"], 2)
                self.assertEqual(self.sealed_provider.custody_state, "unsealed")
                self.assertEqual(
                    self.sealed_provider.decrypt_data(self.old_token, aad=b"res.partner|name"),
                    b"Amina Wanjiru",
                )
                self.restart()
                self.assertSealed()

    def test_two_shares_do_not_unseal(self):
        results = self.enter(self.shares[3:5])
        self.assertEqual([r["status"] for r in results], ["accepted", "accepted"])
        self.assertSealed(entered=2)
        self.assertEqual(self.sealed_provider.custody_shares_entered, 2)

    def test_progress_is_in_the_error(self):
        self.enter(self.shares[:1])
        self.assertSealed(entered=1)

    def test_an_altered_share_is_rejected_and_counted(self):
        result = self.sealed_provider._custody_enter_share(alter_one_word(self.shares[0]))
        self.assertEqual(result["status"], "rejected")
        self.assertIn("checksum", result["reason"])
        self.assertEqual((result["count"], result["rejected"]), (0, 1))
        self.assertSealed(entered=0)
        self.assertIn("unseal_rejected", self.log_events())

    def test_a_share_of_another_set_is_rejected(self):
        other = custody.split_key(os.urandom(32), 3, 5)
        self.enter(self.shares[:1])
        result = self.sealed_provider._custody_enter_share(other.shares[1])
        self.assertEqual(result["status"], "rejected")
        self.assertIn("another share set", result["reason"])
        self.assertEqual(result["count"], 1)

    def test_the_same_share_twice_is_rejected(self):
        first, second = self.enter([self.shares[2], self.shares[2].upper()])
        self.assertEqual((first["status"], second["status"]), ("accepted", "rejected"))
        self.assertIn("already entered", second["reason"])
        self.assertSealed(entered=1)

    def test_rejections_do_not_lose_good_shares(self):
        results = self.enter(
            [self.shares[0], "not a share", alter_one_word(self.shares[1]), self.shares[1], self.shares[4]]
        )
        self.assertEqual(
            [r["status"] for r in results], ["accepted", "rejected", "rejected", "accepted", "unsealed"]
        )
        self.assertEqual(results[2]["rejected"], 2)
        server = self.sealed_provider._custody_server()
        self.assertEqual(server.state, "unsealed")
        self.assertEqual(server.rejected_shares, 2)

    def test_a_new_server_instance_is_sealed(self):
        self.enter(self.shares[:3])
        self.assertEqual(self.sealed_provider.custody_state, "unsealed")
        boot, pid, ticks = key_custody.current_instance_id().split("-")
        restarted = f"{boot}-{pid}-{int(ticks) + 7}"
        with patch.object(key_custody, "current_instance_id", return_value=restarted):
            clear_data_key_cache()
            self.sealed_provider.invalidate_recordset()
            self.assertSealed()
            self.enter(self.shares[2:5])
            self.assertEqual(
                self.sealed_provider.decrypt_data(self.old_token, aad=b"res.partner|name"), b"Amina Wanjiru"
            )
            key_custody.custody_store().remove_scope(self.sealed_provider._custody_scope())
        servers = self.sealed_provider.custody_server_ids
        self.assertEqual(set(servers.mapped("instance_id")), {restarted, key_custody.current_instance_id()})

    def test_sealed_encryption_stores_nothing(self):
        count_before = self.env["g2p.encryption.key"].search_count([])
        provider = self.env["g2p.encryption.provider"].browse(self.sealed_provider.id)
        provider.key_ids.filtered(lambda k: k.usage == "encrypt").with_context(g2p_key_material=True).write(
            {"state": "retired"}
        )
        # Even the first data key, which a first encryption would make, needs the master key.
        with self.assertRaisesRegex(UserError, SEALED % (0, 3)):
            provider.encrypt_data(b"Joseph Mwangi")
        with self.assertRaisesRegex(UserError, SEALED % (0, 3)):
            provider.encrypt_values([b"a", b"b"], aad=b"x")
        self.assertEqual(self.env["g2p.encryption.key"].search_count([]), count_before)

    def test_sealed_signing_fails(self):
        with self.assertRaisesRegex(UserError, SEALED % (0, 3)):
            self.sealed_provider.jwt_sign({"voucher": "V-1"})

    def test_public_keys_stay_published_while_sealed(self):
        self.enter(self.shares[:3])
        token = self.sealed_provider.jwt_sign({"voucher": "V-2"})
        self.restart()
        self.assertTrue(self.sealed_provider.get_jwks()["keys"])
        self.assertEqual(self.sealed_provider.jwt_verify(token)["voucher"], "V-2")

    def test_cached_data_keys_are_not_used_once_sealed(self):
        self.enter(self.shares[:3])
        self.sealed_provider.decrypt_data(self.old_token, aad=b"res.partner|name")  # warm the worker cache
        # Another worker seals: only the memory store changes, this worker's cache is warm.
        key_custody.custody_store().remove_scope(self.sealed_provider._custody_scope())
        with self.assertRaisesRegex(UserError, SEALED % (0, 3)):
            self.sealed_provider.decrypt_data(self.old_token, aad=b"res.partner|name")

    def test_seal_now(self):
        self.enter(self.shares[:3])
        self.enter(self.shares[3:4])  # already unsealed: nothing to do
        self.sealed_provider.action_custody_seal()
        self.assertSealed()
        self.assertEqual(self._scope_files(), [])
        self.assertEqual(self.sealed_provider._custody_server().state, "sealed")
        self.assertEqual(self.log_events()[-1], "seal")

    def _scope_files(self):
        store = key_custody.custody_store()
        scope = self.sealed_provider._custody_scope()
        return [kind for kind in ("key", "unseal", "rekey") if store.exists(scope, kind)]

    def test_seal_now_drops_shares_entered(self):
        self.enter(self.shares[:2])
        self.sealed_provider.action_custody_seal()
        self.assertSealed(entered=0)
        self.assertEqual(self._scope_files(), [])

    def test_unseal_is_audited(self):
        self.enter([self.shares[1], "garbage words", self.shares[3], self.shares[0]])
        events = self.log_events()
        self.assertEqual(events[-4:], ["unseal_share", "unseal_rejected", "unseal_share", "unseal"])
        log = self.env["g2p.encryption.custody.log"].search(
            [("provider_id", "=", self.sealed_provider.id), ("event", "=", "unseal")]
        )
        self.assertEqual(log.user_id, self.env.user)
        self.assertTrue(log.date and log.hostname and log.instance_id)
        self.assertIn("1, 2, 4", log.detail)

    def test_a_key_that_fails_its_check_is_not_used(self):
        self.enter(self.shares[:3])
        store, scope = key_custody.custody_store(), self.sealed_provider._custody_scope()
        store.put(scope, "key", custody.encode_key_file(os.urandom(32)))  # e.g. rekeyed elsewhere
        clear_data_key_cache()
        self.assertSealed()
        self.assertFalse(store.exists(scope, "key"))

    def test_check_action_reports_the_worker(self):
        self.enter(self.shares[:3])
        first = self.sealed_provider.action_custody_check()["params"]
        self.assertTrue(first["round_trip"])
        self.assertEqual(first["pid"], os.getpid())
        self.assertEqual(first["instance_id"], key_custody.current_instance_id())
        clear_data_key_cache()
        second = self.sealed_provider.action_custody_check(token=first["token"])["params"]
        self.assertEqual(second["decrypted"], first["probe"])
        # Registry ciphertext is bound to its model and field: the probe check cannot open it.
        with self.assertRaisesRegex(UserError, "failed authentication"):
            self.sealed_provider.action_custody_check(token=self.old_token.decode())
        self.restart()
        with self.assertRaisesRegex(UserError, SEALED % (0, 3)):
            self.sealed_provider.action_custody_check()


class TestRekey(CustodyCase):
    def setUp(self):
        super().setUp()
        self.shares = self.initialise().shares

    def test_new_shares_for_the_same_key(self):
        key_id = self.sealed_provider.custody_master_key_id
        wrapped = self.sealed_provider.key_ids.mapped("wrapped_key")
        self.enter(self.shares[1:4], kind="rekey")
        share_set, reason = self.sealed_provider._custody_rekey("shares", 2, 4)
        self.assertIsNone(reason)
        self.assertEqual(len(share_set.shares), 4)
        self.assertEqual(self.sealed_provider.custody_master_key_id, key_id)
        self.assertEqual(self.sealed_provider.key_ids.mapped("wrapped_key"), wrapped)
        self.assertEqual(
            (self.sealed_provider.custody_threshold, self.sealed_provider.custody_share_count), (2, 4)
        )
        self.restart()
        result = self.sealed_provider._custody_enter_share(self.shares[0])
        self.assertEqual(result["status"], "rejected")  # the old set no longer counts
        results = self.enter(share_set.shares[2:4])
        self.assertEqual(results[-1]["status"], "unsealed")
        self.assertEqual(
            self.sealed_provider.decrypt_data(self.old_token, aad=b"res.partner|name"), b"Amina Wanjiru"
        )
        self.assertIn("rekey", self.log_events())

    def test_new_master_key(self):
        old_key_id = self.sealed_provider.custody_master_key_id
        self.enter(self.shares[:3], kind="rekey")
        share_set, _reason = self.sealed_provider._custody_rekey("master", 3, 5)
        provider = self.sealed_provider
        self.assertNotEqual(provider.custody_master_key_id, old_key_id)
        self.assertEqual(set(provider.key_ids.mapped("wrapped_by")), {provider.custody_master_key_id})
        # This server was unsealed: it now holds the new key.
        clear_data_key_cache()
        self.assertEqual(provider.decrypt_data(self.old_token, aad=b"res.partner|name"), b"Amina Wanjiru")
        self.restart()
        self.assertEqual(self.enter(self.shares[:1])[0]["status"], "rejected")
        self.assertEqual(self.enter(share_set.shares[:3])[-1]["status"], "unsealed")
        self.assertEqual(provider.decrypt_data(self.old_token, aad=b"res.partner|name"), b"Amina Wanjiru")
        self.assertIn("rekey_master", self.log_events())

    def test_rekey_works_on_a_sealed_server_and_leaves_it_sealed(self):
        self.restart()
        self.enter(self.shares[2:5], kind="rekey")
        share_set, _reason = self.sealed_provider._custody_rekey("master", 2, 3)
        self.assertSealed(threshold=2)
        self.enter(share_set.shares[:2])
        self.assertEqual(self.sealed_provider.custody_state, "unsealed")

    def test_rekey_needs_enough_current_shares(self):
        self.enter(self.shares[:2], kind="rekey")
        with self.assertRaisesRegex(UserError, "2 of 3 current shares"):
            self.sealed_provider._custody_rekey("shares", 3, 5)

    def test_rekey_shares_do_not_count_towards_an_unseal(self):
        self.restart()
        self.enter(self.shares[:2], kind="rekey")
        self.assertSealed(entered=0)

    def test_rekey_parameters_are_checked(self):
        self.enter(self.shares[:3], kind="rekey")
        with self.assertRaisesRegex(UserError, "Cannot split"):
            self.sealed_provider._custody_rekey("shares", 1, 5)

    def test_rekey_refuses_shares_of_a_database_restored_elsewhere(self):
        # The shares rebuild a key, but not the one this database's check value names.
        self.enter(self.shares[:3], kind="rekey")
        self.sealed_provider.with_context(g2p_custody=True).write(
            {"custody_check_value": custody.check_value(os.urandom(32))}
        )
        share_set, reason = self.sealed_provider._custody_rekey("shares", 3, 5)
        self.assertIsNone(share_set)
        self.assertIn("check value", reason)
        self.assertEqual(self.log_events()[-1], "rekey_rejected")

    def test_abandoned_rekey_forgets_its_shares(self):
        self.enter(self.shares[:2], kind="rekey")
        self.sealed_provider._custody_forget_rekey()
        self.assertEqual(self.sealed_provider._custody_progress("rekey"), {})


class TestServers(CustodyCase):
    def test_server_list_follows_seal_and_unseal(self):
        shares = self.initialise().shares
        server = self.sealed_provider._custody_server()
        self.assertEqual((server.state, server.is_this_server), ("unsealed", True))
        self.sealed_provider.action_custody_seal()
        self.assertEqual(server.state, "sealed")
        self.enter(shares[:1])
        self.assertEqual((server.state, server.shares_entered), ("sealed", 1))
        self.enter(shares[1:3])
        self.assertEqual((server.state, server.shares_entered), ("unsealed", 0))

    def test_stopped_instances_of_this_machine_are_marked(self):
        self.initialise()
        boot = key_custody.current_instance_id().split("-")[0]
        gone = (
            self.env["g2p.encryption.custody.server"]
            .sudo()
            .create(
                {
                    "provider_id": self.sealed_provider.id,
                    "hostname": self.sealed_provider._custody_server().hostname,
                    "instance_id": f"{boot}-999999999-1",
                    "state": "unsealed",
                }
            )
        )
        restarted = f"{boot}-{os.getpid()}-1"
        with patch.object(key_custody, "current_instance_id", return_value=restarted):
            self.sealed_provider._custody_server()
        self.assertEqual(gone.state, "stopped")

    def test_files_of_stopped_servers_are_removed(self):
        self.initialise()
        boot = key_custody.current_instance_id().split("-")[0]
        dead = custody.InstanceStore(f"{boot}-999999999-1", key_custody.custody_store().directory)
        scope = self.sealed_provider._custody_scope()
        dead.put(scope, "key", custody.encode_key_file(os.urandom(32)))
        self.addCleanup(dead.remove_scope, scope)
        self.sealed_provider._register_hook()
        self.assertFalse(dead.exists(scope, "key"))
        self.assertTrue(key_custody.custody_store().exists(scope, "key"))

    def test_sealed_master_key_is_a_master_key(self):
        self.initialise()
        master = self.sealed_provider._local_master_key()
        self.assertIsInstance(master, MasterKey)
        self.assertEqual(master.key_id, self.sealed_provider.custody_master_key_id)
        token = self.sealed_provider.encrypt_data(b"x")
        self.assertTrue(envelope.is_token(token))
