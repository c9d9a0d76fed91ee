# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The addon in French, Spanish and Arabic: the masks a person reads come out translated, and in
Arabic the web client (headless Chromium) shows the registrant's form and the addon's Settings
block right-to-left with the addon's labels in Arabic.

The expected texts are read from i18n/*.po, so a better translation does not break these tests;
a missing one does (as ``tools/i18n check`` does). The test users and records are made here:
nothing depends on what else the database holds, demo data or not.

``TestArabicScreenshots`` makes the README's screenshots (static/description/rtl_ar_*.png): it
runs only when G2P_SCREENSHOTS_DIR names the directory to write them to (``tools/screenshots``
sets it), and is skipped otherwise, saying so.
"""

import base64
import json
import os
import shutil
import unittest

from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tests.common import ChromeBrowser
from odoo.tools.misc import file_path
from odoo.tools.translate import PoFileReader

from .common import RegistryHttpCase, marker_values
from .test_admin_tour import skip_without_browser

# A language code as Odoo installs it, and the .po of this addon Odoo reads for it.
LANGUAGES = {"fr_FR": "fr", "es_ES": "es", "es_419": "es_419", "ar_001": "ar"}
MASK = "[encrypted]"
LABEL = "Registrant #%(id)s"
# Labels the addon's Settings block shows (views/res_config_settings_views.xml).
SETTINGS_LABELS = ("Keys and jobs", "Registry provider", "Plaintext readers")
# The addon's block in Settings, and what shows once its fields are there.
G2P_BLOCK = ".app_settings_block[data-key=g2p_encryption]"
G2P_BLOCK_FIELD = f"{G2P_BLOCK} [name=plaintext_group_id]"
# A field of the registrant's form that the addon masks.
FORM_FIELD = ".o_form_view .o_field_widget[name=email]"
# Groups of a Crypto Admin who may open Settings.
CRYPTO_ADMIN_GROUPS = (
    "base.group_user,base.group_partner_manager,base.group_system,g2p_encryption.crypto_admin"
)


def translations(po_name):
    """{msgid: msgstr} of this addon's i18n/<po_name>.po."""
    path = file_path(f"g2p_encryption/i18n/{po_name}.po")
    return {entry["src"]: entry["value"] for entry in PoFileReader(path) if entry["value"]}


def skip_without_rtlcss(case):
    """Without rtlcss Odoo serves its left-to-right stylesheets to Arabic readers too."""
    if not shutil.which("rtlcss"):
        case.skipTest(
            "rtlcss is not on PATH, so Odoo cannot make its stylesheets right-to-left: "
            "npm install -g rtlcss (tools/test installs it when npm is there)"
        )


def give_openg2p_admin(user):
    """On an OpenG2P registry its own groups guard the registry's models too."""
    group = user.env.ref("g2p_registry_base.group_g2p_admin", raise_if_not_found=False)
    if group:
        user.groups_id += group


@tagged("post_install", "-at_install")
class TestMaskTranslations(RegistryHttpCase):
    """What a person reads in place of encrypted values, in each language the addon ships."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        for code in LANGUAGES:
            cls.env["res.lang"]._activate_lang(code)
        cls.person = cls.env["res.partner"].create(dict(marker_values(9411), is_registrant=True))

    def expected(self, code):
        po = translations(LANGUAGES[code])
        self.assertNotEqual(po[MASK], MASK)
        return po[MASK], po[LABEL] % {"id": self.person.id}

    def test_masks_and_labels_come_out_translated(self):
        for code in LANGUAGES:
            with self.subTest(lang=code):
                mask, label = self.expected(code)
                person = self.person.with_context(lang=code)
                self.assertEqual(person.env.lang, code)
                self.assertEqual(person._g2p_mask(person._fields["email"]), mask)
                self.assertEqual(person._g2p_label(), label)
                self.assertEqual(person._g2p_mask(person._fields["name"]), label)

    def test_a_clerk_reads_the_translated_mask_over_rpc(self):
        for code in LANGUAGES:
            with self.subTest(lang=code):
                mask, label = self.expected(code)
                row = self.rpc(
                    self.clerk,
                    "res.partner",
                    "web_read",
                    [self.person.id],
                    {"name": {}, "email": {}, "city": {}},
                    context={"lang": code},
                )[0]
                self.assertEqual((row["name"], row["email"], row["city"]), (label, mask, mask))

    def test_english_keeps_the_msgid(self):
        person = self.person.with_context(lang="en_US")
        self.assertEqual(person._g2p_mask(person._fields["email"]), MASK)


class ArabicCase(HttpCase):
    """Arabic installed with this addon's terms, a registrant stored encrypted and a Crypto Admin
    who reads in Arabic ("Decrypt registry" off: the registrant's fields show masks)."""

    LOGIN = "g2p_rtl_crypto_admin"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        env = cls.env
        env["res.lang"]._activate_lang("ar_001")
        # overwrite: the database may hold Arabic terms of an older version of the addon.
        env["ir.module.module"]._load_module_terms(["g2p_encryption"], ["ar_001"], overwrite=True)
        params = env["ir.config_parameter"].sudo()
        params.set_param("g2p_encryption.encrypt_registry", "True")
        params.set_param("g2p_encryption.decrypt_registry", "")
        cls.registrant = env["res.partner"].create(
            dict(marker_values(9412), name="أمينة حسن", city="القاهرة", lang="ar_001", is_registrant=True)
        )
        cls.user = new_test_user(env, login=cls.LOGIN, groups=CRYPTO_ADMIN_GROUPS, lang="ar_001")
        give_openg2p_admin(cls.user)
        cls.ar = translations("ar")

    @classmethod
    def form_url(cls):
        return f"/web#model=res.partner&id={cls.registrant.id}&view_type=form"

    @staticmethod
    def settings_url():
        return "/web#action=g2p_encryption.res_config_settings_action"


# Waits, in the page, until ``test()`` returns something truthy (20 s at most).
JS_WAIT = """
const waitFor = async (what, test) => {
    for (let i = 0; i < 200; i++) {
        const found = test();
        if (found) {
            return found;
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`not found: ${what}`);
};
const pageText = (root) =>
    [root.textContent, ...[...root.querySelectorAll("input, textarea")].map((el) => el.value)].join("\\n");
const isRtl = () =>
    document.body.classList.contains("o_rtl") &&
    [...document.querySelectorAll("link[rel=stylesheet]")].some((link) => /\\.rtl\\b/.test(link.href));
"""


@tagged("post_install", "-at_install")
class TestArabicWebClient(ArabicCase):
    """The web client in Arabic, as a person who reads Arabic sees it."""

    def setUp(self):
        super().setUp()
        skip_without_browser(self)
        skip_without_rtlcss(self)

    def run_js(self, url, body):
        code = f"""(async () => {{
            {JS_WAIT}
            {body}
            console.log("test successful");
        }})().catch((error) => console.error(`g2p_encryption RTL: ${{error.message}}`));"""
        self.browser_js(url, code, ready="odoo.isReady", login=self.LOGIN, timeout=90)

    def test_the_registrant_form_is_right_to_left_with_arabic_masks(self):
        expected = {
            "mask": self.ar[MASK],
            "label": self.ar[LABEL] % {"id": self.registrant.id},
            "english": [MASK, f"Registrant #{self.registrant.id}", "Registrant #"],
        }
        self.run_js(
            self.form_url(),
            f"""
            const expected = {json.dumps(expected)};
            const form = await waitFor("the registrant's form", () =>
                document.querySelector({json.dumps(FORM_FIELD)})
                    ? document.querySelector(".o_form_view") : null);
            if (!isRtl()) {{
                throw new Error("the page is not right-to-left (no o_rtl class or RTL stylesheet)");
            }}
            if (getComputedStyle(form).direction !== "rtl") {{
                throw new Error(`the form's direction is ${{getComputedStyle(form).direction}}`);
            }}
            const text = pageText(form);
            for (const arabic of [expected.mask, expected.label]) {{
                if (!text.includes(arabic)) {{
                    throw new Error(`"${{arabic}}" is not on the form: ${{text}}`);
                }}
            }}
            for (const english of expected.english) {{
                if (text.includes(english)) {{
                    throw new Error(`"${{english}}" (English) is on the form`);
                }}
            }}
            """,
        )

    def test_the_settings_block_is_right_to_left_in_arabic(self):
        labels = {english: self.ar[english] for english in SETTINGS_LABELS}
        for english, arabic in labels.items():
            self.assertNotEqual(arabic, english)
        self.run_js(
            self.settings_url(),
            f"""
            const labels = {json.dumps(labels)};
            const block = await waitFor("the G2P Encryption settings block", () =>
                document.querySelector({json.dumps(G2P_BLOCK_FIELD)})
                    ? document.querySelector({json.dumps(G2P_BLOCK)}) : null);
            if (!isRtl()) {{
                throw new Error("the page is not right-to-left (no o_rtl class or RTL stylesheet)");
            }}
            if (getComputedStyle(block).direction !== "rtl") {{
                throw new Error(`the block's direction is ${{getComputedStyle(block).direction}}`);
            }}
            const text = pageText(block);
            for (const [english, arabic] of Object.entries(labels)) {{
                if (!text.includes(arabic)) {{
                    throw new Error(`"${{arabic}}" (${{english}}) is not in the block: ${{text}}`);
                }}
                if (text.includes(english)) {{
                    throw new Error(`"${{english}}" (English) is in the block`);
                }}
            }}
            """,
        )


@tagged("post_install", "-at_install")
class TestArabicScreenshots(ArabicCase):
    """The README's screenshots, made only when G2P_SCREENSHOTS_DIR is set (tools/screenshots)."""

    browser_size = "1280x900"

    @classmethod
    def setUpClass(cls):
        cls.out_dir = os.environ.get("G2P_SCREENSHOTS_DIR")
        if not cls.out_dir:
            # Before any set-up: a normal test run spends nothing on it.
            raise unittest.SkipTest(
                "screenshots are made only with G2P_SCREENSHOTS_DIR set (tools/screenshots)"
            )
        super().setUpClass()
        # The whole interface in Arabic, not only this addon's terms.
        modules = cls.env["ir.module.module"].search([("state", "=", "installed")])
        modules._update_translations("ar_001")

    def setUp(self):
        super().setUp()
        skip_without_browser(self)
        skip_without_rtlcss(self)

    def capture(self, url, ready, name):
        """Open ``url`` as the Crypto Admin, wait until ``ready`` is true, save a PNG screenshot."""
        browser = ChromeBrowser(type(self))
        try:
            self.authenticate(self.LOGIN, self.LOGIN, browser=browser)
            self.cr.flush()
            self.cr.clear()
            width, height = map(int, self.browser_size.split("x"))
            browser._websocket_request(
                "Emulation.setDeviceMetricsOverride",
                params={"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            )
            browser.navigate_to(self.base_url() + url)
            ready_code = f"""(async () => {{
                {JS_WAIT}
                await waitFor("the page", () => window.odoo && odoo.isReady && ({ready}) && isRtl());
                await document.fonts.ready;
                await new Promise((resolve) => setTimeout(resolve, 1000));
                return true;
            }})()"""
            self.assertTrue(browser._wait_ready(ready_code, timeout=90), f"{url} did not show")
            answer = browser._websocket_request(
                "Page.captureScreenshot", params={"format": "png"}, timeout=60
            )
        finally:
            browser.stop()
            self._wait_remaining_requests()
        path = os.path.join(self.out_dir, name)
        with open(path, "wb") as png:
            png.write(base64.b64decode(answer["data"]))
        self._logger.info("screenshot: %s", path)

    def test_screenshots(self):
        self.capture(
            self.form_url(),
            f"document.querySelector({json.dumps(FORM_FIELD)})",
            "rtl_ar_registrant_form.png",
        )
        self.capture(
            self.settings_url(),
            f"document.querySelector({json.dumps(G2P_BLOCK_FIELD)})",
            "rtl_ar_settings.png",
        )
