"""The bare-AEAD floor: seal and open of the benchmark's values with the addon's cipher, in this process.

XChaCha20-Poly1305 of libsodium, as the addon's ``g2pe2`` tokens, with a fresh 24-byte random
nonce per value and the model|field|record associated data, called straight through PyNaCl's cffi
module (no argument checks, no base64, no token): what no implementation can go below per value.
Beside it, for reference, the same through PyNaCl's public bindings (which format three messages
per call, slow under Odoo's ``str.format`` wrapper) and AES-256-GCM of ``cryptography`` 3.4.8
(the ``g2pe1`` format, read only; an OpenSSL context set up per call).
"""

import gc
import os
import statistics
import time

from .data import values_of_run
from .measure import ENCRYPTED_FIELDS

FLOOR_CIPHER = "XChaCha20-Poly1305 (libsodium, bare call)"


def _values(records):
    return [
        (str(vals[name]).encode(), f"res.partner|{name}|{1000000 + number}".encode())
        for number, vals in enumerate(values_of_run(0, records))
        for name in ENCRYPTED_FIELDS
    ]


def _median_seconds(function, repeats):
    times = []
    for _repeat in range(repeats):
        gc.collect()
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def aead_floor(records=1000, repeats=7):
    """{cipher: (values, seal seconds, open seconds)} of ``records`` × 8 values (medians)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from nacl import bindings as sodium

    values = _values(records)
    key = os.urandom(32)
    seal_x = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt
    open_x = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt
    sealed_x = []

    def seal_xchacha():
        sealed_x.clear()
        for plaintext, aad in values:
            nonce = os.urandom(24)
            sealed_x.append((seal_x(plaintext, aad, nonce, key), aad, nonce))

    def open_xchacha():
        for sealed, aad, nonce in sealed_x:
            open_x(sealed, aad, nonce, key)

    aesgcm = AESGCM(key)
    sealed_a = []

    def seal_aes():
        sealed_a.clear()
        for plaintext, aad in values:
            nonce = os.urandom(12)
            sealed_a.append((aesgcm.encrypt(nonce, plaintext, aad), aad, nonce))

    def open_aes():
        for sealed, aad, nonce in sealed_a:
            aesgcm.decrypt(nonce, sealed, aad)

    from nacl._sodium import ffi, lib  # pylint: disable=no-name-in-module

    abytes = lib.crypto_aead_xchacha20poly1305_ietf_abytes()
    sealed_c = []

    def seal_cffi():
        sealed_c.clear()
        for plaintext, aad in values:
            nonce = os.urandom(24)
            out = ffi.new("unsigned char[]", len(plaintext) + abytes)
            lib.crypto_aead_xchacha20poly1305_ietf_encrypt(
                out, ffi.NULL, plaintext, len(plaintext), aad, len(aad), ffi.NULL, nonce, key
            )
            sealed_c.append((ffi.buffer(out)[:], aad, nonce))

    def open_cffi():
        for sealed, aad, nonce in sealed_c:
            out = ffi.new("unsigned char[]", len(sealed) - abytes + 1)
            lib.crypto_aead_xchacha20poly1305_ietf_decrypt(
                out, ffi.NULL, ffi.NULL, sealed, len(sealed), aad, len(aad), nonce, key
            )
            _plaintext = ffi.buffer(out, len(sealed) - abytes)[:]

    return {
        FLOOR_CIPHER: (
            len(values),
            _median_seconds(seal_cffi, repeats),
            _median_seconds(open_cffi, repeats),
        ),
        "XChaCha20-Poly1305 (PyNaCl bindings)": (
            len(values),
            _median_seconds(seal_xchacha, repeats),
            _median_seconds(open_xchacha, repeats),
        ),
        "AES-256-GCM (cryptography)": (
            len(values),
            _median_seconds(seal_aes, repeats),
            _median_seconds(open_aes, repeats),
        ),
    }


def merge_floors(floors):
    """The median, cipher by cipher, of floors measured at several moments of the run."""
    merged = {}
    for cipher in floors[0]:
        count = floors[0][cipher][0]
        merged[cipher] = (
            count,
            statistics.median(floor[cipher][1] for floor in floors),
            statistics.median(floor[cipher][2] for floor in floors),
        )
    return merged
