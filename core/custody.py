"""Key custody: a master key split into Shamir shares, and the memory that holds it once unsealed.

In sealed custody the master key is never written to disk whole. It is split into *n* shares with
threshold *k* (SLIP-39, ``shamir_mnemonic``: each share is a list of words with a checksum, so a
mistyped or altered word is caught when the share is entered). The database keeps only a check
value, ``HMAC-SHA256(key, "g2p custody check")``, which tells whether a rebuilt key is the right
one and reveals nothing of it.

After *k* custodians have entered their shares (``ShareCollector``), the key is rebuilt and kept in
``InstanceStore``: a file in a memory-backed directory (``/dev/shm``), mode 0600, named after the
running server instance (boot id, pid and start time of the Odoo master process). Every worker
process of that server reads it; a restart of the server gives a new instance id, so the new
server finds no key and is sealed. ``InstanceStore.remove_stale`` deletes the files of instances
that are no longer running.

Shares collected so far, between one custodian's entry and the next (possibly served by another
worker), are kept in the same store encrypted with a progress key that the caller keeps elsewhere
(the database): neither place alone holds a share.

This module never imports ``odoo``.
"""

import hashlib
import hmac
import json
import os
import re

from shamir_mnemonic import MnemonicError, Share, combine_mnemonics, generate_mnemonics
from shamir_mnemonic.wordlist import WORD_INDEX_MAP

from . import files
from .encoding import b64decode, b64encode
from .envelope import KEY_SIZE, NONCE_SIZE, _aead
from .errors import DecryptionError, G2PCryptoError

MAX_SHARES = 10
MIN_THRESHOLD = 2
CHECK_LABEL = b"g2p custody check"
SHM_DIR = "/dev/shm"
FILE_PREFIX = "g2p_encryption"
MEMORY_FILESYSTEMS = {"tmpfs", "ramfs"}
# SLIP-39 stretches the secret with PBKDF2 (10000 << exponent iterations); there is no passphrase
# here, so the lowest exponent keeps splitting and combining fast.
_ITERATION_EXPONENT = 0
_KEY_FILE_MAGIC = b"g2p_encryption unsealed key v1\n"
_PROGRESS_MAGIC = b"g2p_encryption share progress v1\n"
_PROGRESS_AAD = b"g2p_encryption share progress"
_NAME_PART_RE = re.compile(r"[A-Za-z0-9_-]{1,80}")


class CustodyError(G2PCryptoError):
    """Custody cannot proceed: bad parameters, no memory-backed storage, a key that does not check."""


class ShareRejected(CustodyError):
    """A share was refused on entry; the message says why and never quotes the share."""


# Check value -----------------------------------------------------------------------------------


def check_value(key):
    """Hex HMAC-SHA256 of a fixed label under ``key``: verifies a rebuilt key, reveals nothing."""
    _check_key(key)
    return hmac.new(bytes(key), CHECK_LABEL, hashlib.sha256).hexdigest()


def verify_check_value(key, expected):
    """Tell, in constant time, whether ``key`` is the key that ``expected`` was computed from."""
    if not expected or len(key) != KEY_SIZE:
        return False
    return hmac.compare_digest(check_value(key), str(expected))


# Splitting and combining ----------------------------------------------------------------------


class ShareSet:
    """The *n* shares of one split: shown once to be handed out, never stored.

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
    _check_key(key)
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
            raise CustodyError("the shares rebuild a key that does not match the provider's check value")
        return key

    # Persistence between requests, always encrypted --------------------------------------------

    def seal(self, progress_key):
        """Serialise, encrypted under ``progress_key`` (32 bytes); counts stay readable in clear."""
        _check_key(progress_key)
        secret = json.dumps({"shares": list(self._shares.values())}).encode()
        header = {
            "identifier": self.identifier,
            "threshold": self.threshold,
            "count": self.count,
            "rejected": self.rejected,
        }
        header_bytes = json.dumps(header, sort_keys=True).encode()
        nonce = os.urandom(NONCE_SIZE)
        sealed = _aead(progress_key).encrypt(nonce, secret, _PROGRESS_AAD + header_bytes)
        body = {"header": header, "sealed": b64encode(nonce + sealed)}
        return _PROGRESS_MAGIC + json.dumps(body, sort_keys=True).encode()

    @staticmethod
    def peek(blob):
        """The clear header of a sealed collector: identifier, threshold, count and rejected."""
        header, _sealed = _split_progress(blob)
        return header

    @classmethod
    def unseal(cls, blob, progress_key):
        """Rebuild a collector made by ``seal``; ``DecryptionError`` when the key does not open it."""
        header, sealed = _split_progress(blob)
        header_bytes = json.dumps(header, sort_keys=True).encode()
        try:
            secret = _aead(progress_key).decrypt(
                sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], _PROGRESS_AAD + header_bytes
            )
        except Exception:
            raise DecryptionError("the share progress cannot be opened with this progress key") from None
        shares = json.loads(secret)["shares"]
        return cls(header["identifier"], header["threshold"], shares, header["rejected"])


def _split_progress(blob):
    if not isinstance(blob, bytes | bytearray) or not bytes(blob).startswith(_PROGRESS_MAGIC):
        raise DecryptionError("not a share progress record")
    try:
        body = json.loads(bytes(blob)[len(_PROGRESS_MAGIC) :])
        return body["header"], b64decode(body["sealed"])
    except (ValueError, KeyError, TypeError):
        raise DecryptionError("malformed share progress record") from None


# Server instances ------------------------------------------------------------------------------


def read_boot_id():
    """The kernel's boot id without dashes (changes at every boot)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip().replace("-", "")
    except OSError:
        raise CustodyError("cannot read the boot id (/proc/sys/kernel/random/boot_id)") from None


def process_start_ticks(pid):
    """Start time of process ``pid`` since boot, in clock ticks (/proc/<pid>/stat field 22); or None."""
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces or parentheses.
    fields_after_name = text.rsplit(")", 1)[-1].split()
    try:
        return fields_after_name[19]
    except IndexError:
        return None


def instance_id(master_pid, boot_id=None):
    """Id of the running server whose master process is ``master_pid``: boot id, pid, start time.

    A restart (new pid or new start time) or a reboot (new boot id) gives a new id.
    """
    ticks = process_start_ticks(master_pid)
    if ticks is None:
        raise CustodyError(f"process {master_pid} is not running")
    return f"{(boot_id or read_boot_id())[:16]}-{int(master_pid)}-{ticks}"


def instance_alive(instance, boot_id=None):
    """Tell whether the server instance named ``instance`` still runs on this machine."""
    parts = str(instance).split("-")
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    boot, pid, ticks = parts
    if boot != (boot_id or read_boot_id())[:16]:
        return False
    return process_start_ticks(int(pid)) == ticks


def is_memory_backed(directory):
    """Tell whether ``directory`` lies on tmpfs or ramfs (from /proc/self/mounts)."""
    path = os.path.realpath(directory)
    best, fstype = "", None
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mount_point = parts[1].replace("\\040", " ")
                inside = path == mount_point or path.startswith(mount_point.rstrip("/") + "/")
                if inside and len(mount_point) >= len(best):
                    best, fstype = mount_point, parts[2]
    except OSError:
        return False
    return fstype in MEMORY_FILESYSTEMS


class InstanceStore:
    """Small files of one server instance in a memory-backed directory, readable by its owner only.

    A file is ``<prefix>.<instance id>.<scope>.<kind>``; ``scope`` names what it belongs to (a
    database and provider) and ``kind`` what it holds (``key``, ``unseal``, ``rekey``). Files
    are created with O_EXCL and mode 0600, then renamed into place, so a reader sees a whole file or
    none; a reader refuses a file that is not a regular file of this user with mode 0600.
    """

    def __init__(self, instance, directory=SHM_DIR, require_memory_backed=True, prefix=FILE_PREFIX):
        if not _NAME_PART_RE.fullmatch(str(instance)):
            raise CustodyError("an instance id is letters, digits, '-' and '_'")
        self.instance = str(instance)
        self.directory = directory
        self.prefix = prefix
        self.require_memory_backed = require_memory_backed

    def __repr__(self):
        return f"<InstanceStore {self.directory} {self.instance}>"

    def path(self, scope, kind):
        for part in (scope, kind):
            if not _NAME_PART_RE.fullmatch(str(part)):
                raise CustodyError("a scope or kind is letters, digits, '-' and '_'")
        return os.path.join(self.directory, f"{self.prefix}.{self.instance}.{scope}.{kind}")

    def _check_directory(self):
        if not os.path.isdir(self.directory):
            raise CustodyError(f"the directory {self.directory} for unsealed keys does not exist")
        if self.require_memory_backed and not is_memory_backed(self.directory):
            raise CustodyError(
                f"{self.directory} is not memory-backed (tmpfs): an unsealed key is never written to disk"
            )

    def put(self, scope, kind, data):
        """Create or replace the file of ``scope``/``kind`` with ``data``."""
        self._check_directory()
        files.write_private(self.path(scope, kind), data)

    def get(self, scope, kind):
        """The content of the file of ``scope``/``kind``, or None when there is none."""
        path = self.path(scope, kind)
        try:
            return files.read_private(path)
        except FileNotFoundError:
            return None
        except files.NotPrivateError:
            raise CustodyError(f"{path} is not a private file of this user (mode 600): refused") from None
        except OSError as error:
            raise CustodyError(f"cannot read {path}: {error.strerror}") from None

    def exists(self, scope, kind):
        return os.path.exists(self.path(scope, kind))

    def remove(self, scope, kind):
        """Delete the file of ``scope``/``kind``; True when there was one."""
        return files.unlink_quietly(self.path(scope, kind))

    def remove_scope(self, scope):
        """Delete every file of this instance for ``scope``."""
        removed = 0
        for name in self._names():
            parts = name.split(".")
            if len(parts) >= 4 and parts[1] == self.instance and parts[2] == scope:
                removed += files.unlink_quietly(os.path.join(self.directory, name))
        return removed

    def remove_stale(self, alive=instance_alive):
        """Delete this user's files of server instances that no longer run; return how many."""
        removed = 0
        for name in self._names():
            parts = name.split(".")
            if len(parts) < 4 or parts[1] == self.instance:
                continue
            path = os.path.join(self.directory, name)
            try:
                if os.lstat(path).st_uid != os.getuid():
                    continue
            except OSError:
                continue
            if not alive(parts[1]):
                removed += files.unlink_quietly(path)
        return removed

    def _names(self):
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        return [name for name in names if name.startswith(self.prefix + ".")]


def encode_key_file(key):
    """The content of an unsealed-key file."""
    _check_key(key)
    return _KEY_FILE_MAGIC + bytes(key)


def decode_key_file(data):
    """The key in an unsealed-key file; ``CustodyError`` when the content is not one."""
    if not data or not data.startswith(_KEY_FILE_MAGIC) or len(data) != len(_KEY_FILE_MAGIC) + KEY_SIZE:
        raise CustodyError("the unsealed key file is malformed")
    return data[len(_KEY_FILE_MAGIC) :]


def _check_key(key):
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_SIZE:
        raise CustodyError(f"a key is {KEY_SIZE} bytes")
