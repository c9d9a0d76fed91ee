/** @odoo-module **/
// The admin flow of g2p_encryption in a real browser, run by tests/test_admin_tour.py.
//
// g2p_encryption_admin_decrypt (a Crypto Admin with access to Settings, started at
//   /web?g2p_registrant=<id>): opens Settings from the apps menu, turns "Decrypt registry" on,
//   saves, confirms the password Odoo asks for, then opens the registrant's form and expects the
//   real name.
// g2p_encryption_clerk_masked (a user outside Crypto Admin, started on the registrant's form):
//   expects the pseudonymous label, and the real name nowhere on the page.

import { registry } from "@web/core/registry";
import { stepUtils } from "@web_tour/tour_service/tour_utils";

// Neither tour has a `url`: a tour's url would replace the start url the test gives.

// Must match tests/test_admin_tour.py (the password of test users is their login).
const REAL_NAME = "Zmarker Tour Amina";
const LABEL = "Registrant #";
const PASSWORD = "g2p_tour_crypto_admin";
// Set on <body> just before saving the settings; gone once the page has reloaded after the save.
const SAVING_CLASS = "o_g2p_tour_saving";

const G2P_TAB = ".settings_tab .tab[data-key=g2p_encryption]";
const G2P_BLOCK = ".settings .app_settings_block[data-key=g2p_encryption]";
const DECRYPT_CHECKBOX = "div[name=decrypt_registry] input[type=checkbox]";
const NAME_FIELD = ".o_form_view .o_field_widget[name=name]";

/** The text the name field shows, whether it is editable (an input) or read-only. */
function shownName(fieldEl) {
    const input = fieldEl.querySelector("input, textarea");
    return (input ? input.value : fieldEl.textContent).trim();
}

function fail(message) {
    // console.error fails the HttpCase that runs the tour.
    console.error(`g2p_encryption tour: ${message}`);
    throw new Error(message);
}

registry.category("web_tour.tours").add("g2p_encryption_admin_decrypt", {
    test: true,
    steps: () => [
        ...stepUtils.goToAppSteps("base.menu_administration", "Open the Settings app"),
        {
            content: "Open the G2P Encryption settings",
            trigger: G2P_TAB,
        },
        {
            content: "Decrypt registry is off to begin with: turn it on",
            trigger: `${G2P_BLOCK} ${DECRYPT_CHECKBOX}:not(:checked)`,
            run: "click",
        },
        {
            content: "The warning about reading in the clear shows",
            trigger: `${G2P_BLOCK} .alert-warning:contains(decryption log)`,
            isCheck: true,
        },
        {
            content: "Save the settings",
            trigger: ".o_control_panel .o_form_button_save",
            run() {
                document.body.classList.add(SAVING_CLASS);
                this.$anchor[0].click();
            },
        },
        {
            content: "Turning decryption on asks for the password again",
            extra_trigger: 'div:contains("enter your password")',
            trigger: "[name=password] input",
            run: `text ${PASSWORD}`,
        },
        {
            content: "Confirm the password",
            trigger: "button:contains(Confirm Password)",
        },
        {
            content: "After the save the page reloads: open the G2P Encryption settings again",
            trigger: `body:not(.${SAVING_CLASS}) ${G2P_TAB}`,
            timeout: 20000,
        },
        {
            content: "Decrypt registry is on, and saved",
            trigger: `${G2P_BLOCK} ${DECRYPT_CHECKBOX}:checked`,
            extra_trigger: "body:not(:has(.o_dirty_warning))",
            run() {
                const id = new URLSearchParams(window.location.search).get("g2p_registrant");
                if (!id) {
                    fail("the tour must be started at /web?g2p_registrant=<id>");
                }
                window.location.assign(`/web#model=res.partner&id=${id}&view_type=form`);
            },
        },
        {
            content: "The registrant's form shows the real name",
            trigger: `${NAME_FIELD}`,
            extra_trigger: ".o_form_view .o_field_widget[name=is_registrant] input:checked",
            run() {
                const shown = shownName(this.$anchor[0]);
                if (shown !== REAL_NAME) {
                    fail(`the Crypto Admin sees the name "${shown}", expected "${REAL_NAME}"`);
                }
                if (!document.querySelector(".o_breadcrumb").textContent.includes(REAL_NAME)) {
                    fail("the breadcrumb does not show the real name");
                }
            },
        },
    ],
});

registry.category("web_tour.tours").add("g2p_encryption_clerk_masked", {
    test: true,
    steps: () => [
        {
            content: "The registrant's form shows a label, never the real name",
            trigger: `${NAME_FIELD}`,
            extra_trigger: ".o_form_view .o_field_widget[name=is_registrant] input:checked",
            run() {
                const shown = shownName(this.$anchor[0]);
                if (!shown.startsWith(LABEL)) {
                    fail(`the clerk sees the name "${shown}", expected "${LABEL}<id>"`);
                }
                if (document.body.innerText.includes(REAL_NAME)) {
                    fail("the real name appears on the clerk's page");
                }
            },
        },
    ],
});
