# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
import json
import logging

from odoo import http
from odoo.exceptions import UserError
from odoo.http import request

_logger = logging.getLogger(__name__)

JWKS_MAX_AGE = 300


class JwksController(http.Controller):
    @http.route("/api/v1/security/.well-known/jwks.json", type="http", auth="public", methods=["GET"])
    def jwks(self):
        """Public keys of every active provider, so that anyone can verify signatures offline."""
        keys = []
        for provider in request.env["g2p.encryption.provider"].sudo().search([]):
            try:
                keys.extend(provider.get_jwks().get("keys", []))
            except UserError as error:
                # One unreachable KeyManager must not hide the other providers' keys.
                _logger.warning("JWKS: keys of provider %s left out: %s", provider.id, error)
        return request.make_response(
            json.dumps({"keys": keys}),
            headers=[
                ("Content-Type", "application/jwk-set+json"),
                ("Cache-Control", f"public, max-age={JWKS_MAX_AGE}"),
                ("Access-Control-Allow-Origin", "*"),
            ],
        )
