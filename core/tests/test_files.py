"""Private files: written whole, mode 600, never overwritten unless asked; read back checked."""

import contextlib
import os
import stat
import threading

import pytest

from ..files import NotPrivateError, read_private, write_private


def test_written_private_whole_and_read_back(tmp_path):
    path = tmp_path / "a" / "b" / "secret"
    write_private(str(path), b"one")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "a").st_mode) == 0o700
    assert read_private(str(path)) == b"one"
    write_private(str(path), b"two")  # replaced whole
    assert read_private(str(path)) == b"two"
    assert read_private(str(path), max_bytes=2) == b"tw"
    assert os.listdir(path.parent) == ["secret"]  # no temporary left


def test_without_replace_an_existing_file_is_kept(tmp_path):
    path = str(tmp_path / "key")
    write_private(path, b"first", replace=False)
    with pytest.raises(FileExistsError):
        write_private(path, b"second", replace=False)
    assert read_private(path) == b"first"
    assert os.listdir(tmp_path) == ["key"]


def test_only_one_of_concurrent_writers_wins(tmp_path):
    path = str(tmp_path / "key")
    results = []

    def write(content):
        with contextlib.suppress(FileExistsError):
            write_private(path, content, replace=False)
            results.append(content)

    threads = [threading.Thread(target=write, args=(b"%d" % i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 1 and read_private(path) == results[0]


def test_reading_refuses_what_is_not_private(tmp_path):
    path = tmp_path / "shared"
    write_private(str(path), b"x")
    os.chmod(path, 0o640)
    with pytest.raises(NotPrivateError) as caught:
        read_private(str(path))
    assert caught.value.mode == 0o640
    link = tmp_path / "link"
    os.symlink(tmp_path / "elsewhere", link)
    (tmp_path / "elsewhere").write_bytes(b"x")
    os.chmod(tmp_path / "elsewhere", 0o600)
    with pytest.raises(NotPrivateError):
        read_private(str(link))
    with pytest.raises(NotPrivateError):
        read_private(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        read_private(str(tmp_path / "missing"))
