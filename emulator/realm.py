"""Keycloak's side of the emulator: one realm issuing client-credentials tokens (KEYMANAGER_API.md §13).

Tokens are RS256 JWTs signed by the realm's key, with Keycloak's claims for a service account.
The realm also validates them the way MOSIP's auth adapter does (§1), for the KeyManager side.
"""

import json
import threading
import time
import uuid
from urllib.parse import parse_qs, unquote_plus, urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa

from ..core.encoding import b64decode
from .formats import b64url, b64url_decode
from .jws import rsa_jwk, sign_rs256, verify_rs256

INVALID_CREDENTIALS = "Invalid client or Invalid client credentials"


class InvalidToken(Exception):
    """The token is missing, malformed, badly signed, expired, or not for this service."""


class Realm:
    """A Keycloak realm with confidential clients.

    ``clients`` maps client ids to ``{"secret": str, "roles": [realm roles], "enabled": True,
    "service_accounts": True}``. ``allowed_audiences``: the ``aud``/``azp`` values KeyManager
    accepts (MOSIP's ``auth.server.admin.allowed.audience``); ``None`` accepts this realm's clients.
    """

    def __init__(self, name, clients, token_lifetime, faults, allowed_audiences=None, clock=time.time):
        self.name = name
        self.clients = {client_id: dict(config) for client_id, config in clients.items()}
        self.token_lifetime = int(token_lifetime)
        self.faults = faults
        self.allowed_audiences = set(allowed_audiences) if allowed_audiences is not None else None
        self.clock = clock
        self._key = None
        self._kid = None
        self._lock = threading.Lock()
        self._issued = {}  # jti -> fault epoch at issue (Faults.expire_tokens bumps the epoch)
        self._subjects = {client_id: str(uuid.uuid4()) for client_id in self.clients}

    def issuer(self, base_url):
        return f"{base_url}/realms/{self.name}"

    def signing_key(self):
        with self._lock:
            if self._key is None:
                self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                self._kid = b64url(uuid.uuid4().bytes)
            return self._key, self._kid

    def jwks(self):
        key, kid = self.signing_key()
        return {"keys": [rsa_jwk(key.public_key(), kid)]}

    def openid_configuration(self, base_url):
        issuer = self.issuer(base_url)
        return {
            "issuer": issuer,
            "token_endpoint": f"{issuer}/protocol/openid-connect/token",
            "jwks_uri": f"{issuer}/protocol/openid-connect/certs",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    # -- the token endpoint ----------------------------------------------------------------------

    def token_request(self, body, authorization_header, base_url):
        """Answer a token request: ``(status, json_body, client_auth)``.

        ``client_auth`` says how the client authenticated (``"post"``, ``"basic"`` or ``None``).
        """
        form = {
            name: values[0]
            for name, values in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()
        }
        grant_type = form.get("grant_type")
        if not grant_type:
            return 400, _error("invalid_request", "Missing form parameter: grant_type"), None
        if grant_type != "client_credentials":
            return 400, _error("unsupported_grant_type", "Unsupported grant_type"), None
        client_id, secret, client_auth = None, None, None
        basic = _basic_credentials(authorization_header)
        if basic:
            client_id, secret, client_auth = basic[0], basic[1], "basic"
        # Form values override the header (ClientIdAndSecretAuthenticator).
        if form.get("client_id"):
            client_id, client_auth = form["client_id"], "post"
        if "client_secret" in form:
            secret = form["client_secret"]
        if not client_id:
            return 400, _error("invalid_client", "Missing parameter: client_id"), client_auth
        client = self.clients.get(client_id)
        if client is None or not client.get("enabled", True):
            return 401, _error("invalid_client", INVALID_CREDENTIALS), client_auth
        if self.faults.secret_rejected or secret is None or secret != client.get("secret"):
            return 401, _error("unauthorized_client", INVALID_CREDENTIALS), client_auth
        if not client.get("service_accounts", True):
            return (
                401,
                _error("unauthorized_client", "Client not enabled to retrieve service account"),
                client_auth,
            )
        token = self.issue_token(client_id, base_url)
        return (
            200,
            {
                "access_token": token,
                "expires_in": self.token_lifetime,
                "refresh_expires_in": 0,
                "token_type": "Bearer",
                "not-before-policy": 0,
                "scope": "profile email",
            },
            client_auth,
        )

    def issue_token(self, client_id, base_url, roles=None):
        """A signed access token of ``client_id`` (``roles`` overrides the client's realm roles)."""
        key, kid = self.signing_key()
        now = int(self.clock())
        if self.faults.issuing_expired_tokens:
            issued_at, expires = now - self.token_lifetime - 1, now - 1
        else:
            issued_at, expires = now, now + self.token_lifetime
        jti = str(uuid.uuid4())
        client = self.clients.get(client_id, {})
        claims = {
            "exp": expires,
            "iat": issued_at,
            "jti": jti,
            "iss": self.issuer(base_url),
            "aud": "account",
            "sub": self._subjects.get(client_id) or str(uuid.uuid4()),
            "typ": "Bearer",
            "azp": client_id,
            "acr": "1",
            "realm_access": {"roles": list(client.get("roles", ()) if roles is None else roles)},
            "scope": "profile email",
            "clientId": client_id,
            "preferred_username": f"service-account-{client_id}",
        }
        with self._lock:
            self._issued[jti] = self.faults.token_epoch
        header = {"alg": "RS256", "typ": "JWT", "kid": kid}
        return sign_rs256(key, header, json.dumps(claims, separators=(",", ":")).encode())

    # -- validation (MOSIP auth adapter, offline mode) -------------------------------------------

    def validate(self, token, base_url):
        """The claims of a token KeyManager accepts; raises :class:`InvalidToken` otherwise."""
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidToken("not a JWT")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
        except ValueError as exc:
            raise InvalidToken("not a JWT") from exc
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise InvalidToken("not a JWT")
        key, kid = self.signing_key()
        if header.get("alg") != "RS256" or header.get("kid") != kid:
            raise InvalidToken("unknown key or algorithm")
        if not verify_rs256(key.public_key(), f"{parts[0]}.{parts[1]}", parts[2]):
            raise InvalidToken("bad signature")
        expiry = claims.get("exp")
        if not isinstance(expiry, int | float) or expiry <= self.clock():
            raise InvalidToken("expired")
        with self._lock:
            epoch = self._issued.get(claims.get("jti"), -1)
        if epoch < self.faults.token_epoch:
            raise InvalidToken("expired by the emulator")
        if urlsplit(str(claims.get("iss", ""))).hostname != urlsplit(base_url).hostname:
            raise InvalidToken("issuer")
        allowed = self.allowed_audiences if self.allowed_audiences is not None else set(self.clients)
        audiences = claims.get("aud")
        audiences = set(audiences) if isinstance(audiences, list) else {audiences}
        if not (audiences | {claims.get("azp")}) & allowed:
            raise InvalidToken("audience")
        return claims


def _error(code, description):
    return {"error": code, "error_description": description}


def _basic_credentials(header):
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = b64decode(header[6:].strip()).decode("utf-8")
    except ValueError:
        return None
    if ":" not in decoded:
        return None
    client_id, secret = decoded.split(":", 1)
    return unquote_plus(client_id), unquote_plus(secret)
