# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""A registrant's user (a portal user, usually): what Odoo copies of its partner's values into
columns of its own, in the clear, it does not copy for a partner in scope."""

from odoo import _, api, models
from odoo.tools import SQL


class ResUsers(models.Model):
    _inherit = "res.users"
    _g2p_derived_kept_out = ("signature",)  # see _compute_signature

    @api.depends("name")
    def _compute_signature(self):
        # Odoo makes a signature of the user's name ("--<br/>Name"), an HTML column that cannot
        # be encrypted: none for a registrant's user.
        return super(ResUsers, self - self.filtered("partner_id.g2p_in_registry"))._compute_signature()

    @api.model
    def _g2p_forget_signatures(self, partner_ids=None):
        """Empty the signatures of the portal users of partners in the registry (of
        ``partner_ids``; all when None): made before their partner came into scope, they may
        hold its name, in the clear."""
        self.env.cr.execute(
            SQL(
                """UPDATE res_users u SET signature = NULL FROM res_partner p
                   WHERE p.id = u.partner_id AND p.g2p_in_registry AND u.share
                     AND u.signature IS NOT NULL%s""",
                SQL(" AND p.id IN %s", tuple(partner_ids)) if partner_ids is not None else SQL(),
            )
        )
        self.invalidate_model(["signature"])

    def _get_portal_access_update_body(self, access_granted):
        # Odoo adds the partner's e-mail to the note it posts on the partner's chatter: encrypted
        # there for a registrant, but copied into what notifications carry. Not a registrant's.
        if not self.sudo().partner_id.g2p_in_registry:
            return super()._get_portal_access_update_body(access_granted)
        return _("Portal Access Granted") if access_granted else _("Portal Access Revoked")
