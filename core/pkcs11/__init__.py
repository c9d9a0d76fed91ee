"""PKCS#11 tokens (HSMs): sessions, keys found or made by label, data keys wrapped inside the token, signing.

A master key is an AES-256 key generated inside the token, sensitive and non-extractable: it
never leaves the HSM. The token encrypts data keys with it (``C_Encrypt``, AES-256-GCM, bound to
the key id and purpose as associated data) and decrypts them again; a wrapped key is one string,
``g2pk1.<base64url label>.<base64url nonce || ciphertext || tag>``, that names the master key that
wrapped it, so data keys wrapped before a rotation (a new master key under a new label) keep
unwrapping while their master key is in the token. Signing keys (RSA-2048 or P-256) are generated
in the token too; a JWS is signed by one ``C_Sign``.

One logged-in session per token and process (PKCS#11 logs in per application), used by one
thread at a time; a lost session is reopened once. Faults reach the caller as typed errors of
``core.errors`` naming the token, the PKCS#11 function and its ``CKR_*`` code: ``HsmAbsentError``,
``HsmPinError``, ``HsmSessionLostError``, ``HsmBusyError``, ``HsmKeyError``. The PIN is never
logged nor part of any message or ``repr``.

The binding (``python-pkcs11``) is imported on first use only: the addon installs and runs
without it, and only a ``pkcs11`` provider then fails, saying what to install.

Modules, each importing only those before it: ``binding`` (python-pkcs11 on first use, the count
of operations), ``keys`` (the wrapped-key format, key references, the keys made in a token),
``session`` (one session per token and process, the binding's faults as typed errors) and
``token`` (``Token``: what a provider asks of its token).
"""

from .binding import BINDING, binding, binding_missing, operation_counts, reset_operation_counts
from .keys import WRAP_PREFIX, format_wrapped, key_reference, label_of_reference, parse_wrapped, wrapping_aad
from .session import BUSY_TIMEOUT, forget_sessions
from .token import Token

__all__ = [
    "BINDING",
    "BUSY_TIMEOUT",
    "WRAP_PREFIX",
    "Token",
    "binding",
    "binding_missing",
    "forget_sessions",
    "format_wrapped",
    "key_reference",
    "label_of_reference",
    "operation_counts",
    "parse_wrapped",
    "reset_operation_counts",
    "wrapping_aad",
]
