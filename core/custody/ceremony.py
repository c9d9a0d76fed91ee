"""A key ceremony in progress: new shares waiting to be handed out and confirmed.

Initialising and rekeying are two-phase. The new shares are made and shown first; the new key
takes over only after *k* of them have been entered back and rebuild it (as wallets confirm a
seed phrase). Until then the ceremony lives in a sealed box in the memory of the server that
started it: the new shares (while they may still be shown) and, for a rekey to a new master key,
the current key, which the re-wrapping needs at confirmation. Abandoning it changes nothing.
"""

import os

from . import box
from .errors import CustodyError
from .shares import KEY_SIZE, check_key, check_value, split_key

_MAGIC = b"g2p_encryption key ceremony v1\n"


class PendingCeremony:
    """New shares of one ceremony and, when needed, the current key; never in ``repr``."""

    __slots__ = ("identifier", "threshold", "share_count", "shares", "old_key")

    def __init__(self, identifier, threshold, share_count, shares=(), old_key=None):
        self.identifier = int(identifier)
        self.threshold = int(threshold)
        self.share_count = int(share_count)
        self.shares = list(shares)
        if old_key is not None:
            check_key(old_key)
        self.old_key = bytes(old_key) if old_key is not None else None

    def __repr__(self):
        return f"<PendingCeremony {self.identifier}: {self.threshold} of {self.share_count}>"

    __str__ = __repr__

    @classmethod
    def start(cls, threshold, share_count, new_key=None, old_key=None):
        """Split ``new_key`` (a fresh random key when None); return ``(ceremony, check value)``.

        The check value of the new key is what the confirmation must rebuild; the key itself is not
        kept: the confirmed shares rebuild it.
        """
        key = os.urandom(KEY_SIZE) if new_key is None else new_key
        share_set = split_key(key, threshold, share_count)
        ceremony = cls(share_set.identifier, threshold, share_count, share_set.shares, old_key)
        return ceremony, check_value(key)

    @property
    def shown(self):
        """Whether the shares are still here to be shown (until the confirmation starts)."""
        return bool(self.shares)

    def hide_shares(self):
        """Forget the shares: from now on they are only where the custodians keep them."""
        self.shares = []

    def seal(self, key):
        header = {
            "identifier": self.identifier,
            "threshold": self.threshold,
            "share_count": self.share_count,
        }
        secret = {"shares": self.shares, "old_key": self.old_key.hex() if self.old_key else None}
        return box.seal(key, _MAGIC, header, secret)

    @classmethod
    def unseal(cls, blob, key):
        header, secret = box.open_box(blob, key, _MAGIC)
        try:
            old_key = bytes.fromhex(secret["old_key"]) if secret.get("old_key") else None
        except ValueError:
            raise CustodyError("the pending ceremony is malformed") from None
        return cls(
            header["identifier"], header["threshold"], header["share_count"], secret["shares"], old_key
        )
