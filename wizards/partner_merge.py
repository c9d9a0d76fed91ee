# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Odoo's *Merge* of contacts, for contacts of the registry."""

from odoo import _, models
from odoo.exceptions import UserError

from ..models.encryption_exits import person_not_allowed


class PartnerMergeWizard(models.TransientModel):
    _inherit = "base.partner.merge.automatic.wizard"

    def _merge(self, partner_ids, dst_partner=None, extra_checks=True):
        # Merging copies the values of the contacts merged into the one kept: registry data would
        # be stored in the clear in a partner out of the registry. Refused to whoever may not read
        # it when the contacts are not all in the registry, or all out of it.
        partners = self.env["res.partner"].browse(partner_ids).exists()
        if partners and person_not_allowed(self.env):
            in_scope = partners.sudo()._g2p_in_scope()
            if in_scope and in_scope != partners.sudo():
                raise UserError(
                    _(
                        "Only a person who may read the registry's data can merge a contact of the "
                        "registry with contacts out of it: its data would be stored in the clear."
                    )
                )
        return super()._merge(partner_ids, dst_partner=dst_partner, extra_checks=extra_checks)
