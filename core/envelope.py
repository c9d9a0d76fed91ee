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

import binascii
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl import bindings as sodium

from .encoding import ascii_text, b64url_decode_strict, b64url_encode
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
_V2_LENGTH = len(PREFIX_V2)
_TOKEN_PREFIXES = (PREFIX_V1, PREFIX_V2)  # of the same length
_GOOD_KEY_IDS = set()  # key ids already found well-formed (key_id_or_none)


# Canonical unpadded base64url, decoded as ``encoding.b64url_decode_strict`` does (the same
# values accepted, the same bytes), with bytes.translate and binascii's strict mode rather than a
# regular expression and str.translate: about five times faster, which counts once per value.
_TO_STANDARD = bytes.maketrans(b"-_+/=", b"+/***")  # '+', '/' and '=' are not base64url
_PADDING = (b"", None, b"==", b"=")
_UNUSED_BITS = (0, None, 0x0F, 0x03)
_SEXTET = {
    char: value
    for value, char in enumerate(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
}


def _b64url_decode_body(text):
    """Bytes of the canonical unpadded base64url ``text``; ``ValueError`` for anything else."""
    raw = text.encode("ascii")
    remainder = len(raw) % 4
    if remainder == 1:
        raise ValueError("not canonical base64url")
    blob = binascii.a2b_base64(raw.translate(_TO_STANDARD) + _PADDING[remainder], strict_mode=True)
    if remainder and _SEXTET[raw[-1]] & _UNUSED_BITS[remainder]:
        raise ValueError("not canonical base64url")
    return blob


# XChaCha20-Poly1305, straight into libsodium ---------------------------------------------------
# PyNaCl's ``nacl.bindings`` check their arguments with messages formatted eagerly on every call
# (``"...{}...".format(...)``, three per call); in Odoo, whose ``str.format`` is wrapped by a
# safety check, that is most of the cost of a value. The types and sizes are checked here once
# per batch (key, nonce, header), so values go to libsodium through PyNaCl's own cffi module;
# without it (another PyNaCl layout), through the public bindings.
try:
    from nacl._sodium import ffi as _ffi
    from nacl._sodium import lib as _lib

    _ABYTES = _lib.crypto_aead_xchacha20poly1305_ietf_abytes()
    _NULL = _ffi.NULL

    class _Sealer:
        """Encryption of a batch into one buffer laid out as a token's body (nonce || ciphertext
        || tag), grown when a value needs more room: no allocation nor copy per value."""

        __slots__ = ("out", "body", "size")

        def __init__(self):
            self._grow(256)

        def _grow(self, size):
            self.size = size
            self.out = _ffi.new("unsigned char[]", NONCE_SIZE_V2 + size + _ABYTES)
            self.body = self.out + NONCE_SIZE_V2

        def seal_token(self, header, message, aad, nonce, key):
            """The token ``header`` + base64url(``nonce || ciphertext || tag``) of ``message``
            (bytes); the buffer is encoded where it lies, before the next value overwrites it."""
            size = len(message)
            if size > self.size:
                self._grow(size)
            _ffi.memmove(self.out, nonce, NONCE_SIZE_V2)
            _lib.crypto_aead_xchacha20poly1305_ietf_encrypt(
                self.body, _NULL, message, size, aad, len(aad), _NULL, nonce, key
            )
            return header + b64url_encode(_ffi.buffer(self.out, NONCE_SIZE_V2 + size + _ABYTES))

    class _Opener:
        """Decryption of a batch into one output buffer, grown when a value needs more room."""

        __slots__ = ("out", "size")

        def __init__(self):
            self.size = 256
            self.out = _ffi.new("unsigned char[]", self.size)

        def open_blob(self, blob, aad, key):
            """The plaintext of ``nonce || ciphertext || tag`` (at least ``NONCE_SIZE_V2 + TAG_SIZE``
            bytes), or None when authentication fails: one call into libsodium per value."""
            size = len(blob) - NONCE_SIZE_V2 - _ABYTES
            if size > self.size:
                self.size = size
                self.out = _ffi.new("unsigned char[]", size)
            if _lib.crypto_aead_xchacha20poly1305_ietf_decrypt(
                self.out,
                _NULL,
                _NULL,
                blob[NONCE_SIZE_V2:],
                size + _ABYTES,
                aad,
                len(aad),
                blob[:NONCE_SIZE_V2],
                key,
            ):
                return None
            return _ffi.buffer(self.out, size)[:]

except ImportError:  # pragma: no cover - PyNaCl without its cffi module
    from nacl.exceptions import CryptoError

    class _Sealer:
        @staticmethod
        def seal_token(header, message, aad, nonce, key):
            return header + b64url_encode(
                nonce + sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(message, aad, nonce, key)
            )

    class _Opener:
        @staticmethod
        def open_blob(blob, aad, key):
            try:
                return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
                    blob[NONCE_SIZE_V2:], aad, blob[:NONCE_SIZE_V2], key
                )
            except CryptoError:
                return None


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
    plaintext (when the record id is part of it). The key, the header and the nonces (one
    ``os.urandom`` call for the batch) are prepared once; per value there is the cipher call and
    the base64url of its result.
    """
    _check_key(key)
    header = _header(PREFIX_V2, key_id)
    prefix = header.encode("ascii")
    plaintexts = list(plaintexts)
    aads = _aad_list(aad, len(plaintexts), "seal_many")
    nonces = os.urandom(NONCE_SIZE_V2 * len(plaintexts))
    seal_token = _Sealer().seal_token  # one buffer for the batch
    key = bytes(key)
    tokens = []
    append = tokens.append
    start = 0
    for plaintext, one_aad in zip(plaintexts, aads, strict=True):
        nonce = nonces[start : start + NONCE_SIZE_V2]
        start += NONCE_SIZE_V2
        if type(plaintext) is not bytes:
            plaintext = bytes(plaintext)
        if type(one_aad) is not bytes:
            one_aad = bytes(one_aad)
        append(seal_token(header, plaintext, prefix + one_aad, nonce, key))
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

    ``aad`` is one bytes value for all tokens or a list with one AAD per token. A batch of
    current tokens under one key (the usual one) is taken a step at a time for the whole batch
    (``_open_uniform``). In any other, tokens of the current format whose key id was seen before
    take a short path (no format check of the key id again); anything unusual goes through
    :func:`parse`, which names what is wrong.
    """
    tokens = list(tokens)
    aads = _aad_list(aad, len(tokens), "open_many")
    uniform = _open_uniform(tokens, key_lookup, aads)
    if uniform is not None:
        return uniform
    keys = {}  # key id -> (key, header bytes) of the v2 tokens of this batch
    plaintexts = []
    append = plaintexts.append
    opener = _Opener()  # one output buffer for the batch
    open_blob = opener.open_blob
    shortest = NONCE_SIZE_V2 + TAG_SIZE
    # The short path: tokens with the header of the last key seen ("g2pe2.<key id>."), a batch's
    # usual case; one prefix test, the base64url decoded inline, one call into libsodium.
    head, head_length, key_id, key, header = None, 0, None, None, b""
    for token, one_aad in zip(tokens, aads, strict=True):
        if head is not None and type(token) is str and token.startswith(head):
            try:
                blob = _b64url_decode_body(token[head_length:])
            except ValueError:
                blob = b""  # parse() below says what is wrong
            if len(blob) >= shortest:
                append(_open_value(open_blob, blob, header, one_aad, key, key_id))
                continue
        prefix, token_key_id, blob = parse(token)
        if prefix != PREFIX_V2:
            append(_open_v1(token_key_id, key_lookup(token_key_id), blob, one_aad))
            continue
        known = keys.get(token_key_id)
        if known is None:
            token_key = key_lookup(token_key_id)
            _check_key(token_key)
            known = keys[token_key_id] = (bytes(token_key), f"{PREFIX_V2}{token_key_id}.".encode("ascii"))
        key_id, (key, header) = token_key_id, known
        head, head_length = header.decode("ascii"), len(header)
        append(_open_value(open_blob, blob, header, one_aad, key, key_id))
    return plaintexts


def _open_uniform(tokens, key_lookup, aads):
    """``open_many`` of a batch of well-formed current tokens under one key (a batch of stored
    values usually is), a step at a time over the whole batch; None for any other batch, which
    ``open_many`` then takes value by value."""
    key_id = _common_key_id(tokens)
    if key_id is None:
        return None
    head = f"{PREFIX_V2}{key_id}."
    skip, decode = len(head), _b64url_decode_body
    try:
        blobs = [decode(token[skip:]) for token in tokens]
    except ValueError:  # parse() says what is wrong
        return None
    if min(map(len, blobs)) < NONCE_SIZE_V2 + TAG_SIZE:
        return None
    key = key_lookup(key_id)
    _check_key(key)
    key, header = bytes(key), head.encode("ascii")
    open_blob = _Opener().open_blob
    plaintexts = []
    append = plaintexts.append
    for blob, one_aad in zip(blobs, aads, strict=True):  # the hot loop: _open_value inline
        if type(one_aad) is not bytes:
            one_aad = bytes(one_aad)
        plaintext = open_blob(blob, header + one_aad, key)
        if plaintext is None:
            raise _authentication_failed(key_id)
        append(plaintext)
    return plaintexts


def _open_value(open_blob, blob, header, aad, key, key_id):
    """The plaintext of one value of a batch (``open_blob`` of the batch's opener); a
    ``DecryptionError`` naming the key when it fails authentication."""
    if type(aad) is not bytes:
        aad = bytes(aad)
    plaintext = open_blob(blob, header + aad, key)
    if plaintext is None:
        raise _authentication_failed(key_id)
    return plaintext


def parse(token):
    """Split a token into (prefix, key id, nonce || ciphertext || tag), checking the format only."""
    token = _as_text(token)
    prefix = token[: len(PREFIX_V2)]
    if prefix not in _TOKEN_PREFIXES:
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


def key_ids_of(tokens):
    """``key_id_or_none`` of each token; one prefix test per token when they all name the key
    of the first one (a batch of stored values usually does)."""
    common = _common_key_id(tokens)
    if common is not None:
        return [common] * len(tokens)
    return [key_id_or_none(token) for token in tokens]


def _common_key_id(tokens):
    """The key id of a batch whose tokens all have the header of the first one's key in the
    current format (``g2pe2.<key id>.``): one prefix test per token. None for any other batch."""
    first = tokens[0] if tokens else None
    key_id = key_id_or_none(first) if type(first) is str and first.startswith(PREFIX_V2) else None
    if key_id is None:
        return None
    head = f"{PREFIX_V2}{key_id}."
    return key_id if all(type(token) is str and token.startswith(head) for token in tokens) else None


def key_id_or_none(token):
    """The key id a token's header names, or None when ``token`` does not start like a token.

    A header check only (prefix and key id), no decoding: it sorts a batch of stored values by
    key. Whether the rest is well-formed and authentic is for :func:`open_many` to say.
    """
    if type(token) is not str:
        if not isinstance(token, bytes | bytearray):
            return None
        try:
            token = bytes(token).decode("ascii")
        except UnicodeDecodeError:
            return None
    if not token.startswith(_TOKEN_PREFIXES):
        return None
    key_id, dot, _body = token[_V2_LENGTH:].partition(".")
    if not dot:
        return None
    if key_id in _GOOD_KEY_IDS:
        return key_id
    if not _KEY_ID_RE.fullmatch(key_id):
        return None
    if len(_GOOD_KEY_IDS) < 1024:  # a handful of keys exist; the bound guards against junk
        _GOOD_KEY_IDS.add(key_id)
    return key_id


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
    if isinstance(token, memoryview):  # not a token (encoding.ascii_text would accept it)
        raise InvalidCiphertextError(f"not a ciphertext: got {type(token).__name__}")
    return ascii_text(token, "a ciphertext", InvalidCiphertextError)


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
