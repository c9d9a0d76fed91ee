"""The emulator's ciphertexts against a reference written from KEYMANAGER_API.md §4.4-§4.6.

The reference below is written again from the spec's description (not imported from the
emulator), with the lower-level ``Cipher`` API, so that both sides would have to make the same
mistake for these tests to pass.
"""

import hashlib
import os
import secrets

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .common import APP, REF, b64url, b64url_decode, crypto_request, ok

SPLITTER = b"#KEY_SPLITTER#"
HEADER = b"VER_R2"
OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
SALT, AAD = secrets.token_bytes(32), secrets.token_bytes(32)
# mode -> (salt, aad, total length for a 118-byte plaintext, as measured against Java in §4.6)
MODES = {
    "A salt+aad": (SALT, AAD, 436),
    "A salt only": (SALT, None, 436),
    "B default": (None, None, 474),
    "C aad only": (None, AAD, 452),
}


def gcm_seal(key, iv, plaintext, aad):
    encryptor = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
    if aad:
        encryptor.authenticate_additional_data(aad)
    return encryptor.update(plaintext) + encryptor.finalize() + encryptor.tag


def gcm_open(key, iv, ciphertext_and_tag, aad):
    decryptor = Cipher(algorithms.AES(key), modes.GCM(iv, ciphertext_and_tag[-16:])).decryptor()
    if aad:
        decryptor.authenticate_additional_data(aad)
    return decryptor.update(ciphertext_and_tag[:-16]) + decryptor.finalize()


def reference_encrypt(certificate, plaintext, salt=None, aad=None, with_thumbprint=True):
    session_key, header = os.urandom(32), b""
    if salt:  # A: IV = salt, AAD = aad, data = ct || tag
        data = gcm_seal(session_key, salt, plaintext, aad)
    elif not aad:  # B: random 32-byte AAD, nonce = its first 12 bytes, data = AAD || ct || tag
        random_aad = os.urandom(32)
        data = random_aad + gcm_seal(session_key, random_aad[:12], plaintext, random_aad)
        header = HEADER
    else:  # C: random 16-byte IV, data = ct || tag || IV
        iv = os.urandom(16)
        data = gcm_seal(session_key, iv, plaintext, aad) + iv
    thumbprint = hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).digest()
    wrapped = certificate.public_key().encrypt(session_key, OAEP)
    key_part = header + (thumbprint if with_thumbprint else b"") + wrapped
    return b64url(key_part + SPLITTER + data)


def reference_decrypt(find_private_key, blob, salt=None, aad=None):
    raw = b64url_decode(blob)
    index = raw.index(SPLITTER)
    key_part, data = raw[:index], raw[index + len(SPLITTER) :]
    has_header = key_part.startswith(HEADER)
    if has_header:
        key_part = key_part[len(HEADER) :]
    assert len(key_part) == 32 + 256
    session_key = find_private_key(key_part[:32]).decrypt(key_part[32:], OAEP)
    if salt:
        return gcm_open(session_key, salt, data, aad)
    if has_header:
        return gcm_open(session_key, data[:12], data[32:], data[:32])
    return gcm_open(session_key, data[-16:], data[:-16], aad)


def optional_b64(value):
    return b64url(value) if value is not None else None


def request_fields(salt, aad):
    fields = {"salt": optional_b64(salt), "aad": optional_b64(aad)}
    return {name: value for name, value in fields.items() if value is not None}


@pytest.mark.parametrize("mode", MODES)
def test_emulator_ciphertext_decrypts_with_the_reference(emulator, mode):
    salt, aad, total = MODES[mode]
    plaintext = secrets.token_bytes(118)
    blob = ok(emulator, "POST", "/encrypt", crypto_request(plaintext, **request_fields(salt, aad)))["data"]
    assert len(b64url_decode(blob)) == total

    def private_key_of(thumbprint):
        return emulator.keystore.by_thumbprint(thumbprint).private_key

    assert reference_decrypt(private_key_of, blob, salt, aad) == plaintext


@pytest.mark.parametrize("mode", MODES)
def test_reference_ciphertext_decrypts_in_the_emulator(emulator, mode):
    salt, aad, total = MODES[mode]
    pem = ok(emulator, "GET", "/getCertificate", params={"applicationId": APP, "referenceId": REF})[
        "certificate"
    ]
    certificate = x509.load_pem_x509_certificate(pem.encode())
    plaintext = secrets.token_bytes(118)
    blob = reference_encrypt(certificate, plaintext, salt, aad)
    assert len(b64url_decode(blob)) == total
    decrypted = ok(emulator, "POST", "/decrypt", crypto_request(blob, **request_fields(salt, aad)))["data"]
    assert b64url_decode(decrypted) == plaintext
    # Pre-1.2 ciphertexts carry no thumbprint: the server tries the keys of (appId, refId).
    legacy = reference_encrypt(certificate, plaintext, salt, aad, with_thumbprint=False)
    decrypted = ok(emulator, "POST", "/decrypt", crypto_request(legacy, **request_fields(salt, aad)))["data"]
    assert b64url_decode(decrypted) == plaintext
