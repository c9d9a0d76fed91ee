# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Plaintext that server code decrypted during a person's request, kept to be struck out of the
error message the person gets.

An error message is a string Odoo (or any module) formats from real values, in sudo, before any
exit: "Linked active users: <a registrant's name>". Such a string cannot be told apart from any
other, so the values themselves are looked for in it. Only so many values are kept: beyond
``limit``, the request read too much to look for, and the whole message is replaced.
"""

import re

DEFAULT_LIMIT = 20000


class SeenValues:
    """The plaintexts decrypted so far in one request (``add``), and their removal from a text
    (``redact``): each occurrence of a whole value (not inside a longer word) becomes the mask."""

    __slots__ = ("values", "limit", "overflowed")

    def __init__(self, limit=DEFAULT_LIMIT):
        self.values = set()
        self.limit = limit
        self.overflowed = False

    def __bool__(self):
        return bool(self.values) or self.overflowed

    def add(self, values):
        if self.overflowed:
            return
        self.values.update(value for value in values if value and value.strip())
        if len(self.values) > self.limit:
            self.values.clear()
            self.overflowed = True

    def redact(self, text, mask, replacement):
        """``text`` with every value seen replaced by ``mask``; ``replacement`` instead of the
        whole text when there were too many values to look for (and ``text`` is not empty)."""
        if not text or not isinstance(text, str):
            return text
        if self.overflowed:
            return replacement
        values = [value for value in self.values if value in text]
        if not values:
            return text
        # The longest first: a full name before the given name it contains.
        alternatives = "|".join(re.escape(value) for value in sorted(values, key=len, reverse=True))
        return re.sub(rf"(?<!\w)(?:{alternatives})(?!\w)", mask, text)
