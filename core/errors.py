"""Exceptions of the pure-Python layer.

Every message names its cause (service, endpoint, HTTP status, error code) and never carries data,
keys or tokens. At the Odoo boundary ``exceptions.user_error`` turns one into the ``UserError``
subclass of its cause, which keeps it as ``error``: code above tells causes apart by class.
"""


class G2PCryptoError(Exception):
    """Base class of every error raised by ``core``."""


class MasterKeyError(G2PCryptoError):
    """The local master key is missing, unreadable, malformed or not the one that wrapped a key."""


class DecryptionError(G2PCryptoError):
    """A ciphertext cannot be decrypted: tampered, wrong AAD, wrong key or malformed."""


class InvalidCiphertextError(DecryptionError):
    """The value is not a ciphertext of a known format or version."""


class UnknownKeyError(DecryptionError):
    """The ciphertext names a key id that the keyring does not hold."""


class SignatureError(G2PCryptoError):
    """A JWS is malformed, signed by an unknown key, badly signed, or expired."""


class RemoteServiceError(G2PCryptoError):
    """A call to Keycloak or KeyManager failed.

    ``service`` is ``"Keycloak"`` or ``"KeyManager"``; ``endpoint`` the path called;
    ``http_status`` the HTTP status (``None`` when no answer came); ``error_code`` the service's own
    code (``KER-CRY-011``, ``invalid_client``, ...) when it gave one; ``request_id`` the id logged
    with the call. ``retryable`` says whether trying again may help.
    """

    retryable = False

    def __init__(
        self,
        message,
        *,
        service,
        endpoint="",
        http_status=None,
        error_code=None,
        request_id=None,
        retryable=None,
    ):
        self.service = service
        self.endpoint = endpoint
        self.http_status = http_status
        self.error_code = error_code
        self.request_id = request_id
        self.detail = message
        if retryable is not None:
            self.retryable = retryable
        super().__init__(self._format())

    def again(self, cls=None, detail=None):
        """A new error of the same call (service, endpoint, status, code, request id), of class
        ``cls`` (default: this one's) saying ``detail`` (default: this one's)."""
        return (cls or type(self))(
            self.detail if detail is None else detail,
            service=self.service,
            endpoint=self.endpoint,
            http_status=self.http_status,
            error_code=self.error_code,
            request_id=self.request_id,
        )

    def remembered(self, seconds):
        """This error again, for a call not made: the same call failed less than ``seconds`` ago."""
        return self.again(detail=f"{self.detail} (failed less than {seconds:g} s ago; not tried again yet)")

    def _format(self):
        where = f"{self.service} {self.endpoint}".strip()
        parts = []
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.error_code:
            parts.append(self.error_code)
        cause = f" ({', '.join(parts)})" if parts else ""
        request = f" [request {self.request_id}]" if self.request_id else ""
        return f"{where}{cause}: {self.detail}{request}"


class ServiceUnavailableError(RemoteServiceError):
    """No usable answer: connection refused, timeout, or HTTP 5xx. Worth retrying."""

    retryable = True


class AuthenticationError(RemoteServiceError):
    """Credentials were rejected (Keycloak 401/400, KeyManager 401 after a token renewal, 403)."""


class KeyManagerError(RemoteServiceError):
    """KeyManager answered with an ``errors`` list (HTTP 200) or without a ``response``."""


class KeyManagerValueError(KeyManagerError, DecryptionError):
    """KeyManager refused one value given to decrypt (tampered, another record's, not its own):
    the value is unreadable, the service is fine."""


class HsmError(RemoteServiceError):
    """A PKCS#11 token (HSM) failed or refused: ``service`` names the token, ``endpoint`` the
    PKCS#11 function called, ``error_code`` its ``CKR_*`` return value."""


class HsmAbsentError(HsmError):
    """The token is not there: unplugged, not initialised, deleted, or the HSM is unreachable."""


class HsmPinError(HsmError):
    """The token refused the user PIN (wrong, locked, expired), or none is configured."""


class HsmSessionLostError(HsmError):
    """The session with the token was lost (closed, invalid handle) and could not be reopened."""

    retryable = True


class HsmBusyError(HsmError):
    """The token is busy (no free session, operation active, device memory): worth retrying."""

    retryable = True


class HsmKeyError(HsmError):
    """The token holds no key under the label asked for (another token, a deleted key), or several."""
