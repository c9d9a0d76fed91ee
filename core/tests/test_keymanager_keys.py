"""KeyManagerKeys against the emulator: data keys, direct mode, signing, certificates (real HTTP)."""

import os
import secrets

import pytest

from ..errors import G2PCryptoError, KeyManagerError, SignatureError
from ..keymanager_format import direct_token, is_direct_token
from ..keymanager_keys import KeyManagerKeys
from .remote_helpers import keymanager_client

ENCRYPT_IDS, SIGN_IDS = ("REGISTRATION", "ENCRYPT"), ("ID_REPO", "")


pytestmark = pytest.mark.usefixtures("healthy_emulator")


@pytest.fixture
def keys(emulator):
    return KeyManagerKeys(
        keymanager_client(emulator),
        encrypt_ids=ENCRYPT_IDS,
        sign_ids=SIGN_IDS,
        salt=secrets.token_urlsafe(),
        aad=secrets.token_urlsafe(),
        cache_scope=("test", emulator.keymanager_url),
    )


def test_data_keys_are_bound_to_their_id_and_purpose(keys):
    secret = os.urandom(32)
    wrapped, wrapped_by = keys.wrap("key-1", secret, "data-key")
    assert wrapped_by == "KeyManager REGISTRATION/ENCRYPT"
    assert keys.unwrap("key-1", wrapped, "data-key", wrapped_by) == secret
    with pytest.raises(KeyManagerError):  # moved to another key record
        keys.unwrap("key-2", wrapped, "data-key", wrapped_by)


def test_direct_mode_round_trip_bound_to_the_callers_aad(keys, emulator):
    values = [b"Amina", b"", "Zoë".encode()]
    tokens = keys.encrypt_values(values, [b"res.partner|name"] * 3)
    assert all(is_direct_token(token) for token in tokens)
    assert emulator.counts["/encrypt"] == 2  # the empty value costs no call
    assert keys.decrypt_values(tokens, [b"res.partner|name"] * 3) == values
    with pytest.raises(KeyManagerError, match="KER-FSE-004"):
        keys.decrypt_values(tokens[:1], [b"res.partner|email"])
    assert keys.is_current(tokens[0])
    emulator.rotate(*ENCRYPT_IDS)
    assert keys.is_current(tokens[0])  # the thumbprint is cached...
    fresh = KeyManagerKeys(keys.client, encrypt_ids=ENCRYPT_IDS, sign_ids=SIGN_IDS, cache_scope=("other",))
    assert not fresh.is_current(tokens[0])  # ...a new scope sees the rotation


def test_direct_mode_needs_a_salt_and_a_base64_aad(emulator):
    client = keymanager_client(emulator)
    with pytest.raises(G2PCryptoError, match="salt"):
        KeyManagerKeys(client, encrypt_ids=ENCRYPT_IDS, sign_ids=SIGN_IDS).encrypt_values([b"x"], [b""])
    ids = {"encrypt_ids": ENCRYPT_IDS, "sign_ids": SIGN_IDS}
    keys = KeyManagerKeys(client, **ids, salt="c2FsdA", aad="not base64!")
    with pytest.raises(G2PCryptoError, match="AAD"):
        keys.encrypt_values([b"x"], [b"bound"])
    # A salt pasted wrong: KeyManager would refuse every value (KER-CRY-003), read as tampering.
    keys = KeyManagerKeys(client, **ids, salt="not base64!")
    with pytest.raises(G2PCryptoError, match="salt of direct mode is not base64"):
        keys.decrypt_values([direct_token("c29tZS1jaXBoZXJ0ZXh0")], [b""])


def test_signatures_verify_across_a_rotation(keys, emulator):
    token = keys.sign({"voucher": "V-1"})
    assert keys.verify(token) == {"voucher": "V-1"}
    emulator.rotate(*SIGN_IDS)
    assert keys.verify(token) == {"voucher": "V-1"}  # the certificate the token names is passed
    detached = keys.sign(b'{"a":1}', include_payload=False)
    assert keys.verify(detached, payload=b'{"a":1}') == {"a": 1}
    with pytest.raises(SignatureError, match="not valid"):
        keys.verify(detached, payload=b'{"a":2}')
    with pytest.raises(SignatureError, match="malformed"):
        keys.verify("not.a.token")


def test_certificates_are_cached(keys, emulator):
    public, signing = keys.certificates()
    assert {key["use"] for key in public} <= {"enc", "sig"} and signing
    emulator.reset_counts()
    assert keys.certificates() == (public, signing)
    assert emulator.counts == {}
