# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The errors users see: one ``UserError`` class per cause, each carrying the typed error of ``core``.

``core`` raises typed exceptions (``core.errors``); at the Odoo boundary :func:`user_error` turns
one into the ``UserError`` subclass of its cause, keeping the original as ``error``. Code above
the boundary tells causes apart by class (``except RemoteServiceUserError``), never by digging in
``__cause__``.
"""

from odoo.exceptions import UserError

from .core import errors


class CryptoUserError(UserError):
    """A failure of ``core`` shown to a user; ``error`` is the typed ``core`` exception."""

    def __init__(self, message, error=None):
        super().__init__(message)
        self.error = error


class RemoteServiceUserError(CryptoUserError):
    """KeyManager or Keycloak failed (unreachable, refused, error code). Nothing is wrong with the
    data: the operation fails as a whole, and may work later."""


class UndecryptableUserError(CryptoUserError):
    """This value does not decrypt here: tampered, moved to another record or field, made under a
    key or in a format this provider does not know."""


def user_error(error, message=None):
    """The ``CryptoUserError`` subclass of ``error``'s cause, saying ``message`` (default: the
    error's own message, which names its cause and never carries data, keys or tokens)."""
    if isinstance(error, errors.DecryptionError):  # KeyManagerValueError too: a value, not the service
        cls = UndecryptableUserError
    elif isinstance(error, errors.RemoteServiceError):
        cls = RemoteServiceUserError
    else:
        cls = CryptoUserError
    return cls(str(error) if message is None else message, error)
