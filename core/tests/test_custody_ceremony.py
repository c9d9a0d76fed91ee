import os

import pytest

from ..custody import InstanceStore, PendingCeremony, box, combine_shares, new_box_key, verify_check_value
from ..errors import DecryptionError

MAGIC = b"test box v1\n"


def test_box_round_trip_keeps_the_header_clear_and_the_secret_sealed():
    key = new_box_key()
    blob = box.seal(key, MAGIC, {"count": 2}, {"shares": ["very secret words"]})
    assert b"very secret words" not in blob
    assert box.peek(blob, MAGIC) == {"count": 2}
    assert box.open_box(blob, key, MAGIC) == ({"count": 2}, {"shares": ["very secret words"]})


def test_box_refuses_another_key_a_changed_header_and_another_kind():
    key = new_box_key()
    blob = box.seal(key, MAGIC, {"count": 2}, {"x": 1})
    with pytest.raises(DecryptionError):
        box.open_box(blob, new_box_key(), MAGIC)
    tampered = blob.replace(b'"count":2', b'"count":3')
    assert tampered != blob
    with pytest.raises(DecryptionError):
        box.open_box(tampered, key, MAGIC)
    with pytest.raises(DecryptionError):
        box.open_box(blob, key, b"other box v1\n")
    with pytest.raises(DecryptionError):
        box.peek(b"garbage", MAGIC)


def test_a_ceremony_makes_shares_of_a_new_key_that_it_does_not_keep():
    ceremony, check = PendingCeremony.start(2, 3)
    assert (ceremony.threshold, ceremony.share_count, len(ceremony.shares)) == (2, 3, 3)
    assert ceremony.shown and ceremony.old_key is None
    key = combine_shares(ceremony.shares[1:])
    assert verify_check_value(key, check)
    assert "words" not in repr(ceremony) and ceremony.shares[0] not in repr(ceremony)


def test_a_ceremony_for_a_known_key_and_with_the_old_key_survives_its_box():
    new_key, old_key = os.urandom(32), os.urandom(32)
    ceremony, check = PendingCeremony.start(3, 5, new_key=new_key, old_key=old_key)
    box_key = new_box_key()
    blob = ceremony.seal(box_key)
    assert old_key not in blob and old_key.hex().encode() not in blob
    for share in ceremony.shares:
        assert share.encode() not in blob
    again = PendingCeremony.unseal(blob, box_key)
    assert (again.identifier, again.threshold, again.share_count) == (ceremony.identifier, 3, 5)
    assert again.shares == ceremony.shares and again.old_key == old_key
    assert verify_check_value(combine_shares(again.shares[:3]), check)
    again.hide_shares()
    assert not again.shown
    hidden = PendingCeremony.unseal(again.seal(box_key), box_key)
    assert hidden.shares == [] and hidden.old_key == old_key
    with pytest.raises(DecryptionError):
        PendingCeremony.unseal(blob, new_box_key())


def test_remove_instance_removes_only_that_instance(tmp_path):
    mine = InstanceStore("boot-1-10", str(tmp_path), require_memory_backed=False)
    other = InstanceStore("boot-2-20", str(tmp_path), require_memory_backed=False)
    mine.put("db-p1", "key", b"a")
    mine.put("db-p2", "unseal", b"b")
    other.put("db-p1", "key", b"c")
    assert mine.instances() == {"boot-1-10", "boot-2-20"}
    assert mine.remove_instance() == 2
    assert not mine.exists("db-p1", "key") and not mine.exists("db-p2", "unseal")
    assert other.get("db-p1", "key") == b"c"
