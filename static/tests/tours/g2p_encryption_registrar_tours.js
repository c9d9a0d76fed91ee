/** @odoo-module **/
// A registrar (Registry Search, no Crypto Admin) finds a registrant in the Contacts app, run by
// tests/test_registrar_tour.py: by exact e-mail, phone and full name from the search bar, and by
// full name in a many2one's completion. Rows show pseudonymous labels; the real values appear
// nowhere on the page.

import { registry } from "@web/core/registry";

// Must match tests/test_registrar_tour.py.
const NAME = "Zmarker Registrar Tour";
const EMAIL = "zmarker.registrar.tour@example.org";
const PHONE = "+254 700 123 321";
const LABEL = "Registrant #";

function fail(message) {
    console.error(`g2p_encryption registrar tour: ${message}`);
    throw new Error(message);
}

function checkNoPlaintext() {
    const text = document.body.innerText;
    for (const secret of [NAME, EMAIL]) {
        if (text.includes(secret) && !document.querySelector(".o_searchview_facet")?.innerText.includes(secret)) {
            fail(`"${secret}" appears on the page`);
        }
    }
}

function searchExact(label, value) {
    return [
        {
            content: `Type the ${label} in the search bar`,
            trigger: ".o_searchview_input",
            run: `text ${value}`,
        },
        {
            content: `Search it as "${label} (exact)"`,
            trigger: `.o_searchview_autocomplete .o_menu_item:contains(${label} (exact))`,
        },
        {
            content: "The search applies",
            trigger: `.o_searchview_facet:contains(${label} (exact))`,
            run() {},
        },
        {
            content: "One row, labelled, never the real values",
            // Exactly one row: no row followed by another.
            trigger: `.o_list_renderer tbody:not(:has(.o_data_row ~ .o_data_row)) .o_data_row:contains(${LABEL})`,
            run() {
                checkNoPlaintext();
            },
        },
        {
            content: "Clear the search",
            trigger: ".o_searchview_facet .o_facet_remove",
        },
        {
            content: "The search is cleared",
            trigger: ".o_searchview:not(:has(.o_searchview_facet))",
            run() {},
        },
    ];
}

registry.category("web_tour.tours").add("g2p_encryption_registrar_find", {
    test: true,
    steps: () => [
        {
            content: "The contacts list is open",
            trigger: ".o_list_view",
            run() {},
        },
        ...searchExact("E-mail", EMAIL),
        ...searchExact("Phone", PHONE),
        ...searchExact("Full name", NAME),
        {
            content: "Open a new contact to try a many2one completion",
            trigger: ".o_list_button_add",
        },
        {
            content: "A person: the form shows the company field",
            trigger: ".o_field_widget[name=company_type] input[data-value=person]",
        },
        {
            content: "Type the household's full name in the company field",
            trigger: ".o_field_widget[name=parent_id] input",
            extra_trigger: ".o_form_view",
            run: `text ${NAME}`,
        },
        {
            content: "The completion offers the registrant by its label",
            trigger: `.o-autocomplete--dropdown-menu .dropdown-item:contains(${LABEL})`,
            run() {
                // What the registrar typed shows in "Create ..."; no found record shows it.
                for (const item of document.querySelectorAll(".o-autocomplete--dropdown-menu .dropdown-item")) {
                    const text = item.innerText;
                    if (text.includes(NAME) && !text.startsWith("Create") && !text.includes("Search More")) {
                        fail(`the completion shows "${text}"`);
                    }
                }
            },
        },
        {
            content: "Leave the new contact unsaved",
            trigger: ".o_form_button_cancel",
        },
        {
            content: "Back on the list",
            trigger: ".o_list_view",
            run() {},
        },
    ],
});
