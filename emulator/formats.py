"""Encodings and time formats as KeyManager (Java) and Keycloak write and read them."""

import re
from datetime import datetime, timezone

from ..core.encoding import b64decode, b64url_decode, b64url_encode

_URL_SAFE = re.compile(r"[A-Za-z0-9_-]*=*")
_STANDARD = re.compile(r"[A-Za-z0-9+/]*=*")
# Java's Base64.getUrlEncoder().withoutPadding(), under the name the emulator uses.
b64url = b64url_encode
MOSIP_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def java_b64decode(text):
    """Decode like ``CryptomanagerUtils.decodeBase64Data``: URL-safe alphabet first, then the standard one.

    Padding is optional, whitespace is not allowed. Raises ``ValueError`` when both fail.
    """
    if not isinstance(text, str):
        raise ValueError("not a string")
    for alphabet, decode in ((_URL_SAFE, b64url_decode), (_STANDARD, b64decode)):
        if not alphabet.fullmatch(text):
            continue
        core = text.rstrip("=")
        padded = core + "=" * (-len(core) % 4)
        # Java accepts missing padding but not wrong padding, nor a lone trailing character.
        if len(core) % 4 == 1 or (text != core and text != padded):
            continue
        return decode(core)
    raise ValueError("not base64")


def now_utc():
    return datetime.now(timezone.utc)


def mosip_time(moment):
    """``yyyy-MM-dd'T'HH:mm:ss.SSS'Z'``, the ``@JsonFormat`` of MOSIP's DTOs."""
    return moment.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def local_date_time(moment):
    """A Java ``LocalDateTime`` as Jackson renders it by default: ISO, no zone, variable fraction."""
    text = moment.astimezone(timezone.utc).replace(tzinfo=None).isoformat()
    return text.rstrip("0").rstrip(".") if "." in text else text
