import datetime

import pytest

from ..audit_chain import GENESIS, Row, canonical, chain_rows, row_digest, verify

CHAIN = "g2p.encryption.event"


def make_rows(count=5):
    values = [
        {
            "event": "seal",
            "user_id": 2,
            "date": datetime.datetime(2024, 5, 1, 12, 0, number),
            "detail": f"n{number}",
        }
        for number in range(count)
    ]
    links, head = chain_rows(CHAIN, [(100 + i, v) for i, v in enumerate(values)], (0, GENESIS))
    rows = [
        Row(row_id, sequence, previous, digest, values[i])
        for i, (row_id, sequence, previous, digest) in enumerate(links)
    ]
    return rows, head


def kinds(problems):
    return [(p.kind, p.first, p.last) for p in problems]


def test_canonical_form_is_stable_and_typed():
    a = canonical({"b": 1, "a": datetime.datetime(2024, 1, 2, 3, 4, 5), "c": None, "d": "é"})
    b = canonical({"d": "é", "c": None, "a": datetime.datetime(2024, 1, 2, 3, 4, 5), "b": 1})
    assert a == b == '{"a":"2024-01-02T03:04:05","b":1,"c":null,"d":"é"}'.encode()
    assert canonical({"x": True}) != canonical({"x": 1})
    assert canonical({"x": "1"}) != canonical({"x": 1})


def test_digest_binds_chain_place_id_previous_and_values():
    base = row_digest(CHAIN, 3, 7, GENESIS, {"a": 1})
    assert len(base) == 64
    assert row_digest("other.log", 3, 7, GENESIS, {"a": 1}) != base
    assert row_digest(CHAIN, 4, 7, GENESIS, {"a": 1}) != base
    assert row_digest(CHAIN, 3, 8, GENESIS, {"a": 1}) != base
    assert row_digest(CHAIN, 3, 7, "1" * 64, {"a": 1}) != base
    assert row_digest(CHAIN, 3, 7, GENESIS, {"a": 2}) != base


def test_an_intact_chain_has_no_problem():
    rows, head = make_rows()
    assert head[0] == 5 and head[1] == rows[-1].digest
    assert verify(CHAIN, rows, head) == []
    assert verify(CHAIN, list(reversed(rows)), head) == []  # order does not matter
    assert verify(CHAIN, [], (0, GENESIS)) == []


def test_appending_continues_from_the_head():
    rows, head = make_rows(2)
    links, new_head = chain_rows(CHAIN, [(200, {"event": "unseal"})], head)
    assert links[0][1:3] == (3, head[1])
    rows.append(Row(200, 3, links[0][2], links[0][3], {"event": "unseal"}))
    assert verify(CHAIN, rows, new_head) == []


def test_a_changed_value_is_found():
    rows, head = make_rows()
    rows[2] = rows[2]._replace(values=dict(rows[2].values, detail="nothing happened"))
    assert kinds(verify(CHAIN, rows, head)) == [("changed", 3, 3)]


def test_a_changed_row_with_a_recomputed_digest_is_found_by_its_successor():
    rows, head = make_rows()
    forged = dict(rows[2].values, detail="forged")
    rows[2] = rows[2]._replace(
        values=forged, digest=row_digest(CHAIN, 3, rows[2].id, rows[2].previous, forged)
    )
    problems = verify(CHAIN, rows, head)
    assert kinds(problems) == [("changed", 3, 3)]
    assert problems[0].row_id == rows[2].id


def test_a_rewritten_last_row_is_found_by_the_head():
    rows, head = make_rows()
    forged = dict(rows[-1].values, detail="forged")
    rows[-1] = rows[-1]._replace(
        values=forged, digest=row_digest(CHAIN, 5, rows[-1].id, rows[-1].previous, forged)
    )
    assert kinds(verify(CHAIN, rows, head)) == [("head", 5, 5)]


@pytest.mark.parametrize(("deleted", "expected"), [(0, (1, 1)), (2, (3, 3)), (4, (5, 5))])
def test_a_deleted_row_is_found_first_middle_and_last(deleted, expected):
    rows, head = make_rows()
    del rows[deleted]
    assert kinds(verify(CHAIN, rows, head)) == [("missing", *expected)]


def test_several_deleted_rows_are_one_range():
    rows, head = make_rows(6)
    del rows[1:4]
    assert kinds(verify(CHAIN, rows, head)) == [("missing", 2, 4)]


def test_every_row_deleted_is_found_while_the_head_stands():
    _rows, head = make_rows()
    assert kinds(verify(CHAIN, [], head)) == [("missing", 1, 5)]


def test_rows_outside_the_chain_are_found():
    rows, head = make_rows(3)
    rows.append(Row(999, None, None, None, {"event": "seal"}))
    rows.append(rows[1]._replace(id=1000))  # a copy claiming the place of row 2
    found = verify(CHAIN, rows, head)
    assert ("unchained", None, None) in kinds(found)
    assert ("duplicate", 2, 2) in kinds(found)


def test_a_missing_or_wrong_head_is_found():
    rows, _head = make_rows(3)
    assert kinds(verify(CHAIN, rows, None)) == [("head", 3, 3)]
    assert kinds(verify(CHAIN, rows, (2, rows[1].digest))) == [("head", 2, 3)]


def test_the_last_rows_deleted_and_the_head_lowered_need_an_anchor():
    rows, head = make_rows(5)
    anchor = head
    shortened, lowered = rows[:3], (3, rows[2].digest)
    assert verify(CHAIN, shortened, lowered) == []  # the documented limit
    assert kinds(verify(CHAIN, shortened, lowered, anchor=anchor)) == [("anchor", 5, 5)]
    assert verify(CHAIN, rows, head, anchor=(3, rows[2].digest)) == []
