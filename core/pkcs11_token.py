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
"""

import collections
import contextlib
import hashlib
import hmac
import os
import sys
import threading

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from . import jwk
from .encoding import b64url_decode_strict, b64url_encode
from .errors import (
    DecryptionError,
    HsmAbsentError,
    HsmBusyError,
    HsmError,
    HsmKeyError,
    HsmPinError,
    HsmSessionLostError,
    InvalidCiphertextError,
)

WRAP_PREFIX = "g2pk1."
NONCE_SIZE = 12
MASTER_KEY_BITS = 256
RSA_BITS = 2048
BUSY_TIMEOUT = 5.0  # seconds a thread waits for the token's session before "busy"
P256_PARAMETERS = bytes.fromhex("06082a8648ce3d030107")  # DER of the OID of P-256 (secp256r1)
BINDING = "python-pkcs11==0.10.1"

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
_counts = collections.Counter()  # operations done by tokens in this process, by kind


def operation_counts():
    """Operations the tokens did in this process: ``wrap``, ``unwrap``, ``sign``, ``login``,
    ``check``, ``generate`` (tests count them; a batch of values costs no wrap once its data key is
    cached)."""
    return dict(_counts)


def reset_operation_counts():
    _counts.clear()


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


def wrapping_aad(key_id, purpose):
    """What a wrapped key is bound to: its key id and purpose (``data-key``, ``index-key``...)."""
    return f"g2p_encryption|{purpose}|{key_id}".encode()


def format_wrapped(key_label, blob):
    return f"{WRAP_PREFIX}{b64url_encode(key_label.encode('utf-8'))}.{b64url_encode(blob)}"


def parse_wrapped(wrapped):
    """(label of the master key, nonce || ciphertext || tag) of a ``g2pk1.`` wrapped key."""
    if not isinstance(wrapped, str) or not wrapped.startswith(WRAP_PREFIX):
        raise InvalidCiphertextError("not a key wrapped by a PKCS#11 token (g2pk1)")
    label, dot, body = wrapped[len(WRAP_PREFIX) :].partition(".")
    try:
        label, blob = b64url_decode_strict(label).decode("utf-8"), b64url_decode_strict(body)
    except ValueError:
        raise InvalidCiphertextError("malformed wrapped key: bad base64url") from None
    if not dot or not label or len(blob) < NONCE_SIZE + 16:
        raise InvalidCiphertextError("malformed wrapped key")
    return label, blob


def key_reference(label):
    """An RFC 7512 PKCS#11 URI naming the private key ``label`` (what a signing key record holds)."""
    from urllib.parse import quote  # pylint: disable=import-outside-toplevel

    return f"pkcs11:object={quote(label, safe='')};type=private"


def label_of_reference(reference):
    from urllib.parse import unquote  # pylint: disable=import-outside-toplevel

    attributes = dict(
        part.split("=", 1) for part in (reference or "").removeprefix("pkcs11:").split(";") if "=" in part
    )
    if not (reference or "").startswith("pkcs11:") or "object" not in attributes:
        raise HsmKeyError("the key record does not name a key of a PKCS#11 token", service="PKCS#11")
    return unquote(attributes["object"])


class Token:
    """A PKCS#11 token as a provider names it: library, token label or slot id, user PIN.

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

    # Data keys ---------------------------------------------------------------------------------
    def wrap(self, key_label, key_id, secret, purpose):
        """``secret`` encrypted inside the token by its AES key ``key_label`` (generated there on
        first use), bound to ``key_id`` and ``purpose``: a ``g2pk1.`` string."""
        pkcs11 = binding()
        nonce = os.urandom(NONCE_SIZE)

        def encrypt(session):
            key = session.secret_key(key_label, create=True)
            return key.encrypt(
                bytes(secret),
                mechanism=pkcs11.Mechanism.AES_GCM,
                mechanism_param=pkcs11.GCMParams(nonce, wrapping_aad(key_id, purpose)),
            )

        return format_wrapped(key_label, nonce + self._call("C_Encrypt", encrypt, "wrap"))

    def unwrap(self, key_id, wrapped, purpose):
        """The secret of ``wrapped``, decrypted inside the token by the key that wrapped it."""
        pkcs11 = binding()
        key_label, blob = parse_wrapped(wrapped)

        def decrypt(session):
            key = session.secret_key(key_label)
            try:
                return key.decrypt(
                    blob[NONCE_SIZE:],
                    mechanism=pkcs11.Mechanism.AES_GCM,
                    mechanism_param=pkcs11.GCMParams(blob[:NONCE_SIZE], wrapping_aad(key_id, purpose)),
                )
            except (pkcs11.exceptions.EncryptedDataInvalid, pkcs11.exceptions.EncryptedDataLenRange):
                raise _unwrap_failed(key_id, key_label) from None
            except pkcs11.exceptions.GeneralError:
                # SoftHSM answers a failed GCM tag check with CKR_GENERAL_ERROR.
                raise _unwrap_failed(key_id, key_label) from None

        return bytes(self._call("C_Decrypt", decrypt, "unwrap"))

    def generate_master_key(self, key_label):
        """Make a new AES-256 key ``key_label`` in the token (refused when one exists)."""

        def generate(session):
            if session.find_key("secret", key_label) is not None:
                raise HsmKeyError(
                    f"a key labelled {key_label!r} exists already",
                    service=self.name,
                    endpoint="C_GenerateKey",
                )
            session.secret_key(key_label, create=True)

        self._call("C_GenerateKey", generate, "generate")

    def has_key(self, key_label, kind="secret"):
        return self._call("C_FindObjects", lambda session: session.find_key(kind, key_label) is not None)

    # Signing -----------------------------------------------------------------------------------
    def generate_signing_key(self, key_label, alg, common_name="g2p_encryption"):
        """Make a key pair ``key_label`` in the token (RS256: RSA-2048, ES256: P-256; private key
        sensitive and non-extractable) and return it as a ``jwk.ExternalSigningKey`` with a
        self-signed certificate (signed by the token)."""
        if alg not in jwk.SUPPORTED_ALGS:
            raise HsmError(f"unsupported signing algorithm {alg!r}", service=self.name)

        def generate(session):
            if session.find_key("private", key_label) is not None:
                raise HsmKeyError(
                    f"a private key labelled {key_label!r} exists already",
                    service=self.name,
                    endpoint="C_GenerateKeyPair",
                )
            return session.generate_key_pair(key_label, alg)

        public_key = self._call("C_GenerateKeyPair", generate, "generate")
        key = jwk.ExternalSigningKey(public_key, alg, self._signer(key_label, alg))
        return key.self_signed_certificate(common_name)

    def signing_key(self, key_label, alg, certificate_pem):
        """The signing key ``key_label`` as a ``jwk.ExternalSigningKey`` (its public half from its
        certificate: no token call until it signs)."""
        return jwk.ExternalSigningKey.from_certificate(certificate_pem, alg, self._signer(key_label, alg))

    def sign(self, key_label, alg, data):
        """The JWS signature of ``data`` by the private key ``key_label`` (RS256: PKCS#1 v1.5 with
        SHA-256; ES256: raw ``r || s`` of the SHA-256 digest)."""
        pkcs11 = binding()

        def sign(session):
            key = session.private_key(key_label)
            if alg == "ES256":
                return key.sign(hashlib.sha256(data).digest(), mechanism=pkcs11.Mechanism.ECDSA)
            return key.sign(data, mechanism=pkcs11.Mechanism.SHA256_RSA_PKCS)

        return bytes(self._call("C_Sign", sign, "sign"))

    def _signer(self, key_label, alg):
        return lambda data: self.sign(key_label, alg, data)

    # Checks ------------------------------------------------------------------------------------
    def check_present(self):
        """Raise ``HsmAbsentError`` unless the token of the session is still there (C_GetTokenInfo)."""
        pkcs11 = binding()

        def check(session):
            try:
                label = session.session.token.slot.get_token().label
            except pkcs11.exceptions.PKCS11Error as error:
                if type(error).__name__ in _LOST - {"DeviceRemoved", "TokenNotPresent"}:
                    raise
                raise self._error(HsmAbsentError, "C_GetTokenInfo", error, "the token is gone") from None
            if self.token_label and label != self.token_label:
                raise HsmAbsentError(
                    f"the slot now holds token {label!r}", service=self.name, endpoint="C_GetTokenInfo"
                )

        self._call("C_GetTokenInfo", check, "check")

    def describe(self):
        """Facts of the token for a connection test: label, manufacturer, model, serial."""

        def describe(session):
            token = session.session.token
            return {
                "label": token.label,
                "manufacturer": token.manufacturer_id,
                "model": token.model,
                "serial": token.serial.decode("ascii", "replace")
                if isinstance(token.serial, bytes)
                else str(token.serial),
            }

        return self._call("C_GetTokenInfo", describe)

    def key_facts(self, key_label, kind="secret"):
        """Attributes that tell how safe a key is: sensitive, extractable, local, never extractable."""
        pkcs11 = binding()
        attribute = pkcs11.Attribute

        def facts(session):
            key = session.private_key(key_label) if kind == "private" else session.secret_key(key_label)
            names = ("SENSITIVE", "EXTRACTABLE", "LOCAL", "NEVER_EXTRACTABLE", "ALWAYS_SENSITIVE")
            return {name.lower(): bool(key[getattr(attribute, name)]) for name in names}

        return self._call("C_GetAttributeValue", facts)

    # Sessions ----------------------------------------------------------------------------------
    def _call(self, function, operation, count=None):
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
            if count:
                _counts[count] += 1
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
        _counts["login"] += 1
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


def _unwrap_failed(key_id, key_label):
    return DecryptionError(
        f"the wrapped key {key_id} does not decrypt with the token's key {key_label!r}: another key "
        "under the same label, or a tampered wrapped key"
    )


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
            _check_unexportable(key, label, self.name)
        self._keys[(kind, label)] = key
        return key

    def secret_key(self, label, create=False):
        key = self.find_key("secret", label)
        if key is None and create:
            key = self._generate_master_key(label)
        if key is None:
            raise _missing_key(label, self.name, "AES")
        return key

    def private_key(self, label):
        key = self.find_key("private", label)
        if key is None:
            raise _missing_key(label, self.name, "private")
        return key

    def _generate_master_key(self, label):
        pkcs11 = binding()
        attribute = pkcs11.Attribute
        key = self.session.generate_key(
            pkcs11.KeyType.AES,
            MASTER_KEY_BITS,
            label=label,
            store=True,
            capabilities=pkcs11.MechanismFlag.ENCRYPT | pkcs11.MechanismFlag.DECRYPT,
            template={
                attribute.TOKEN: True,
                attribute.PRIVATE: True,
                attribute.SENSITIVE: True,
                attribute.EXTRACTABLE: False,
                attribute.MODIFIABLE: False,
                attribute.WRAP: False,
                attribute.UNWRAP: False,
                attribute.SIGN: False,
                attribute.VERIFY: False,
                attribute.DERIVE: False,
            },
        )
        _counts["generate"] += 1
        self._keys[("secret", label)] = key
        return key

    def generate_key_pair(self, label, alg):
        """Make a key pair ``label`` for ``alg``; return its public key (``cryptography``)."""
        pkcs11 = binding()
        attribute = pkcs11.Attribute
        public_template = {attribute.TOKEN: True, attribute.VERIFY: True, attribute.MODIFIABLE: False}
        private_template = {
            attribute.TOKEN: True,
            attribute.PRIVATE: True,
            attribute.SENSITIVE: True,
            attribute.EXTRACTABLE: False,
            attribute.MODIFIABLE: False,
            attribute.SIGN: True,
            attribute.DECRYPT: False,
            attribute.UNWRAP: False,
            attribute.DERIVE: False,
        }
        templates = {"label": label, "store": True, "capabilities": pkcs11.MechanismFlag.SIGN}
        templates.update(public_template=public_template, private_template=private_template)
        if alg == "RS256":
            public, private = self.session.generate_keypair(pkcs11.KeyType.RSA, RSA_BITS, **templates)
            public_key = rsa.RSAPublicNumbers(
                int.from_bytes(public[attribute.PUBLIC_EXPONENT], "big"),
                int.from_bytes(public[attribute.MODULUS], "big"),
            ).public_key()
        else:
            parameters = self.session.create_domain_parameters(
                pkcs11.KeyType.EC, {attribute.EC_PARAMS: P256_PARAMETERS}, local=True
            )
            public, private = parameters.generate_keypair(**templates)
            public_key = ec.EllipticCurvePublicKey.from_encoded_point(
                ec.SECP256R1(), _octet_string_value(public[attribute.EC_POINT])
            )
        _counts["generate"] += 1
        self._keys[("private", label)] = private
        return public_key


def _check_unexportable(key, label, name):
    pkcs11 = binding()
    if not key[pkcs11.Attribute.SENSITIVE] or key[pkcs11.Attribute.EXTRACTABLE]:
        raise HsmKeyError(
            f"key {label!r} can leave the token (not sensitive, or extractable): it is not used; "
            "make a sensitive, non-extractable key",
            service=name,
            endpoint="C_GetAttributeValue",
        )


def _missing_key(label, name, kind):
    return HsmKeyError(
        f"the token holds no {kind} key labelled {label!r}: another token, or the key was deleted; "
        "without it, what it wrapped or signed cannot be used",
        service=name,
        endpoint="C_FindObjects",
    )


def _octet_string_value(der):
    """The value of a DER OCTET STRING (how tokens give ``CKA_EC_POINT``), or ``der`` when raw."""
    der = bytes(der)
    if der[:1] == b"\x04" and len(der) > 2 and der[1] == len(der) - 2 and der[2:3] == b"\x04":
        return der[2:]
    if der[:1] == b"\x04" and der[1:2] == b"\x81" and der[2] == len(der) - 3:
        return der[3:]
    return der
