"""What a provider does with the keys KeyManager holds: wrap data keys, encrypt values one by one,
sign and verify, publish the certificates.

:class:`KeyManagerKeys` puts a :class:`core.keymanager.KeyManagerClient` to work for one provider:
the application and reference ids of its encryption and signing keys, the salt and AAD of direct
mode, and the worker's cache of certificates. The Odoo provider type builds one from its fields and
delegates; the formats are those of ``core.keymanager_format``.
"""

from . import jose
from . import keymanager_format as km_format
from .cache import Cache
from .encoding import b64decode, b64decode_any
from .errors import G2PCryptoError, KeyManagerError, KeyManagerValueError, SignatureError

# What KeyManager answers about a value it was given to decrypt (§4): tampered or another record's
# AAD (KER-FSE-004), not a ciphertext (KER-CRY-003). That value is unreadable; the others of the
# read are not. (A key KeyManager does not have, KER-KMS-024 and KER-KMS-025, is its configuration:
# the read fails, as with the local provider's unknown key.)
VALUE_ERROR_CODES = frozenset({"KER-FSE-004", "KER-CRY-003"})

# Certificates and thumbprints fetched from KeyManager, per worker process.
_certificates = Cache("KeyManager certificates")


class KeyManagerKeys:
    """The keys of one provider in KeyManager.

    ``encrypt_ids`` and ``sign_ids`` are ``(applicationId, referenceId)``; ``salt`` and ``aad``
    (base64) are direct mode's; ``cache_scope`` tells providers apart in the certificate cache
    (database, provider id, URL) and ``certificate_ttl`` is how long certificates stay in it.
    """

    def __init__(
        self, client, *, encrypt_ids, sign_ids, salt=None, aad=None, cache_scope=(), certificate_ttl=300
    ):
        self.client = client
        self.encrypt_ids = encrypt_ids
        self.sign_ids = sign_ids
        self.salt = salt
        self.aad = aad
        self.cache_scope = tuple(cache_scope)
        self.certificate_ttl = certificate_ttl

    # -- envelope mode: data keys wrapped by KeyManager -------------------------------------------

    def wrap(self, key_id, secret, purpose):
        """``(wrapped, wrapped_by)`` of a data key, bound to its key id and purpose."""
        application_id, reference_id = self.encrypt_ids
        wrapped = self.client.encrypt(
            secret, application_id, reference_id, aad=km_format.wrap_aad(key_id, purpose)
        )
        return wrapped, km_format.wrapped_by(application_id, reference_id)

    def unwrap(self, key_id, wrapped, purpose, wrapped_by=None):
        """The data key; KeyManager checks that the ids that wrapped it (``wrapped_by``) unwrap it."""
        application_id, reference_id = km_format.wrapping_ids(wrapped_by) or self.encrypt_ids
        return self.client.decrypt(
            wrapped, application_id, reference_id, aad=km_format.wrap_aad(key_id, purpose)
        )

    # -- direct mode: every value through KeyManager ------------------------------------------------

    def encrypt_values(self, plaintexts, aads):
        """Direct tokens of ``plaintexts``, one ``/encrypt`` each, bound to the caller's ``aads``."""
        application_id, reference_id = self.encrypt_ids
        salt = self._salt()
        return [
            # KeyManager refuses empty data (KER-KMS-005): an empty value is the bare prefix.
            km_format.direct_token(
                plaintext
                and self.client.encrypt(
                    plaintext, application_id, reference_id, salt=salt, aad=self._aad(aad)
                )
            )
            for plaintext, aad in zip(map(bytes, plaintexts), aads, strict=True)
        ]

    def decrypt_values(self, tokens, aads):
        """Plaintexts of KeyManager ciphertexts (direct tokens, OpenG2P's values), one ``/decrypt`` each."""
        application_id, reference_id = self.encrypt_ids
        salt = self._salt()
        plaintexts = []
        for token, aad in zip(tokens, aads, strict=True):
            ciphertext, bound = km_format.ciphertext_of(token)
            if bound and not ciphertext:
                plaintexts.append(b"")
                continue
            # Only direct tokens were bound to the caller's AAD; OpenG2P's values never were.
            km_aad = self._aad(aad if bound else b"")
            try:
                plaintexts.append(
                    self.client.decrypt(ciphertext, application_id, reference_id, salt=salt, aad=km_aad)
                )
            except KeyManagerError as error:
                if error.error_code not in VALUE_ERROR_CODES:
                    raise
                raise error.again(KeyManagerValueError) from None
        return plaintexts

    def is_current(self, token):
        """Whether a direct token was made under the current generation of KeyManager's key
        (False after KeyManager rotated it: the value should be encrypted again)."""
        thumbprint = km_format.thumbprint_of(token)
        return thumbprint is None or thumbprint == self.current_thumbprint()

    def current_thumbprint(self):
        """SHA-256 of the current encryption certificate's DER (cached)."""
        cache_key = (*self.cache_scope, "thumbprint", self.encrypt_ids)
        thumbprint = _certificates.get(cache_key)
        if thumbprint is None:
            pem = self.client.get_certificate(*self.encrypt_ids).get("certificate")
            thumbprint = _certificates.put(
                cache_key, km_format.certificate_thumbprint(pem), ttl=self.certificate_ttl
            )
        return thumbprint

    def _salt(self):
        if not self.salt or len(self.salt.strip()) < 2:
            raise G2PCryptoError("direct mode needs a salt")
        try:
            b64decode_any(self.salt)
        except ValueError:
            # Else KeyManager refuses every value (KER-CRY-003), which would read as tampering.
            raise G2PCryptoError("the salt of direct mode is not base64") from None
        return self.salt

    def _aad(self, caller_aad):
        try:
            return km_format.direct_aad(self.aad, caller_aad)
        except ValueError:
            raise G2PCryptoError("the AAD of direct mode is not base64") from None

    # -- signing ------------------------------------------------------------------------------------

    def sign(self, data, include_payload=True, include_certificate=False, include_cert_hash=False):
        """A compact JWS of ``data`` (dict, str or bytes) by the signing key (``/jwtSign``)."""
        return self.client.jwt_sign(
            jose.encode_payload(data),
            *self.sign_ids,
            include_payload=include_payload,
            include_certificate=include_certificate,
            include_cert_hash=include_cert_hash,
        )

    def verify(self, token, payload=None):
        """The claims of a JWS that KeyManager finds valid (``/jwtVerify``); ``SignatureError`` else.

        ``payload`` is that of a detached JWS.
        """
        token = token.decode("ascii", "replace") if isinstance(token, bytes) else token
        header, _protected, payload_b64, _signature = jose.parse_jws(token)
        payload_bytes = jose.jws_payload(payload_b64, payload)
        certificate = None
        if "x5c" in header:
            certificate = self._signing_certificate_of(header["x5c"])
        else:
            # KeyManager verifies with its *current* key unless told which certificate to use:
            # pass the one the token names, so that tokens signed before a rotation verify.
            kid = header.get("kid")
            if not isinstance(kid, str) or not kid:
                raise SignatureError("JWS header has no kid: cannot select the verification key")
            # Not cached: a key made after the certificates were fetched? Still unknown (KeyManager
            # 1.2 lists KERNEL's master keys for KERNEL/SIGN, not the SIGN key itself): KeyManager
            # verifies with its current certificate, as OpenG2P's module always let it.
            certificate = self.certificates()[1].get(kid) or self.certificates(refresh=True)[1].get(kid)
        verdict = self.client.jwt_verify(
            token,
            *self.sign_ids,
            actual_data=None if payload_b64 else payload_bytes,
            certificate_data=certificate,
        )
        if verdict.get("signatureValid") is not True:
            message = verdict.get("message") or "no message"
            raise SignatureError(f"KeyManager /jwtVerify: the signature is not valid ({message})")
        return jose.verified_claims(payload_bytes)

    def _signing_certificate_of(self, x5c):
        """The PEM of the provider's signing certificate a JWS header's ``x5c`` carries.

        KeyManager checks a signature against the certificate of ``x5c`` as given (§5.3): a token
        that brings its own key and certificate would verify. So ``x5c`` must be one of the
        provider's signing certificates (every generation listed, and the current one, which
        KeyManager 1.2 does not list); ``SignatureError`` otherwise."""
        try:
            der = b64decode(x5c[0]) if isinstance(x5c, list) and x5c and isinstance(x5c[0], str) else None
        except ValueError:
            der = None
        if not der:
            raise SignatureError("JWS header has a malformed x5c")
        # The cached list first: the current certificate and a fresh list only when it misses.
        lookups = (
            lambda: self.certificates()[1].values(),
            lambda: [self._current_signing_certificate()],
            lambda: self.certificates(refresh=True)[1].values(),
            lambda: [self._current_signing_certificate(refresh=True)],
        )
        for known in lookups:
            for pem in known():
                if isinstance(pem, str) and km_format.certificate_der(pem) == der:
                    return pem
        raise SignatureError(
            "the certificate in the JWS header is not one of the provider's signing certificates"
        )

    def _current_signing_certificate(self, refresh=False):
        """PEM of the signing key's current certificate (``/getCertificate``, cached)."""
        cache_key = (*self.cache_scope, "signing certificate", self.sign_ids)
        pem = None if refresh else _certificates.get(cache_key)
        if pem is None:
            pem = self.client.get_certificate(*self.sign_ids).get("certificate")
            _certificates.put(cache_key, pem, ttl=self.certificate_ttl)
        return pem

    def certificates(self, refresh=False):
        """``(public JWKs, {kid: PEM} of the signing keys)`` of every key generation (cached).

        ``enc`` keys are those of the encryption ids, ``sig`` keys those of the signing ids.
        """
        cache_key = (*self.cache_scope, "certificates", self.encrypt_ids, self.sign_ids)
        cached = None if refresh else _certificates.get(cache_key)
        if cached is None:
            listed = {
                use: self.client.get_all_certificates(application_id, reference_id or None)
                for use, (application_id, reference_id) in (("enc", self.encrypt_ids), ("sig", self.sign_ids))
            }
            cached = _certificates.put(
                cache_key, km_format.certificate_jwks(listed), ttl=self.certificate_ttl
            )
        return cached
