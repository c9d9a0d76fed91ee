# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Seal status for monitoring, in the manner of HashiCorp Vault's ``sys/seal-status``.

``GET /api/v1/g2p_encryption/seal-status`` answers, for this server and this database, whether each
provider in sealed custody is sealed here, with the number of shares needed, issued and entered so
far: no secret, no key id. With ``?fail_when_sealed=1`` it answers HTTP 503 while anything is
sealed, for a load balancer's health check. No login is needed unless the server configuration
sets ``g2p_encryption_status_token``: then the request must carry ``Authorization: Bearer <token>``.
"""

import hmac
import socket

from odoo import http
from odoo.http import request
from odoo.tools import config

from ..models.custody_server import current_instance_id

STATUS_TOKEN_OPTION = "g2p_encryption_status_token"


class SealStatusController(http.Controller):
    @http.route(
        "/api/v1/g2p_encryption/seal-status",
        type="http",
        auth="public",
        methods=["GET"],
        csrf=False,
        save_session=False,
    )
    def seal_status(self, fail_when_sealed=None, **kwargs):
        token = config.get(STATUS_TOKEN_OPTION)
        if token:
            given = request.httprequest.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return request.make_json_response(
                    {"error": "a bearer token is required"},
                    status=401,
                    headers=[("WWW-Authenticate", "Bearer"), ("Cache-Control", "no-store")],
                )
        providers = request.env["g2p.encryption.custody"].sudo()._seal_status_report()
        sealed = any(provider["sealed"] for provider in providers)
        body = {
            "sealed": sealed,
            "server": socket.gethostname(),
            "instance": current_instance_id(),
            "providers": providers,
        }
        status = 503 if sealed and fail_when_sealed not in (None, "", "0") else 200
        return request.make_json_response(body, status=status, headers=[("Cache-Control", "no-store")])
