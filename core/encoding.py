"""Base64 in the spellings the addon reads and writes: the only base64 code of ``core``.

* ``b64url_encode`` / ``b64url_decode``: URL-safe, unpadded, as JOSE and KeyManager write it; the
  decoder takes padding or not and refuses any character outside the URL-safe alphabet.
* ``b64url_decode_strict``: only the one canonical spelling of some bytes (no padding, unused bits
  zero), for our own tokens, where a second spelling of the same bytes must not exist.
* ``b64encode`` / ``b64decode``: standard alphabet with padding (certificates in ``x5c``, keys in
  key files, HTTP Basic); the decoder refuses stray characters.
* ``b64decode_any``: what a person pastes or another system stored: either alphabet, padding and
  whitespace optional.

Every decoder raises ``ValueError`` (``binascii.Error`` is one) on malformed input.
"""

import binascii
import re

_URLSAFE_RE = re.compile(r"[A-Za-z0-9_-]*")
_STANDARD_RE = re.compile(r"[A-Za-z0-9+/]*")
_URLSAFE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# Bits of the last character that carry no data, by (length % 4): zero in the canonical spelling.
_UNUSED_BITS_MASK = {0: 0, 2: 0x0F, 3: 0x03}
_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")
_STANDARD_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


def b64url_encode(data):
    """Base64url of ``data`` (bytes, or any buffer of bytes) without padding, as text."""
    return binascii.b2a_base64(data, newline=False).translate(_STANDARD_TO_URLSAFE).rstrip(b"=").decode()


def b64url_decode(text):
    """Decode base64url, padded or not; ``ValueError`` on a character outside its alphabet."""
    text = ascii_text(text).rstrip("=")
    if len(text) % 4 == 1 or not _URLSAFE_RE.fullmatch(text):
        raise ValueError("not base64url")
    return _decode_checked(text.translate(_URLSAFE_TO_STANDARD))


def b64url_decode_strict(text):
    """Decode unpadded base64url in its canonical spelling only; ``ValueError`` otherwise.

    Each byte string has exactly one canonical spelling, so changing any character of a token
    changes the bytes it decodes to.
    """
    text = ascii_text(text)
    remainder = len(text) % 4
    if remainder == 1 or not _URLSAFE_RE.fullmatch(text):
        raise ValueError("not canonical base64url")
    if remainder and _URLSAFE_ALPHABET.index(text[-1]) & _UNUSED_BITS_MASK[remainder]:
        raise ValueError("not canonical base64url")
    return _decode_checked(text.translate(_URLSAFE_TO_STANDARD))


def b64encode(data):
    """Standard base64 of ``data`` (bytes) with padding, as text."""
    return binascii.b2a_base64(bytes(data), newline=False).decode()


def b64decode(text):
    """Decode standard base64 (padding optional); ``ValueError`` on any stray character."""
    text = ascii_text(text).rstrip("=")
    if len(text) % 4 == 1 or not _STANDARD_RE.fullmatch(text):
        raise ValueError("not base64")
    return _decode_checked(text)


def b64decode_any(text):
    """Decode base64 in either alphabet, ignoring whitespace and missing padding."""
    compact = "".join(ascii_text(text).split()).rstrip("=")
    if len(compact) % 4 == 1 or not re.fullmatch(r"[A-Za-z0-9+/_-]*", compact):
        raise ValueError("not base64")
    return _decode_checked(compact.translate(_URLSAFE_TO_STANDARD))


def ascii_text(value, what="base64", error=ValueError):
    """``value`` as str: bytes of ASCII are decoded; anything else raises ``error`` saying it is
    not ``what``."""
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("ascii")
        except UnicodeDecodeError:
            raise error(f"not {what}: non-ASCII bytes") from None
    if not isinstance(value, str):
        raise error(f"not {what}: got {type(value).__name__}")
    return value


def _decode_checked(standard):
    # The characters were checked above, so the fast decoder may be used: it would silently
    # skip stray characters.
    return binascii.a2b_base64(standard + "=" * (-len(standard) % 4))
