"""The memory store: small private files of one server instance in a memory-backed directory.

The unsealed key, the shares entered so far and a pending ceremony live here, in ``/dev/shm``
(tmpfs) by default, mode 0600, named after the running server instance, so that every worker
process of that server reads them and a restarted server finds nothing.
"""

import os
import re

from .. import files
from .errors import CustodyError
from .instance import instance_alive
from .shares import KEY_SIZE, check_key

SHM_DIR = "/dev/shm"
FILE_PREFIX = "g2p_encryption"
MEMORY_FILESYSTEMS = {"tmpfs", "ramfs"}
_KEY_FILE_MAGIC = b"g2p_encryption unsealed key v1\n"
_NAME_PART_RE = re.compile(r"[A-Za-z0-9_-]{1,80}")


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
    database and provider) and ``kind`` what it holds (``key``, ``unseal``, ``rekey``...). Files
    are written and read as the key files are (``core/files.py``): a reader sees a whole file or
    none, and refuses a file that is not a regular file of this user with mode 0600.
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
        return self._remove_where(
            lambda instance, file_scope: instance == self.instance and file_scope == scope
        )

    def remove_instance(self):
        """Delete every file of this instance (a clean shutdown of its server)."""
        return self._remove_where(lambda instance, _scope: instance == self.instance)

    def remove_stale(self, alive=instance_alive):
        """Delete this user's files of server instances that no longer run; return how many."""
        return self._remove_where(lambda instance, _scope: instance != self.instance and not alive(instance))

    def instances(self):
        """Ids of the instances that have files here (this user's files only)."""
        return {parts[1] for parts, _path in self._own_files()}

    def _own_files(self):
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        files = []
        for name in names:
            parts = name.split(".")
            if not name.startswith(self.prefix + ".") or len(parts) < 4:
                continue
            path = os.path.join(self.directory, name)
            try:
                if os.lstat(path).st_uid != os.getuid():
                    continue
            except OSError:
                continue
            files.append((parts, path))
        return files

    def _remove_where(self, condition):
        removed = 0
        verdicts = {}
        for parts, path in self._own_files():
            key = (parts[1], parts[2])
            if key not in verdicts:
                verdicts[key] = condition(*key)
            if verdicts[key]:
                removed += files.unlink_quietly(path)
        return removed


def encode_key_file(key):
    """The content of an unsealed-key file."""
    check_key(key)
    return _KEY_FILE_MAGIC + bytes(key)


def decode_key_file(data):
    """The key in an unsealed-key file; ``CustodyError`` when the content is not one."""
    if not data or not data.startswith(_KEY_FILE_MAGIC) or len(data) != len(_KEY_FILE_MAGIC) + KEY_SIZE:
        raise CustodyError("the unsealed key file is malformed")
    return data[len(_KEY_FILE_MAGIC) :]
