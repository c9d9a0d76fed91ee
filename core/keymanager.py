"""HTTP client of MOSIP KeyManager 1.2 (KEYMANAGER_API.md).

All calls go through :meth:`KeyManagerClient.call`, which wraps the request in MOSIP's envelope
(§2.1), sends the Keycloak token as the ``Authorization`` cookie (§1), gives each request an id
(header ``X-Request-ID``, also in the log line and in error messages), retries what is transient,
renews the token once on HTTP 401, and turns every failure into an exception that names its cause
(§2.3). The typed helpers below it build the requests of the endpoints the addon uses.
"""

from datetime import datetime, timezone

from . import http
from .encoding import b64url_decode, b64url_encode
from .errors import AuthenticationError, KeyManagerError, RemoteServiceError, ServiceUnavailableError

SERVICE = "KeyManager"
REQUEST_ENVELOPE_ID = "g2p_encryption"
REQUEST_ENVELOPE_VERSION = "1.0"


def mosip_timestamp(moment=None):
    """UTC time as KeyManager requires it: ``yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`` (exactly 3 digits)."""
    moment = (moment or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


class KeyManagerClient:
    """Client of one KeyManager, e.g. ``http://keymanager.keymanager/v1/keymanager``.

    ``token_fetcher`` is a :class:`core.keycloak.TokenFetcher` (or anything with ``get_token()``
    and ``invalidate(token)``). ``timeout`` bounds each HTTP request in seconds; HTTP 5xx, timeouts
    and refused connections are retried ``retries`` times with exponential ``backoff`` (seconds).
    Without ``session`` the process-wide pooled session of the server is used.
    """

    def __init__(self, base_url, token_fetcher, *, timeout=10, retries=2, backoff=0.2, session=None):
        if not base_url:
            raise ValueError("base_url is required")
        self.base_url = base_url.rstrip("/")
        self.token_fetcher = token_fetcher
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self._session = session

    def __repr__(self):
        return f"<KeyManagerClient {self.base_url}>"

    # -- the choke point -------------------------------------------------------------------------

    def call(self, method, endpoint, request=None, params=None, *, idempotent=True):
        """Call ``endpoint`` (e.g. ``"/encrypt"``) and return its ``response`` object.

        ``request`` (a dict) is sent inside the MOSIP envelope as a JSON body; GET endpoints take
        ``params`` only. Raises :class:`KeyManagerError` (an ``errors`` list, or no ``response``),
        :class:`AuthenticationError` (401 even with a fresh token, 403),
        :class:`ServiceUnavailableError` (5xx, timeout, no connection; after the retries) or
        :class:`RemoteServiceError` (any other answer). ``idempotent=False`` (e.g. a forced key
        rotation) disables the retries, as a request that timed out may have been carried out.
        """
        body = None
        if request is not None:
            body = {
                "id": REQUEST_ENVELOPE_ID,
                "version": REQUEST_ENVELOPE_VERSION,
                "requesttime": mosip_timestamp(),
                "metadata": {},
                "request": request,
            }
        token = self.token_fetcher.get_token()
        try:
            return self._exchange(method, endpoint, body, params, token, idempotent)
        except AuthenticationError as error:
            # An expired or revoked token: KeyManager says 401; a new token may do, once (§13).
            if error.http_status != 401:
                raise
            self.token_fetcher.invalidate(token)
        return self._exchange(method, endpoint, body, params, self.token_fetcher.get_token(), idempotent)

    def _exchange(self, method, endpoint, body, params, token, idempotent):
        return http.exchange(
            SERVICE,
            method,
            self.base_url + endpoint,
            endpoint=endpoint,
            interpret=_interpret,
            timeout=self.timeout,
            stats_key=self.base_url,
            retries=self.retries,
            backoff=self.backoff,
            idempotent=idempotent,
            session=self._session,
            # KeyManager 1.2 reads the token only from a cookie whose name contains
            # "Authorization", never from an Authorization header (§1).
            headers={"Accept": "application/json", "Cookie": f"Authorization={token}"},
            json=body,
            params=params,
        )

    # -- typed helpers ---------------------------------------------------------------------------

    def encrypt(self, data, application_id, reference_id, salt=None, aad=None):
        """Hybrid-encrypt ``data`` (bytes) with the base key; returns KeyManager's base64url string.

        ``salt`` and ``aad`` are base64 strings; the same ones must be given to :meth:`decrypt`
        (§4.4: with ``salt`` the mode is A, with ``aad`` only C, with neither B).
        """
        request = self._crypto_request(b64url_encode(data), application_id, reference_id, salt, aad)
        return _string_field(self.call("POST", "/encrypt", request), "data", "/encrypt")

    def decrypt(self, ciphertext, application_id, reference_id, salt=None, aad=None):
        """The plaintext bytes of a ciphertext made by :meth:`encrypt` (any key generation)."""
        request = self._crypto_request(ciphertext, application_id, reference_id, salt, aad)
        data = _string_field(self.call("POST", "/decrypt", request), "data", "/decrypt")
        try:
            return b64url_decode(data)
        except ValueError as exc:
            raise KeyManagerError(
                "the decrypted data is not base64url", service=SERVICE, endpoint="/decrypt"
            ) from exc

    def jwt_sign(
        self,
        data,
        application_id,
        reference_id="",
        include_payload=True,
        include_certificate=False,
        include_cert_hash=False,
    ):
        """A compact RS256 JWS of ``data`` (bytes) by the application's master key (§5.1).

        ``include_payload=False`` gives a detached JWS (``header..signature``).
        """
        request = {
            "dataToSign": b64url_encode(data),
            "applicationId": application_id,
            # Always sent: omitted, KeyManager 1.2 fails with HTTP 500 (§5.1).
            "referenceId": reference_id or "",
            "includePayload": bool(include_payload),
            "includeCertificate": bool(include_certificate),
            "includeCertHash": bool(include_cert_hash),
        }
        return _string_field(self.call("POST", "/jwtSign", request), "jwtSignedData", "/jwtSign")

    def jwt_verify(self, token, application_id, reference_id="", actual_data=None, certificate_data=None):
        """KeyManager's verdict on a JWS: ``{"signatureValid", "message", "trustValid"}`` (§5.3).

        ``actual_data`` (bytes) is the payload of a detached JWS. Without ``x5c`` in the JWS or
        ``certificate_data`` (PEM), KeyManager verifies with the *current* key only.
        """
        request = {
            "jwtSignatureData": token,
            "applicationId": application_id,
            "referenceId": reference_id or "",
            "validateTrust": False,
        }
        if actual_data is not None:
            request["actualData"] = b64url_encode(actual_data)
        if certificate_data:
            request["certificateData"] = certificate_data
        return self.call("POST", "/jwtVerify", request)

    def get_certificate(self, application_id, reference_id=None):
        """The current certificate of a key: ``{"certificate": PEM, "issuedAt", "expiryAt", ...}``."""
        return self.call("GET", "/getCertificate", params=_key_params(application_id, reference_id))

    def get_all_certificates(self, application_id, reference_id=None):
        """Every generation's certificate, oldest first: ``[{"certificateData", "keyId", ...}]``.

        Without ``reference_id`` these are the application's master (signing) keys (§7.2).
        """
        response = self.call("GET", "/getAllCertificates", params=_key_params(application_id, reference_id))
        certificates = response.get("allCertificates")
        return certificates if isinstance(certificates, list) else []

    @staticmethod
    def _crypto_request(data, application_id, reference_id, salt, aad):
        request = {
            "applicationId": application_id,
            "referenceId": reference_id,
            "timeStamp": mosip_timestamp(),
            "data": data,
        }
        # Absent rather than empty: an empty salt or aad is a validation error (§4.1).
        if salt is not None:
            request["salt"] = salt
        if aad is not None:
            request["aad"] = aad
        return request


def _key_params(application_id, reference_id):
    # OpenG2P's client dropped applicationId or referenceId in some cases (§10); here
    # applicationId is always sent and referenceId only when there is one.
    params = {"applicationId": application_id}
    if reference_id:
        params["referenceId"] = reference_id
    return params


def _interpret(answer):
    """The ``response`` object of a KeyManager answer, or the exception the answer means (§2.3)."""
    status = answer.status
    body = answer.body if isinstance(answer.body, dict) else {}
    errors = body.get("errors")
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    # Strings, whatever types the answer holds: they go into error messages.
    code = None if first.get("errorCode") is None else str(first.get("errorCode"))
    message = None if first.get("message") is None else str(first.get("message"))
    if status == 200:
        if errors:
            more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
            raise answer.error(KeyManagerError, f"{message or 'error without a message'}{more}", code)
        result = body.get("response")
        if not isinstance(result, dict):
            raise answer.error(KeyManagerError, "the answer holds no response", code)
        return result
    if status == 401:
        raise answer.error(AuthenticationError, "KeyManager did not accept the access token", code)
    if status == 403:
        raise answer.error(
            AuthenticationError,
            "the client's token lacks a role KeyManager requires for this endpoint (e.g. KEYMANAGER_ADMIN)",
            code,
        )
    if status >= 500:
        # A 5xx is an overloaded or restarting service (or a KER-KMS-500 server bug): transient.
        raise answer.error(ServiceUnavailableError, message or "KeyManager is failing", code)
    if status == 404:
        raise answer.error(
            RemoteServiceError, "no such endpoint (the base URL should end with /v1/keymanager)", code
        )
    raise answer.error(RemoteServiceError, message or "unexpected answer", code)


def _string_field(response, name, endpoint):
    value = response.get(name)
    if not isinstance(value, str) or not value:
        raise KeyManagerError(f"the response holds no {name!r}", service=SERVICE, endpoint=endpoint)
    return value
