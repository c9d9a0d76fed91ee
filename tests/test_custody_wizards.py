# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The custody wizards as a Crypto Admin uses them: initialise, see the shares once, unseal, rekey."""

import json
import shutil

from odoo.exceptions import UserError
from odoo.tests import Form, HttpCase, tagged

from ..models import key_custody
from ..models.encryption_provider import clear_data_key_cache
from ..wizards.custody_shares_wizard import SHARES_CONTEXT_KEY
from .common import database_text
from .test_custody import CustodyCase, alter_one_word


class TestCustodyWizards(CustodyCase):
    def run_initialise_wizard(self, threshold=3, share_count=5):
        wizard = (
            self.env["g2p.encryption.custody.initialise.wizard"]
            .with_user(self.crypto_admin)
            .create(
                {"provider_id": self.sealed_provider.id, "threshold": threshold, "share_count": share_count}
            )
        )
        self.assertEqual(wizard.key_count, len(self.sealed_provider.key_ids))
        return wizard.action_initialise()

    def shown_shares(self, action):
        display = self.env[action["res_model"]].with_user(self.crypto_admin).with_context(**action["context"])
        return display.new({}), action["context"][SHARES_CONTEXT_KEY]

    def unseal_wizard(self):
        action = self.sealed_provider.with_user(self.crypto_admin).action_custody_unseal()
        self.assertEqual(action["res_model"], "g2p.encryption.custody.unseal.wizard")
        return (
            self.env[action["res_model"]]
            .with_user(self.crypto_admin)
            .with_context(**action["context"])
            .create({})
        )

    def test_initialise_wizard_shows_each_share_once_and_stores_none(self):
        opener = self.sealed_provider.with_user(self.crypto_admin).action_custody_initialise()
        self.assertEqual(opener["res_model"], "g2p.encryption.custody.initialise.wizard")
        action = self.run_initialise_wizard()
        self.assertEqual(action["target"], "new")
        display, shares = self.shown_shares(action)
        self.assertEqual(len(shares), 5)
        self.assertEqual((display.share_count, display.threshold), (5, 3))
        for number, share in enumerate(shares, start=1):
            self.assertIn(share, str(display.shares_html))
            self.assertIn(f"Share {number} of 5", str(display.shares_html))
        with self.assertRaisesRegex(UserError, "never saved"):
            self.env["g2p.encryption.custody.shares.wizard"].create({})
        self.env.flush_all()
        dump = database_text(self.env.cr)
        for share in shares:
            self.assertNotIn(" ".join(share.split()[4:12]), dump)
        # Without the context of that one answer, the dialog shows nothing.
        self.assertFalse(self.env["g2p.encryption.custody.shares.wizard"].new({}).shares_html)

    def test_unseal_wizard_one_share_at_a_time(self):
        _display, shares = self.shown_shares(self.run_initialise_wizard())
        self.restart()
        wizard = self.unseal_wizard()
        self.assertEqual(wizard.progress, "0 of 3 shares entered")
        wizard.share = shares[4]
        self.assertFalse(wizard.share)  # taken, not kept
        self.assertIn("Share 5 accepted: 1 of 3", wizard.message)
        self.assertEqual(wizard.action_enter_share()["res_id"], wizard.id)
        wizard.share = alter_one_word(shares[0])
        self.assertIn("Share rejected", wizard.message)
        self.assertEqual(wizard.message_type, "danger")
        wizard.share = shares[0]
        wizard.invalidate_recordset(["progress"])
        self.assertEqual(wizard.progress, "2 of 3 shares entered")
        wizard.share = shares[2]
        self.assertIn("unsealed", wizard.message)
        done = wizard.action_enter_share()
        self.assertEqual(done["tag"], "display_notification")
        self.assertEqual(done["params"]["next"], {"type": "ir.actions.act_window_close"})
        self.assertEqual(self.sealed_provider.custody_state, "unsealed")
        self.env.flush_all()
        self.env.cr.execute("SELECT * FROM g2p_encryption_custody_unseal_wizard")
        rows = str(self.env.cr.fetchall())
        for share in shares:
            self.assertNotIn(share.split()[6], rows.split("'")[1::2])

    def test_unseal_wizard_through_the_form(self):
        _display, shares = self.shown_shares(self.run_initialise_wizard(2, 3))
        self.restart()
        for share in shares[1:3]:
            form = Form(
                self.env["g2p.encryption.custody.unseal.wizard"]
                .with_user(self.crypto_admin)
                .with_context(default_provider_id=self.sealed_provider.id)
            )
            form.share = share
            form.save()
        self.assertEqual(self.sealed_provider.custody_state, "unsealed")

    def test_empty_entry_asks_for_a_share(self):
        self.run_initialise_wizard()
        self.restart()
        wizard = self.unseal_wizard()
        wizard.action_enter_share()
        self.assertIn("Type a share", wizard.message)

    def test_rekey_wizard(self):
        _display, shares = self.shown_shares(self.run_initialise_wizard())
        action = self.sealed_provider.with_user(self.crypto_admin).action_custody_rekey()
        wizard = (
            self.env[action["res_model"]]
            .with_user(self.crypto_admin)
            .with_context(**action["context"])
            .create({"mode": "master", "new_threshold": 2, "new_share_count": 3})
        )
        for share in shares[:3]:
            wizard.share = share
        self.assertIn("3 of 3", wizard.message)
        self.assertEqual(wizard.message_type, "success")
        result = wizard.action_rekey()
        display, new_shares = self.shown_shares(result)
        self.assertEqual((len(new_shares), display.threshold), (3, 2))
        self.restart()
        unseal = self.unseal_wizard()
        unseal.share = shares[0]
        self.assertIn("another share set", unseal.message)
        unseal.share = new_shares[0]
        unseal.share = new_shares[2]
        self.assertEqual(self.sealed_provider.custody_state, "unsealed")

    def test_rekey_wizard_abandon(self):
        _display, shares = self.shown_shares(self.run_initialise_wizard())
        wizard = self.env["g2p.encryption.custody.rekey.wizard"].create(
            {"provider_id": self.sealed_provider.id}
        )
        wizard.share = shares[0]
        self.assertEqual(wizard.action_abandon(), {"type": "ir.actions.act_window_close"})
        self.assertEqual(self.sealed_provider._custody_progress("rekey"), {})

    def test_provider_form_shows_the_banner_and_actions(self):
        self.run_initialise_wizard()
        self.restart()
        arch = self.env["g2p.encryption.provider"].get_views([(False, "form")])["views"]["form"]["arch"]
        for name in ("action_custody_unseal", "action_custody_seal", "action_custody_rekey", "alert-danger"):
            self.assertIn(name, arch)
        self.assertNotIn("attrs=", arch)
        provider = self.sealed_provider.with_user(self.crypto_admin)
        self.assertEqual(provider.custody_state, "sealed")
        self.assertIn("0 of 3 shares entered", provider.custody_status)

    def test_custody_views_load(self):
        for model in (
            "g2p.encryption.custody.log",
            "g2p.encryption.custody.server",
            "g2p.encryption.key",
        ):
            with self.subTest(model=model):
                views = self.env[model].get_views([(False, "tree"), (False, "search")])
                self.assertTrue(views["views"]["tree"]["arch"])
        for model in (
            "g2p.encryption.custody.initialise.wizard",
            "g2p.encryption.custody.unseal.wizard",
            "g2p.encryption.custody.rekey.wizard",
            "g2p.encryption.custody.shares.wizard",
        ):
            with self.subTest(model=model):
                self.assertIn(
                    "<footer", self.env[model].get_views([(False, "form")])["views"]["form"]["arch"]
                )
        menu = self.env.ref("g2p_encryption.menu_custody_log")
        self.assertEqual(menu.parent_id, self.env.ref("g2p_encryption.menu_g2p_encryption_root"))


UNSEAL_IN_BROWSER = """
(async function () {
    const shares = %(shares)s;
    const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
    async function waitFor(test, what, timeout = 30000) {
        const end = Date.now() + timeout;
        while (Date.now() < end) {
            const found = test();
            if (found) {
                return found;
            }
            await sleep(100);
        }
        throw new Error("gave up waiting for " + what);
    }
    const dialogText = () => [...document.querySelectorAll(".modal")].map((m) => m.innerText).join("\\n");
    try {
        const banner = await waitFor(
            () => document.querySelector(".o_form_view .alert-danger button[name='action_custody_unseal']"),
            "the sealed banner"
        );
        banner.click();
        for (const [index, share] of shares.entries()) {
            const input = await waitFor(
                () => document.querySelector(".modal .o_field_widget[name='share'] input"), "the share field"
            );
            input.value = share;
            input.dispatchEvent(new Event("input", { bubbles: true }));
            input.dispatchEvent(new Event("change", { bubbles: true }));
            (await waitFor(
                () => document.querySelector(".modal button[name='action_enter_share']"), "Enter share"
            )).click();
            if (index < shares.length - 1) {
                await waitFor(
                    () => dialogText().includes((index + 1) + " of 3 shares entered") &&
                        dialogText().includes("accepted"),
                    "share " + (index + 1) + " accepted"
                );
                await sleep(500);  // the dialog is opened again on the same wizard: let it settle
            }
        }
        await waitFor(() => !document.querySelector(".modal"), "the dialog to close");
        await waitFor(
            () => !document.querySelector(".o_form_view .alert-danger button[name='action_custody_unseal']"),
            "the banner to go"
        );
        console.log("test successful");
    } catch (error) {
        console.error(error.message + " | dialogs: " + dialogText());
    }
})();
"""


@tagged("post_install", "-at_install")
class TestCustodyInBrowser(HttpCase):
    """The sealed banner and the unseal dialog in a real browser (headless Chromium)."""

    def setUp(self):
        super().setUp()
        if not any(shutil.which(name) for name in ("google-chrome", "chromium", "chromium-browser")):
            self.skipTest("no Chrome/Chromium on PATH")
        self.sealed_provider = self.env["g2p.encryption.provider"].create(
            {"name": "Browser custody", "type": "local"}
        )
        self.addCleanup(
            lambda: key_custody.custody_store().remove_scope(self.sealed_provider._custody_scope())
        )
        self.addCleanup(clear_data_key_cache)
        self.shares = self.sealed_provider._custody_initialise(3, 5).shares
        self.sealed_provider.action_custody_seal()

    def test_crypto_admin_unseals_from_the_banner(self):
        url = f"/web#id={self.sealed_provider.id}&model=g2p.encryption.provider&view_type=form"
        code = UNSEAL_IN_BROWSER % {"shares": json.dumps([self.shares[4], self.shares[0], self.shares[2]])}
        self.browser_js(url, code, login="admin", timeout=120)
        self.sealed_provider.invalidate_recordset()
        self.assertEqual(self.sealed_provider.custody_state, "unsealed")
        events = (
            self.env["g2p.encryption.custody.log"]
            .search([("provider_id", "=", self.sealed_provider.id)], order="id")
            .mapped("event")
        )
        self.assertEqual(events[-3:], ["unseal_share", "unseal_share", "unseal"])
        self.env.flush_all()
        self.env.cr.execute("SELECT * FROM g2p_encryption_custody_unseal_wizard")
        rows = str(self.env.cr.fetchall())
        for share in self.shares:
            self.assertNotIn(" ".join(share.split()[4:10]), rows)
