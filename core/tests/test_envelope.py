import base64
import re

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl import bindings as sodium
from nacl.exceptions import CryptoError

from ..envelope import (
    NONCE_SIZE,
    PREFIX,
    PREFIX_V1,
    _aead,
    _header,
    _open_uniform,
    _seal_with,
    is_token,
    key_id_of,
    new_data_key,
    new_key_id,
    open_many,
    open_token,
    seal,
    seal_many,
)
from ..errors import DecryptionError, InvalidCiphertextError, UnknownKeyError

KEY_ID = "k1"
KEY = bytes(range(32))
OTHER_KEY_ID = "k2"
OTHER_KEY = bytes(range(1, 33))
AAD = b"res.partner\x00email"


def lookup(key_id):
    keys = {KEY_ID: KEY, OTHER_KEY_ID: OTHER_KEY}
    if key_id not in keys:
        raise UnknownKeyError(f"unknown key {key_id}")
    return keys[key_id]


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def flip_byte(token, index):
    """Flip one bit of the decoded nonce||ciphertext||tag at ``index`` and re-encode the token."""
    header, body = token.rsplit(".", 1)
    blob = bytearray(b64url_decode(body))
    blob[index] ^= 0x01
    return f"{header}.{b64url_encode(bytes(blob))}"


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 1000, 100000])
def test_round_trip_of_every_size(size):
    plaintext = bytes(i % 251 for i in range(size))
    token = seal(KEY_ID, KEY, plaintext, AAD)
    assert open_token(token, lookup, AAD) == plaintext


def test_round_trip_of_unicode_text():
    text = "Ñandú 名前 محمد 🙂"
    token = seal(KEY_ID, KEY, text.encode("utf-8"), AAD)
    assert open_token(token, lookup, AAD).decode("utf-8") == text


def seal_v1(key_id, key, plaintext, aad):
    """A token as version 1.x of the addon wrote it (AES-256-GCM, 12-byte nonce)."""
    return _seal_with(_header(PREFIX_V1, key_id), _aead(key), plaintext, aad)


def test_token_layout_is_prefix_key_id_and_nonce_ciphertext_tag():
    plaintext = b"0123456789"
    token = seal(KEY_ID, KEY, plaintext, AAD)
    assert re.fullmatch(r"g2pe2\.k1\.[A-Za-z0-9_-]+", token)
    assert token.startswith(PREFIX)
    blob = b64url_decode(token.split(".")[2])
    assert len(blob) == 24 + len(plaintext) + 16


def test_token_decrypts_with_bare_xchacha20_poly1305_and_the_header_as_aad():
    """The format is what it says: an independent libsodium call decrypts it with header || aad."""
    token = seal(KEY_ID, KEY, b"interop", AAD)
    blob = b64url_decode(token.split(".")[2])
    header = b"g2pe2." + KEY_ID.encode() + b"."
    decrypt = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt
    assert decrypt(blob[24:], header + AAD, blob[:24], KEY) == b"interop"
    with pytest.raises(CryptoError):  # the header is part of the AAD
        decrypt(blob[24:], AAD, blob[:24], KEY)


def test_version_1_tokens_stay_readable():
    """Values written by 1.x (AES-256-GCM) still decrypt, and still check their AAD."""
    token = seal_v1(KEY_ID, KEY, b"written by 1.x", AAD)
    blob = b64url_decode(token.split(".")[2])
    assert AESGCM(KEY).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], b"g2pe1.k1." + AAD) == b"written by 1.x"
    assert open_token(token, lookup, AAD) == b"written by 1.x"
    assert open_many([token, seal(KEY_ID, KEY, b"new", AAD)], lookup, AAD) == [b"written by 1.x", b"new"]
    with pytest.raises(DecryptionError):
        open_token(token, lookup, b"another field")
    with pytest.raises(InvalidTag):
        AESGCM(KEY).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], AAD)


def test_two_seals_of_the_same_plaintext_differ():
    first = seal(KEY_ID, KEY, b"same", AAD)
    second = seal(KEY_ID, KEY, b"same", AAD)
    assert first != second
    assert b64url_decode(first.split(".")[2])[:24] != b64url_decode(second.split(".")[2])[:24]


@pytest.mark.parametrize("wrong_aad", [b"", b"res.partner\x00phone", AAD + b"x"])
def test_wrong_aad_is_rejected(wrong_aad):
    token = seal(KEY_ID, KEY, b"secret", AAD)
    with pytest.raises(DecryptionError) as raised:
        open_token(token, lookup, wrong_aad)
    assert "failed authentication" in str(raised.value)
    assert "secret" not in str(raised.value)


@pytest.mark.parametrize("index, part", [(0, "nonce"), (23, "nonce"), (24, "ciphertext"), (-1, "tag")])
def test_tampering_with_nonce_ciphertext_or_tag_is_rejected(index, part):
    token = seal(KEY_ID, KEY, b"some plaintext", AAD)
    with pytest.raises(DecryptionError):
        open_token(flip_byte(token, index), lookup, AAD)


def test_changing_any_character_of_a_token_is_rejected():
    token = seal(KEY_ID, KEY, b"x" * 5, AAD)
    for position, char in enumerate(token):
        replacement = "B" if char != "B" else "C"
        tampered = token[:position] + replacement + token[position + 1 :]
        with pytest.raises(DecryptionError):  # InvalidCiphertext and UnknownKey are subclasses
            open_token(tampered, lookup, AAD)


def test_changing_the_version_is_rejected():
    token = seal(KEY_ID, KEY, b"v", AAD)
    with pytest.raises(DecryptionError):  # read as the other format, it fails authentication
        open_token("g2pe1." + token[len(PREFIX) :], lookup, AAD)
    with pytest.raises(InvalidCiphertextError):
        open_token("g2pe3." + token[len(PREFIX) :], lookup, AAD)


def test_moving_a_token_to_another_key_id_is_rejected_even_with_the_same_key():
    token = seal(KEY_ID, KEY, b"moved", AAD)
    moved = token.replace("g2pe2.k1.", "g2pe2.k9.", 1)
    with pytest.raises(DecryptionError) as raised:
        open_token(moved, lambda key_id: KEY, AAD)
    assert not isinstance(raised.value, InvalidCiphertextError)


def test_wrong_key_is_rejected_without_data_in_the_message():
    token = seal(KEY_ID, KEY, b"top secret", AAD)
    with pytest.raises(DecryptionError) as raised:
        open_token(token, lambda key_id: OTHER_KEY, AAD)
    assert "top secret" not in str(raised.value)
    assert "k1" in str(raised.value)


def test_unknown_key_id_raises_unknown_key_error():
    token = seal("retired", KEY, b"old", AAD)
    with pytest.raises(UnknownKeyError):
        open_token(token, lookup, AAD)


def test_the_key_is_looked_up_once_by_its_id():
    asked = []

    def recording_lookup(key_id):
        asked.append(key_id)
        return lookup(key_id)

    token = seal(OTHER_KEY_ID, OTHER_KEY, b"by id", AAD)
    assert open_token(token, recording_lookup, AAD) == b"by id"
    assert asked == [OTHER_KEY_ID]


GARBAGE = [
    "",
    "hello",
    "g2pe1.",
    "g2pe1.k1",
    "g2pe1.k1.",
    "g2pe1..AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "g2pe1.k 1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "g2pe1." + "k" * 65 + ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "g2pe1.k1.AAAA!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "g2pe1.k1.AAAA+AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "g2pe1.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    "g2pe1.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",  # 35 chars: 26 bytes, shorter than nonce + tag
    "g2pe1.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",  # length % 4 == 1: not base64
    "G2PE1.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    b"g2pe1.k1.\xff\xfe",
    None,
    12345,
]


@pytest.mark.parametrize("garbage", GARBAGE)
def test_garbage_is_an_invalid_ciphertext(garbage):
    with pytest.raises(InvalidCiphertextError):
        open_token(garbage, lookup, AAD)
    with pytest.raises(InvalidCiphertextError):
        key_id_of(garbage)
    assert not is_token(garbage)


def test_non_canonical_base64_is_rejected():
    """Unused bits of the last character must be zero: one ciphertext, one spelling."""
    token = seal(KEY_ID, KEY, b"1", AAD)  # 29 bytes -> 39 characters, last one carries 2 bits
    body = token.rsplit(".", 1)[1]
    assert len(body) % 4 == 3
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = token[:-1] + alphabet[alphabet.index(token[-1]) ^ 0x01]
    assert b64url_decode(twin.rsplit(".", 1)[1]) == b64url_decode(body)  # same bytes, lax decoder
    with pytest.raises(InvalidCiphertextError):
        open_token(twin, lookup, AAD)


def test_key_id_of_and_is_token_read_the_header_of_str_and_bytes():
    token = seal(OTHER_KEY_ID, OTHER_KEY, b"header", AAD)
    assert key_id_of(token) == OTHER_KEY_ID
    assert key_id_of(token.encode()) == OTHER_KEY_ID
    assert is_token(token) and is_token(token.encode())
    assert open_token(token.encode(), lookup, AAD) == b"header"


def test_seal_many_round_trips_with_distinct_nonces():
    # Sizes up and down (the batch's buffer grows, then serves shorter values), and buffers of bytes.
    plaintexts = [
        b"",
        b"a",
        b"a",
        "é".encode() * 100,
        b"x" * 1000,
        b"y",
        bytearray(b"z" * 300),
        memoryview(b"m"),
    ]
    tokens = seal_many(KEY_ID, KEY, plaintexts, [bytearray(AAD)] * len(plaintexts))
    assert len(set(tokens)) == len(tokens)
    assert [open_token(token, lookup, AAD) for token in tokens] == [bytes(p) for p in plaintexts]


def test_seal_many_binds_each_value_to_its_own_aad():
    aads = [b"res.partner\x00email\x001", b"res.partner\x00email\x002"]
    tokens = seal_many(KEY_ID, KEY, [b"one", b"two"], aads)
    assert open_token(tokens[0], lookup, aads[0]) == b"one"
    with pytest.raises(DecryptionError):
        open_token(tokens[1], lookup, aads[0])
    with pytest.raises(ValueError):
        seal_many(KEY_ID, KEY, [b"one"], aads)


def test_a_batch_under_one_key_opens_to_its_values_in_order():
    """The short path of a batch under one key (sizes up and down: the output buffer grows, then
    serves shorter values), checked against bare libsodium calls."""
    plaintexts = [b"v" * 500, b"ab", b"", b"w" * 300, b"c", "é".encode() * 3]
    aads = [AAD + str(i).encode() for i in range(len(plaintexts))]
    tokens = seal_many(KEY_ID, KEY, plaintexts, aads)
    header = f"{PREFIX}{KEY_ID}.".encode()
    bare = []
    for token, aad in zip(tokens, aads, strict=True):
        blob = b64url_decode(token.rsplit(".", 1)[1])
        bare.append(
            sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(blob[24:], header + aad, blob[:24], KEY)
        )
    assert bare == plaintexts
    assert _open_uniform(tokens, lookup, aads) == plaintexts
    assert open_many(tokens, lookup, [bytearray(aad) for aad in aads]) == plaintexts


def _one_by_one(tokens, aads):
    """What ``open_token`` says of each token of a batch: the plaintexts, or the first error's class."""
    try:
        return [open_token(token, lookup, aad) for token, aad in zip(tokens, aads, strict=True)]
    except DecryptionError as error:
        return type(error)


def _odd_tokens():
    token = seal(KEY_ID, KEY, b"odd one", AAD + b"3")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return {
        "tampered": flip_byte(token, 30),
        "non-canonical": token[:-1] + alphabet[alphabet.index(token[-1]) ^ 0x01],
        "not base64": token[:-3] + "!" + token[-2:],
        "one character too many": token + "A",
        "too short": token[: len(PREFIX) + len(KEY_ID) + 1 + 20],
        "as bytes": token.encode(),
        "other key": seal(OTHER_KEY_ID, OTHER_KEY, b"odd one", AAD + b"3"),
        "version 1": _seal_with(_header(PREFIX_V1, KEY_ID), _aead(KEY), b"odd one", AAD + b"3"),
        "unknown key": seal("retired", KEY, b"odd one", AAD + b"3"),
        "not a token": "plain text",
    }


@pytest.mark.parametrize("odd", sorted(_odd_tokens()))
@pytest.mark.parametrize("position", [0, 3, 6])
def test_a_batch_under_one_key_with_one_odd_value_reads_as_its_values_one_by_one(odd, position):
    """A batch of tokens under one key takes a short path; one odd value anywhere in it gets the
    same answer as read alone (its plaintext, or the same error)."""
    aads = [AAD + str(i).encode() for i in range(7)]
    tokens = [seal(KEY_ID, KEY, f"value {i}".encode(), aad) for i, aad in enumerate(aads)]
    tokens[position] = _odd_tokens()[odd]
    aads[position] = AAD + b"3"  # the AAD the odd token was sealed with
    expected = _one_by_one(tokens, aads)
    try:
        short = _open_uniform(tokens, lookup, aads)
    except DecryptionError as error:
        short = type(error)
    # The short path hands the batch back (odd formats, other keys), or gives the same answer.
    assert short is None or short == expected
    assert short is None or odd in ("tampered", "one character too many")
    if isinstance(expected, type):
        with pytest.raises(expected):
            open_many(tokens, lookup, aads)
    else:
        assert open_many(tokens, lookup, aads) == expected


def test_open_many_asks_for_each_key_once():
    asked = []

    def recording_lookup(key_id):
        asked.append(key_id)
        return lookup(key_id)

    tokens = seal_many(KEY_ID, KEY, [b"1", b"2"], AAD) + [seal(OTHER_KEY_ID, OTHER_KEY, b"3", AAD)]
    assert open_many(tokens, recording_lookup, AAD) == [b"1", b"2", b"3"]
    assert sorted(asked) == [KEY_ID, OTHER_KEY_ID]


@pytest.mark.parametrize("key_id", ["", "a.b", "k 1", "é", "k" * 65, None])
def test_seal_refuses_an_invalid_key_id(key_id):
    with pytest.raises(ValueError):
        seal(key_id, KEY, b"x")


@pytest.mark.parametrize("key", [b"", bytes(16), bytes(31), bytes(33), "k" * 32])
def test_seal_refuses_a_key_that_is_not_256_bits(key):
    with pytest.raises(ValueError):
        seal(KEY_ID, key, b"x")


def test_new_key_ids_and_data_keys_are_random_and_well_formed():
    key_ids = {new_key_id() for _ in range(100)}
    assert len(key_ids) == 100
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{16}", key_id) for key_id in key_ids)
    keys = {new_data_key() for _ in range(100)}
    assert len(keys) == 100 and all(len(key) == 32 for key in keys)
    token = seal(key_ids.pop(), keys.pop(), b"fresh")
    assert is_token(token)


def test_without_pynacls_cffi_module_the_public_bindings_read_and_write_the_same_tokens(monkeypatch):
    """Another PyNaCl layout (no ``nacl._sodium``): the fallback seals and opens through
    ``nacl.bindings``, to and from the same tokens."""
    import importlib.util
    import sys

    from .. import envelope

    monkeypatch.setitem(sys.modules, "nacl._sodium", None)  # its import fails
    name = f"{envelope.__package__}.envelope_without_cffi"
    spec = importlib.util.spec_from_file_location(name, envelope.__file__)
    fallback = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, fallback)
    spec.loader.exec_module(fallback)
    assert not hasattr(fallback, "_ffi")
    plaintexts = [b"x" * 300, b"", b"short"]
    aads = [AAD + str(i).encode() for i in range(len(plaintexts))]
    sealed_there = fallback.seal_many(KEY_ID, KEY, plaintexts, aads)
    assert open_many(sealed_there, lookup, aads) == plaintexts
    assert fallback.open_many(seal_many(KEY_ID, KEY, plaintexts, aads), lookup, aads) == plaintexts
    with pytest.raises(DecryptionError):
        fallback.open_many([flip_byte(sealed_there[0], 30)], lookup, aads[:1])
