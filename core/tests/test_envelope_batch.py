"""The batch paths of the envelope: the same answers as one value at a time, whatever a token holds."""

import os
import random

import pytest

from ..encoding import b64url_decode_strict, b64url_encode
from ..envelope import (
    PREFIX_V2,
    _b64url_decode_body,
    key_id_or_none,
    key_ids_of,
    open_many,
    open_token,
    seal,
    seal_many,
)
from ..errors import DecryptionError, InvalidCiphertextError

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))
KEYS = {"k1": KEY, "k2": OTHER}


def lookup(key_id):
    return KEYS[key_id]


def _outcome(function, *args):
    try:
        return ("ok", function(*args))
    except ValueError:
        return ("error", None)


def test_the_fast_base64url_decoder_accepts_and_refuses_what_the_strict_one_does():
    rng = random.Random(13)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=. \n\u00e9"
    samples = ["", "A", "AA", "AB", "AAA", "AAB", "AAAA", "-_-_", "+/+/", "QQ==", "QQ", "QR", "QUI", "QUJ"]
    samples += [b64url_encode(os.urandom(size)) for size in range(0, 70)]
    samples += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12))) for _ in range(3000)]
    for text in samples:
        assert _outcome(_b64url_decode_body, text) == _outcome(b64url_decode_strict, text), text


def test_a_batch_opens_like_one_token_at_a_time_across_keys_and_sizes():
    plaintexts = [os.urandom(size) for size in (0, 1, 15, 16, 17, 100, 1000)] * 3
    aads = [f"res.partner|name|{i}".encode() for i in range(len(plaintexts))]
    tokens = [
        seal("k1" if i % 2 else "k2", KEYS["k1" if i % 2 else "k2"], p, a)
        for i, (p, a) in enumerate(zip(plaintexts, aads, strict=True))
    ]
    assert open_many(tokens, lookup, aads) == plaintexts
    assert [open_token(token, lookup, aad) for token, aad in zip(tokens, aads, strict=True)] == plaintexts


def test_the_key_ids_of_a_batch_are_each_tokens_own():
    same = seal_many("k1", KEY, [b"a", b"b", b"c"], b"x")
    assert key_ids_of(same) == ["k1", "k1", "k1"]
    # A batch that is not all one key's: each token's header decides, as key_id_or_none says.
    mixed = [*same, seal("k2", OTHER, b"d", b"x"), "plain text", None, same[0].replace("k1", "k1!")]
    assert key_ids_of(mixed) == [key_id_or_none(token) for token in mixed]
    assert key_ids_of(mixed) == ["k1", "k1", "k1", "k2", None, None, None]
    assert key_ids_of(["plain", *same]) == [None, "k1", "k1", "k1"]
    assert key_ids_of([]) == []


def test_a_batch_looks_each_key_up_once():
    asked = []

    def counting(key_id):
        asked.append(key_id)
        return KEYS[key_id]

    tokens = seal_many("k1", KEY, [b"x"] * 50, b"aad") + seal_many("k2", OTHER, [b"y"] * 50, b"aad")
    open_many(tokens, counting, b"aad")
    assert sorted(asked) == ["k1", "k2"]


def test_one_nonce_per_value_even_in_one_batch():
    tokens = seal_many("k1", KEY, [b"same"] * 200, b"aad")
    assert len(set(tokens)) == 200


@pytest.mark.parametrize(
    "change, error",
    [
        (lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), DecryptionError),  # tampered or non-canonical
        (lambda t: t + "=", InvalidCiphertextError),
        (lambda t: t[: len(PREFIX_V2) + 3] + "+" + t[len(PREFIX_V2) + 4 :], InvalidCiphertextError),
        (lambda t: t[: len(PREFIX_V2) + 10], InvalidCiphertextError),  # too short
        (lambda t: t.replace(".", "!", 2), InvalidCiphertextError),
    ],
)
def test_a_bad_token_later_in_a_batch_fails_as_it_would_alone(change, error):
    good = seal_many("k1", KEY, [b"first", b"second"], b"aad")
    bad = change(good[1])
    with pytest.raises(error):
        open_token(bad, lookup, b"aad")
    with pytest.raises(error):
        open_many([good[0], bad], lookup, b"aad")


def test_wrong_associated_data_in_the_middle_of_a_batch_fails_authentication():
    tokens = seal_many("k1", KEY, [b"a", b"b", b"c"], [b"1", b"2", b"3"])
    with pytest.raises(DecryptionError):
        open_many(tokens, lookup, [b"1", b"x", b"3"])
