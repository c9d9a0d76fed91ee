"""Versioned, self-describing AES-256-GCM ciphertext, in the manner of Google Tink.

A token is one URL-safe ASCII string::

    g2pe1.<key_id>.<base64url_nopad(nonce 12 bytes || ciphertext || tag 16 bytes)>

The prefix names the format version, so the format can change without guessing, and the key id
says which data key decrypts the value, so decryption asks for exactly that key and never tries
keys one by one. The header (``g2pe1.<key_id>.``) is part of the GCM associated data, followed by
the caller's AAD (e.g. model and field): changing the version, moving the ciphertext to another
key id, or copying it to another field all fail authentication.

The underscored helpers (``_aead``, ``_header``, ``_seal_with``, ``_parse``, ``_open_with``) are
shared with ``master_key``, which wraps data keys in the same layout under the ``g2pw1.``
prefix; they are not part of the public API.
"""

import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .encoding import b64url_decode_strict, b64url_encode
from .errors import DecryptionError, InvalidCiphertextError

PREFIX = "g2pe1."

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16

_KEY_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def new_key_id():
    """Return a random key id of 16 URL-safe characters (96 random bits)."""
    return b64url_encode(os.urandom(12))


def new_data_key():
    """Return a new random 256-bit data key."""
    return os.urandom(KEY_SIZE)


def seal(key_id, key, plaintext, aad=b""):
    """Encrypt ``plaintext`` with ``key`` (known as ``key_id``) and return a ``g2pe1.`` token.

    ``aad`` is authenticated but not stored: the same bytes must be given to ``open_token``.
    Callers bind the value to where it lives (model, field) this way.
    """
    return _seal_with(_header(PREFIX, key_id), _aead(key), plaintext, aad)


def seal_many(key_id, key, plaintexts, aad=b""):
    """Encrypt many values with one key, building the cipher once.

    ``aad`` is either one bytes value used for every plaintext, or a list with one AAD per
    plaintext (e.g. when the record id is part of it).
    """
    header = _header(PREFIX, key_id)
    aead = _aead(key)
    if isinstance(aad, bytes | bytearray | memoryview):
        return [_seal_with(header, aead, plaintext, aad) for plaintext in plaintexts]
    aads = list(aad)
    plaintexts = list(plaintexts)
    if len(aads) != len(plaintexts):
        raise ValueError(f"seal_many got {len(plaintexts)} plaintexts but {len(aads)} AAD values")
    return [_seal_with(header, aead, pt, one_aad) for pt, one_aad in zip(plaintexts, aads, strict=True)]


def open_token(token, key_lookup, aad=b""):
    """Decrypt a ``g2pe1.`` token and return the plaintext bytes.

    ``key_lookup(key_id)`` returns the key named by the token, or raises ``UnknownKeyError``.
    Raises ``InvalidCiphertextError`` when ``token`` is not in the format and
    ``DecryptionError`` when it fails authentication (wrong key, wrong AAD or tampered).
    """
    key_id, blob = _parse(PREFIX, token)
    return _open_with(PREFIX, key_id, _aead(key_lookup(key_id)), blob, aad)


def open_many(tokens, key_lookup, aad=b""):
    """Decrypt many tokens, asking ``key_lookup`` and building the cipher once per key id.

    ``aad`` is one bytes value for all tokens or a list with one AAD per token.
    """
    tokens = list(tokens)
    if isinstance(aad, bytes | bytearray | memoryview):
        aads = [aad] * len(tokens)
    else:
        aads = list(aad)
        if len(aads) != len(tokens):
            raise ValueError(f"open_many got {len(tokens)} tokens but {len(aads)} AAD values")
    ciphers = {}
    plaintexts = []
    for token, one_aad in zip(tokens, aads, strict=True):
        key_id, blob = _parse(PREFIX, token)
        aead = ciphers.get(key_id)
        if aead is None:
            aead = ciphers[key_id] = _aead(key_lookup(key_id))
        plaintexts.append(_open_with(PREFIX, key_id, aead, blob, one_aad))
    return plaintexts


def key_id_of(token):
    """Return the key id named by a token, checking its format but decrypting nothing."""
    return _parse(PREFIX, token)[0]


def is_token(value):
    """Tell whether ``value`` (str or bytes) is well-formed as a ``g2pe1.`` token.

    Only the format is checked, not the authenticity: it tells ciphertext from plaintext in a
    column, it does not prove that the value decrypts.
    """
    if not isinstance(value, str | bytes):
        return False
    try:
        _parse(PREFIX, value)
    except InvalidCiphertextError:
        return False
    return True


# Shared with master_key ---------------------------------------------------------------------


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
        raise DecryptionError(
            f"ciphertext under key {key_id} failed authentication: wrong key, associated data "
            "(model, field) that does not match, or a tampered value"
        ) from None


def _parse(prefix, token):
    """Split a token into (key_id, nonce || ciphertext || tag), checking the format only."""
    if isinstance(token, bytes | bytearray):
        try:
            token = bytes(token).decode("ascii")
        except UnicodeDecodeError:
            raise InvalidCiphertextError("not a ciphertext: non-ASCII bytes") from None
    elif not isinstance(token, str):
        raise InvalidCiphertextError(f"not a ciphertext: got {type(token).__name__}")
    if not token.startswith(prefix):
        raise InvalidCiphertextError(f"not a ciphertext of format {prefix.rstrip('.')}")
    key_id, dot, body = token[len(prefix) :].partition(".")
    if not dot or not _KEY_ID_RE.fullmatch(key_id):
        raise InvalidCiphertextError("malformed ciphertext: bad key id")
    try:
        # The canonical spelling only: changing any character of a token changes its bytes.
        blob = b64url_decode_strict(body)
    except ValueError:
        raise InvalidCiphertextError("malformed ciphertext: bad base64url") from None
    if len(blob) < NONCE_SIZE + TAG_SIZE:
        raise InvalidCiphertextError("malformed ciphertext: too short")
    return key_id, blob
