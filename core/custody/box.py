"""Sealed boxes: a small secret kept between requests, encrypted under a key kept elsewhere.

A box is bytes: a magic line naming what it holds, the length and JSON of a clear header
(counts, ids: nothing secret), then nonce and AES-256-GCM ciphertext of the JSON secret. The
header is authenticated with the magic line, so neither can be changed without the key. The box
is written in the memory store of one server and its key in the database: neither alone opens it.
"""

import json
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import DecryptionError
from .errors import CustodyError

KEY_SIZE = 32
NONCE_SIZE = 12
_LENGTH = struct.Struct(">I")


def new_box_key():
    """A fresh random key for a box (32 bytes)."""
    return os.urandom(KEY_SIZE)


def _canonical(header):
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def seal(key, magic, header, secret):
    """The box holding ``secret`` (JSON-able) under ``key``, with ``header`` readable in clear."""
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_SIZE:
        raise CustodyError(f"a box key is {KEY_SIZE} bytes")
    header_bytes = _canonical(header)
    nonce = os.urandom(NONCE_SIZE)
    sealed = AESGCM(bytes(key)).encrypt(nonce, json.dumps(secret).encode(), magic + header_bytes)
    return magic + _LENGTH.pack(len(header_bytes)) + header_bytes + nonce + sealed


def _split(blob, magic):
    blob = bytes(blob) if isinstance(blob, bytes | bytearray) else b""
    if not blob.startswith(magic) or len(blob) < len(magic) + _LENGTH.size:
        raise DecryptionError("not a sealed box of this kind")
    (length,) = _LENGTH.unpack_from(blob, len(magic))
    start = len(magic) + _LENGTH.size
    header_bytes, rest = blob[start : start + length], blob[start + length :]
    try:
        header = json.loads(header_bytes)
    except ValueError:
        raise DecryptionError("malformed sealed box") from None
    if not isinstance(header, dict) or len(rest) <= NONCE_SIZE:
        raise DecryptionError("malformed sealed box")
    return header, header_bytes, rest


def peek(blob, magic):
    """The clear header of a box (not authenticated: use it for progress shown, never for trust)."""
    return _split(blob, magic)[0]


def open_box(blob, key, magic):
    """``(header, secret)`` of a box; ``DecryptionError`` when ``key`` does not open it."""
    header, header_bytes, rest = _split(blob, magic)
    try:
        secret = AESGCM(bytes(key)).decrypt(rest[:NONCE_SIZE], rest[NONCE_SIZE:], magic + header_bytes)
    except (InvalidTag, ValueError, TypeError):
        raise DecryptionError("the sealed box cannot be opened with this key") from None
    return header, json.loads(secret)
