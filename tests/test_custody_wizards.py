# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The custody dialogs through the path the web client takes: onchange, web_save, call_button, web_read.

Each user has their own session; buttons that change security ask for the password again, as
Odoo's "Security Control" dialog does, and the tests answer it.
"""

import re

from odoo.tests import HttpCase, new_test_user, tagged

from ..core import custody
from ..models.custody_server import ServerMemory
from ..models.encryption_provider import clear_data_key_cache
from .common import database_text
from .web_client import RpcError, WebClient

INITIALISE = "g2p.encryption.custody.initialise.wizard"
UNSEAL = "g2p.encryption.custody.unseal.wizard"
REKEY = "g2p.encryption.custody.rekey.wizard"
CEREMONY = "g2p.encryption.custody.ceremony"
AAD = b"res.partner|name"
SHARE_RE = re.compile(r'<code class="o_g2p_share[^>]*>([^<]+)</code>')


class CustodyWebCase(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.provider = cls.env["g2p.encryption.provider"].create(
            {"name": "Custody in the browser", "type": "local"}
        )
        groups = "base.group_user,g2p_encryption.crypto_admin"
        cls.admin = new_test_user(cls.env, login="g2p_web_crypto_admin", groups=groups)
        cls.other_admin = new_test_user(cls.env, login="g2p_web_other_admin", groups=groups)
        cls.custodians = [
            new_test_user(
                cls.env, login=f"g2p_web_custodian_{n}", groups="base.group_user,g2p_encryption.key_custodian"
            )
            for n in (1, 2)
        ]
        cls.clerk = new_test_user(cls.env, login="g2p_web_clerk", groups="base.group_user")

    def setUp(self):
        super().setUp()
        self.addCleanup(lambda: ServerMemory(self.env, self.provider.id).forget())
        self.addCleanup(clear_data_key_cache)
        self.token = self.provider.encrypt_data(b"Amina Wanjiru", aad=AAD)

    def client(self, user):
        return WebClient(self, user.login)

    def refresh(self):
        self.env.invalidate_all()
        clear_data_key_cache()

    def readable(self):
        self.refresh()
        return self.provider.decrypt_data(self.token, aad=AAD) == b"Amina Wanjiru"

    def start_initialise(self, admin_client, threshold=2, share_count=3):
        """The admin's clicks up to the dialog with the shares: what that dialog shows."""
        opened = admin_client.onchange(INITIALISE, context={"default_provider_id": self.provider.id})
        self.assertEqual(
            (opened["provider_id"]["id"], opened["threshold"], opened["share_count"]),
            (self.provider.id, 3, 5),
        )
        _wizard, answer = admin_client.press(
            INITIALISE,
            None,
            "action_initialise",
            {"provider_id": self.provider.id, "threshold": threshold, "share_count": share_count},
        )
        self.assertEqual(answer["res_model"], "res.users.identitycheck")  # the password, again
        action = admin_client.confirm_identity(answer)
        self.assertEqual((action["res_model"], action["target"]), (CEREMONY, "new"))
        return action, admin_client.open_action(action)

    def enter(self, user, model, record_id, share, context=None):
        client = self.client(user)
        return client.press(model, record_id, "action_enter_share", {"share": share}, context=context)

    def shares_shown(self, shown):
        return SHARE_RE.findall(shown["shares_html"] or "")


@tagged("post_install", "-at_install")
class TestCeremonyDialogs(CustodyWebCase):
    def test_initialise_shows_the_shares_to_its_initiator_and_waits_for_their_confirmation(self):
        admin = self.client(self.admin)
        action, shown = self.start_initialise(admin)
        shares = self.shares_shown(shown)
        self.assertEqual((len(shares), shown["shown_share_count"], shown["state"]), (3, 3, "shown"))
        for number in (1, 2, 3):
            self.assertIn(f"Share {number} of 3", shown["shares_html"])
        self.assertFalse(shown["share"])
        ceremony = self.env[CEREMONY].browse(action["res_id"])
        self.assertEqual(set(shares), set(ceremony._pending().shares))
        self.refresh()
        self.assertEqual(self.provider.custody_mode, "key_file")
        self.assertTrue(self.readable())
        # Nobody else sees them, and they are stored nowhere.
        for user in (self.other_admin, self.custodians[0]):
            with self.subTest(user=user.login):
                self.assertFalse(self.client(user).open_action(action)["shares_html"])
        with self.assertRaises(RpcError) as denied:
            self.client(self.clerk).open_action(action)
        self.assertEqual(denied.exception.short_name, "AccessError")
        self.env.flush_all()
        dump = database_text(self.env.cr)
        for share in shares:
            self.assertNotIn(" ".join(share.split()[4:10]), dump)
        # A custodian cannot end the showing; the admin does, and the shares are gone for good.
        with self.assertRaises(RpcError) as denied:
            self.client(self.custodians[0]).call_button(CEREMONY, "action_confirm_start", [action["res_id"]])
        self.assertEqual(denied.exception.short_name, "AccessError")
        admin = self.client(self.admin)
        again = admin.call_button(
            CEREMONY, "action_confirm_start", [action["res_id"]], context=action["context"]
        )
        confirming = admin.open_action(again)
        self.assertEqual((confirming["state"], confirming["shares_html"]), ("confirming", False))
        self.assertEqual(confirming["progress"], "0 of 2 new shares confirmed")
        # Two custodians confirm, each in their own session.
        _id, answer = self.enter(
            self.custodians[0], CEREMONY, action["res_id"], shares[2], context=action["context"]
        )
        after_one = self.client(self.custodians[0]).open_action(answer)
        self.assertIn("Share 3 accepted: 1 of 2", after_one["message"])
        self.refresh()
        self.assertEqual(self.provider.custody_mode, "key_file")
        _id, answer = self.enter(
            self.custodians[1], CEREMONY, action["res_id"], shares[0], context=action["context"]
        )
        self.assertEqual(answer["tag"], "display_notification")
        self.assertIn("Sealed custody is in force", answer["params"]["message"])
        self.refresh()
        self.assertEqual((self.provider.custody_mode, self.provider.custody_state), ("sealed", "unsealed"))
        self.assertTrue(self.readable())

    def test_closing_or_abandoning_the_dialog_changes_nothing(self):
        admin = self.client(self.admin)
        keys = {key.key_id: key.wrapped_key for key in self.provider.key_ids}
        action, shown = self.start_initialise(admin)
        shares = self.shares_shown(shown)
        # The dialog closed: nothing is saved or called. The key file stays in force.
        self.refresh()
        self.assertEqual(self.provider.custody_mode, "key_file")
        self.assertEqual({key.key_id: key.wrapped_key for key in self.provider.key_ids}, keys)
        self.assertTrue(self.readable())
        # Abandoned, even after one confirmation: still nothing.
        admin.call_button(CEREMONY, "action_confirm_start", [action["res_id"]])
        self.enter(self.custodians[0], CEREMONY, action["res_id"], shares[1])
        self.assertEqual(
            self.client(self.admin).call_button(CEREMONY, "action_abandon", [action["res_id"]]),
            {"type": "ir.actions.act_window_close"},
        )
        self.refresh()
        self.assertEqual(self.provider.custody_mode, "key_file")
        self.assertEqual({key.key_id: key.wrapped_key for key in self.provider.key_ids}, keys)
        self.assertTrue(self.readable())
        ServerMemory(self.env, self.provider.id).forget()  # a restart
        self.assertTrue(self.readable())


@tagged("post_install", "-at_install")
class TestSealedDialogs(CustodyWebCase):
    def setUp(self):
        super().setUp()
        ceremony = self.env[CEREMONY]._start_initialise(self.provider, 2, 3)
        self.shares = ceremony._pending().shares
        ceremony.action_confirm_start()
        for share in self.shares[:2]:
            ceremony._take_share(share)
        self.custody = self.provider.custody_id
        self.custody._seal_here()
        self.refresh()

    def test_custodians_unseal_one_share_each(self):
        first = self.client(self.custodians[0])
        opened = first.onchange(UNSEAL, context={"default_custody_id": self.custody.id})
        self.assertEqual(opened["progress"], "0 of 2 shares entered")
        self.assertEqual(opened["custody_id"]["display_name"], self.provider.name)
        wizard_id, answer = first.press(
            UNSEAL, None, "action_enter_share", {"custody_id": self.custody.id, "share": self.shares[2]}
        )
        shown = first.open_action(answer)
        self.assertIn("Share 3 accepted: 1 of 2", shown["message"])
        self.assertEqual(shown["progress"], "1 of 2 shares entered")
        self.assertFalse(shown["share"])
        # A wrong share: rejected with its reason, the good one kept.
        words = self.shares[1].split()
        words[12] = "academic" if words[12] != "academic" else "acid"
        _id, answer = first.press(UNSEAL, wizard_id, "action_enter_share", {"share": " ".join(words)})
        self.assertIn("Share rejected", first.open_action(answer)["message"])
        second = self.client(self.custodians[1])
        _id, answer = second.press(
            UNSEAL, None, "action_enter_share", {"custody_id": self.custody.id, "share": self.shares[1]}
        )
        self.assertEqual(answer["tag"], "display_notification")
        self.assertEqual(answer["params"]["next"], {"type": "ir.actions.client", "tag": "reload"})
        self.refresh()
        self.assertEqual(self.custody.state, "unsealed")
        self.assertTrue(self.readable())
        self.env.flush_all()
        self.env.cr.execute("SELECT * FROM g2p_encryption_custody_unseal_wizard")
        rows = str(self.env.cr.fetchall())
        for share in self.shares:
            self.assertNotIn(" ".join(share.split()[4:10]), rows)

    def test_the_banner_counts_the_shares_entered(self):
        custodian = self.client(self.custodians[0])
        status = custodian.call("g2p.encryption.custody", "seal_status")
        mine = [entry for entry in status if entry["id"] == self.custody.id]
        self.assertEqual(
            mine, [{"id": self.custody.id, "provider": self.provider.name, "entered": 0, "threshold": 2}]
        )
        custodian.press(
            UNSEAL, None, "action_enter_share", {"custody_id": self.custody.id, "share": self.shares[0]}
        )
        status = custodian.call("g2p.encryption.custody", "seal_status")
        self.assertEqual([entry["entered"] for entry in status if entry["id"] == self.custody.id], [1])
        with self.assertRaises(RpcError) as denied:
            self.client(self.clerk).call("g2p.encryption.custody", "seal_status")
        self.assertEqual(denied.exception.short_name, "AccessError")

    def test_seal_now_asks_for_the_password_first(self):
        for share in self.shares[:2]:
            self.custody._enter_share(share)
        admin = self.client(self.admin)
        answer = admin.call_button("g2p.encryption.custody", "action_seal", [self.custody.id])
        self.assertEqual(answer["res_model"], "res.users.identitycheck")
        self.refresh()
        self.assertEqual(self.custody.state, "unsealed")  # nothing happened yet
        self.assertEqual(admin.confirm_identity(answer), {"type": "ir.actions.client", "tag": "reload"})
        self.refresh()
        self.assertEqual(self.custody.state, "sealed")

    def test_rekey_takes_current_shares_then_shows_new_ones(self):
        for user, share in zip(self.custodians, self.shares[1:], strict=True):
            self.client(user).press(
                REKEY, None, "action_enter_share", {"custody_id": self.custody.id, "share": share}
            )
        admin = self.client(self.admin)
        opened = admin.onchange(REKEY, context={"default_custody_id": self.custody.id})
        self.assertEqual(opened["progress"], "2 of 2 shares entered")
        _id, answer = admin.press(
            REKEY,
            None,
            "action_rekey",
            {"custody_id": self.custody.id, "mode": "master", "new_threshold": 2, "new_share_count": 4},
        )
        action = admin.confirm_identity(answer)
        shown = admin.open_action(action)
        new_shares = self.shares_shown(shown)
        self.assertEqual((len(new_shares), shown["kind"]), (4, "rekey_master"))
        self.refresh()
        self.assertEqual((self.custody.threshold, self.custody.share_count), (2, 3))  # not yet
        admin.call_button(CEREMONY, "action_confirm_start", [action["res_id"]])
        for user, share in zip(self.custodians, new_shares[2:], strict=True):
            self.enter(user, CEREMONY, action["res_id"], share)
        self.refresh()
        self.assertEqual((self.custody.threshold, self.custody.share_count), (2, 4))
        result = self.custody._enter_share(self.shares[0])
        self.assertIn("another share set", result["reason"])
        self.assertEqual(
            [r["status"] for r in map(self.custody._enter_share, new_shares[:2])], ["accepted", "unsealed"]
        )
        self.assertTrue(self.readable())
        self.assertTrue(
            custody.verify_check_value(
                custody.combine_shares(new_shares[1:3]), self.custody.sudo().check_value
            )
        )
