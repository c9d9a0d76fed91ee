"""What KeyManager's ciphertexts, AADs and certificate lists look like, and how the addon stores them.

KeyManager's ``/encrypt`` answers base64url of
``[VER_R2] || SHA-256(certificate DER) || RSA-wrapped session key || "#KEY_SPLITTER#" || data``
(KEYMANAGER_API.md §4). The addon stores such a value, in direct mode, as the *direct token*
``g2pkm1.<KeyManager's answer>``; OpenG2P's own module stored the answer base64url-decoded (raw
bytes) or as is, and both still decrypt. In envelope mode KeyManager wraps data keys, and the key
record says which KeyManager key did it (``wrapped_by``). This module knows these formats; the
HTTP client (``core.keymanager``) and the Odoo provider use it and know none of the bytes.
"""

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from . import jwk
from .encoding import b64decode_any, b64url_decode, b64url_encode
from .errors import InvalidCiphertextError, KeyManagerError

DIRECT_PREFIX = "g2pkm1."
KEY_SPLITTER = b"#KEY_SPLITTER#"
VERSION_HEADER = b"VER_R2"
WRAPPED_BY_PREFIX = "KeyManager "
# The thumbprint (32 bytes) and the RSA-2048 wrapped session key (256 bytes) before the splitter.
_KEY_PART_SIZE = 32 + 256
_B64URL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


# Direct tokens and OpenG2P's stored values --------------------------------------------------


def direct_token(ciphertext):
    """The stored form of KeyManager's answer ``ciphertext``; ``""`` (an empty value) gives the bare
    prefix, as KeyManager refuses to encrypt empty data."""
    return DIRECT_PREFIX + (ciphertext or "")


def is_direct_token(value):
    """Whether ``value`` (str or bytes) is a direct token (format only, nothing decrypted)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).startswith(DIRECT_PREFIX.encode())
    return isinstance(value, str) and value.startswith(DIRECT_PREFIX)


def ciphertext_of(value):
    """``(KeyManager's ciphertext string, bound)`` of a stored value.

    ``bound`` says whether the value is a direct token, which is bound to the caller's AAD too.
    Accepts a direct token (str or bytes), the raw bytes OpenG2P's module stored (KeyManager's
    answer base64url-decoded) and KeyManager's answer itself; anything else is
    ``InvalidCiphertextError``.
    """
    if isinstance(value, bytearray | memoryview):
        value = bytes(value)
    if is_direct_token(value):
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        return text[len(DIRECT_PREFIX) :], True
    if isinstance(value, bytes):
        if KEY_SPLITTER in value:
            return b64url_encode(value), False
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidCiphertextError("the value is not a KeyManager ciphertext") from None
    if not isinstance(value, str) or not value:
        raise InvalidCiphertextError("the value is not a KeyManager ciphertext")
    text = value.strip().rstrip("=")
    if not set(text) <= _B64URL_CHARS:
        raise InvalidCiphertextError("the value is not a KeyManager ciphertext")
    return text, False


def thumbprint_of(value):
    """The 32-byte certificate thumbprint at the head of a KeyManager ciphertext, or None."""
    try:
        blob = b64url_decode(ciphertext_of(value)[0])
    except (ValueError, InvalidCiphertextError):
        return None
    index = blob.find(KEY_SPLITTER)
    if index < 0:
        return None
    key_part = blob[:index]
    if key_part.startswith(VERSION_HEADER):
        key_part = key_part[len(VERSION_HEADER) :]
    return key_part[:32] if len(key_part) == _KEY_PART_SIZE else None


def certificate_thumbprint(pem):
    """SHA-256 of a certificate's DER, as found at the head of the ciphertexts of its key."""
    return hashlib.sha256(certificate_der(pem)).digest()


def certificate_der(pem):
    """The DER of a PEM certificate KeyManager returned."""
    if not isinstance(pem, str) or "BEGIN CERTIFICATE" not in pem:
        raise KeyManagerError("KeyManager returned no certificate", service="KeyManager")
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
    except ValueError:
        raise KeyManagerError("KeyManager returned a malformed certificate", service="KeyManager") from None
    return certificate.public_bytes(serialization.Encoding.DER)


# AADs ----------------------------------------------------------------------------------------


def aad_list(aad, count):
    """One AAD per value: ``aad`` is one bytes value for all, or a list of ``count`` of them."""
    if isinstance(aad, bytes | bytearray | memoryview):
        return [bytes(aad)] * count
    aads = [bytes(one or b"") for one in aad]
    if len(aads) != count:
        raise ValueError(f"got {count} values but {len(aads)} AAD values")
    return aads


def wrap_aad(key_id, purpose):
    """The ``aad`` under which KeyManager wraps a data key: binds it to its key id and purpose."""
    return b64url_encode(f"g2p_encryption|{purpose}|{key_id}".encode())


def direct_aad(provider_aad, caller_aad=b""):
    """The ``aad`` sent to KeyManager in direct mode: the provider's (base64, as OpenG2P set it),
    joined to the caller's (model, field, record) when given. ``ValueError`` when the provider's
    is not base64."""
    caller_aad = bytes(caller_aad or b"")
    if not caller_aad:
        return provider_aad or None
    base = b64decode_any(provider_aad) if provider_aad else b""
    return b64url_encode(base + b"|" + caller_aad)


# Which KeyManager key wrapped a data key --------------------------------------------------------


def wrapped_by(application_id, reference_id):
    """The ``wrapped_by`` label of a key record wrapped under ``application_id/reference_id``."""
    return f"{WRAPPED_BY_PREFIX}{application_id}/{reference_id}"


def wrapping_ids(label):
    """``(applicationId, referenceId)`` named by a ``wrapped_by`` label, or None for another label."""
    if not label or not label.startswith(WRAPPED_BY_PREFIX) or "/" not in label:
        return None
    application_id, reference_id = label[len(WRAPPED_BY_PREFIX) :].split("/", 1)
    return application_id, reference_id


# Certificates of /getAllCertificates as a JWKS ---------------------------------------------------


def certificate_jwks(certificates_by_use):
    """``(public JWKs, {kid: PEM} of the signing keys)`` of ``{use: [getAllCertificates entry]}``.

    Each entry (``certificateData``, ``keyId``) becomes a JWK with ``x5c``, ``x5t`` and
    ``x5t#S256`` (§10); ``enc`` keys are RSA-OAEP-256. A key listed twice is published once.
    """
    keys, signing, seen = [], {}, set()
    for use, entries in certificates_by_use.items():
        for entry in entries:
            pem, kid = entry.get("certificateData"), entry.get("keyId")
            if not pem or not kid or (kid, use) in seen:
                continue
            seen.add((kid, use))
            public = jwk.jwk_from_certificate(pem, kid, use)
            if use == "enc":
                public["alg"] = "RSA-OAEP-256"
            else:
                signing[kid] = pem
            keys.append(public)
    return tuple(keys), signing
