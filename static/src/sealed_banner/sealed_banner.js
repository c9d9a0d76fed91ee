/** @odoo-module **/
// The sealed banner: in the navbar of every page, for Crypto Admins and Key Custodians, while a
// provider is sealed on this server. Shows "<provider> sealed: N of k shares entered" and opens the
// Unseal dialog. It asks the server once per page load (g2p.encryption.custody.seal_status), and
// again after each action while something is sealed, so that it goes once the provider is unsealed.

import { Component, onWillStart, useState } from "@odoo/owl";
import { registry } from "@web/core/registry";
import { useBus, useService } from "@web/core/utils/hooks";

export class SealedBanner extends Component {
    static template = "g2p_encryption.SealedBanner";
    static props = {};

    setup() {
        this.orm = useService("orm");
        this.action = useService("action");
        this.user = useService("user");
        this.state = useState({ sealed: [] });
        this.allowed = false;
        onWillStart(async () => {
            const groups = await Promise.all([
                this.user.hasGroup("g2p_encryption.crypto_admin"),
                this.user.hasGroup("g2p_encryption.key_custodian"),
            ]);
            this.allowed = groups.some(Boolean);
            await this.refresh();
        });
        useBus(this.env.bus, "ACTION_MANAGER:UI-UPDATED", () => {
            if (this.state.sealed.length) {
                this.refresh();
            }
        });
    }

    async refresh() {
        if (!this.allowed) {
            return;
        }
        try {
            this.state.sealed = await this.orm.silent.call("g2p.encryption.custody", "seal_status", []);
        } catch {
            this.state.sealed = [];
        }
    }

    openUnseal(entry) {
        this.action.doAction("g2p_encryption.custody_unseal_wizard_action", {
            additionalContext: { default_custody_id: entry.id },
            onClose: () => this.refresh(),
        });
    }
}

registry.category("systray").add("g2p_encryption.SealedBanner", { Component: SealedBanner }, { sequence: 100 });
