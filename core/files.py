"""Private files: written whole or not at all, readable by their owner only (mode 600).

Key files and the unsealed keys of custody are the only files the addon writes. Both go through
:func:`write_private`, which writes a temporary file created with ``O_EXCL`` and mode 600 and then
moves it into place, so a reader sees a complete file or none; and both are read back through
:func:`read_private`, which refuses what is not a regular file of this user that others cannot
read.
"""

import contextlib
import os
import stat

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class NotPrivateError(PermissionError):
    """The file is not a regular file of this user with mode 600; ``mode`` is its permission bits."""

    def __init__(self, path, reason, mode=None):
        self.path = path
        self.reason = reason
        self.mode = mode
        super().__init__(f"{path} {reason}")


def write_private(path, data, *, replace=True):
    """Write ``data`` (bytes) to ``path``, mode 600, atomically; create missing directories (700).

    With ``replace=False`` an existing ``path`` is never overwritten: ``FileExistsError``, also
    when another process creates it meanwhile (only one of two concurrent writers wins).
    """
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    make_private_dirs(directory)
    # A hidden name in the same directory: the same filesystem (atomic rename), and no listing
    # of the directory mistakes it for a finished file.
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{os.urandom(6).hex()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # exactly 600, whatever the umask
            view = memoryview(bytes(data))
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # FileExistsError rather than replace a file
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def read_private(path, max_bytes=None):
    """The content of ``path``; ``FileNotFoundError`` when there is none.

    Raises :class:`NotPrivateError` when ``path`` is a symbolic link, not a regular file, not
    owned by this user, or readable or writable by others.
    """
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except OSError:
        if _NOFOLLOW and os.path.islink(path):
            raise NotPrivateError(path, "is a symbolic link") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotPrivateError(path, "is not a regular file")
        if info.st_uid != os.geteuid() or info.st_mode & 0o077:
            raise NotPrivateError(path, "is not a private file of this user", stat.S_IMODE(info.st_mode))
        chunks, size = [], 0
        while chunk := os.read(fd, 65536 if max_bytes is None else min(65536, max_bytes - size)):
            chunks.append(chunk)
            size += len(chunk)
            if max_bytes is not None and size >= max_bytes:
                break
        return b"".join(chunks)
    finally:
        os.close(fd)


def make_private_dirs(directory):
    """Create ``directory`` and its missing parents with mode 700 (``os.makedirs`` applies the
    mode to the last level only)."""
    missing = []
    while directory and not os.path.isdir(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    for new_directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # created meanwhile by another worker
            os.mkdir(new_directory, 0o700)


def unlink_quietly(path):
    """Delete ``path``; True when there was one to delete."""
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
