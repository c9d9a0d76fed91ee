"""Hash chain of append-only audit rows: canonical form of a row, its digest, and the check.

Each row of a chained log carries a sequence number (1, 2, 3... per log), the digest of the row
before it and its own digest, ``SHA-256`` over the log's name, the sequence, the row id, the
previous digest and the canonical JSON of the row's declared values. A head (last sequence and
digest) is kept apart from the rows. ``verify`` then tells which rows were changed, which are
missing (deleted, the last ones included while the head stands), and which were inserted outside
the chain.

Limits: the digest is not keyed, so someone who can write SQL and knows this scheme can rewrite
a row, every row after it and the head consistently; deleting the last rows and lowering the
head is the same case. Only a head recorded outside the database (``verify(..., anchor=...)``)
exposes that.
"""

import datetime
import decimal
import hashlib
import json
from typing import NamedTuple

GENESIS = "0" * 64


def _jsonable(value):
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


def canonical(values):
    """The values of a row as canonical JSON bytes: sorted keys, no spaces, ISO dates, UTF-8."""
    clean = {str(name): _jsonable(value) for name, value in values.items()}
    return json.dumps(clean, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def row_digest(chain, sequence, row_id, previous, values):
    """Hex SHA-256 of one row, bound to its log, place, id and the digest of the row before it."""
    digest = hashlib.sha256()
    for part in (str(chain), str(int(sequence)), str(int(row_id)), str(previous)):
        digest.update(part.encode("utf-8") + b"\x00")
    digest.update(canonical(values))
    return digest.hexdigest()


class Row(NamedTuple):
    """A stored row: its id, its place (None when it has none), its stored links and values."""

    id: int
    sequence: int | None
    previous: str | None
    digest: str | None
    values: dict


class Problem(NamedTuple):
    """What the check found. ``kind``: changed, missing, unchained, duplicate, head, anchor."""

    kind: str
    first: int | None = None
    last: int | None = None
    row_id: int | None = None


def chain_rows(chain, rows, head):
    """Place new rows after ``head`` (``(sequence, digest)``); return their links and the new head.

    ``rows`` is ``[(row id, values)]`` in the order they are appended. Returns
    ``([(row id, sequence, previous, digest)], (sequence, digest))``.
    """
    sequence, previous = head
    links = []
    for row_id, values in rows:
        sequence += 1
        digest = row_digest(chain, sequence, row_id, previous, values)
        links.append((row_id, sequence, previous, digest))
        previous = digest
    return links, (sequence, previous)


def verify(chain, rows, head, anchor=None):
    """Check stored ``rows`` (any order) against their digests, their links and the ``head``.

    ``head`` is the stored ``(sequence, digest)`` or None when it is missing; ``anchor`` an optional
    ``(sequence, digest)`` recorded earlier outside the database. Returns a list of ``Problem``:
    ``changed`` (a row whose values, place or link no longer match its digest), ``missing``
    (sequences ``first``..``last`` absent: deleted rows), ``unchained`` (a row with no place in the
    chain, inserted around it), ``duplicate`` (two rows claim one place), ``head`` (the head is
    missing or does not match the last row) and ``anchor`` (the recorded head is not there any
    more: rows rewritten or removed since it was recorded).
    """
    return verify_sorted(chain, sorted(rows, key=sort_key), head, anchor)


def sort_key(row):
    """The order ``verify_sorted`` needs: rows without a place first, then by place and id."""
    return (row.sequence is not None, row.sequence or 0, row.id)


def verify_sorted(chain, rows, head, anchor=None):
    """``verify`` for rows already in ``sort_key`` order (an iterator: one pass, little memory)."""
    problems = []
    expected, previous, last_row = 1, GENESIS, None
    anchor_found = False
    for row in rows:
        if row.sequence is None or not row.digest:
            problems.append(Problem("unchained", row_id=row.id))
            continue
        if last_row is not None and row.sequence == last_row.sequence:
            problems.append(Problem("duplicate", row.sequence, row.sequence, row.id))
            continue
        if row.sequence > expected:
            problems.append(Problem("missing", expected, row.sequence - 1))
        elif row.previous != previous:
            # The row before it is there but is not what this row was chained to.
            problems.append(
                Problem("changed", row.sequence - 1, row.sequence - 1, last_row.id if last_row else None)
            )
        if row_digest(chain, row.sequence, row.id, row.previous, row.values) != row.digest:
            problems.append(Problem("changed", row.sequence, row.sequence, row.id))
        if anchor is not None and row.sequence == anchor[0]:
            anchor_found = row.digest == anchor[1]
        expected, previous, last_row = row.sequence + 1, row.digest, row
    last = expected - 1
    if head is None:
        if last_row is not None:
            problems.append(Problem("head", last, last))
    else:
        head_sequence, head_digest = head
        if head_sequence > last:
            problems.append(Problem("missing", last + 1, head_sequence))
        elif head_sequence < last or (last_row is not None and head_digest != previous):
            problems.append(Problem("head", head_sequence, last))
    if anchor is not None and not anchor_found:
        problems.append(Problem("anchor", anchor[0], anchor[0]))
    return problems
