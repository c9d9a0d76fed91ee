import base64
import hashlib
import hmac
import os
import pickle
import stat

import pytest

from ..errors import DecryptionError, InvalidCiphertextError, MasterKeyError
from ..master_key import MasterKey, resolve_master_key

KEY = bytes(range(32))
OTHER_KEY = bytes(range(100, 132))
DATA_KEY = os.urandom(32)


def write_key_file(path, content, mode=0o600):
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    os.chmod(path, mode)
    return str(path)


@pytest.mark.parametrize("key", [b"", bytes(16), bytes(31), bytes(33), "x" * 32, None])
def test_a_master_key_is_exactly_32_bytes(key):
    with pytest.raises(MasterKeyError):
        MasterKey(key)


def test_key_id_is_hmac_of_the_label_and_reveals_nothing():
    master = MasterKey(KEY)
    expected = hmac.new(KEY, b"g2p_encryption master key id", hashlib.sha256).hexdigest()[:16]
    assert master.key_id == expected
    assert MasterKey(OTHER_KEY).key_id != expected
    for text in (repr(master), str(master)):
        assert master.key_id in text
        assert KEY.hex() not in text and base64.b64encode(KEY).decode() not in text
        assert str(KEY) not in text
    with pytest.raises(TypeError):
        pickle.dumps(master)


def test_wrap_unwrap_round_trip_and_token_format():
    master = MasterKey(KEY)
    wrapped = master.wrap("key-7", DATA_KEY)
    assert wrapped.startswith(f"g2pw1.{master.key_id}.")
    assert DATA_KEY.hex() not in wrapped
    assert master.wrap("key-7", DATA_KEY) != wrapped
    assert master.unwrap("key-7", wrapped) == DATA_KEY
    assert (
        master.unwrap("key-7", master.wrap("key-7", b"pem", purpose="signing-key"), "signing-key") == b"pem"
    )


def test_a_wrapped_key_cannot_be_moved_to_another_key_record():
    master = MasterKey(KEY)
    wrapped = master.wrap("key-7", DATA_KEY)
    with pytest.raises(DecryptionError):
        master.unwrap("key-8", wrapped)


def test_a_wrapped_key_cannot_be_used_for_another_purpose():
    master = MasterKey(KEY)
    wrapped = master.wrap("key-7", DATA_KEY, purpose="data-key")
    with pytest.raises(DecryptionError):
        master.unwrap("key-7", wrapped, purpose="signing-key")


def test_unwrapping_with_another_master_key_names_both_keys():
    wrapping, configured = MasterKey(KEY), MasterKey(OTHER_KEY)
    with pytest.raises(MasterKeyError) as raised:
        configured.unwrap("key-7", wrapping.wrap("key-7", DATA_KEY))
    message = str(raised.value)
    assert f"wrapped by master key {wrapping.key_id}" in message
    assert f"holds {configured.key_id}" in message


def test_a_tampered_wrapped_key_is_rejected():
    master = MasterKey(KEY)
    wrapped = master.wrap("key-7", DATA_KEY)
    last = "A" if wrapped[-2] != "A" else "B"
    with pytest.raises(DecryptionError):
        master.unwrap("key-7", wrapped[:-2] + last + wrapped[-1])
    with pytest.raises(InvalidCiphertextError):
        master.unwrap("key-7", "g2pe1." + wrapped[len("g2pw1.") :])  # a field value is no wrapped key


def test_generate_file_writes_a_key_readable_by_the_owner_only(tmp_path):
    path = tmp_path / "new" / "dir" / "master.key"
    old_umask = os.umask(0)  # even a permissive umask must not widen the modes
    try:
        generated = MasterKey.generate_file(str(path))
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path.parent.parent).st_mode) == 0o700
    assert len(base64.b64decode(path.read_bytes())) == 32
    assert MasterKey.from_file(str(path)).key_id == generated.key_id
    assert os.listdir(path.parent) == ["master.key"]  # no temporary file left behind


def test_generate_file_never_overwrites(tmp_path):
    path = tmp_path / "master.key"
    first = MasterKey.generate_file(str(path))
    content = path.read_bytes()
    with pytest.raises(MasterKeyError, match="already exists"):
        MasterKey.generate_file(str(path))
    with pytest.raises(FileExistsError):
        MasterKey.generate_file(str(path))
    assert path.read_bytes() == content
    assert MasterKey.from_file(str(path)).key_id == first.key_id


def test_a_key_file_created_meanwhile_by_another_worker_is_kept(tmp_path, monkeypatch):
    """Two workers starting at once: the one that loses the race must not replace the key."""
    path = tmp_path / "master.key"
    winner = MasterKey.generate_file(str(path))
    content = path.read_bytes()
    monkeypatch.setattr(os.path, "lexists", lambda _path: False)  # both saw no file a moment ago
    with pytest.raises(FileExistsError):
        MasterKey.generate_file(str(path))
    assert path.read_bytes() == content
    assert os.listdir(tmp_path) == ["master.key"]
    key, _source, generated = resolve_master_key(None, None, None, str(path))
    assert key.key_id == winner.key_id and not generated


@pytest.mark.parametrize(
    "encode",
    [
        lambda key: base64.b64encode(key),
        lambda key: base64.b64encode(key) + b"\n",
        lambda key: b"  " + base64.urlsafe_b64encode(key).rstrip(b"=") + b"\r\n",
        lambda key: base64.encodebytes(key)[:20] + b"\n" + base64.encodebytes(key)[20:],
    ],
    ids=["standard", "newline", "urlsafe-unpadded", "wrapped-line"],
)
def test_from_file_accepts_base64_spellings(tmp_path, encode):
    key = b"\xfb\xff" * 16  # encodes with '+' and '/' in standard base64, '-' and '_' in url-safe
    path = write_key_file(tmp_path / "master.key", encode(key))
    assert MasterKey.from_file(path).key_id == MasterKey(key).key_id


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_from_file_refuses_a_file_others_can_read(tmp_path, mode):
    path = write_key_file(tmp_path / "master.key", base64.b64encode(KEY), mode)
    with pytest.raises(MasterKeyError) as raised:
        MasterKey.from_file(path)
    assert path in str(raised.value) and "chmod 600" in str(raised.value)


def test_from_file_names_the_path_when_missing_or_malformed(tmp_path):
    missing = str(tmp_path / "missing.key")
    with pytest.raises(MasterKeyError, match="does not exist") as raised:
        MasterKey.from_file(missing)
    assert missing in str(raised.value)

    short = write_key_file(tmp_path / "short.key", base64.b64encode(KEY[:16]))
    with pytest.raises(MasterKeyError, match="16 bytes") as raised:
        MasterKey.from_file(short)
    assert short in str(raised.value)
    assert base64.b64encode(KEY[:16]).decode() not in str(raised.value)

    garbage = write_key_file(tmp_path / "garbage.key", "not base64 at all!")
    with pytest.raises(MasterKeyError, match="not valid base64"):
        MasterKey.from_file(garbage)

    directory = tmp_path / "a-directory"
    directory.mkdir(mode=0o700)
    with pytest.raises(MasterKeyError, match="not a regular file"):
        MasterKey.from_file(str(directory))


def test_from_base64_for_a_key_inline_in_the_configuration():
    assert MasterKey.from_base64(base64.b64encode(KEY).decode()).key_id == MasterKey(KEY).key_id
    with pytest.raises(MasterKeyError, match="server configuration"):
        MasterKey.from_base64(base64.b64encode(KEY + b"x").decode())


@pytest.fixture
def key_files(tmp_path):
    """Three distinct key files and their keys: config file, environment file and default path."""
    files = {}
    for name, key in (("config", KEY), ("env", OTHER_KEY), ("default", bytes(range(50, 82)))):
        files[name] = (write_key_file(tmp_path / f"{name}.key", base64.b64encode(key)), MasterKey(key))
    return files


def test_resolve_prefers_inline_config_key_then_config_file_then_env_file_then_default(key_files):
    inline = base64.b64encode(bytes(range(200, 232))).decode()
    config_file, config_key = key_files["config"]
    env_file, env_key = key_files["env"]
    default, default_key = key_files["default"]

    key, source, generated = resolve_master_key(inline, config_file, env_file, default)
    assert key.key_id == MasterKey.from_base64(inline).key_id and not generated
    assert inline not in source and "inline" in source

    key, source, generated = resolve_master_key(None, config_file, env_file, default)
    assert (key.key_id, source, generated) == (
        config_key.key_id,
        f"file {config_file} (server configuration)",
        False,
    )

    key, source, generated = resolve_master_key("", "", env_file, default)
    assert (key.key_id, source, generated) == (env_key.key_id, f"file {env_file} (environment)", False)

    key, source, generated = resolve_master_key(None, None, None, default)
    assert (key.key_id, source, generated) == (default_key.key_id, f"file {default}", False)


def test_resolve_generates_the_default_key_once(tmp_path):
    default = str(tmp_path / "filestore" / "master.key")
    first, source, generated = resolve_master_key(None, None, None, default)
    assert generated and default in source
    assert stat.S_IMODE(os.stat(default).st_mode) == 0o600
    again, _source, generated_again = resolve_master_key(None, None, None, default)
    assert again.key_id == first.key_id and not generated_again


def test_resolve_does_not_generate_when_a_configured_file_is_missing(tmp_path):
    default = tmp_path / "master.key"
    with pytest.raises(MasterKeyError, match="does not exist"):
        resolve_master_key(None, str(tmp_path / "configured.key"), None, str(default))
    assert not default.exists()
