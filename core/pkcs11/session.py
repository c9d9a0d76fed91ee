"""Sessions with tokens: one logged-in session per token and process, used by one thread at a
time and reopened once when lost, and the binding's faults as the typed errors of ``core.errors``."""

import contextlib
import hashlib
import hmac
import os
import sys
import threading

from ..errors import HsmAbsentError, HsmBusyError, HsmError, HsmKeyError, HsmPinError, HsmSessionLostError
from . import keys
from .binding import binding, count

BUSY_TIMEOUT = 5.0  # seconds a thread waits for the token's session before "busy"

# The binding's exception classes (by name) and what they mean here.
_ABSENT = {"TokenNotPresent", "TokenNotRecognised", "DeviceRemoved", "NoSuchToken", "SlotIDInvalid"}
_PIN = {"PinIncorrect", "PinInvalid", "PinLenRange", "PinLocked", "PinExpired", "UserPinNotInitialized"}
_LOST = {
    "SessionHandleInvalid",
    "SessionClosed",
    "ObjectHandleInvalid",
    "KeyHandleInvalid",
    "UserNotLoggedIn",
    "DeviceRemoved",
    "TokenNotPresent",
}
_BUSY = {"SessionCount", "OperationActive", "DeviceMemory", "FunctionCancelled", "FunctionNotParallel"}
# CKR names of the classes whose name does not say it plainly.
_CKR = {
    "NoSuchToken": "no token",
    "NoSuchKey": "no key",
    "MultipleObjectsReturned": "several keys",
    "TokenNotRecognised": "CKR_TOKEN_NOT_RECOGNIZED",
    "FunctionCancelled": "CKR_FUNCTION_CANCELED",
    "GeneralError": "CKR_GENERAL_ERROR",
    "AttributeSensitive": "CKR_ATTRIBUTE_SENSITIVE",
    "KeyUnextractable": "CKR_KEY_UNEXTRACTABLE",
}

_registry_lock = threading.Lock()
_sessions = {}  # (library, token label, slot id) -> _Session
_logged_in = {}  # (library, token label, slot id) -> digest of the PIN that logged in
_stale_libraries = set()  # libraries to initialise again (in a forked child)


def forget_sessions(reinitialize=False):
    """Close every session of this process; with ``reinitialize``, also finalise and initialise the
    libraries again (they then see tokens and configuration changed since: tests, a new token)."""
    with _registry_lock:
        for session in _sessions.values():
            session.close()
        _sessions.clear()
        _logged_in.clear()
        if reinitialize and "pkcs11" in sys.modules:
            import pkcs11  # pylint: disable=import-outside-toplevel

            for library in list(pkcs11._loaded):  # pylint: disable=protected-access
                pkcs11.lib(library).reinitialize()


def _after_fork_in_child():
    # The parent's sessions and library state are not the child's: PKCS#11 asks a forked process
    # to initialise the library again before any call.
    _sessions.clear()
    _logged_in.clear()
    if "pkcs11" in sys.modules:
        import pkcs11  # pylint: disable=import-outside-toplevel

        _stale_libraries.update(pkcs11._loaded)  # pylint: disable=protected-access


os.register_at_fork(after_in_child=_after_fork_in_child)


class TokenSession:
    """A PKCS#11 token as a provider names it (library, token label or slot id, user PIN), and
    its session: the base of ``token.Token``.

    Cheap to make (sessions are kept per process and token); the PIN is held only to log in.
    """

    def __init__(self, library, token_label="", slot_id=None, pin=None, busy_timeout=BUSY_TIMEOUT):
        self.library = library or ""
        self.token_label = token_label or ""
        self.slot_id = slot_id
        self.busy_timeout = busy_timeout
        self._pin = pin
        self._pin_digest = hashlib.sha256(pin.encode("utf-8")).digest() if pin else None

    @property
    def name(self):
        return f"PKCS#11 token {self.token_label!r}" if self.token_label else f"PKCS#11 slot {self.slot_id}"

    def __repr__(self):
        return f"<Token {self.name} of {self.library}>"

    # Sessions ----------------------------------------------------------------------------------
    def _call(self, function, operation, counted=None):
        """``operation(session)`` with the token's session held; a lost session is reopened once.
        Errors of the binding become the typed errors of ``core.errors``."""
        pkcs11 = binding()
        for attempt in (1, 2):
            session = self._session(function)
            if not session.lock.acquire(timeout=self.busy_timeout):
                raise HsmBusyError(
                    f"the token is busy: another operation held its session for more than "
                    f"{self.busy_timeout:g} s",
                    service=self.name,
                    endpoint=function,
                )
            try:
                result = operation(session)
            except pkcs11.exceptions.PKCS11Error as error:
                if type(error).__name__ in _LOST and attempt == 1:
                    self._drop(session)
                    continue
                raise self._mapped(function, error) from None
            finally:
                session.lock.release()
            if counted:
                count(counted)
            return result
        raise AssertionError("unreachable")

    def _key(self):
        return (self.library, self.token_label, self.slot_id)

    def _session(self, function):
        with _registry_lock:
            session = _sessions.get(self._key())
            if session is not None and not hmac.compare_digest(session.pin_digest, self._pin_digest or b""):
                # Another PIN for this token (a changed configuration): log in again with this one.
                session.close()
                _sessions.pop(self._key(), None)
                _logged_in.pop(self._key(), None)
                session = None
            if session is None:
                session = _sessions[self._key()] = self._open(function)
            return session

    def _drop(self, session):
        with _registry_lock:
            if _sessions.get(self._key()) is session:
                del _sessions[self._key()]
            session.close()

    def _open(self, function):
        pkcs11 = binding()
        library = self._library()
        try:
            token = self._find_token(library)
        except pkcs11.exceptions.PKCS11Error as error:
            raise self._error(HsmAbsentError, "C_GetTokenInfo", error, "the token is absent") from None
        if not self._pin:
            raise HsmPinError(
                "no user PIN is configured for the token", service=self.name, endpoint="C_Login"
            )
        try:
            try:
                opened = token.open(rw=True, user_pin=self._pin)
            except pkcs11.exceptions.UserAlreadyLoggedIn:
                # Logged in by a session of ours that was lost: the same PIN may go on without it.
                if _logged_in.get(self._key()) != self._pin_digest:
                    raise HsmPinError(
                        "another PIN is logged in to this token in this process",
                        service=self.name,
                        endpoint="C_Login",
                    ) from None
                opened = token.open(rw=True)
        except pkcs11.exceptions.PKCS11Error as error:
            raise self._mapped("C_Login", error) from None
        _logged_in[self._key()] = self._pin_digest
        count("login")
        return _Session(opened, self._pin_digest, self)

    def _find_token(self, library):
        """The token by label (or slot); a slot that fails to answer hides no other token."""
        pkcs11 = binding()
        found, failure = [], None
        for slot in library.get_slots(token_present=True):
            if not self.token_label and slot.slot_id != self.slot_id:
                continue
            try:
                token = slot.get_token()
            except pkcs11.exceptions.PKCS11Error as error:
                failure = error
                continue
            if not self.token_label or token.label == self.token_label:
                found.append(token)
        if len(found) > 1:
            raise HsmAbsentError(
                f"several tokens are labelled {self.token_label!r}: name the token by its slot",
                service=self.name,
                endpoint="C_GetTokenInfo",
            )
        if not found:
            raise failure or pkcs11.exceptions.NoSuchToken("no such token")
        return found[0]

    def _library(self):
        pkcs11 = binding()
        if not self.library or not os.path.isfile(self.library):
            raise HsmAbsentError(
                f"no PKCS#11 library at {self.library or '(not set)'}: install the vendor's module "
                "or correct the path",
                service=self.name,
                endpoint="C_Initialize",
            )
        try:
            library = pkcs11.lib(self.library)
            if self.library in _stale_libraries:
                library.reinitialize()
                _stale_libraries.discard(self.library)
        except Exception as error:  # the binding raises several types for a module that does not load
            raise HsmAbsentError(
                f"the PKCS#11 library {self.library} did not load: {type(error).__name__}",
                service=self.name,
                endpoint="C_Initialize",
            ) from None
        return library

    # Errors ------------------------------------------------------------------------------------
    def _mapped(self, function, error):
        name = type(error).__name__
        if name in _ABSENT:
            return self._error(HsmAbsentError, function, error, "the token is absent")
        if name in _PIN:
            return self._error(HsmPinError, function, error, "the token refused the user PIN")
        if name in _LOST:
            return self._error(HsmSessionLostError, function, error, "the session with the token was lost")
        if name in _BUSY:
            return self._error(HsmBusyError, function, error, "the token is busy")
        if name in ("NoSuchKey", "MultipleObjectsReturned"):
            return self._error(HsmKeyError, function, error, "key not found")
        return self._error(HsmError, function, error, "the token failed")

    def _error(self, cls, function, error, detail):
        name = type(error).__name__
        code = _CKR.get(name) or "CKR_" + "".join(
            f"_{char}" if char.isupper() and index else char for index, char in enumerate(name)
        ).upper().replace("__", "_")
        message = str(error).strip()
        if message and name in ("NoSuchKey", "MultipleObjectsReturned", "NoSuchToken"):
            detail = f"{detail}: {message}"
        return cls(detail, service=self.name, endpoint=function, error_code=code)


class _Session:
    """A logged-in session of one token, its lock, and the key objects found in it by label."""

    def __init__(self, session, pin_digest, token):
        self.session = session
        self.pin_digest = pin_digest
        self.name = token.name
        self.lock = threading.Lock()
        self._keys = {}

    def close(self):
        self._keys.clear()
        with contextlib.suppress(Exception):  # a lost session cannot be closed, and need not be
            self.session.close()

    def find_key(self, kind, label):
        """The key object (``secret``, ``private`` or ``public``) labelled ``label``, or None."""
        pkcs11 = binding()
        cached = self._keys.get((kind, label))
        if cached is not None:
            return cached
        object_class = {
            "secret": pkcs11.ObjectClass.SECRET_KEY,
            "private": pkcs11.ObjectClass.PRIVATE_KEY,
            "public": pkcs11.ObjectClass.PUBLIC_KEY,
        }[kind]
        try:
            key = self.session.get_key(object_class=object_class, label=label)
        except pkcs11.exceptions.NoSuchKey:
            return None
        except pkcs11.exceptions.MultipleObjectsReturned:
            raise HsmKeyError(
                f"several keys are labelled {label!r}: keep one", service=self.name, endpoint="C_FindObjects"
            ) from None
        if kind != "public":
            keys.check_unexportable(key, label, self.name)
        self._keys[(kind, label)] = key
        return key

    def secret_key(self, label, create=False):
        key = self.find_key("secret", label)
        if key is None and create:
            key = self._generate_master_key(label)
        if key is None:
            raise keys.missing_key(label, self.name, "AES")
        return key

    def private_key(self, label):
        key = self.find_key("private", label)
        if key is None:
            raise keys.missing_key(label, self.name, "private")
        return key

    def _generate_master_key(self, label):
        key = keys.generate_master_key(self.session, label)
        self._keys[("secret", label)] = key
        return key

    def generate_key_pair(self, label, alg):
        """Make a key pair ``label`` for ``alg``; return its public key (``cryptography``)."""
        public_key, private = keys.generate_key_pair(self.session, label, alg)
        self._keys[("private", label)] = private
        return public_key
