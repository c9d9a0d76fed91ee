# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Shows a new set of shares, once.

The shares travel only in the context of the action that opens this dialog (the answer to the
button that made them), and are rendered by a non-stored field: the dialog is never saved, so
they reach no table. Closing the dialog loses them for good.
"""

from markupsafe import Markup, escape

from odoo import _, api, fields, models
from odoo.exceptions import UserError

SHARES_CONTEXT_KEY = "g2p_custody_shares"


def shares_display_action(provider, share_set, title):
    """The action that shows ``share_set`` (a ``core.custody.ShareSet``) once."""
    return {
        "type": "ir.actions.act_window",
        "name": title,
        "res_model": "g2p.encryption.custody.shares.wizard",
        "view_mode": "form",
        "target": "new",
        "context": {
            "default_provider_id": provider.id,
            SHARES_CONTEXT_KEY: list(share_set.shares),
            "g2p_custody_threshold": share_set.threshold,
        },
    }


class CustodySharesWizard(models.TransientModel):
    _name = "g2p.encryption.custody.shares.wizard"
    _description = "New Key Custody Shares (shown once)"

    provider_id = fields.Many2one("g2p.encryption.provider", readonly=True, ondelete="cascade")
    shares_html = fields.Html(string="Shares", compute="_compute_shares_html", sanitize=False)
    share_count = fields.Integer(compute="_compute_shares_html")
    threshold = fields.Integer(compute="_compute_shares_html")

    def _compute_shares_html(self):
        shares = self.env.context.get(SHARES_CONTEXT_KEY) or []
        threshold = self.env.context.get("g2p_custody_threshold") or 0
        items = Markup("").join(
            Markup(
                '<li class="mb-3"><strong>%s</strong><br/>'
                '<code class="d-block p-2 bg-light text-dark" style="white-space: normal;">%s</code></li>'
            )
            % (_("Share %(number)s of %(count)s", number=number, count=len(shares)), escape(share))
            for number, share in enumerate(shares, start=1)
        )
        html = Markup("<ol class='list-unstyled'>%s</ol>") % items if shares else Markup("")
        for wizard in self:
            wizard.shares_html = html
            wizard.share_count = len(shares)
            wizard.threshold = threshold

    @api.model_create_multi
    def create(self, vals_list):  # pylint: disable=method-required-super
        # Nothing here is ever worth saving; refuse rather than store shares by accident.
        raise UserError(_("New shares are shown once and never saved."))
