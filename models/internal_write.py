# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Writes that only the addon's own code may make, through a channel RPC cannot reach.

A JSON-RPC client can send any context key with any JSON value, so a guard that trusts
``context.get("some_flag")`` trusts the client. The marker here is a Python object put in the
context by the addon's code and compared by identity: no JSON value is ever that object.
"""


class WriteMarker:
    """One kind of privileged write (key material, custody state, ciphertext columns...)."""

    __slots__ = ("key",)

    def __init__(self, key):
        self.key = f"g2p_internal_{key}"

    def __repr__(self):
        return f"<WriteMarker {self.key}>"

    def grant(self, records):
        """``records`` in an environment where this kind of write is allowed."""
        return records.with_context(**{self.key: self})

    def granted(self, records):
        """Whether ``records``' environment was made by ``grant`` (never by a client)."""
        return records.env.context.get(self.key) is self
