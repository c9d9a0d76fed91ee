"""The local master key: it wraps data keys, and it never enters the database.

Data keys (which encrypt field values) are stored in the database only wrapped by the master key,
so a database dump alone decrypts nothing. The master key comes from the server configuration
(inline, or a key file path) or from a key file: ``resolve_master_key`` applies the precedence
and, on a first start with nothing configured, generates a key file.

A wrapped key is a token in the envelope layout::

    g2pw1.<master_key_id>.<base64url_nopad(nonce || ciphertext || tag)>

``master_key_id`` identifies the master key without revealing it, so that restoring a database
next to the wrong key file gives a message naming both keys instead of a bare tag failure. The
AAD binds the purpose and the id of the key record: a wrapped key copied to another record, or
used for another purpose, does not unwrap.
"""

import contextlib
import hashlib
import hmac
import os
import stat

from . import files
from .encoding import b64decode_any, b64encode
from .envelope import KEY_SIZE, _aead, _header, _open_with, _parse, _seal_with
from .errors import MasterKeyError

WRAP_PREFIX = "g2pw1."

_KEY_ID_LABEL = b"g2p_encryption master key id"


class MasterKey:
    """A 256-bit master key. Its bytes never appear in ``repr``, ``str`` or error messages."""

    __slots__ = ("_key", "_aead", "_key_id")

    def __init__(self, key):
        if not isinstance(key, bytes | bytearray) or len(key) != KEY_SIZE:
            length = len(key) if isinstance(key, bytes | bytearray) else type(key).__name__
            raise MasterKeyError(f"a master key must be {KEY_SIZE} bytes, got {length}")
        self._key = bytes(key)
        self._aead = _aead(self._key)
        self._key_id = hmac.new(self._key, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]

    def __repr__(self):
        return f"<MasterKey {self._key_id}>"

    __str__ = __repr__

    def __reduce__(self):
        # Refuse pickling, which would write the key bytes wherever the pickle goes.
        raise TypeError("a MasterKey cannot be pickled")

    @property
    def key_id(self):
        """First 16 hex digits of HMAC-SHA256(key, label): names the key, reveals nothing of it."""
        return self._key_id

    # Wrapping ------------------------------------------------------------------------------

    def wrap(self, key_id, secret, purpose="data-key"):
        """Encrypt ``secret`` (a data key, a private key PEM...) for the key record ``key_id``."""
        return _seal_with(_header(WRAP_PREFIX, self._key_id), self._aead, secret, _wrap_aad(key_id, purpose))

    def unwrap(self, key_id, wrapped, purpose="data-key"):
        """Decrypt a value made by ``wrap`` with the same ``key_id`` and ``purpose``.

        Raises ``MasterKeyError`` when another master key wrapped it, ``InvalidCiphertextError``
        when it is not a wrapped key, and ``DecryptionError`` when it fails authentication.
        """
        wrapped_by, blob = _parse(WRAP_PREFIX, wrapped)
        if wrapped_by != self._key_id:
            raise MasterKeyError(
                f"the data keys were wrapped by master key {wrapped_by}, the configured key file "
                f"holds {self._key_id}: configure the master key these keys were made with"
            )
        return _open_with(WRAP_PREFIX, wrapped_by, self._aead, blob, _wrap_aad(key_id, purpose))

    # Loading and creating --------------------------------------------------------------------

    @classmethod
    def from_base64(cls, text, *, source="the master key given in the server configuration"):
        """Load a key given as base64 (standard or URL-safe, padding and whitespace optional)."""
        key = _decode_base64_key(text)
        if key is None:
            raise MasterKeyError(f"{source} is not valid base64")
        if len(key) != KEY_SIZE:
            raise MasterKeyError(
                f"{source} holds {len(key)} bytes, a master key is {KEY_SIZE} bytes (44 in base64)"
            )
        return cls(key)

    @classmethod
    def from_file(cls, path):
        """Load the key from a file that only its owner can read (mode 600)."""
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            raise MasterKeyError(f"master key file {path} does not exist") from None
        except OSError as error:
            raise MasterKeyError(f"master key file {path} cannot be read: {error.strerror}") from None
        if not stat.S_ISREG(mode):
            raise MasterKeyError(f"master key file {path} is not a regular file")
        if mode & 0o077:
            raise MasterKeyError(
                f"master key file {path} can be read by other users (mode {stat.S_IMODE(mode):o}): "
                f"run chmod 600 {path}"
            )
        try:
            with open(path, "rb") as key_file:
                text = key_file.read(4096)
        except OSError as error:
            raise MasterKeyError(f"master key file {path} cannot be read: {error.strerror}") from None
        return cls.from_base64(text, source=f"master key file {path}")

    @classmethod
    def generate_file(cls, path):
        """Create ``path`` with a new random key, readable by its owner only; never overwrite.

        The key is written to a temporary file opened with O_EXCL and mode 600, then hard-linked
        to ``path``: the file appears complete or not at all, and when two workers start at once
        only one key file wins (the other gets ``MasterKeyFileExistsError`` and can load it).
        """
        path = os.path.abspath(path)
        if os.path.lexists(path):
            raise MasterKeyFileExistsError(f"master key file {path} already exists: it is never overwritten")
        key = os.urandom(KEY_SIZE)
        try:
            files.write_private(path, b64encode(key).encode() + b"\n", replace=False)
        except FileExistsError:
            raise MasterKeyFileExistsError(
                f"master key file {path} already exists: it is never overwritten"
            ) from None
        except OSError as error:
            raise MasterKeyError(f"cannot create master key file {path}: {error.strerror}") from None
        return cls(key)


class MasterKeyFileExistsError(MasterKeyError, FileExistsError):
    """``generate_file`` found a file where it was asked to create one."""


def resolve_master_key(config_key, config_file, env_file, default_path):
    """Find the master key: inline config key > config key file > env key file > default path.

    When none is set and ``default_path`` does not exist, a new key is generated there. Returns
    ``(master_key, source, generated)``; ``source`` describes where the key came from (for
    logs, never the key) and ``generated`` tells the caller to warn that a new key was made
    and must be backed up.
    """
    if config_key:
        return MasterKey.from_base64(config_key), "server configuration (inline key)", False
    if config_file:
        path = os.path.expanduser(config_file)
        return MasterKey.from_file(path), f"file {path} (server configuration)", False
    if env_file:
        path = os.path.expanduser(env_file)
        return MasterKey.from_file(path), f"file {path} (environment)", False
    path = os.path.abspath(os.path.expanduser(default_path))
    if not os.path.lexists(path):
        # Another worker may create it meanwhile: then load that one.
        with contextlib.suppress(MasterKeyFileExistsError):
            return MasterKey.generate_file(path), f"file {path} (generated)", True
    return MasterKey.from_file(path), f"file {path}", False


def _wrap_aad(key_id, purpose):
    if not isinstance(key_id, str) or not isinstance(purpose, str):
        raise TypeError("key_id and purpose must be str")
    if "\x00" in purpose:
        raise ValueError("purpose may not contain NUL")
    # purpose holds no NUL, so the first NUL splits the two unambiguously.
    return purpose.encode("utf-8") + b"\x00" + key_id.encode("utf-8")


def _decode_base64_key(text):
    """Decode standard or URL-safe base64, ignoring whitespace and missing padding."""
    try:
        return b64decode_any(text)
    except ValueError:
        return None
