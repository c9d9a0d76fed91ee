"""``Token``: what a provider asks of its PKCS#11 token: data keys wrapped inside it, signing keys
made in it, signatures, and the checks of a connection test."""

import hashlib
import os

from .. import jwk
from ..errors import DecryptionError, HsmAbsentError, HsmError, HsmKeyError
from .binding import binding
from .keys import NONCE_SIZE, format_wrapped, parse_wrapped, wrapping_aad
from .session import _LOST, TokenSession


class Token(TokenSession):
    """``Token(library, token_label, slot_id, pin)``: the operations of a token (see the base class
    for its session)."""

    # Data keys ---------------------------------------------------------------------------------
    def wrap(self, key_label, key_id, secret, purpose):
        """``secret`` encrypted inside the token by its AES key ``key_label`` (generated there on
        first use), bound to ``key_id`` and ``purpose``: a ``g2pk1.`` string."""
        pkcs11 = binding()
        nonce = os.urandom(NONCE_SIZE)

        def encrypt(session):
            key = session.secret_key(key_label, create=True)
            return key.encrypt(
                bytes(secret),
                mechanism=pkcs11.Mechanism.AES_GCM,
                mechanism_param=pkcs11.GCMParams(nonce, wrapping_aad(key_id, purpose)),
            )

        return format_wrapped(key_label, nonce + self._call("C_Encrypt", encrypt, "wrap"))

    def unwrap(self, key_id, wrapped, purpose):
        """The secret of ``wrapped``, decrypted inside the token by the key that wrapped it."""
        pkcs11 = binding()
        key_label, blob = parse_wrapped(wrapped)

        def decrypt(session):
            key = session.secret_key(key_label)
            try:
                return key.decrypt(
                    blob[NONCE_SIZE:],
                    mechanism=pkcs11.Mechanism.AES_GCM,
                    mechanism_param=pkcs11.GCMParams(blob[:NONCE_SIZE], wrapping_aad(key_id, purpose)),
                )
            except (pkcs11.exceptions.EncryptedDataInvalid, pkcs11.exceptions.EncryptedDataLenRange):
                raise _unwrap_failed(key_id, key_label) from None
            except pkcs11.exceptions.GeneralError:
                # SoftHSM answers a failed GCM tag check with CKR_GENERAL_ERROR.
                raise _unwrap_failed(key_id, key_label) from None

        return bytes(self._call("C_Decrypt", decrypt, "unwrap"))

    def generate_master_key(self, key_label):
        """Make a new AES-256 key ``key_label`` in the token (refused when one exists)."""

        def generate(session):
            self._refuse_existing(session, "secret", key_label, "C_GenerateKey")
            session.secret_key(key_label, create=True)

        self._call("C_GenerateKey", generate, "generate")

    def has_key(self, key_label, kind="secret"):
        return self._call("C_FindObjects", lambda session: session.find_key(kind, key_label) is not None)

    # Signing -----------------------------------------------------------------------------------
    def generate_signing_key(self, key_label, alg, common_name="g2p_encryption"):
        """Make a key pair ``key_label`` in the token (RS256: RSA-2048, ES256: P-256; private key
        sensitive and non-extractable) and return it as a ``jwk.ExternalSigningKey`` with a
        self-signed certificate (signed by the token)."""
        if alg not in jwk.SUPPORTED_ALGS:
            raise HsmError(f"unsupported signing algorithm {alg!r}", service=self.name)

        def generate(session):
            self._refuse_existing(session, "private", key_label, "C_GenerateKeyPair")
            return session.generate_key_pair(key_label, alg)

        public_key = self._call("C_GenerateKeyPair", generate, "generate")
        key = jwk.ExternalSigningKey(public_key, alg, self._signer(key_label, alg))
        return key.self_signed_certificate(common_name)

    def signing_key(self, key_label, alg, certificate_pem):
        """The signing key ``key_label`` as a ``jwk.ExternalSigningKey`` (its public half from its
        certificate: no token call until it signs)."""
        return jwk.ExternalSigningKey.from_certificate(certificate_pem, alg, self._signer(key_label, alg))

    def sign(self, key_label, alg, data):
        """The JWS signature of ``data`` by the private key ``key_label`` (RS256: PKCS#1 v1.5 with
        SHA-256; ES256: raw ``r || s`` of the SHA-256 digest)."""
        pkcs11 = binding()

        def sign(session):
            key = session.private_key(key_label)
            if alg == "ES256":
                return key.sign(hashlib.sha256(data).digest(), mechanism=pkcs11.Mechanism.ECDSA)
            return key.sign(data, mechanism=pkcs11.Mechanism.SHA256_RSA_PKCS)

        return bytes(self._call("C_Sign", sign, "sign"))

    def _signer(self, key_label, alg):
        return lambda data: self.sign(key_label, alg, data)

    # Checks ------------------------------------------------------------------------------------
    def check_present(self):
        """Raise ``HsmAbsentError`` unless the token of the session is still there (C_GetTokenInfo)."""
        pkcs11 = binding()

        def check(session):
            try:
                label = session.session.token.slot.get_token().label
            except pkcs11.exceptions.PKCS11Error as error:
                if type(error).__name__ in _LOST - {"DeviceRemoved", "TokenNotPresent"}:
                    raise
                raise self._error(HsmAbsentError, "C_GetTokenInfo", error, "the token is gone") from None
            if self.token_label and label != self.token_label:
                raise HsmAbsentError(
                    f"the slot now holds token {label!r}", service=self.name, endpoint="C_GetTokenInfo"
                )

        self._call("C_GetTokenInfo", check, "check")

    def describe(self):
        """Facts of the token for a connection test: label, manufacturer, model, serial."""

        def describe(session):
            token = session.session.token
            return {
                "label": token.label,
                "manufacturer": token.manufacturer_id,
                "model": token.model,
                "serial": token.serial.decode("ascii", "replace")
                if isinstance(token.serial, bytes)
                else str(token.serial),
            }

        return self._call("C_GetTokenInfo", describe)

    def key_facts(self, key_label, kind="secret"):
        """Attributes that tell how safe a key is: sensitive, extractable, local, never extractable."""
        pkcs11 = binding()
        attribute = pkcs11.Attribute

        def facts(session):
            key = session.private_key(key_label) if kind == "private" else session.secret_key(key_label)
            names = ("SENSITIVE", "EXTRACTABLE", "LOCAL", "NEVER_EXTRACTABLE", "ALWAYS_SENSITIVE")
            return {name.lower(): bool(key[getattr(attribute, name)]) for name in names}

        return self._call("C_GetAttributeValue", facts)

    def _refuse_existing(self, session, kind, key_label, function):
        """``HsmKeyError`` when the token holds a ``kind`` key ``key_label`` already."""
        if session.find_key(kind, key_label) is not None:
            what = "a key" if kind == "secret" else f"a {kind} key"
            raise HsmKeyError(
                f"{what} labelled {key_label!r} exists already", service=self.name, endpoint=function
            )


def _unwrap_failed(key_id, key_label):
    return DecryptionError(
        f"the wrapped key {key_id} does not decrypt with the token's key {key_label!r}: another key "
        "under the same label, or a tampered wrapped key"
    )
