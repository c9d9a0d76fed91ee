"""The values the clients write: unique per operation, so that each one is found (or not) in a dump."""

import itertools
import re
import threading

FIELDS = ("name", "email", "phone", "mobile", "street", "street2", "city", "zip")
UNREADABLE = "[unreadable]"
MARKER_PATTERNS = (re.compile(r"zflt\d{7}"), re.compile(r"z\d{7}q"), re.compile(r"7[0-2]\d{7}"))

_numbers = itertools.count(1001)
_numbers_lock = threading.Lock()


def next_number():
    with _numbers_lock:
        return next(_numbers)


def create_values(number):
    return {
        "name": f"Zflt{number:07d} Name",
        "email": f"zflt{number:07d}@example.org",
        "phone": f"+254 70{number:07d}",
        "mobile": f"+254 71{number:07d}",
        "street": f"Zflt{number:07d} Street",
        "street2": f"Zflt{number:07d} Block",
        "city": f"Zflt{number:07d}ville",
        "zip": f"Z{number:07d}Q",
    }


def write_values(number):
    return {"city": f"Zflt{number:07d}town", "phone": f"+254 72{number:07d}"}


def fragments(values):
    """The lower-case substrings of ``values`` that MARKER_PATTERNS find in a text."""
    found = set()
    for value in values.values():
        for pattern in MARKER_PATTERNS:
            found.update(pattern.findall(value.lower().replace(" ", "")))
    return found


def fragments_in(text):
    """The marker fragments in ``text`` (a dump, a log), lower-cased."""
    text = text.lower()
    return {fragment for pattern in MARKER_PATTERNS for fragment in pattern.findall(text)}
