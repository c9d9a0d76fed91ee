"""KeyManager's hybrid encryption, server side (KEYMANAGER_API.md §4.3-§4.5).

A fresh AES-256 session key encrypts the data with AES-GCM; the key is wrapped with RSA-OAEP
(SHA-256, MGF1-SHA-256) under the certificate's public key. The blob is
``[VER_R2] || SHA-256(cert DER) || wrapped key || "#KEY_SPLITTER#" || encrypted data`` where the
encrypted data's layout depends on the mode (A: salt given, B: neither salt nor aad, C: aad only).
"""

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .keystore import KeyManagerFault

KEY_SPLITTER = b"#KEY_SPLITTER#"
VERSION_HEADER = b"VER_R2"
THUMBPRINT_LENGTH = 32
RSA_2048_BLOCK = 256
MODE_B_AAD_LENGTH = 32
GCM_NONCE_LENGTH = 12
MODE_C_IV_LENGTH = 16  # Cipher.getBlockSize() of AES
OAEP_SHA256 = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def encrypt(generation, plaintext, salt=None, aad=None):
    """The raw blob of ``/encrypt`` for ``plaintext`` under ``generation``'s certificate.

    ``salt`` and ``aad`` are the decoded bytes of the request fields (``None`` when absent).
    """
    session_key = AESGCM.generate_key(bit_length=256)
    header = b""
    if salt:  # mode A: the salt is the GCM IV
        encrypted = _seal(session_key, salt, plaintext, aad)
    elif not aad:  # mode B: a random 32-byte AAD, whose first 12 bytes are the nonce
        random_aad = os.urandom(MODE_B_AAD_LENGTH)
        encrypted = random_aad + _seal(session_key, random_aad[:GCM_NONCE_LENGTH], plaintext, random_aad)
        header = VERSION_HEADER
    else:  # mode C: a random 16-byte IV appended after the tag
        iv = os.urandom(MODE_C_IV_LENGTH)
        encrypted = _seal(session_key, iv, plaintext, aad) + iv
    wrapped = generation.certificate.public_key().encrypt(session_key, OAEP_SHA256)
    return header + generation.thumbprint + wrapped + KEY_SPLITTER + encrypted


def split(blob):
    """``(has_version_header, key_part, encrypted_data)``; KER-CRY-003 without a splitter."""
    index = blob.find(KEY_SPLITTER)
    if index < 0:
        raise KeyManagerFault("KER-CRY-003", "data sent to decrypt is without key splitter or invalid")
    key_part, encrypted = blob[:index], blob[index + len(KEY_SPLITTER) :]
    has_header = key_part.startswith(VERSION_HEADER)
    if has_header:
        key_part = key_part[len(VERSION_HEADER) :]
    return has_header, key_part, encrypted


def unwrap(private_key, wrapped):
    try:
        return private_key.decrypt(wrapped, OAEP_SHA256)
    except ValueError as exc:
        # What a PKCS12 (JCE) keystore says for a bad OAEP block (§4.5).
        raise KeyManagerFault("KER-FSE-004", "Decryption error") from exc


def decrypt_data(session_key, encrypted, has_header, salt=None, aad=None):
    """The plaintext of the encrypted-data part, choosing the mode as the server does (§4.5 step 6)."""
    if salt:
        return _open(session_key, salt, encrypted, aad)
    if has_header:
        random_aad = encrypted[:MODE_B_AAD_LENGTH]
        return _open(session_key, random_aad[:GCM_NONCE_LENGTH], encrypted[MODE_B_AAD_LENGTH:], random_aad)
    return _open(session_key, encrypted[-MODE_C_IV_LENGTH:], encrypted[:-MODE_C_IV_LENGTH], aad)


def _seal(key, nonce, plaintext, aad):
    try:
        return AESGCM(key).encrypt(nonce, plaintext, aad or None)
    except ValueError as exc:
        # Java accepts a GCM IV of 1 to 7 bytes, this library does not (§4.6 notes).
        raise KeyManagerFault("KER-FSE-009", "invalid param spec") from exc


def _open(key, nonce, ciphertext_and_tag, aad):
    try:
        return AESGCM(key).decrypt(nonce, ciphertext_and_tag, aad or None)
    except InvalidTag as exc:
        raise KeyManagerFault("KER-FSE-004", "Tag mismatch!") from exc
    except ValueError as exc:
        raise KeyManagerFault("KER-FSE-004", str(exc) or "encrypted data is corrupted") from exc
