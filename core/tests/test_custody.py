import itertools
import os
import stat

import pytest

from ..custody import (
    CustodyError,
    InstanceStore,
    ShareCollector,
    ShareRejected,
    check_value,
    combine_shares,
    decode_key_file,
    encode_key_file,
    instance_alive,
    instance_id,
    is_memory_backed,
    parse_share,
    process_start_ticks,
    read_boot_id,
    split_key,
    verify_check_value,
)
from ..errors import DecryptionError, G2PCryptoError

KEY = bytes(range(32))
OTHER_KEY = bytes(range(100, 132))


@pytest.fixture(scope="module")
def three_of_five():
    return split_key(KEY, 3, 5)


def alter_one_word(share, position=10):
    words = share.split()
    words[position] = "academic" if words[position] != "academic" else "acid"
    return " ".join(words)


# Splitting and combining ---------------------------------------------------------------------


def test_any_three_of_five_rebuild_the_key(three_of_five):
    for combination in itertools.combinations(three_of_five.shares, 3):
        assert combine_shares(combination) == KEY


def test_two_of_five_do_not(three_of_five):
    for combination in itertools.combinations(three_of_five.shares, 2):
        with pytest.raises(CustodyError):
            combine_shares(combination)


def test_shares_are_words_and_differ(three_of_five):
    assert len(three_of_five.shares) == 5
    assert len(set(three_of_five.shares)) == 5
    for share in three_of_five.shares:
        assert share.replace(" ", "").isalpha()
        assert KEY.hex() not in share


def test_share_set_repr_hides_the_shares(three_of_five):
    for text in (repr(three_of_five), str(three_of_five)):
        assert "3 of 5" in text
        for share in three_of_five.shares:
            assert share not in text and share.split()[5] not in text.split()


def test_each_split_is_a_new_share_set():
    first, second = split_key(KEY, 2, 3), split_key(KEY, 2, 3)
    assert set(first.shares).isdisjoint(second.shares)
    with pytest.raises(CustodyError):
        combine_shares([first.shares[0], second.shares[1]])


@pytest.mark.parametrize("threshold,count", [(1, 3), (4, 3), (2, 11), (0, 0), (2, 1), ("2", 3), (3, 3.0)])
def test_split_parameters_are_checked(threshold, count):
    with pytest.raises(CustodyError):
        split_key(KEY, threshold, count)


@pytest.mark.parametrize("threshold,count", [(2, 2), (2, 10), (10, 10), (5, 7)])
def test_allowed_split_parameters(threshold, count):
    share_set = split_key(KEY, threshold, count)
    assert len(share_set.shares) == count
    assert combine_shares(share_set.shares[-threshold:]) == KEY


@pytest.mark.parametrize("key", [b"", bytes(16), bytes(33), "x" * 32])
def test_only_32_byte_keys_are_split(key):
    with pytest.raises(CustodyError):
        split_key(key, 2, 3)


def test_shares_are_accepted_in_any_case_and_spacing(three_of_five):
    typed = [share.upper().replace(" ", "\n  ") for share in three_of_five.shares[:3]]
    assert combine_shares(typed) == KEY


# Check value ----------------------------------------------------------------------------------


def test_check_value_verifies_without_revealing():
    value = check_value(KEY)
    assert verify_check_value(KEY, value)
    assert not verify_check_value(OTHER_KEY, value)
    assert not verify_check_value(KEY, "")
    assert not verify_check_value(KEY, None)
    assert KEY.hex() not in value and value != check_value(OTHER_KEY)
    assert len(value) == 64


# Share parsing and the collector ---------------------------------------------------------------


def test_an_altered_share_is_rejected_by_its_checksum(three_of_five):
    with pytest.raises(ShareRejected, match="checksum"):
        parse_share(alter_one_word(three_of_five.shares[0]))


def test_a_missing_word_is_rejected(three_of_five):
    words = three_of_five.shares[0].split()
    with pytest.raises(ShareRejected):
        parse_share(" ".join(words[:-1]))


def test_a_foreign_word_is_rejected_by_position_without_quoting_it(three_of_five):
    words = three_of_five.shares[0].split()
    words[7] = "zzzqqq"
    with pytest.raises(ShareRejected, match="word 8") as caught:
        parse_share(" ".join(words))
    assert "zzzqqq" not in str(caught.value)


def test_reasons_never_quote_the_share(three_of_five):
    collector = ShareCollector(parse_share(three_of_five.shares[0]).identifier, 3)
    collector.add(three_of_five.shares[0])
    attempts = [
        alter_one_word(three_of_five.shares[1]),
        three_of_five.shares[0],
        "",
        split_key(KEY, 3, 5).shares[0],
    ]
    for attempt in attempts:
        with pytest.raises(ShareRejected) as caught:
            collector.add(attempt)
        words = attempt.split()
        for start in range(len(words) - 1):
            assert " ".join(words[start : start + 2]) not in str(caught.value)


def test_collector_takes_k_shares_and_rebuilds_the_checked_key(three_of_five):
    identifier = parse_share(three_of_five.shares[0]).identifier
    collector = ShareCollector(identifier, 3)
    assert collector.add(three_of_five.shares[4]) == 5
    assert collector.add(three_of_five.shares[1]) == 2
    assert (collector.count, collector.complete) == (2, False)
    with pytest.raises(CustodyError, match="2 of 3"):
        collector.combine(check_value(KEY))
    collector.add(three_of_five.shares[2])
    assert collector.complete and collector.numbers == [2, 3, 5]
    assert collector.combine(check_value(KEY)) == KEY


def test_collector_rejects_and_counts(three_of_five):
    identifier = parse_share(three_of_five.shares[0]).identifier
    collector = ShareCollector(identifier, 3)
    collector.add(three_of_five.shares[0])
    with pytest.raises(ShareRejected, match="already entered"):
        collector.add(three_of_five.shares[0].upper())
    with pytest.raises(ShareRejected, match="checksum"):
        collector.add(alter_one_word(three_of_five.shares[1]))
    with pytest.raises(ShareRejected, match="another share set"):
        collector.add(split_key(KEY, 3, 5).shares[1])
    with pytest.raises(ShareRejected, match="threshold"):
        ShareCollector(identifier, 2).add(three_of_five.shares[1])
    assert (collector.count, collector.rejected) == (1, 3)


def test_collector_refuses_a_key_that_does_not_check(three_of_five):
    identifier = parse_share(three_of_five.shares[0]).identifier
    collector = ShareCollector(identifier, 3, three_of_five.shares[:3])
    with pytest.raises(CustodyError, match="check value"):
        collector.combine(check_value(OTHER_KEY))


def test_collector_is_sealed_for_storage(three_of_five):
    identifier = parse_share(three_of_five.shares[0]).identifier
    collector = ShareCollector(identifier, 3, three_of_five.shares[:2], rejected=4)
    progress_key = os.urandom(32)
    blob = collector.seal(progress_key)
    text = blob.decode("latin-1")  # binary: nonce and ciphertext follow the clear header
    for share in three_of_five.shares:
        words = share.split()
        # Any three consecutive words of a share would betray it; single words may be English
        # words of the blob's own JSON (e.g. "reject").
        for i in range(len(words) - 2):
            assert " ".join(words[i : i + 3]) not in text
    assert ShareCollector.peek(blob) == {"identifier": identifier, "threshold": 3, "count": 2, "rejected": 4}
    again = ShareCollector.unseal(blob, progress_key)
    assert (again.count, again.rejected, again.numbers) == (2, 4, [1, 2])
    with pytest.raises(DecryptionError):
        ShareCollector.unseal(blob, os.urandom(32))
    tampered = blob.replace(b'"count":2', b'"count":3')
    assert tampered != blob
    with pytest.raises(DecryptionError):
        ShareCollector.unseal(tampered, progress_key)
    with pytest.raises(DecryptionError):
        ShareCollector.peek(b"garbage")


def test_errors_are_crypto_errors():
    assert issubclass(ShareRejected, CustodyError) and issubclass(CustodyError, G2PCryptoError)


# Server instances and the memory store ---------------------------------------------------------


def test_instance_id_names_boot_pid_and_start_time():
    own = instance_id(os.getpid())
    boot, pid, ticks = own.split("-")
    assert boot == read_boot_id()[:16]
    assert pid == str(os.getpid()) and ticks == process_start_ticks(os.getpid())
    assert instance_alive(own)
    assert instance_id(os.getpid()) == own  # stable while the process runs


def test_a_restarted_or_rebooted_instance_is_not_alive():
    boot, pid, ticks = instance_id(os.getpid()).split("-")
    assert not instance_alive(f"{boot}-{pid}-{int(ticks) + 1}")  # same pid, other start: a restart
    assert not instance_alive(f"{'0' * 16}-{pid}-{ticks}")  # another boot
    assert not instance_alive(f"{boot}-999999999-1")
    assert not instance_alive("garbage")
    with pytest.raises(CustodyError):
        instance_id(999999999)


def test_process_start_ticks_of_parent_differs():
    assert process_start_ticks(os.getppid()) is not None
    assert process_start_ticks(999999999) is None


def test_store_writes_private_files_and_reads_them_back(tmp_path):
    store = InstanceStore("inst-1-2", str(tmp_path), require_memory_backed=False)
    store.put("db-p1", "key", encode_key_file(KEY))
    path = store.path("db-p1", "key")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert decode_key_file(store.get("db-p1", "key")) == KEY
    assert store.exists("db-p1", "key") and not store.exists("db-p2", "key")
    assert store.get("db-p2", "key") is None
    store.put("db-p1", "key", encode_key_file(OTHER_KEY))  # replaced whole
    assert decode_key_file(store.get("db-p1", "key")) == OTHER_KEY
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(path)]  # no temporary left
    assert store.remove("db-p1", "key") and not store.remove("db-p1", "key")


def test_store_refuses_files_others_can_read(tmp_path):
    store = InstanceStore("inst-1-2", str(tmp_path), require_memory_backed=False)
    store.put("s", "key", b"x")
    os.chmod(store.path("s", "key"), 0o644)
    with pytest.raises(CustodyError, match="private"):
        store.get("s", "key")


def test_store_refuses_symlinks(tmp_path):
    store = InstanceStore("inst-1-2", str(tmp_path), require_memory_backed=False)
    target = tmp_path / "elsewhere"
    target.write_bytes(b"x")
    os.symlink(target, store.path("s", "key"))
    with pytest.raises(CustodyError):
        store.get("s", "key")


def test_store_refuses_disk_when_memory_is_required(tmp_path):
    if is_memory_backed(str(tmp_path)):
        pytest.skip("the temporary directory is itself on tmpfs")
    store = InstanceStore("inst-1-2", str(tmp_path))
    with pytest.raises(CustodyError, match="not memory-backed"):
        store.put("s", "key", b"x")
    assert os.listdir(tmp_path) == []


def test_store_names_are_checked(tmp_path):
    with pytest.raises(CustodyError):
        InstanceStore("../etc", str(tmp_path))
    store = InstanceStore("i-1-2", str(tmp_path), require_memory_backed=False)
    for scope, kind in (("a/b", "key"), ("a.b", "key"), ("s", "../x"), ("", "key")):
        with pytest.raises(CustodyError):
            store.path(scope, kind)


def test_remove_scope_and_stale_instances(tmp_path):
    own = instance_id(os.getpid())
    boot = own.split("-")[0]
    store = InstanceStore(own, str(tmp_path), require_memory_backed=False)
    dead = InstanceStore(f"{boot}-999999999-1", str(tmp_path), require_memory_backed=False)
    store.put("db-p1", "key", b"k")
    store.put("db-p1", "unseal", b"u")
    store.put("db-p2", "key", b"k")
    dead.put("db-p1", "key", b"old")
    (tmp_path / "unrelated.file").write_bytes(b"keep")
    assert store.remove_stale() == 1
    assert not dead.exists("db-p1", "key") and store.exists("db-p1", "key")
    assert store.remove_scope("db-p1") == 2
    assert sorted(os.listdir(tmp_path)) == sorted(
        [os.path.basename(store.path("db-p2", "key")), "unrelated.file"]
    )


def test_dev_shm_is_memory_backed_here():
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm")
    assert is_memory_backed("/dev/shm")


def test_real_dev_shm_round_trip():
    if not (os.path.isdir("/dev/shm") and is_memory_backed("/dev/shm")):
        pytest.skip("no tmpfs /dev/shm")
    store = InstanceStore(instance_id(os.getpid()), "/dev/shm")
    scope = f"puretest{os.getpid()}"
    try:
        store.put(scope, "key", encode_key_file(KEY))
        assert decode_key_file(store.get(scope, "key")) == KEY
    finally:
        store.remove_scope(scope)
    assert not store.exists(scope, "key")


@pytest.mark.parametrize("data", [b"", b"x" * 10, encode_key_file(KEY)[:-1], b"\0" * 63])
def test_malformed_key_files_are_refused(data):
    with pytest.raises(CustodyError):
        decode_key_file(data)
