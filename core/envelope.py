"""Versioned, self-describing ciphertext of field values, in the manner of Google Tink.

A token is one URL-safe ASCII string::

    g2pe2.<key_id>.<base64url_nopad(nonce 24 bytes || ciphertext || tag 16 bytes)>   (written)
    g2pe1.<key_id>.<base64url_nopad(nonce 12 bytes || ciphertext || tag 16 bytes)>   (read only)

The prefix names the format: ``g2pe2.`` is XChaCha20-Poly1305 (libsodium through PyNaCl: no
per-call set-up, about four times cheaper per value than AES-GCM with cryptography 3.4.8, and
192-bit random nonces, which lift AES-GCM's limit of 2^32 random nonces under one key);
``g2pe1.`` is AES-256-GCM, written by the addon's 1.x versions and still read. The key id says
which data key decrypts the value, so decryption asks for exactly that key and never tries keys
one by one. The header (``g2pe2.<key_id>.``) is part of the associated data, followed by the
caller's AAD (model, field and record): changing the version, moving the ciphertext to another key
id, field or record all fail authentication.

The underscored AES-GCM helpers (``_aead``, ``_header``, ``_seal_with``, ``_parse``,
``_open_with``) are shared with ``master_key``, which wraps data keys in the v1 layout under the
``g2pw1.`` prefix; they are not part of the public API.
"""

import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl import bindings as sodium
from nacl.exceptions import CryptoError

from .encoding import b64url_decode_strict, b64url_encode
from .errors import DecryptionError, InvalidCiphertextError

PREFIX_V1 = "g2pe1."
PREFIX_V2 = "g2pe2."
PREFIX = PREFIX_V2  # what seal() writes
# Every stored value starting with one of these is ciphertext (this envelope, or KeyManager's
# direct mode): plaintext that happens to start so is encrypted too, never stored as is, so the
# format alone tells ciphertext from plaintext.
TOKEN_MARKS = ("g2pe", "g2pkm")

KEY_SIZE = 32
NONCE_SIZE = 12  # AES-GCM (v1, and the g2pw1 wrapping of master_key)
NONCE_SIZE_V2 = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
TAG_SIZE = 16

_KEY_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def new_key_id():
    """Return a random key id of 16 URL-safe characters (96 random bits)."""
    return b64url_encode(os.urandom(12))


def new_data_key():
    """Return a new random 256-bit data key."""
    return os.urandom(KEY_SIZE)


def seal(key_id, key, plaintext, aad=b""):
    """Encrypt ``plaintext`` with ``key`` (known as ``key_id``) and return a ``g2pe2.`` token.

    ``aad`` is authenticated but not stored: the same bytes must be given to ``open_token``.
    Callers bind the value to where it lives (model, field, record) this way.
    """
    return seal_many(key_id, key, [plaintext], aad)[0]


def seal_many(key_id, key, plaintexts, aad=b""):
    """Encrypt many values with one key in the current format.

    ``aad`` is either one bytes value used for every plaintext, or a list with one AAD per
    plaintext (when the record id is part of it).
    """
    _check_key(key)
    header = _header(PREFIX_V2, key_id)
    prefix = header.encode("ascii")
    plaintexts = list(plaintexts)
    aads = _aad_list(aad, len(plaintexts), "seal_many")
    encrypt = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt
    key = bytes(key)
    tokens = []
    for plaintext, one_aad in zip(plaintexts, aads, strict=True):
        nonce = os.urandom(NONCE_SIZE_V2)
        sealed = encrypt(bytes(plaintext), prefix + bytes(one_aad), nonce, key)
        tokens.append(header + b64url_encode(nonce + sealed))
    return tokens


def open_token(token, key_lookup, aad=b""):
    """Decrypt one token (either format) and return the plaintext bytes.

    ``key_lookup(key_id)`` returns the key named by the token, or raises ``UnknownKeyError``.
    Raises ``InvalidCiphertextError`` when ``token`` is not in a known format and
    ``DecryptionError`` when it fails authentication (wrong key, wrong AAD or tampered).
    """
    return open_many([token], key_lookup, aad)[0]


def open_many(tokens, key_lookup, aad=b""):
    """Decrypt many tokens, asking ``key_lookup`` once per key id.

    ``aad`` is one bytes value for all tokens or a list with one AAD per token.
    """
    tokens = list(tokens)
    aads = _aad_list(aad, len(tokens), "open_many")
    keys = {}
    plaintexts = []
    for token, one_aad in zip(tokens, aads, strict=True):
        prefix, key_id, blob = parse(token)
        key = keys.get(key_id)
        if key is None:
            key = keys[key_id] = key_lookup(key_id)
        plaintexts.append(_OPENERS[prefix](key_id, key, blob, one_aad))
    return plaintexts


def parse(token):
    """Split a token into (prefix, key id, nonce || ciphertext || tag), checking the format only."""
    token = _as_text(token)
    prefix = token[: len(PREFIX_V2)]
    if prefix not in _OPENERS:
        raise InvalidCiphertextError("not a ciphertext of a known format (g2pe1, g2pe2)")
    key_id, blob = _parse(prefix, token)
    if prefix == PREFIX_V2 and len(blob) < NONCE_SIZE_V2 + TAG_SIZE:
        raise InvalidCiphertextError("malformed ciphertext: too short")
    return prefix, key_id, blob


def version_of(token):
    """The prefix of ``token`` (``g2pe1.`` or ``g2pe2.``), checking the format only."""
    return parse(token)[0]


def key_id_of(token):
    """Return the key id named by a token, checking its format but decrypting nothing."""
    return parse(token)[1]


def is_token(value):
    """Tell whether ``value`` (str or bytes) is well-formed as a token of a known format.

    Only the format is checked, not the authenticity: it tells ciphertext from plaintext in a
    column, it does not prove that the value decrypts.
    """
    if not isinstance(value, str | bytes):
        return False
    try:
        parse(value)
    except InvalidCiphertextError:
        return False
    return True


def _open_v1(key_id, key, blob, aad):
    return _open_with(PREFIX_V1, key_id, _aead(key), blob, aad)


def _open_v2(key_id, key, blob, aad):
    _check_key(key)
    header = f"{PREFIX_V2}{key_id}.".encode("ascii")
    try:
        return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            blob[NONCE_SIZE_V2:], header + bytes(aad), blob[:NONCE_SIZE_V2], bytes(key)
        )
    except CryptoError:
        raise _authentication_failed(key_id) from None


_OPENERS = {PREFIX_V1: _open_v1, PREFIX_V2: _open_v2}


def _check_key(key):
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_SIZE:
        raise ValueError(f"a data key must be {KEY_SIZE} bytes")


def _aad_list(aad, count, caller):
    if isinstance(aad, bytes | bytearray | memoryview):
        return [aad] * count
    aads = list(aad)
    if len(aads) != count:
        raise ValueError(f"{caller} got {count} values but {len(aads)} AAD values")
    return aads


def _authentication_failed(key_id):
    return DecryptionError(
        f"ciphertext under key {key_id} failed authentication: wrong key, associated data "
        "(model, field, record) that does not match, or a tampered value"
    )


# AES-GCM layout, shared with master_key ------------------------------------------------------


def _aead(key):
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_SIZE:
        raise ValueError(f"an AES-256-GCM key must be {KEY_SIZE} bytes")
    return AESGCM(bytes(key))


def _header(prefix, key_id):
    """Return ``<prefix><key_id>.``, the part of a token before the encrypted bytes."""
    if not isinstance(key_id, str) or not _KEY_ID_RE.fullmatch(key_id):
        raise ValueError("a key id must be 1 to 64 characters among A-Z, a-z, 0-9, '_' and '-'")
    return f"{prefix}{key_id}."


def _seal_with(header, aead, plaintext, aad):
    nonce = os.urandom(NONCE_SIZE)
    sealed = aead.encrypt(nonce, bytes(plaintext), header.encode("ascii") + bytes(aad))
    return header + b64url_encode(nonce + sealed)


def _open_with(prefix, key_id, aead, blob, aad):
    header = f"{prefix}{key_id}.".encode("ascii")  # key_id was checked by _parse
    try:
        return aead.decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], header + bytes(aad))
    except InvalidTag:
        raise _authentication_failed(key_id) from None


def _as_text(token):
    """A token as str: bytes of ASCII are accepted, anything else is not a ciphertext."""
    if isinstance(token, bytes | bytearray):
        try:
            return bytes(token).decode("ascii")
        except UnicodeDecodeError:
            raise InvalidCiphertextError("not a ciphertext: non-ASCII bytes") from None
    if not isinstance(token, str):
        raise InvalidCiphertextError(f"not a ciphertext: got {type(token).__name__}")
    return token


def _parse(prefix, token):
    """Split a token of ``prefix`` into (key_id, nonce || ciphertext || tag), format only."""
    token = _as_text(token)
    if not token.startswith(prefix):
        raise InvalidCiphertextError(f"not a ciphertext of format {prefix.rstrip('.')}")
    key_id, dot, body = token[len(prefix) :].partition(".")
    if not dot or not _KEY_ID_RE.fullmatch(key_id):
        raise InvalidCiphertextError("malformed ciphertext: bad key id")
    try:
        blob = b64url_decode_strict(body)
    except ValueError:
        raise InvalidCiphertextError("malformed ciphertext: bad base64url") from None
    if len(blob) < NONCE_SIZE + TAG_SIZE:
        raise InvalidCiphertextError("malformed ciphertext: too short")
    return key_id, blob
