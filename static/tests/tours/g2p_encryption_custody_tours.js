/** @odoo-module **/
// A whole key ceremony in a real browser, run by tests/test_admin_tour.py (TestCustodyTour), one
// tour per person and step, each in its own session:
//
// g2p_encryption_custody_initialise (Crypto Admin, on the provider's form): Initialise sealed
//   custody, 2 of 3, Generate shares, the password again; the dialog shows 3 shares; Close.
// g2p_encryption_custody_hand_out (Crypto Admin): Key Custody > Key Ceremonies, the ceremony,
//   "Shares handed out: confirm them".
// g2p_encryption_custody_confirm (a custodian; ?g2p_share=<words>): the ceremony, Confirm share.
// g2p_encryption_custody_seal (Crypto Admin, on the custody's form): Seal now, the password again;
//   the banner says "0 of 2 shares entered".
// g2p_encryption_custody_unseal (a custodian; ?g2p_share=<words>&g2p_banner=<text>): the banner,
//   Unseal, Enter share.
// g2p_encryption_custody_read (?g2p_registrant=<id>&g2p_expect=<name>): no banner; the
//   registrant's form shows the expected name.

import { registry } from "@web/core/registry";
import { stepUtils } from "@web_tour/tour_service/tour_utils";

// The tour's parameters come in the start URL's query, which the web client drops as soon as it
// navigates: the first step of each tour keeps them for the tab.
const PARAMS_KEY = "g2p_encryption_custody_tour";
const params = () => new URLSearchParams(window.sessionStorage.getItem(PARAMS_KEY) || "");

function param(name) {
    const value = params().get(name);
    if (!value) {
        fail(`the tour needs ?${name}= in its start URL (now at ${window.location.href})`);
    }
    return value;
}

function rememberParams() {
    return {
        content: "Keep the tour's parameters",
        trigger: ".o_web_client",
        run() {
            if (window.location.search) {
                window.sessionStorage.setItem(PARAMS_KEY, window.location.search);
            }
        },
    };
}
const BANNER = ".o_main_navbar .o_g2p_sealed";
// While a dialog is open, a tour looks for its triggers inside that dialog only.

function fail(message) {
    console.error(`g2p_encryption custody tour: ${message}`);
    throw new Error(message);
}

/** Type ``text`` into the input of a step, as a person pasting it would. */
function typeInto(input, text) {
    input.focus();
    input.value = text;
    input.dispatchEvent(new Event("input", { bubbles: true }));
    input.dispatchEvent(new Event("change", { bubbles: true }));
}

function passwordSteps() {
    return [
        {
            content: "Security Control: type the password again",
            trigger: `div[name=password] input`,
            run() {
                typeInto(this.$anchor[0], param("g2p_password"));
            },
        },
        {
            content: "Confirm the password",
            trigger: `button[name=run_check]`,
        },
    ];
}

function openCeremonySteps() {
    return [
        ...stepUtils.goToAppSteps("g2p_encryption.menu_key_custody_root", "Open the Key Custody app"),
        {
            content: "Open the key ceremonies",
            trigger: ".o_main_navbar a[data-menu-xmlid='g2p_encryption.menu_custody_ceremony']",
        },
        {
            content: "Open the ceremony in progress",
            trigger: ".o_list_view .o_data_row td[name=provider_name]:contains(Tour custody)",
        },
    ];
}

registry.category("web_tour.tours").add("g2p_encryption_custody_initialise", {
    test: true,
    steps: () => [
        rememberParams(),
        {
            content: "On the provider's form: Initialise sealed custody",
            trigger: ".o_form_view .o_statusbar_buttons button:contains(Initialise sealed custody)",
        },
        {
            content: "Shares needed: 2",
            trigger: `div[name=threshold] input`,
            run: "text 2",
        },
        {
            content: "Shares issued: 3",
            trigger: `div[name=share_count] input`,
            run: "text 3",
        },
        {
            content: "Generate shares",
            trigger: `button[name=action_initialise]`,
        },
        ...passwordSteps(),
        {
            content: "The dialog shows three shares, each with its number",
            trigger: `.o_g2p_shares`,
            run() {
                const shares = document.querySelectorAll(".modal code.o_g2p_share");
                if (shares.length !== 3) {
                    fail(`the dialog shows ${shares.length} shares, expected 3`);
                }
                for (const share of shares) {
                    if (share.textContent.trim().split(/\s+/).length < 20) {
                        fail("a share is not a list of words");
                    }
                }
                if (!document.querySelector(".modal .o_g2p_shares").innerText.includes("Share 3 of 3")) {
                    fail("the shares are not numbered");
                }
            },
        },
        {
            content: "Close the dialog: the shares are being handed out",
            trigger: `.modal-footer button:contains(Close)`,
        },
        {
            content: "The provider still runs on its key file, with a ceremony in progress",
            trigger: ".o_form_view .alert-warning:contains(A key ceremony is in progress)",
            isCheck: true,
        },
    ],
});

registry.category("web_tour.tours").add("g2p_encryption_custody_hand_out", {
    test: true,
    steps: () => [
        rememberParams(),
        ...openCeremonySteps(),
        {
            content: "Every custodian has their share: confirm them",
            trigger: ".o_form_view button[name=action_confirm_start]",
        },
        {
            content: "Yes, every share is handed out",
            trigger: `.modal-footer .btn-primary`,
        },
        {
            content: "The shares are no longer shown; the confirmation waits for two of them",
            trigger: ".o_form_view div[name=progress]:contains(0 of 2 new shares confirmed)",
            run() {
                if (document.querySelector("code.o_g2p_share")) {
                    fail("the shares are still shown");
                }
            },
        },
    ],
});

registry.category("web_tour.tours").add("g2p_encryption_custody_confirm", {
    test: true,
    steps: () => [
        rememberParams(),
        ...openCeremonySteps(),
        {
            content: "Type my new share",
            trigger: ".o_form_view div[name=share] input",
            run() {
                typeInto(this.$anchor[0], param("g2p_share"));
            },
        },
        {
            content: "Confirm share",
            trigger: ".o_form_view button[name=action_enter_share]",
        },
        {
            content: "The share is accepted, or the ceremony is done and the new key in force",
            trigger:
                ".o_form_view .alert-success:contains(accepted), .o_form_view .alert-success:contains(Sealed custody is in force)",
            isCheck: true,
        },
        {
            content: "Back to the list of ceremonies",
            trigger: ".o_breadcrumb .breadcrumb-item a:contains(Key Ceremonies)",
        },
        {
            content: "The list shows",
            trigger: ".o_list_view",
            isCheck: true,
        },
    ],
});

registry.category("web_tour.tours").add("g2p_encryption_custody_seal", {
    test: true,
    steps: () => [
        rememberParams(),
        {
            content: "On the custody's form: Seal now",
            trigger: ".o_form_view button[name=action_seal]",
        },
        {
            content: "Yes, seal this server",
            trigger: `.modal-footer .btn-primary`,
        },
        ...passwordSteps(),
        {
            content: "After the reload, the banner says the provider is sealed",
            trigger: `${BANNER}:contains(Tour custody sealed: 0 of 2 shares entered)`,
            isCheck: true,
        },
    ],
});

registry.category("web_tour.tours").add("g2p_encryption_custody_unseal", {
    test: true,
    steps: () => [
        rememberParams(),
        {
            content: "The banner counts the shares entered so far; open the Unseal dialog from it",
            trigger: `${BANNER}`,
            run(actions) {
                const expected = param("g2p_banner");
                if (!this.$anchor[0].textContent.includes(expected)) {
                    fail(`the banner says "${this.$anchor[0].textContent.trim()}", expected "${expected}"`);
                }
                actions.click();
            },
        },
        {
            content: "Type my share",
            trigger: `div[name=share] input`,
            run() {
                typeInto(this.$anchor[0], param("g2p_share"));
            },
        },
        {
            content: "Enter share",
            trigger: `button[name=action_enter_share]`,
        },
        {
            content: "Accepted; or unsealed, and after the reload the banner is gone",
            trigger: `.alert-success:contains(accepted), body:not(:has(${BANNER})) .o_main_navbar .o_menu_systray`,
            isCheck: true,
        },
    ],
});

registry.category("web_tour.tours").add("g2p_encryption_custody_read", {
    test: true,
    steps: () => [
        rememberParams(),
        {
            content: "Open the registrant once the web client is up",
            trigger: ".o_main_navbar",
            run() {
                if (document.querySelector(BANNER)) {
                    fail("the sealed banner is still shown");
                }
                const id = param("g2p_registrant");
                window.location.assign(`/web${window.location.search}#model=res.partner&id=${id}&view_type=form`);
            },
        },
        {
            content: "The registrant's form shows the expected name",
            trigger: ".o_form_view .o_field_widget[name=name]",
            extra_trigger: ".o_form_view .o_field_widget[name=is_registrant] input:checked",
            run() {
                const field = this.$anchor[0];
                const input = field.querySelector("input, textarea");
                const shown = (input ? input.value : field.textContent).trim();
                if (shown !== param("g2p_expect")) {
                    fail(`the form shows "${shown}", expected "${param("g2p_expect")}"`);
                }
            },
        },
    ],
});
