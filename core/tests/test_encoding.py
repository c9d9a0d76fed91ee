"""The one base64 module: each spelling, and what each decoder refuses."""

import base64
import os

import pytest

from ..encoding import b64decode, b64decode_any, b64encode, b64url_decode, b64url_decode_strict, b64url_encode


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 31, 32, 33, 255])
def test_round_trips_match_the_standard_library(size):
    data = os.urandom(size)
    assert b64url_encode(data) == base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    assert b64encode(data) == base64.b64encode(data).decode()
    for decode, text in (
        (b64url_decode, b64url_encode(data)),
        (b64url_decode_strict, b64url_encode(data)),
        (b64decode, b64encode(data)),
        (b64decode_any, b64encode(data)),
        (b64decode_any, b64url_encode(data)),
    ):
        assert decode(text) == data
        assert decode(text.encode()) == data


def test_url_decoder_takes_padding_and_refuses_other_characters():
    assert b64url_decode("_-8=") == b"\xff\xef"
    assert b64url_decode("_-8") == b"\xff\xef"
    for bad in ("+/8", "ab c", "abcde", "ab\n", "é"):
        with pytest.raises(ValueError):
            b64url_decode(bad)


def test_strict_decoder_knows_one_spelling_only():
    assert b64url_decode_strict("AA") == b"\x00"
    for twin in ("AB", "AA==", "AA="):  # same byte, non-zero unused bits, or padded
        with pytest.raises(ValueError):
            b64url_decode_strict(twin)


def test_standard_decoder_refuses_stray_characters():
    assert b64decode("+/8=") == b"\xfb\xff"
    for bad in ("-_8=", "+/8=\n", "!!!!", None):
        with pytest.raises(ValueError):
            b64decode(bad)


def test_any_decoder_takes_what_people_paste():
    key = os.urandom(32)
    pasted = "  " + base64.b64encode(key).decode()[:20] + "\n" + base64.b64encode(key).decode()[20:] + "\n"
    assert b64decode_any(pasted) == key
    assert b64decode_any(base64.urlsafe_b64encode(key).rstrip(b"=")) == key
    with pytest.raises(ValueError):
        b64decode_any("not base64!")
