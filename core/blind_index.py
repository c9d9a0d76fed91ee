"""Blind index: search encrypted fields for equality without storing their plaintext.

Encrypted values use a random nonce, so two encryptions of one value differ and the database
cannot compare them. Beside the ciphertext we store a keyed hash (HMAC-SHA256) of the normalized
value; a search for "email = x" hashes x the same way and compares hashes.

What a blind index reveals, to anyone who reads the database: which records hold equal values in
the same field (after normalization), hence how often each value occurs; an attacker who knows
the value of one record learns which others share it. What it does not reveal: the values
themselves, nor any ordering, prefix or length; nothing can be computed or brute-forced from a
dump without the HMAC key, which is derived from the master key and never stored in the
database. Each field is hashed separately (the field name is part of the input), so equal values
in two fields do not match each other. Only exact (normalized) equality can be searched.
"""

import hashlib
import hmac
import unicodedata

KINDS = ("email", "phone", "text", "identifier")
MIN_KEY_SIZE = 16
DIGEST_BITS = 256
MIN_BITS = 8


def normalize(value, kind):
    """Return the canonical form of ``value`` that equality searches compare.

    * ``email``: Unicode NFKC, surrounding whitespace removed, case folded;
    * ``phone``: decimal digits only (any script's digits become ASCII), with a ``+`` kept when
      the number starts with one: ``"+1 (555) 010-0199"`` gives ``"+15550100199"``;
    * ``text``: Unicode NFKC, case folded, runs of whitespace collapsed to one space, trimmed;
    * ``identifier`` (national IDs, account numbers): Unicode NFKC, case folded, letters and digits
      only: ``"ab-12 34"`` gives ``"ab1234"``.
    """
    if not isinstance(value, str):
        raise TypeError(f"can only normalize str, not {type(value).__name__}")
    if kind == "email":
        return _fold(value).strip()
    if kind == "phone":
        stripped = value.strip()
        digits = "".join(str(unicodedata.decimal(char)) for char in stripped if char.isdecimal())
        return f"+{digits}" if stripped.startswith("+") else digits
    if kind == "text":
        return " ".join(_fold(value).split())
    if kind == "identifier":
        return "".join(char for char in _fold(value) if char.isalnum())
    raise ValueError(f"unknown blind index kind {kind!r}: use one of {KINDS}")


def _fold(value):
    """Unicode caseless matching form: composed and compatibility forms agree, case does not count.

    NFKC again after casefold, because folding can produce sequences that NFKC would change.
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())


def blind_index(key, field, value, kind="text"):
    """Return the blind index of ``value`` in ``field`` as 64 hex digits.

    HMAC-SHA256 under ``key`` of ``field``, a NUL byte and the normalized value. ``key`` is a
    dedicated subkey (``MasterKey.derive("blind-index")`` or a per-field derivation), never a
    data encryption key.
    """
    if not isinstance(key, bytes | bytearray) or len(key) < MIN_KEY_SIZE:
        raise ValueError(f"a blind index key must be at least {MIN_KEY_SIZE} bytes")
    if not field or "\x00" in field:
        raise ValueError("a blind index needs a field name without NUL")
    message = field.encode("utf-8") + b"\x00" + normalize(value, kind).encode("utf-8")
    return hmac.new(bytes(key), message, hashlib.sha256).hexdigest()


def truncate(digest, bits):
    """The first ``bits`` bits of a hex ``digest`` (a multiple of 4: whole hex digits).

    A truncated index maps many values to each digest, so that a dump alone cannot prove that two
    records share a value; a lookup then gives candidates, which are checked by decrypting them.
    """
    if bits % 4 or not MIN_BITS <= bits <= DIGEST_BITS:
        raise ValueError(f"a blind index keeps a multiple of 4 bits between {MIN_BITS} and {DIGEST_BITS}")
    return digest[: bits // 4]
