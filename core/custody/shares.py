"""Shamir shares of a master key (SLIP-39 words), the check value, and shares collected so far.

The master key is split into *n* shares with threshold *k* (SLIP-39, ``shamir_mnemonic``: each
share is a list of words with a checksum, so a mistyped or altered word is caught when the share
is entered). The database keeps only a check value, ``HMAC-SHA256(key, "g2p custody check")``,
which tells whether a rebuilt key is the right one and reveals nothing of it.
"""

import hashlib
import hmac

from shamir_mnemonic import MnemonicError, Share, combine_mnemonics, generate_mnemonics
from shamir_mnemonic.wordlist import WORD_INDEX_MAP

from . import box
from .errors import CustodyError, ShareRejected

KEY_SIZE = box.KEY_SIZE
MAX_SHARES = 10
MIN_THRESHOLD = 2
CHECK_LABEL = b"g2p custody check"
# SLIP-39 stretches the secret with PBKDF2 (10000 << exponent iterations); there is no passphrase
# here, so the lowest exponent keeps splitting and combining fast.
_ITERATION_EXPONENT = 0
_PROGRESS_MAGIC = b"g2p_encryption share progress v2\n"


def check_key(key):
    """Raise ``CustodyError`` unless ``key`` is a 32-byte key."""
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_SIZE:
        raise CustodyError(f"a key is {KEY_SIZE} bytes")


# Check value -----------------------------------------------------------------------------------


def check_value(key):
    """Hex HMAC-SHA256 of a fixed label under ``key``: verifies a rebuilt key, reveals nothing."""
    check_key(key)
    return hmac.new(bytes(key), CHECK_LABEL, hashlib.sha256).hexdigest()


def verify_check_value(key, expected):
    """Tell, in constant time, whether ``key`` is the key that ``expected`` was computed from."""
    if not expected or not isinstance(key, bytes | bytearray) or len(key) != KEY_SIZE:
        return False
    return hmac.compare_digest(check_value(key), str(expected))


# Splitting and combining ----------------------------------------------------------------------


class ShareSet:
    """The *n* shares of one split: shown to be handed out, never stored in the clear.

    ``identifier`` is the SLIP-39 share set id (15 bits, spelled by the first words of every share):
    it names the set, so that a share of an older set is refused, and reveals nothing of the key.
    """

    __slots__ = ("identifier", "threshold", "share_count", "shares")

    def __init__(self, identifier, threshold, share_count, shares):
        self.identifier = identifier
        self.threshold = threshold
        self.share_count = share_count
        self.shares = shares

    def __repr__(self):  # never the shares themselves
        return f"<ShareSet {self.identifier}: {self.threshold} of {self.share_count}>"

    __str__ = __repr__


def check_split_parameters(threshold, share_count):
    """Raise ``CustodyError`` unless 2 <= threshold <= share_count <= 10."""
    if not isinstance(threshold, int) or not isinstance(share_count, int):
        raise CustodyError("the threshold and the number of shares must be whole numbers")
    if not MIN_THRESHOLD <= share_count <= MAX_SHARES:
        raise CustodyError(f"the number of shares must be between {MIN_THRESHOLD} and {MAX_SHARES}")
    if not MIN_THRESHOLD <= threshold <= share_count:
        raise CustodyError(f"the threshold must be between {MIN_THRESHOLD} and the number of shares")


def split_key(key, threshold, share_count):
    """Split a 32-byte key into ``share_count`` SLIP-39 shares, any ``threshold`` of which rebuild it."""
    check_key(key)
    check_split_parameters(threshold, share_count)
    groups = generate_mnemonics(
        1, [(threshold, share_count)], bytes(key), iteration_exponent=_ITERATION_EXPONENT
    )
    shares = groups[0]
    return ShareSet(Share.from_mnemonic(shares[0]).identifier, threshold, share_count, shares)


def combine_shares(shares):
    """Rebuild the key from enough shares of one set; ``CustodyError`` when they do not fit."""
    try:
        key = combine_mnemonics([normalise_share(share) for share in shares])
    except (MnemonicError, ValueError):
        raise CustodyError("the shares do not rebuild a key: not enough, or not of one share set") from None
    if len(key) != KEY_SIZE:
        raise CustodyError(f"the shares rebuild a secret of {len(key)} bytes, not a {KEY_SIZE}-byte key")
    return key


def normalise_share(text):
    """A share as typed (any case, spaces, line breaks) in its canonical form: lower-case words."""
    if not isinstance(text, str):
        raise ShareRejected("a share is text: a list of words")
    return " ".join(text.lower().split())


def parse_share(text):
    """Decode a share, checking its words and its checksum; return ``shamir_mnemonic.Share``.

    The reasons given never quote the share, only word positions, so they can be shown and
    logged.
    """
    words = normalise_share(text).split()
    if not words:
        raise ShareRejected("the share is empty")
    for position, word in enumerate(words, start=1):
        if word not in WORD_INDEX_MAP:
            raise ShareRejected(f"word {position} is not a word of the share word list")
    try:
        share = Share.from_mnemonic(" ".join(words))
    except MnemonicError:
        raise ShareRejected(
            f"the share's checksum does not match ({len(words)} words): a word is wrong, missing or "
            "out of place"
        ) from None
    return share


class ShareCollector:
    """Shares entered so far towards rebuilding the key of one share set.

    Each share is checked as it is added: its words and checksum, that it belongs to the expected
    share set (identifier, one group, the expected threshold), and that it was not entered before.
    Refused shares raise ``ShareRejected`` and are counted in ``rejected``.
    """

    def __init__(self, identifier, threshold, shares=(), rejected=0):
        self.identifier = int(identifier)
        self.threshold = int(threshold)
        self.rejected = int(rejected)
        self._shares = {}
        for text in shares:
            share = parse_share(text)
            self._shares[share.index] = normalise_share(text)

    def __repr__(self):
        return f"<ShareCollector {self.identifier}: {self.count} of {self.threshold}>"

    __str__ = __repr__

    @property
    def count(self):
        return len(self._shares)

    @property
    def complete(self):
        return self.count >= self.threshold

    @property
    def numbers(self):
        """Numbers (1-based) of the shares entered, as printed on each custodian's share."""
        return sorted(index + 1 for index in self._shares)

    def add(self, text):
        """Check and keep one share; return its number (1-based). ``ShareRejected`` when refused."""
        try:
            share = parse_share(text)
            if share.identifier != self.identifier:
                raise ShareRejected(
                    "the share belongs to another share set (an older set, or another provider)"
                )
            if (
                share.group_count != 1
                or share.group_threshold != 1
                or share.member_threshold != self.threshold
            ):
                raise ShareRejected("the share was not made for this provider's threshold")
            if share.index in self._shares:
                raise ShareRejected(f"share number {share.index + 1} was already entered")
            if self.complete:
                raise ShareRejected(f"{self.threshold} shares are already entered")
        except ShareRejected:
            self.rejected += 1
            raise
        self._shares[share.index] = normalise_share(text)
        return share.index + 1

    def combine(self, expected_check_value):
        """Rebuild the key and verify it against the check value; ``CustodyError`` otherwise."""
        if not self.complete:
            raise CustodyError(
                f"{self.count} of {self.threshold} shares entered: not enough to rebuild the key"
            )
        key = combine_shares(list(self._shares.values()))
        if not verify_check_value(key, expected_check_value):
            raise CustodyError("the shares rebuild a key that does not match the expected check value")
        return key

    # Persistence between requests, always encrypted --------------------------------------------

    def seal(self, progress_key):
        """Serialise, encrypted under ``progress_key`` (32 bytes); counts stay readable in clear."""
        header = {
            "identifier": self.identifier,
            "threshold": self.threshold,
            "count": self.count,
            "rejected": self.rejected,
        }
        return box.seal(progress_key, _PROGRESS_MAGIC, header, {"shares": list(self._shares.values())})

    @staticmethod
    def peek(blob):
        """The clear header of a sealed collector: identifier, threshold, count and rejected."""
        return box.peek(blob, _PROGRESS_MAGIC)

    @classmethod
    def unseal(cls, blob, progress_key):
        """Rebuild a collector made by ``seal``; ``DecryptionError`` when the key does not open it."""
        header, secret = box.open_box(blob, progress_key, _PROGRESS_MAGIC)
        return cls(header["identifier"], header["threshold"], secret["shares"], header["rejected"])
