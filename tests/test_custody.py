# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Sealed key custody of the local provider: ceremonies, unseal, seal, rekey, on real PostgreSQL.

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
from ..models import custody_server
from ..models.custody_server import ServerMemory
from ..models.encryption_provider import clear_data_key_cache
from ..models.encryption_provider_local import local_master_key
from ..models.rpc_guard import internal
from .common import G2PEncryptionCase, encrypt_values

SEALED = r"is sealed: %d of %d shares entered"
AAD = b"res.partner|name"


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
        cls.ceremonies = cls.env["g2p.encryption.custody.ceremony"]

    def setUp(self):
        super().setUp()
        self.addCleanup(self.forget_memory)
        self.old_token = self.sealed_provider.encrypt_data(b"Amina Wanjiru", aad=AAD)

    @property
    def custody(self):
        return self.sealed_provider.custody_id

    def memory(self, provider=None):
        return ServerMemory(self.env, (provider or self.sealed_provider).id)

    def forget_memory(self):
        """What a restart does to this server's memory store and worker caches."""
        self.memory().forget()
        clear_data_key_cache()

    def start_initialise(self, threshold=3, share_count=5, provider=None):
        """Phase 1: the ceremony and the shares it shows."""
        ceremony = self.ceremonies._start_initialise(provider or self.sealed_provider, threshold, share_count)
        return ceremony, ceremony._pending().shares

    def confirm(self, ceremony, shares):
        """Phase 2: hide the shares, then enter them back; the outcome of each."""
        if ceremony.state == "shown":
            ceremony.action_confirm_start()
        return [ceremony._take_share(share) for share in shares]

    def initialise(self, threshold=3, share_count=5, provider=None):
        """Both phases with the first k shares; the shares handed out."""
        ceremony, shares = self.start_initialise(threshold, share_count, provider)
        results = self.confirm(ceremony, shares[:threshold])
        self.assertEqual(results[-1]["status"], "done")
        (provider or self.sealed_provider).invalidate_recordset()
        return shares

    def enter(self, shares, kind="unseal", provider=None):
        custody_record = (provider or self.sealed_provider).custody_id
        return [custody_record._enter_share(share, kind) for share in shares]

    def restart(self):
        self.forget_memory()
        self.sealed_provider.invalidate_recordset()
        self.env["g2p.encryption.custody"].invalidate_model()

    def assertSealed(self, entered=0, threshold=3, provider=None):
        provider = provider or self.sealed_provider
        with self.assertRaisesRegex(UserError, SEALED % (entered, threshold)):
            provider.encrypt_data(b"x")
        provider.invalidate_recordset()
        self.assertEqual(provider.custody_state, "sealed")

    def assertReadable(self, provider=None):
        provider = provider or self.sealed_provider
        clear_data_key_cache()
        self.assertEqual(provider.decrypt_data(self.old_token, aad=AAD), b"Amina Wanjiru")

    def log_events(self, provider=None):
        provider = provider or self.sealed_provider
        logs = self.env["g2p.encryption.event"].search([("provider_id", "=", provider.id)], order="id")
        return logs.mapped("event")

    def wrapped_keys(self, provider=None):
        return {
            key.key_id: (key.wrapped_key, key.wrapped_by)
            for key in (provider or self.sealed_provider).key_ids
        }


class TestInitialise(CustodyCase):
    def test_the_key_file_stays_in_force_until_the_shares_are_confirmed(self):
        keys_before = self.wrapped_keys()
        ceremony, shares = self.start_initialise()
        self.assertEqual((len(shares), ceremony.state, ceremony.kind), (5, "shown", "initialise"))
        self.assertEqual(self.sealed_provider.custody_mode, "key_file")
        self.assertEqual(self.wrapped_keys(), keys_before)
        self.assertReadable()
        self.assertEqual(self.confirm(ceremony, shares[4:5])[0]["status"], "accepted")
        self.assertEqual(self.sealed_provider.custody_mode, "key_file")
        self.assertEqual(self.wrapped_keys(), keys_before)
        self.restart()  # a restart while confirming: the key file still opens everything
        self.assertReadable()

    def test_confirmed_shares_move_to_sealed_and_keep_data_readable(self):
        keys_before = self.wrapped_keys()
        ceremony, shares = self.start_initialise()
        results = self.confirm(ceremony, [shares[3], shares[0], shares[4]])
        self.assertEqual([r["status"] for r in results], ["accepted", "accepted", "done"])
        self.assertEqual(ceremony.state, "done")
        provider = self.sealed_provider
        provider.invalidate_recordset()
        self.assertEqual(provider.custody_mode, "sealed")
        self.assertEqual((self.custody.threshold, self.custody.share_count), (3, 5))
        self.assertEqual(provider.custody_state, "unsealed")  # the initialising server keeps the key
        # Same data keys (nothing re-encrypted), wrapped anew under the sealed master key.
        self.assertEqual(set(keys_before), set(provider.key_ids.mapped("key_id")))
        for key in provider.key_ids:
            self.assertNotEqual(key.wrapped_key, keys_before[key.key_id][0])
            self.assertEqual(key.wrapped_by, self.custody.master_key_id)
        self.assertNotEqual(self.custody.master_key_id, local_master_key().key_id)
        self.assertReadable()
        self.assertEqual(
            self.log_events()[-5:],
            ["initialise_started", "ceremony_share", "ceremony_share", "ceremony_share", "initialise"],
        )
        # Any three of the shares handed out unseal it after a restart.
        self.restart()
        self.assertSealed()
        self.assertEqual(self.enter(shares[1:4])[-1]["status"], "unsealed")
        self.assertReadable()

    def test_an_abandoned_initialise_changes_nothing(self):
        keys_before = self.wrapped_keys()
        ceremony, shares = self.start_initialise()
        self.confirm(ceremony, shares[:2])
        ceremony.action_abandon()
        self.assertEqual(ceremony.state, "abandoned")
        self.sealed_provider.invalidate_recordset()
        self.assertEqual(self.sealed_provider.custody_mode, "key_file")
        self.assertFalse(self.sealed_provider.custody_ids)
        self.assertEqual(self.wrapped_keys(), keys_before)
        self.assertReadable()
        self.assertFalse(self.memory().has("ceremony") or self.memory().has("confirm"))
        with self.assertRaisesRegex(UserError, "over"):
            ceremony._take_share(shares[2])
        self.assertEqual(self.log_events()[-1], "ceremony_abandoned")
        self.restart()
        self.assertReadable()

    def test_shares_are_entered_back_only_after_they_were_handed_out(self):
        ceremony, shares = self.start_initialise()
        with self.assertRaisesRegex(UserError, "confirm them"):
            ceremony._take_share(shares[0])
        ceremony.action_confirm_start()
        self.assertEqual(ceremony._pending().shares, [])  # hidden for good
        self.assertFalse(ceremony.shares_html)

    def test_a_wrong_share_is_rejected_and_the_ceremony_goes_on(self):
        ceremony, shares = self.start_initialise(2, 3)
        other = custody.split_key(os.urandom(32), 2, 3)
        results = self.confirm(
            ceremony, [alter_one_word(shares[0]), other.shares[0], shares[1], shares[1], shares[2]]
        )
        self.assertEqual(
            [r["status"] for r in results], ["rejected", "rejected", "accepted", "rejected", "done"]
        )
        self.assertIn("checksum", results[0]["reason"])
        self.assertIn("another share set", results[1]["reason"])
        self.assertIn("already entered", results[3]["reason"])
        self.assertIn("ceremony_rejected", self.log_events())

    def test_the_shares_of_a_ceremony_are_only_on_the_server_that_made_them(self):
        ceremony, _shares = self.start_initialise()
        boot, pid, ticks = custody_server.current_instance_id().split("-")
        with patch.object(
            custody_server, "current_instance_id", return_value=f"{boot}-{pid}-{int(ticks) + 3}"
        ):
            with self.assertRaisesRegex(UserError, "only in that server's memory"):
                ceremony._pending()
        self.restart()  # the same server, restarted: the box is gone
        with self.assertRaisesRegex(UserError, "gone from this server's memory"):
            ceremony._pending()
        self.assertEqual(self.sealed_provider.custody_mode, "key_file")

    def test_one_ceremony_at_a_time(self):
        self.start_initialise()
        with self.assertRaisesRegex(UserError, "already in progress"):
            self.start_initialise()

    def test_a_ceremony_of_a_stopped_server_gives_way(self):
        ceremony, _shares = self.start_initialise()
        boot = custody_server.current_instance_id().split("-")[0]
        internal(ceremony).write({"instance_id": f"{boot}-999999999-1"})
        again, shares = self.start_initialise(2, 3)
        self.assertEqual((ceremony.state, again.state, len(shares)), ("abandoned", "shown", 3))

    def test_stale_ceremonies_are_abandoned(self):
        ceremony, _shares = self.start_initialise()
        self.env.cr.execute(
            "UPDATE g2p_encryption_custody_ceremony SET create_date = now() - interval %s WHERE id = %s",
            ["2 days", ceremony.id],
        )
        ceremony.invalidate_recordset()
        self.ceremonies._gc_stale_ceremonies()
        self.assertEqual(ceremony.state, "abandoned")
        self.assertFalse(self.memory().has("ceremony"))

    def test_every_key_usage_and_state_is_rewrapped(self):
        self.sealed_provider.jwt_sign({"voucher": 1})
        self.sealed_provider.action_rotate_key()  # retired data and signing keys too
        self.sealed_provider.encrypt_data(b"after rotation")
        keys = self.sealed_provider.key_ids
        self.assertEqual(set(keys.mapped("state")), {"active", "retired"})
        self.assertEqual(set(keys.mapped("usage")), {"encrypt", "sign"})
        self.initialise()
        self.assertEqual(set(keys.mapped("wrapped_by")), {self.custody.master_key_id})
        clear_data_key_cache()
        token = self.sealed_provider.jwt_sign({"voucher": 2})
        self.assertEqual(self.sealed_provider.jwt_verify(token)["voucher"], 2)
        self.assertReadable()

    def test_keys_made_while_the_shares_were_shown_are_rewrapped_too(self):
        ceremony, shares = self.start_initialise(2, 3)
        self.sealed_provider.jwt_sign({"voucher": "during"})  # a signing key, under the key file
        self.confirm(ceremony, shares[:2])
        self.assertEqual(set(self.sealed_provider.key_ids.mapped("wrapped_by")), {self.custody.master_key_id})

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
                self.start_initialise(threshold, count)
        self.assertEqual(self.sealed_provider.custody_mode, "key_file")

    def test_initialising_twice_is_refused(self):
        self.initialise()
        with self.assertRaisesRegex(UserError, "already in sealed custody"):
            self.start_initialise()

    def test_key_file_providers_are_untouched(self):
        self.initialise()
        self.assertEqual(self.provider.custody_mode, "key_file")
        self.assertEqual(self.provider.custody_state, "key_file")
        self.assertFalse(self.provider._is_sealed_here())
        token = self.provider.encrypt_data(b"default provider")
        self.assertEqual(self.provider.decrypt_data(token), b"default provider")
        key = self.provider.key_ids.filtered(lambda k: k.usage == "encrypt" and k.state == "active")
        self.assertEqual(key.wrapped_by, local_master_key().key_id)


class TestUnseal(CustodyCase):
    def setUp(self):
        super().setUp()
        self.shares = self.initialise()
        self.restart()

    def test_a_restart_seals(self):
        self.assertSealed()
        self.assertTrue(self.sealed_provider._is_sealed_here())
        with self.assertRaisesRegex(UserError, SEALED % (0, 3)):
            self.sealed_provider.decrypt_data(self.old_token, aad=AAD)
        with self.assertRaisesRegex(UserError, SEALED % (0, 3)):
            raise self.sealed_provider._sealed_error()

    def test_any_three_shares_unseal(self):
        combinations = list(itertools.combinations(range(5), 3))
        for combination in (combinations[0], combinations[4], combinations[-1], (4, 0, 2)):
            with self.subTest(shares=combination):
                results = self.enter([self.shares[i] for i in combination])
                self.assertEqual([r["status"] for r in results], ["accepted", "accepted", "unsealed"])
                self.assertEqual(results[1]["count"], 2)
                self.sealed_provider.invalidate_recordset()
                self.assertEqual(self.sealed_provider.custody_state, "unsealed")
                self.assertFalse(self.sealed_provider._is_sealed_here())
                self.assertReadable()
                self.restart()
                self.assertSealed()

    def test_two_shares_do_not_unseal(self):
        results = self.enter(self.shares[3:5])
        self.assertEqual([r["status"] for r in results], ["accepted", "accepted"])
        self.assertSealed(entered=2)
        self.assertEqual(self.custody.shares_entered, 2)

    def test_an_altered_share_is_rejected_and_counted(self):
        result = self.custody._enter_share(alter_one_word(self.shares[0]))
        self.assertEqual(result["status"], "rejected")
        self.assertIn("checksum", result["reason"])
        self.assertEqual((result["count"], result["rejected"]), (0, 1))
        self.assertSealed(entered=0)
        self.assertIn("unseal_rejected", self.log_events())

    def test_a_share_of_another_set_is_rejected(self):
        other = custody.split_key(os.urandom(32), 3, 5)
        self.enter(self.shares[:1])
        result = self.custody._enter_share(other.shares[1])
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
        server = self.memory().server()
        self.assertEqual(server.state, "unsealed")
        self.assertEqual(server.rejected_shares, 2)

    def test_a_new_server_instance_is_sealed(self):
        self.enter(self.shares[:3])
        self.assertEqual(self.custody.state, "unsealed")
        boot, pid, ticks = custody_server.current_instance_id().split("-")
        restarted = f"{boot}-{pid}-{int(ticks) + 7}"
        with patch.object(custody_server, "current_instance_id", return_value=restarted):
            clear_data_key_cache()
            self.sealed_provider.invalidate_recordset()
            self.assertSealed()
            self.enter(self.shares[2:5])
            self.assertReadable()
            self.memory().forget()
        servers = self.custody.server_ids
        self.assertEqual(
            set(servers.mapped("instance_id")), {restarted, custody_server.current_instance_id()}
        )

    def test_sealed_encryption_stores_nothing(self):
        count_before = self.env["g2p.encryption.key"].search_count([])
        provider = self.sealed_provider
        internal(provider.key_ids.filtered(lambda k: k.usage == "encrypt")).write({"state": "retired"})
        # Even the first data key, which a first encryption would make, needs the master key.
        with self.assertRaisesRegex(UserError, SEALED % (0, 3)):
            provider.encrypt_data(b"Joseph Mwangi")
        with self.assertRaisesRegex(UserError, SEALED % (0, 3)):
            encrypt_values(provider, [b"a", b"b"], aad=b"x")
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
        self.sealed_provider.decrypt_data(self.old_token, aad=AAD)  # warm the worker cache
        # Another worker seals: only the memory store changes, this worker's cache is warm.
        self.memory().forget()
        with self.assertRaisesRegex(UserError, SEALED % (0, 3)):
            self.sealed_provider.decrypt_data(self.old_token, aad=AAD)

    def test_seal_now(self):
        self.enter(self.shares[:3])
        self.enter(self.shares[3:4])  # already unsealed: nothing to do
        self.custody._seal_here()
        self.assertSealed()
        self.assertEqual(self._scope_files(), [])
        self.assertEqual(self.memory().server().state, "sealed")
        self.assertEqual(self.log_events()[-1], "seal")

    def _scope_files(self):
        return [kind for kind in ("key", "key-next", "unseal", "rekey") if self.memory().has(kind)]

    def test_seal_now_drops_shares_entered(self):
        self.enter(self.shares[:2])
        self.custody._seal_here()
        self.assertSealed(entered=0)
        self.assertEqual(self._scope_files(), [])

    def test_unseal_is_audited(self):
        self.enter([self.shares[1], "garbage words", self.shares[3], self.shares[0]])
        events = self.log_events()
        self.assertEqual(events[-4:], ["unseal_share", "unseal_rejected", "unseal_share", "unseal"])
        log = self.env["g2p.encryption.event"].search(
            [("provider_id", "=", self.sealed_provider.id), ("event", "=", "unseal")]
        )
        self.assertEqual(log.user_id, self.env.user)
        self.assertTrue(log.date and log.hostname and log.instance_id)
        self.assertIn("1, 2, 4", log.detail)

    def test_a_key_that_fails_its_check_is_not_used(self):
        self.enter(self.shares[:3])
        self.memory().put("key", custody.encode_key_file(os.urandom(32)))  # e.g. rekeyed elsewhere
        clear_data_key_cache()
        self.assertSealed()
        self.assertFalse(self.memory().has("key"))

    def test_check_action_reports_the_worker(self):
        self.enter(self.shares[:3])
        first = self.custody.action_check()["params"]
        self.assertTrue(first["round_trip"])
        self.assertEqual(first["pid"], os.getpid())
        self.assertEqual(first["instance_id"], custody_server.current_instance_id())
        clear_data_key_cache()
        second = self.custody.action_check(token=first["token"])["params"]
        self.assertEqual(second["decrypted"], first["probe"])
        # Registry ciphertext is bound to its model and field: the probe check cannot open it.
        with self.assertRaisesRegex(UserError, "failed authentication"):
            self.custody.action_check(token=self.old_token.decode())
        self.restart()
        with self.assertRaisesRegex(UserError, SEALED % (0, 3)):
            self.custody.action_check()


class TestRekey(CustodyCase):
    def setUp(self):
        super().setUp()
        self.shares = self.initialise()

    def rekey(self, mode, threshold, share_count, confirm=True):
        ceremony, reason = self.custody._start_rekey(mode, threshold, share_count)
        self.assertIsNone(reason)
        new_shares = ceremony._pending().shares
        if confirm:
            self.assertEqual(self.confirm(ceremony, new_shares[:threshold])[-1]["status"], "done")
        self.sealed_provider.invalidate_recordset()
        return ceremony, new_shares

    def test_new_shares_for_the_same_key(self):
        key_id = self.custody.master_key_id
        wrapped = self.wrapped_keys()
        self.enter(self.shares[1:4], kind="rekey")
        _ceremony, new_shares = self.rekey("shares", 2, 4)
        self.assertEqual(len(new_shares), 4)
        self.assertEqual(self.custody.master_key_id, key_id)
        self.assertEqual(self.wrapped_keys(), wrapped)
        self.assertEqual((self.custody.threshold, self.custody.share_count), (2, 4))
        self.restart()
        result = self.custody._enter_share(self.shares[0])
        self.assertEqual(result["status"], "rejected")  # the old set no longer counts
        results = self.enter(new_shares[2:4])
        self.assertEqual(results[-1]["status"], "unsealed")
        self.assertReadable()
        self.assertIn("rekey", self.log_events())

    def test_the_old_shares_work_until_the_new_ones_are_confirmed(self):
        self.enter(self.shares[:3], kind="rekey")
        ceremony, new_shares = self.rekey("master", 2, 3, confirm=False)
        self.confirm(ceremony, new_shares[:1])
        self.restart()
        self.assertEqual(self.enter(self.shares[2:5])[-1]["status"], "unsealed")
        self.assertReadable()

    def test_an_abandoned_rekey_changes_nothing(self):
        key_id, wrapped = self.custody.master_key_id, self.wrapped_keys()
        self.enter(self.shares[:3], kind="rekey")
        ceremony, new_shares = self.rekey("master", 2, 3, confirm=False)
        self.confirm(ceremony, new_shares[:1])
        ceremony.action_abandon()
        self.assertEqual((self.custody.master_key_id, self.wrapped_keys()), (key_id, wrapped))
        self.assertEqual((self.custody.threshold, self.custody.share_count), (3, 5))
        self.assertReadable()
        self.restart()
        self.assertEqual(self.enter(new_shares[:2])[-1]["status"], "rejected")
        self.assertEqual(self.enter(self.shares[:3])[-1]["status"], "unsealed")
        self.assertReadable()

    def test_new_master_key(self):
        old_key_id = self.custody.master_key_id
        self.enter(self.shares[:3], kind="rekey")
        _ceremony, new_shares = self.rekey("master", 3, 5)
        self.assertNotEqual(self.custody.master_key_id, old_key_id)
        self.assertEqual(set(self.sealed_provider.key_ids.mapped("wrapped_by")), {self.custody.master_key_id})
        # This server was unsealed: it now holds the new key.
        self.assertReadable()
        self.assertFalse(self.memory().has("key-next"))
        self.restart()
        self.assertEqual(self.enter(self.shares[:1])[0]["status"], "rejected")
        self.assertEqual(self.enter(new_shares[:3])[-1]["status"], "unsealed")
        self.assertReadable()
        self.assertIn("rekey_master", self.log_events())

    def test_a_new_master_key_seals_the_servers_that_hold_the_old_one(self):
        old_key = custody.decode_key_file(self.memory().get("key"))
        self.enter(self.shares[:3], kind="rekey")
        self.rekey("master", 2, 3)
        self.memory().put("key", custody.encode_key_file(old_key))  # another server, unsealed before
        self.memory().remove("key-next")
        self.assertSealed(threshold=2)

    def test_rekey_works_on_a_sealed_server_and_leaves_it_sealed(self):
        self.restart()
        self.enter(self.shares[2:5], kind="rekey")
        _ceremony, new_shares = self.rekey("master", 2, 3)
        self.assertSealed(threshold=2)
        self.enter(new_shares[:2])
        self.assertEqual(self.custody.state, "unsealed")
        self.assertReadable()

    def test_rekey_needs_enough_current_shares(self):
        self.enter(self.shares[:2], kind="rekey")
        with self.assertRaisesRegex(UserError, "2 of 3 current shares"):
            self.custody._start_rekey("shares", 3, 5)

    def test_rekey_shares_do_not_count_towards_an_unseal(self):
        self.restart()
        self.enter(self.shares[:2], kind="rekey")
        self.assertSealed(entered=0)

    def test_rekey_parameters_are_checked(self):
        self.enter(self.shares[:3], kind="rekey")
        with self.assertRaisesRegex(UserError, "Cannot split"):
            self.custody._start_rekey("shares", 1, 5)

    def test_rekey_refuses_shares_of_a_database_restored_elsewhere(self):
        # The shares rebuild a key, but not the one this database's check value names.
        self.enter(self.shares[:3], kind="rekey")
        internal(self.custody.sudo()).write({"check_value": custody.check_value(os.urandom(32))})
        ceremony, reason = self.custody._start_rekey("shares", 3, 5)
        self.assertIsNone(ceremony)
        self.assertIn("check value", reason)
        self.assertEqual(self.log_events()[-1], "rekey_rejected")

    def test_abandoned_rekey_entry_forgets_its_shares(self):
        self.enter(self.shares[:2], kind="rekey")
        self.custody._forget_rekey()
        self.assertEqual(self.custody._progress("rekey"), {})


class TestServers(CustodyCase):
    def test_server_list_follows_seal_and_unseal(self):
        shares = self.initialise()
        server = self.memory().server()
        self.assertEqual((server.state, server.is_this_server), ("unsealed", True))
        self.custody._seal_here()
        self.assertEqual(server.state, "sealed")
        self.enter(shares[:1])
        self.assertEqual((server.state, server.shares_entered, server.threshold), ("sealed", 1, 3))
        self.enter(shares[1:3])
        self.assertEqual((server.state, server.shares_entered), ("unsealed", 0))

    def test_stopped_instances_of_this_machine_are_marked(self):
        self.initialise()
        boot = custody_server.current_instance_id().split("-")[0]
        gone = (
            self.env["g2p.encryption.custody.server"]
            .sudo()
            .create(
                {
                    "provider_id": self.sealed_provider.id,
                    "hostname": self.memory().server().hostname,
                    "instance_id": f"{boot}-999999999-1",
                    "state": "unsealed",
                }
            )
        )
        restarted = f"{boot}-{os.getpid()}-1"
        with patch.object(custody_server, "current_instance_id", return_value=restarted):
            self.memory().server()
        self.assertEqual(gone.state, "stopped")

    def test_files_of_stopped_servers_are_removed(self):
        self.initialise()
        boot = custody_server.current_instance_id().split("-")[0]
        dead = custody.InstanceStore(f"{boot}-999999999-1", custody_server.custody_store().directory)
        scope = self.memory().scope
        dead.put(scope, "key", custody.encode_key_file(os.urandom(32)))
        self.addCleanup(dead.remove_scope, scope)
        self.env["g2p.encryption.custody"]._register_hook()
        self.assertFalse(dead.exists(scope, "key"))
        self.assertTrue(self.memory().has("key"))

    def test_sealed_master_key_is_a_master_key(self):
        self.initialise()
        master = self.sealed_provider._local_master_key()
        self.assertIsInstance(master, MasterKey)
        self.assertEqual(master.key_id, self.custody.master_key_id)
        token = self.sealed_provider.encrypt_data(b"x")
        self.assertTrue(envelope.is_token(token))
