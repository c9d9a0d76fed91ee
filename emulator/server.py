"""The emulator's HTTP server: Keycloak and KeyManager on one port of 127.0.0.1, plus a control API.

    with Emulator().start() as emulator:            # or Emulator(...).start() ... emulator.stop()
        emulator.token_url                          # http://127.0.0.1:PORT/realms/openg2p/protocol/...
        emulator.keymanager_url                     # http://127.0.0.1:PORT/v1/keymanager
        emulator.faults.fail_next(2, 503, endpoint="/encrypt")
        emulator.counts["/encrypt"], emulator.counts["token"]

The control API (``/_emulator/...``, no authentication) drives an emulator in another process,
e.g. one started by ``tools/emulator`` for a load test:

* ``GET /_emulator/stats``: counts per endpoint, fault state, keys.
* ``POST /_emulator/faults``: a JSON fault description, see :meth:`Faults.apply`.
* ``POST /_emulator/reset``: clear faults and counts.
* ``POST /_emulator/rotate`` ``{"applicationId", "referenceId"}``: a new key generation.
"""

import contextlib
import json
import logging
import re
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .faults import Faults
from .formats import mosip_time
from .keymanager import BASE_PATH, KeyManagerService, response_envelope
from .keystore import DEFAULT_APPLICATION_IDS, KeyManagerFault, KeyStore
from .realm import Realm

_logger = logging.getLogger(__name__)

DEFAULT_REALM = "openg2p"
DEFAULT_CLIENT_ID = "openg2p-admin-client"
DEFAULT_CLIENT_SECRET = "emulator-client-secret"
CONTROL_PATH = "/_emulator/"
_KEYCLOAK_PATH = re.compile(
    r"/realms/(?P<realm>[^/]+)/(?:protocol/openid-connect/(?P<endpoint>token|certs)"
    r"|\.well-known/(?P<discovery>openid-configuration))"
)
_GATEWAY_PAGE = (
    "<html><body><center><h1>{status} {reason}</h1></center><hr><center>nginx</center></body></html>"
)


class Emulator:
    """MOSIP KeyManager 1.2 and a Keycloak realm, for tests and load tests.

    ``clients``: ``{client_id: {"secret": ..., "roles": [...]}}`` of the realm (default: one
    ``openg2p-admin-client`` with role ``KEYMANAGER_ADMIN``). ``token_lifetime``: seconds.
    ``application_ids``: the key policy table (which applicationIds may have keys); ``policies``
    overrides rows of it (``{appId: keystore.Policy(validity_days, pre_expire_days, access)}``).
    ``required_roles``: a token needs one of these realm roles for KeyManager (else 403).
    ``allowed_audiences``: aud/azp values KeyManager accepts (default: the realm's clients).
    ``validate_sign_json``: /jwtSign refuses non-JSON payloads (off in OpenG2P's configuration).
    """

    def __init__(
        self,
        host="127.0.0.1",
        port=0,
        *,
        token_lifetime=300,
        clients=None,
        realm=DEFAULT_REALM,
        application_ids=DEFAULT_APPLICATION_IDS,
        policies=None,
        required_roles=("KEYMANAGER_ADMIN",),
        allowed_audiences=None,
        validate_sign_json=False,
        request_log_size=500,
    ):
        if clients is None:
            clients = {DEFAULT_CLIENT_ID: {"secret": DEFAULT_CLIENT_SECRET, "roles": ["KEYMANAGER_ADMIN"]}}
        self.host = host
        self.port = port
        self.faults = Faults(listener=self)
        self.realm = Realm(realm, clients, token_lifetime, self.faults, allowed_audiences)
        self.keystore = KeyStore(application_ids, policies)
        self.keymanager = KeyManagerService(self.keystore, self.realm, required_roles, validate_sign_json)
        self._counts = {}
        self._received = {}  # every request that reached the server, answered while down or not
        self._counts_lock = threading.Lock()
        self._requests = deque(maxlen=request_log_size)
        self._server = None
        self._server_thread = None
        self._server_lock = threading.RLock()
        self._running = False

    # -- life cycle ------------------------------------------------------------------------------

    def start(self):
        """Start serving in a background thread; returns ``self``."""
        with self._server_lock:
            self._running = True
            self._listen()
        return self

    def stop(self):
        with self._server_lock:
            self._running = False
            self.faults.come_up()
            self._stop_listening()

    def __enter__(self):
        return self if self._running else self.start()

    def __exit__(self, *exc_info):
        self.stop()

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    @property
    def keymanager_url(self):
        return self.url + BASE_PATH

    @property
    def realm_url(self):
        return f"{self.url}/realms/{self.realm.name}"

    @property
    def token_url(self):
        return self.realm_url + "/protocol/openid-connect/token"

    @property
    def certs_url(self):
        return self.realm_url + "/protocol/openid-connect/certs"

    # -- what tests read and do ------------------------------------------------------------------

    @property
    def counts(self):
        """Requests received per endpoint (``"/encrypt"``, ``"token"``...), failed ones included."""
        with self._counts_lock:
            return dict(self._counts)

    @property
    def token_requests(self):
        return self.counts.get("token", 0)

    @property
    def received(self):
        """Requests that reached the server per endpoint, those turned away while down included:
        what a client's own count of the requests it sent should equal."""
        with self._counts_lock:
            return dict(self._received)

    def reset_counts(self):
        with self._counts_lock:
            self._counts.clear()
            self._received.clear()
        self._requests.clear()

    @property
    def requests(self):
        """The last requests received: method, path with query, endpoint, status, request id,
        cookie names, whether an Authorization header came, how a token client authenticated."""
        return [dict(entry) for entry in list(self._requests)]

    def rotate(self, application_id, reference_id=""):
        """Expire the current generation of a key and make a new one; returns the new generation."""
        return self.keystore.rotate(application_id, reference_id)

    def issue_token(self, client_id=DEFAULT_CLIENT_ID, roles=None):
        """A token as the realm would issue it to ``client_id`` (``roles`` overrides its roles)."""
        return self.realm.issue_token(client_id, self.url, roles=roles)

    # -- Faults listener -------------------------------------------------------------------------

    def faults_changed_down(self, mode):
        """Called by :class:`Faults`: ``refuse`` closes the listening socket, up reopens it."""
        with self._server_lock:
            if mode == "refuse":
                self._stop_listening()
            elif mode is None and self._running and self._server is None:
                self._listen()

    # -- serving ---------------------------------------------------------------------------------

    def _listen(self):
        if self._server is not None:
            return
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._server_thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"emulator-{self.port}",
            daemon=True,
        )
        self._server_thread.start()

    def _stop_listening(self):
        server, thread = self._server, self._server_thread
        if server is None:
            return
        self._server = self._server_thread = None
        server.shutdown()
        server.server_close()
        server.close_connections()
        thread.join(timeout=2)

    def dispatch(self, handler, method):
        parts = urlsplit(handler.path)
        path, query = parts.path, parse_qs(parts.query, keep_blank_values=True)
        body = handler.read_body()
        if path.startswith(CONTROL_PATH):
            status, payload = self._control(method, path, body)
            handler.respond(status, payload)
            return
        service, endpoint = self._endpoint_of(path)
        with self._counts_lock:
            self._received[endpoint] = self._received.get(endpoint, 0) + 1
        down = self.faults.down_mode
        if down in ("close", "refuse"):
            # No answer at all: the client sees the connection closed.
            handler.close_connection = True
            return
        if down == "503":
            handler.respond(503, _gateway_page(503, "Service Temporarily Unavailable"), "text/html")
            return
        # Counted, logged and given its injected outcome on arrival: a request still sleeping
        # through injected latency must not take a fault or a log place meant for a later one.
        with self._counts_lock:
            self._counts[endpoint] = self._counts.get(endpoint, 0) + 1
        log_entry = {
            "method": method,
            "path": handler.path,
            "endpoint": endpoint,
            "request_id": handler.headers.get("X-Request-ID"),
            "cookie_names": _cookie_names(handler.headers.get("Cookie")),
            "authorization_header": handler.headers.get("Authorization") is not None,
            "status": None,
        }
        self._requests.append(log_entry)
        injected = self.faults.take(endpoint, service)
        delay = self.faults.latency_seconds(endpoint, service)
        if delay:
            time.sleep(delay)
        status, payload, content_type, headers = self._answer(
            service, endpoint, method, path, query, handler.headers, body, log_entry, injected
        )
        log_entry["status"] = status
        handler.respond(status, payload, content_type, headers)

    def _answer(self, service, endpoint, method, path, query, headers, body, log_entry, injected):
        """``(status, payload, content_type, extra_headers)`` of one service request."""
        if injected and injected[0] == "status":
            return _injected_failure(service, injected[1]) + (None,)
        if service == "keycloak":
            if injected:
                error = {"error": injected[1], "error_description": injected[2]}
                return 400, error, "application/json", None
            return self._keycloak(endpoint, method, path, headers, body, log_entry)
        if service == "keymanager":
            if injected:
                return (
                    200,
                    response_envelope({}, errors=[(injected[1], injected[2])]),
                    "application/json",
                    None,
                )
            status, payload = self.keymanager.handle(
                method, path[len(BASE_PATH) :], query, headers.get("Cookie"), body, self.url
            )
            return status, payload, "application/json", None
        return 404, {"error": "Not Found", "path": path}, "application/json", None

    def _endpoint_of(self, path):
        match = _KEYCLOAK_PATH.fullmatch(path)
        if match:
            return "keycloak", match.group("endpoint") or match.group("discovery")
        if path == BASE_PATH or path.startswith(BASE_PATH + "/"):
            return "keymanager", self.keymanager.endpoint_name(path[len(BASE_PATH) :])
        return None, path

    def _keycloak(self, endpoint, method, path, headers, body, log_entry):
        realm_name = _KEYCLOAK_PATH.fullmatch(path).group("realm")
        if realm_name != self.realm.name:
            return 404, {"error": "Realm does not exist"}, "application/json", None
        expected_method = "POST" if endpoint == "token" else "GET"
        if method != expected_method:
            return 405, {"error": "HTTP 405 Method Not Allowed"}, "application/json", None
        if endpoint == "certs":
            return 200, self.realm.jwks(), "application/json", None
        if endpoint == "openid-configuration":
            return 200, self.realm.openid_configuration(self.url), "application/json", None
        status, payload, client_auth = self.realm.token_request(body, headers.get("Authorization"), self.url)
        log_entry["client_auth"] = client_auth
        return status, payload, "application/json", {"Cache-Control": "no-store", "Pragma": "no-cache"}

    def _control(self, method, path, body):
        action = path[len(CONTROL_PATH) :]
        try:
            spec = json.loads(body) if body else {}
            if action == "stats" and method == "GET":
                return 200, {
                    "url": self.url,
                    "counts": self.counts,
                    "received": self.received,
                    "faults": self.faults.state(),
                    "keys": self.keystore.summary(),
                }
            if action == "faults" and method == "POST":
                return 200, self._apply_faults(spec)
            if action == "reset" and method == "POST":
                self.faults.clear()
                self.reset_counts()
                return 200, {"status": "reset"}
            if action == "rotate" and method == "POST":
                generation = self.rotate(spec["applicationId"], spec.get("referenceId") or "")
                return 200, {
                    "applicationId": generation.application_id,
                    "referenceId": generation.reference_id,
                    "keyId": generation.key_id,
                    "thumbprint": generation.thumbprint.hex().upper(),
                    "issuedAt": mosip_time(generation.generated_at),
                }
        except (ValueError, TypeError, KeyError, AttributeError, KeyManagerFault) as exc:
            return 400, {"error": f"{type(exc).__name__}: {exc}"}
        return 404, {"error": f"no control action {method} {path}"}

    def _apply_faults(self, spec):
        down = spec.get("down") if isinstance(spec, dict) else None
        if down and down.get("mode", "refuse") == "refuse" and down.get("seconds"):
            # Closing the listener from here would cut this very answer: do it just after.
            spec = {key: value for key, value in spec.items() if key != "down"}
            state = self.faults.apply(spec)
            threading.Timer(0.05, self.faults.go_down, args=("refuse", down["seconds"])).start()
            return dict(state, down="refuse")
        return self.faults.apply(spec)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, emulator):
        self.emulator = emulator
        self._connections = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self):
        connection, address = super().get_request()
        with self._connections_lock:
            self._connections.add(connection)
        return connection, address

    def shutdown_request(self, request):
        with self._connections_lock:
            self._connections.discard(request)
        return super().shutdown_request(request)

    def handle_error(self, request, client_address):
        # A client that drops its connection is routine here (timeouts, downtime faults): no
        # traceback on stderr.
        _logger.debug("emulator: connection from %s ended with an error", client_address, exc_info=True)

    def close_connections(self):
        """Cut the kept-alive connections too: a stopped service answers nobody."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by its client
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients pool connections
    server_version = "KeyManagerEmulator/1.2"
    timeout = 30  # idle kept-alive connections are closed after this
    # Headers and body go out in two writes; with Nagle's algorithm the second waits for the
    # client's delayed ACK (40 ms per call).
    disable_nagle_algorithm = True

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method):
        try:
            self.server.emulator.dispatch(self, method)
        except OSError:  # the client went away, or the emulator went down meanwhile
            self.close_connection = True
        except Exception:  # noqa: BLE001 - a bug of the emulator must not kill the connection thread silently
            _logger.exception("emulator failed on %s %s", method, self.path)
            self.respond(500, {"error": "emulator failure"})

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def respond(self, status, payload, content_type="application/json", headers=None):
        body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type + ("; charset=utf-8" if "json" in content_type else ""))
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, message_format, *args):
        _logger.debug("emulator: " + message_format, *args)


def _cookie_names(cookie_header):
    return [part.strip().partition("=")[0] for part in (cookie_header or "").split(";") if part.strip()]


def _gateway_page(status, reason):
    return _GATEWAY_PAGE.format(status=status, reason=reason)


def _injected_failure(service, status):
    """``(status, payload, content_type)`` of an injected 5xx: KeyManager's own 500, or a gateway's page."""
    if status == 500 and service == "keymanager":
        return (
            500,
            response_envelope({}, errors=[("KER-KMS-500", "Internal server error")]),
            "application/json",
        )
    if status == 500 and service == "keycloak":
        return 500, {"error": "unknown_error"}, "application/json"
    reasons = {502: "Bad Gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}
    return status, _gateway_page(status, reasons.get(status, "Error")), "text/html"
