# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The Prometheus endpoint: the server's counters summed over its workers, and the database's state.

Closed unless the server configuration opens it, with a token
(``g2p_encryption_metrics_token``: scrapes send ``Authorization: Bearer <token>``), with a list of
allowed addresses (``g2p_encryption_metrics_allowed_addresses``: addresses and networks, comma
separated), or with both (both must then pass). Without either it answers 404, as if absent.
The address tested is the peer's, so a request that says it came through a proxy is refused by an
address list: behind a proxy the peer is the proxy, and with Odoo's proxy mode the address comes
from a header the client can write. Scrapes through a proxy use the token alone.
"""

import hmac
import ipaddress
import logging

from odoo import SUPERUSER_ID, api, http, registry
from odoo.http import request
from odoo.tools import config

from ..core import metrics
from ..models.encryption_metrics import DatabaseCollector

_logger = logging.getLogger(__name__)

METRICS_PATH = "/g2p_encryption/metrics"
TOKEN_OPTION = "g2p_encryption_metrics_token"
# Headers a proxy adds (and a client can forge); Odoo's proxy mode takes the address from them.
FORWARDING_HEADERS = ("X-Forwarded-For", "X-Forwarded-Host", "Forwarded", "X-Real-IP")
ADDRESSES_OPTION = "g2p_encryption_metrics_allowed_addresses"


def allowed_networks(text):
    """The networks of a comma-separated list of addresses and networks (bad entries are logged)."""
    networks = []
    for entry in filter(None, (part.strip() for part in (text or "").split(","))):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            _logger.warning("%s: %r is not an address or a network; ignored", ADDRESSES_OPTION, entry)
    return networks


def refusal(httprequest):
    """None when the scrape may be answered, else (HTTP status, reason). Never logs the token."""
    token = config.get(TOKEN_OPTION) or ""
    addresses = config.get(ADDRESSES_OPTION) or ""
    if not token and not addresses:
        return 404, "not enabled"
    if addresses:
        if any(httprequest.headers.get(header) for header in FORWARDING_HEADERS):
            return 403, "address not allowed: the request came through a proxy (scrape with the token alone)"
        try:
            remote = ipaddress.ip_address(httprequest.remote_addr or "")
        except ValueError:
            return 403, "address not allowed"
        if not any(remote in network for network in allowed_networks(addresses)):
            return 403, "address not allowed"
    if token:
        scheme, _space, given = (httprequest.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            return 401, "token missing or wrong"
    return None


class MetricsController(http.Controller):
    @http.route(METRICS_PATH, type="http", auth="none", methods=["GET"], csrf=False, save_session=False)
    def metrics(self):
        refused = refusal(request.httprequest)
        if refused:
            status, reason = refused
            _logger.info("Metrics scrape from %s refused: %s", request.httprequest.remote_addr, reason)
            headers = [("WWW-Authenticate", "Bearer")] if status == 401 else []
            return request.make_response(reason, headers=headers, status=status)
        if not metrics.available():
            return request.make_response("prometheus_client is not installed", status=501)
        database = request.db or (config.get("db_name") or "").split(",")[0]
        if not database:
            body, content_type = metrics.exposition()
        else:
            try:
                with registry(database).cursor() as cr:
                    env = api.Environment(cr, SUPERUSER_ID, {})
                    collectors = [DatabaseCollector(env)] if "g2p.encryption.metrics" in env else []
                    body, content_type = metrics.exposition(collectors)
            except Exception:  # pylint: disable=broad-except
                # The database is down or its registry does not load: the workers' counters
                # still go out, with ``database_gauges_up 0``.
                _logger.exception("Metrics scrape: database %s could not be read", database)
                body, content_type = metrics.exposition([DatabaseCollector()])
        return request.make_response(
            body, headers=[("Content-Type", content_type), ("Cache-Control", "no-store")]
        )
