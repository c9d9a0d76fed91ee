# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The JWKS endpoint: the public keys of every provider, for anyone to verify signatures offline."""

import json
import logging

from odoo import http
from odoo.exceptions import UserError
from odoo.http import request

from ..core.cache import Cache

_logger = logging.getLogger(__name__)

JWKS_PATH = "/api/v1/security/.well-known/jwks.json"
JWKS_MAX_AGE = 300
# A provider whose keys could not be fetched (KeyManager down) is left out, without asking it
# again, for this long: verifiers polling the endpoint must not hammer a service that is down.
FAILURE_SECONDS = 30
_failures = Cache("JWKS failures", ttl=FAILURE_SECONDS)


class JwksController(http.Controller):
    @http.route(JWKS_PATH, type="http", auth="public", methods=["GET"])
    def jwks(self):
        """Public keys of every active provider.

        A full set may be cached by anyone for five minutes. A partial one (a provider failed) is
        served with ``no-store``: a cache must not keep verifiers without those keys once the
        provider answers again.
        """
        keys, complete = [], True
        for provider in request.env["g2p.encryption.provider"].sudo().search([]):
            scope = (request.env.cr.dbname, provider.id)
            if _failures.get(scope) is not None:
                complete = False
                continue
            try:
                keys.extend(provider.get_jwks().get("keys", []))
            except UserError as error:
                # One unreachable KeyManager must not hide the other providers' keys.
                _logger.warning("JWKS: keys of provider %s left out: %s", provider.id, error)
                _failures.put(scope, str(error))
                complete = False
        cache_control = f"public, max-age={JWKS_MAX_AGE}" if complete else "no-store"
        return request.make_response(
            json.dumps({"keys": keys}),
            headers=[
                ("Content-Type", "application/jwk-set+json"),
                ("Cache-Control", cache_control),
                ("Access-Control-Allow-Origin", "*"),
            ],
        )
