"""KeyManager's ciphertext format and the addon's stored forms of it, without a KeyManager."""

import base64
import hashlib
import os

import pytest

from ..encoding import b64url_decode, b64url_encode
from ..errors import InvalidCiphertextError, KeyManagerError
from ..jwk import SigningKey
from ..keymanager_format import (
    DIRECT_PREFIX,
    KEY_SPLITTER,
    VERSION_HEADER,
    aad_list,
    certificate_jwks,
    certificate_thumbprint,
    ciphertext_of,
    direct_aad,
    direct_token,
    is_direct_token,
    thumbprint_of,
    wrap_aad,
    wrapped_by,
    wrapping_ids,
)

THUMBPRINT = hashlib.sha256(b"certificate").digest()


def keymanager_blob(header=True):
    """The bytes of an /encrypt answer: [VER_R2] thumbprint, wrapped key, splitter, data."""
    return (VERSION_HEADER if header else b"") + THUMBPRINT + os.urandom(256) + KEY_SPLITTER + b"data"


def test_direct_tokens():
    answer = b64url_encode(keymanager_blob())
    token = direct_token(answer)
    assert token == DIRECT_PREFIX + answer and direct_token("") == DIRECT_PREFIX
    assert is_direct_token(token) and is_direct_token(token.encode())
    assert not is_direct_token(answer) and not is_direct_token(None)
    assert ciphertext_of(token) == (answer, True)
    assert ciphertext_of(token.encode()) == (answer, True)


def test_what_openg2p_stored_still_reads():
    blob = keymanager_blob()
    answer = b64url_encode(blob)
    assert ciphertext_of(blob) == (answer, False)  # the answer base64url-decoded
    assert ciphertext_of(answer) == (answer, False)  # the answer itself
    assert ciphertext_of(answer + "==") == (answer, False)
    for garbage in ("Joseph Mwangi", b"\xff\xfe", "", None, "a+b/c"):
        with pytest.raises(InvalidCiphertextError):
            ciphertext_of(garbage)


@pytest.mark.parametrize("header", [True, False])
def test_thumbprint_of_both_layouts(header):
    token = direct_token(b64url_encode(keymanager_blob(header)))
    assert thumbprint_of(token) == THUMBPRINT
    assert thumbprint_of(direct_token(b64url_encode(b"no splitter"))) is None
    assert thumbprint_of("not base64!") is None


def test_certificate_thumbprint_is_sha256_of_der():
    key = SigningKey.generate()
    assert certificate_thumbprint(key.certificate_pem) == hashlib.sha256(key.certificate_der).digest()
    for bad in (None, "", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"):
        with pytest.raises(KeyManagerError):
            certificate_thumbprint(bad)


def test_aads():
    assert aad_list(b"a", 2) == [b"a", b"a"]
    assert aad_list([b"a", None], 2) == [b"a", b""]
    with pytest.raises(ValueError):
        aad_list([b"a"], 2)
    assert b64url_decode(wrap_aad("k1", "data-key")) == b"g2p_encryption|data-key|k1"
    provider_aad = base64.b64encode(b"provider").decode()
    assert direct_aad(provider_aad) == provider_aad  # OpenG2P's values: the provider's aad as is
    assert b64url_decode(direct_aad(provider_aad, b"res.partner|name")) == b"provider|res.partner|name"
    assert direct_aad("", b"") is None
    with pytest.raises(ValueError):
        direct_aad("not base64!", b"x")


def test_wrapped_by_names_the_keymanager_key():
    label = wrapped_by("REGISTRATION", "ENCRYPT")
    assert wrapping_ids(label) == ("REGISTRATION", "ENCRYPT")
    assert wrapping_ids("master key 0123") is None and wrapping_ids(None) is None


def test_certificate_jwks():
    sign, enc = SigningKey.generate(), SigningKey.generate()
    listed = {
        "enc": [{"certificateData": enc.certificate_pem, "keyId": "e1"}],
        "sig": [
            {"certificateData": sign.certificate_pem, "keyId": "s1"},
            {"certificateData": sign.certificate_pem, "keyId": "s1"},  # listed twice
            {"certificateData": None, "keyId": "s2"},  # no certificate: left out
        ],
    }
    keys, signing = certificate_jwks(listed)
    assert [(key["kid"], key["use"], key["alg"]) for key in keys] == [
        ("e1", "enc", "RSA-OAEP-256"),
        ("s1", "sig", "RS256"),
    ]
    assert signing == {"s1": sign.certificate_pem}
    assert all("d" not in key and key["x5c"] for key in keys)
