"""The PKCS#11 binding (python-pkcs11), imported on first use, and the count of token operations."""

import collections

from ..errors import HsmError

BINDING = "python-pkcs11==0.10.1"

_counts = collections.Counter()  # operations done by tokens in this process, by kind


def operation_counts():
    """Operations the tokens did in this process: ``wrap``, ``unwrap``, ``sign``, ``login``,
    ``check``, ``generate`` (tests count them; a batch of values costs no wrap once its data key is
    cached)."""
    return dict(_counts)


def reset_operation_counts():
    _counts.clear()


def count(kind):
    """One more operation of ``kind`` done by a token of this process."""
    _counts[kind] += 1


def binding():
    """The ``pkcs11`` module of python-pkcs11, or an ``HsmError`` saying how to install it."""
    try:
        import pkcs11  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise HsmError(
            f"the PKCS#11 binding is not installed on this server: pip install {BINDING}",
            service="PKCS#11",
        ) from None
    return pkcs11


def binding_missing():
    """Why the binding cannot be used here (a sentence), or None when it can."""
    try:
        binding()
    except HsmError as error:
        return str(error)
    return None
