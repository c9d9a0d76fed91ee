"""PKCS#11 tokens against a real SoftHSM2: wrapping inside the token, unexportable keys, signing, faults."""

import json
import os
import threading

import jwt
import pytest
from cryptography import x509

from .. import jose, jwk
from .. import pkcs11 as p11
from ..errors import (
    DecryptionError,
    HsmAbsentError,
    HsmBusyError,
    HsmKeyError,
    HsmPinError,
    InvalidCiphertextError,
)
from ..pkcs11 import session as p11_session
from .softhsm import SoftHSM, missing

pytestmark = pytest.mark.skipif(bool(missing()), reason=missing() or "")

MAIN, OTHER, FAULTS, PINLESS = "g2p-main", "g2p-other", "g2p-faults", "g2p-pin"


@pytest.fixture(scope="module")
def hsm():
    with SoftHSM(MAIN, OTHER, FAULTS, PINLESS) as softhsm:
        yield softhsm


@pytest.fixture
def token(hsm):
    p11.reset_operation_counts()
    return hsm.token(MAIN)


def test_wrap_and_unwrap_inside_the_token(token):
    secret = os.urandom(32)
    wrapped = token.wrap("master-a", "key1", secret, "data-key")
    assert wrapped.startswith(p11.WRAP_PREFIX)
    assert p11.parse_wrapped(wrapped)[0] == "master-a"
    assert secret not in wrapped.encode() and secret.hex() not in wrapped
    assert token.unwrap("key1", wrapped, "data-key") == secret
    assert p11.operation_counts()["wrap"] == 1
    assert p11.operation_counts()["unwrap"] == 1


def test_wrapped_key_is_bound_to_its_key_id_and_purpose(token):
    wrapped = token.wrap("master-a", "key1", os.urandom(32), "data-key")
    with pytest.raises(DecryptionError, match="does not decrypt"):
        token.unwrap("key2", wrapped, "data-key")
    with pytest.raises(DecryptionError):
        token.unwrap("key1", wrapped, "index-key")
    with pytest.raises(InvalidCiphertextError):
        token.unwrap("key1", "g2pw1.not-ours", "data-key")


def test_master_key_is_generated_sensitive_and_never_leaves_the_token(hsm, token):
    token.wrap("master-b", "k", os.urandom(32), "data-key")
    facts = token.key_facts("master-b")
    assert facts == {
        "sensitive": True,
        "extractable": False,
        "local": True,
        "never_extractable": True,
        "always_sensitive": True,
    }
    pkcs11 = p11.binding()
    session = pkcs11.lib(hsm.library).get_token(token_label=MAIN).open(rw=True)
    try:
        master = session.get_key(object_class=pkcs11.ObjectClass.SECRET_KEY, label="master-b")
        pytest.raises(pkcs11.exceptions.AttributeSensitive, master.__getitem__, pkcs11.Attribute.VALUE)
        wrapping = session.generate_key(
            pkcs11.KeyType.AES,
            256,
            template={pkcs11.Attribute.WRAP: True, pkcs11.Attribute.EXTRACTABLE: True},
        )
        with pytest.raises(pkcs11.exceptions.KeyUnextractable):
            wrapping.wrap_key(master, mechanism=pkcs11.Mechanism.AES_KEY_WRAP_PAD)
        with pytest.raises(pkcs11.exceptions.PKCS11Error):
            master[pkcs11.Attribute.EXTRACTABLE] = True
    finally:
        session.close()


def test_an_extractable_key_under_the_label_is_refused(hsm, token):
    pkcs11 = p11.binding()
    session = pkcs11.lib(hsm.library).get_token(token_label=MAIN).open(rw=True)
    try:
        session.generate_key(
            pkcs11.KeyType.AES,
            256,
            label="exportable",
            store=True,
            template={pkcs11.Attribute.SENSITIVE: False, pkcs11.Attribute.EXTRACTABLE: True},
        )
    finally:
        session.close()
    with pytest.raises(HsmKeyError, match="can leave the token"):
        token.wrap("exportable", "k", os.urandom(32), "data-key")


def test_a_rotated_master_key_leaves_older_wrapped_keys_readable(token):
    old = token.wrap("master-r1", "k1", b"1" * 32, "data-key")
    token.generate_master_key("master-r2")
    new = token.wrap("master-r2", "k2", b"2" * 32, "data-key")
    assert token.unwrap("k1", old, "data-key") == b"1" * 32
    assert token.unwrap("k2", new, "data-key") == b"2" * 32
    with pytest.raises(HsmKeyError, match="exists already"):
        token.generate_master_key("master-r2")


def test_another_token_unwraps_nothing(hsm, token):
    wrapped = token.wrap("master-c", "k", os.urandom(32), "data-key")
    elsewhere = hsm.token(OTHER)
    with pytest.raises(HsmKeyError, match="holds no AES key labelled 'master-c'"):
        elsewhere.unwrap("k", wrapped, "data-key")
    elsewhere.generate_master_key("master-c")  # the same label, another key
    with pytest.raises(DecryptionError):
        elsewhere.unwrap("k", wrapped, "data-key")


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_signing_in_the_token_verifies_with_pyjwt_and_jwcrypto(token, alg):
    key = token.generate_signing_key(f"sign-{alg}", alg, common_name="test")
    assert key.kid == json.loads(json.dumps(key.public_jwk()))["kid"]
    certificate = x509.load_pem_x509_certificate(key.certificate_pem.encode())
    assert certificate.subject.rfc4514_string() == "CN=test"
    facts = token.key_facts(f"sign-{alg}", kind="private")
    assert facts["sensitive"] and not facts["extractable"] and facts["local"]

    again = token.signing_key(f"sign-{alg}", alg, key.certificate_pem)  # no token call until it signs
    p11.reset_operation_counts()
    voucher = jose.jws_sign(again, {"voucher": 1, "amount": 250}, include_certificate=True)
    assert p11.operation_counts() == {"sign": 1}
    jwks = jwk.public_jwks([key.public_jwk()])
    assert jose.jws_verify(voucher, jwks) == {"voucher": 1, "amount": 250}
    public = jwt.PyJWK(jwks["keys"][0]).key
    assert jwt.decode(voucher, public, algorithms=[alg]) == {"voucher": 1, "amount": 250}
    assert jwt.get_unverified_header(voucher)["kid"] == key.kid


def test_wrong_pin_is_named(hsm):
    with pytest.raises(HsmPinError, match="C_Login \\(CKR_PIN_INCORRECT\\): the token refused the user PIN"):
        hsm.token(PINLESS, pin="wrong-pin").wrap("m", "k", os.urandom(32), "data-key")
    with pytest.raises(HsmPinError, match="no user PIN"):
        p11.Token(hsm.library, PINLESS, pin="").wrap("m", "k", os.urandom(32), "data-key")


def test_pin_never_appears_in_errors_or_repr(hsm):
    token = hsm.token(PINLESS, pin="secret-pin-zq81")
    assert "zq81" not in repr(token)
    with pytest.raises(HsmPinError) as caught:
        token.wrap("m", "k", os.urandom(32), "data-key")
    assert "zq81" not in str(caught.value)


def test_absent_token_and_missing_library(hsm):
    with pytest.raises(
        HsmAbsentError, match="PKCS#11 token 'no-such-token' C_GetTokenInfo .*: the token is absent"
    ):
        hsm.token("no-such-token").wrap("m", "k", os.urandom(32), "data-key")
    with pytest.raises(HsmAbsentError, match="no PKCS#11 library at /nonexistent/libpkcs11.so"):
        p11.Token("/nonexistent/libpkcs11.so", MAIN, pin="x").wrap("m", "k", b"k" * 32, "data-key")


def test_lost_session_is_reopened_once(token):
    wrapped = token.wrap("master-s", "k", b"s" * 32, "data-key")
    p11_session._sessions[token._key()].session.close()  # the HSM dropped the session
    assert token.unwrap("k", wrapped, "data-key") == b"s" * 32
    assert p11.operation_counts()["login"] >= 1


def test_busy_token_is_named(token):
    token.wrap("master-busy", "k", b"b" * 32, "data-key")
    session = p11_session._sessions[token._key()]
    busy = p11.Token(token.library, MAIN, pin=token._pin, busy_timeout=0.05)
    held = threading.Event()
    release = threading.Event()

    def hold():
        with session.lock:
            held.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        held.wait(5)
        with pytest.raises(HsmBusyError, match="busy: another operation held its session"):
            busy.wrap("master-busy", "k", b"b" * 32, "data-key")
    finally:
        release.set()
        thread.join()


def test_busy_answer_of_the_token_is_named(token, monkeypatch):
    pkcs11 = p11.binding()
    token.wrap("master-busy2", "k", b"b" * 32, "data-key")

    def busy(*args, **kwargs):
        raise pkcs11.exceptions.SessionCount()

    monkeypatch.setattr(p11_session._Session, "secret_key", busy)
    with pytest.raises(HsmBusyError, match="CKR_SESSION_COUNT"):
        token.wrap("master-busy2", "k", b"b" * 32, "data-key")


def test_token_deleted_behind_our_back_is_absent(hsm):
    token = hsm.token(FAULTS)
    wrapped = token.wrap("master-f", "k", b"f" * 32, "data-key")
    token.check_present()
    hsm.delete_token(FAULTS)
    with pytest.raises(HsmAbsentError):
        token.check_present()
    with pytest.raises(HsmAbsentError, match="the token is absent"):
        token.unwrap("k", wrapped, "data-key")


def test_key_references_are_pkcs11_uris():
    reference = p11.key_reference("g2p sign;1")
    assert reference == "pkcs11:object=g2p%20sign%3B1;type=private"
    assert p11.label_of_reference(reference) == "g2p sign;1"
    with pytest.raises(HsmKeyError):
        p11.label_of_reference("g2pw1.xyz")
