"""Errors of key custody: the bottom of the package, it imports nothing else from it."""

from ..errors import G2PCryptoError


class CustodyError(G2PCryptoError):
    """Custody cannot proceed: bad parameters, no memory-backed storage, a key that does not check."""


class ShareRejected(CustodyError):
    """A share was refused on entry; the message says why and never quotes the share."""
