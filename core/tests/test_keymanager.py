"""KeyManagerClient against the emulator, over real HTTP on 127.0.0.1."""

import base64
import hashlib
import json
import logging
import re
import secrets
import time
from datetime import datetime, timezone

import jwt
import pytest
from cryptography import x509

from ...emulator import DEFAULT_CLIENT_ID
from ..encoding import b64url_decode, b64url_encode
from ..errors import AuthenticationError, KeyManagerError, ServiceUnavailableError
from ..keymanager import mosip_timestamp
from ..monitoring import keymanager_stats
from .remote_helpers import (
    READER_CLIENT_ID,
    READER_SECRET,
    RecordingSession,
    keymanager_client,
    token_fetcher,
)

APP, REF = "REGISTRATION", "ENCRYPT"
SIGN_APP = "ID_REPO"
MOSIP_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
KEY_SPLITTER = b"#KEY_SPLITTER#"
# (salt, aad) per mode of §4.4, and the bytes each mode adds around the plaintext
SALT, AAD = secrets.token_urlsafe(), secrets.token_urlsafe()
MODES = {
    "A salt+aad": (SALT, AAD, 288 + 14 + 16),
    "A salt": (SALT, None, 288 + 14 + 16),
    "B default": (None, None, 6 + 288 + 14 + 48),
    "C aad": (None, AAD, 288 + 14 + 32),
}


pytestmark = pytest.mark.usefixtures("healthy_emulator")


@pytest.fixture
def client(emulator):
    return keymanager_client(emulator)


def jwks_from_certificates(certificates):
    """A JWKS as a verifier builds it from /getAllCertificates: one RS256 key per keyId."""
    keys = []
    for entry in certificates:
        certificate = x509.load_pem_x509_certificate(entry["certificateData"].encode())
        key = jwt.algorithms.RSAAlgorithm.to_jwk(certificate.public_key(), as_dict=True)
        keys.append(dict(key, kid=entry["keyId"], alg="RS256", use="sig"))
    return {"keys": keys}


def verify_with_pyjwt(token, certificates, payload=None):
    if payload is not None:  # a detached JWS: put the payload back in
        header, _, signature = token.split(".")
        token = f"{header}.{b64url_encode(payload)}.{signature}"
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWKSet.from_dict(jwks_from_certificates(certificates))[kid].key
    return jwt.decode(token, key=key, algorithms=["RS256"])


# -- encryption ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_round_trip_in_every_mode(client, mode):
    salt, aad, overhead = MODES[mode]
    for size in (1, 17, 1000, 65536):
        plaintext = secrets.token_bytes(size)
        ciphertext = client.encrypt(plaintext, APP, REF, salt=salt, aad=aad)
        assert "=" not in ciphertext
        assert len(b64url_decode(ciphertext)) == size + overhead
        assert client.decrypt(ciphertext, APP, REF, salt=salt, aad=aad) == plaintext


def test_empty_data_is_refused_by_keymanager(client):
    with pytest.raises(KeyManagerError) as caught:
        client.encrypt(b"", APP, REF)
    assert caught.value.error_code == "KER-KMS-005"
    assert "request.data" in str(caught.value)


def test_mosip_timestamp_format():
    assert (
        mosip_timestamp(datetime(2024, 5, 1, 10, 20, 30, 999999, tzinfo=timezone.utc))
        == "2024-05-01T10:20:30.999Z"
    )
    assert MOSIP_TIME.fullmatch(mosip_timestamp())


def test_request_envelope_and_cookie_on_the_wire(emulator):
    session = RecordingSession()
    client = keymanager_client(emulator, session=session)
    client.encrypt(b"data", APP, REF)
    sent = session.sent[-1]
    body = json.loads(sent.body)
    assert set(body) == {"id", "version", "requesttime", "metadata", "request"}
    assert MOSIP_TIME.fullmatch(body["requesttime"]) and body["metadata"] == {}
    assert MOSIP_TIME.fullmatch(body["request"]["timeStamp"])
    assert body["request"]["data"] == b64url_encode(b"data")
    assert "salt" not in body["request"] and "aad" not in body["request"]
    # The token goes in the cookie only (§1), with a request id beside it.
    assert sent.headers["Cookie"].startswith("Authorization=ey")
    assert "Authorization" not in sent.headers
    assert re.fullmatch(r"[0-9a-f]{32}", sent.headers["X-Request-ID"])


def test_errors_list_is_a_keymanager_error(client, emulator):
    with pytest.raises(KeyManagerError) as caught:
        client.encrypt(b"data", APP, "")
    error = caught.value
    assert (error.http_status, error.error_code, error.endpoint) == (200, "KER-CRY-011", "/encrypt")
    assert "Master Key" in str(error) and error.request_id in str(error)
    emulator.faults.error_next(1, "KER-KMS-025", "Key Not found", endpoint="/decrypt")
    with pytest.raises(KeyManagerError, match="KER-KMS-025"):
        client.decrypt("whatever", APP, REF)
    assert emulator.counts["/decrypt"] == 1  # a business error is not retried
    # Whatever types the answer holds, the error names them (no TypeError from the formatting).
    emulator.faults.error_next(1, 4012, None, endpoint="/decrypt")
    with pytest.raises(KeyManagerError, match="4012"):
        client.decrypt("whatever", APP, REF)


def test_ciphertext_of_another_application(client):
    ciphertext = client.encrypt(b"data", APP, REF)
    with pytest.raises(KeyManagerError) as caught:
        client.decrypt(ciphertext, "OPENG2P", REF)
    assert caught.value.error_code == "KER-KMS-024"


def test_rotation_keeps_old_ciphertext_readable(client, emulator):
    old = client.encrypt(b"before rotation", APP, REF)
    emulator.rotate(APP, REF)
    newer = client.encrypt(b"after one rotation", APP, REF)
    # The other way: expire now, the next /encrypt makes a new key (§7.8).
    client.call("PUT", "/revokeKey", {"applicationId": APP, "referenceId": REF}, idempotent=False)
    newest = client.encrypt(b"after a revocation", APP, REF)
    thumbprints = {b64url_decode(text)[:32] for text in (old, newer, newest)}
    assert len(thumbprints) == 3
    assert client.decrypt(old, APP, REF) == b"before rotation"
    assert client.decrypt(newer, APP, REF) == b"after one rotation"
    assert len(client.get_all_certificates(APP, REF)) >= 3


# -- authentication and transport failures -----------------------------------------------------


def test_401_renews_the_token_once(client, emulator):
    client.encrypt(b"warm up", APP, REF)
    emulator.faults.expire_tokens()
    assert client.decrypt(client.encrypt(b"data", APP, REF), APP, REF) == b"data"
    assert emulator.counts["token"] == 2
    assert emulator.counts["/encrypt"] == 3  # warm-up, 401, retry with the new token


def test_persistent_401_is_an_authentication_error(client, emulator):
    emulator.faults.issue_expired_tokens()
    with pytest.raises(AuthenticationError) as caught:
        client.encrypt(b"data", APP, REF)
    assert (caught.value.http_status, caught.value.error_code) == (401, "KER-ATH-401")
    assert emulator.counts == {"token": 2, "/encrypt": 2}


def test_403_without_the_role(emulator):
    client = keymanager_client(emulator, token_fetcher(emulator, READER_CLIENT_ID, READER_SECRET))
    with pytest.raises(AuthenticationError) as caught:
        client.encrypt(b"data", APP, REF)
    assert (caught.value.http_status, caught.value.error_code) == (403, "KER-ATH-403")
    assert emulator.counts == {"token": 1, "/encrypt": 1}


def test_keycloak_failure_reaches_the_caller(emulator):
    client = keymanager_client(emulator, token_fetcher(emulator, secret="stale secret"))
    with pytest.raises(AuthenticationError) as caught:
        client.encrypt(b"data", APP, REF)
    assert caught.value.service == "Keycloak"
    assert "/encrypt" not in emulator.counts


def test_5xx_is_retried_then_succeeds(client, emulator):
    emulator.faults.fail_next(2, status=503, endpoint="/encrypt")
    assert client.encrypt(b"data", APP, REF)
    assert emulator.counts["/encrypt"] == 3


def test_persistent_5xx_is_service_unavailable(client, emulator):
    emulator.faults.fail_next(10, status=500)
    with pytest.raises(ServiceUnavailableError) as caught:
        client.encrypt(b"data", APP, REF)
    assert (caught.value.http_status, caught.value.error_code) == (500, "KER-KMS-500")
    assert emulator.counts["/encrypt"] == 3  # retries=2


def test_forced_rotation_is_not_retried(client, emulator):
    emulator.faults.fail_next(1, status=503, endpoint="/revokeKey")
    with pytest.raises(ServiceUnavailableError):
        client.call("PUT", "/revokeKey", {"applicationId": APP, "referenceId": REF}, idempotent=False)
    assert emulator.counts["/revokeKey"] == 1


def test_timeout_is_service_unavailable(emulator):
    client = keymanager_client(emulator, timeout=0.25, retries=1)
    client.token_fetcher.get_token()
    emulator.faults.set_latency(1000, endpoint="/encrypt")
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError, match="within 0.25 s"):
        client.encrypt(b"data", APP, REF)
    assert time.monotonic() - started < 1.5
    assert emulator.counts["/encrypt"] == 2


@pytest.mark.parametrize(("mode", "cause"), [("close", "closed without an answer"), ("503", "HTTP 503")])
def test_keymanager_down(client, emulator, mode, cause):
    client.token_fetcher.get_token()
    emulator.faults.go_down(mode)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError, match=cause):
        client.encrypt(b"data", APP, REF)
    assert time.monotonic() - started < 1.5


# -- signing -------------------------------------------------------------------------------------


def test_jwt_sign_flags(client):
    payload = b'{"voucher":"V-1","amount":100}'
    attached = client.jwt_sign(payload, SIGN_APP)
    detached = client.jwt_sign(payload, SIGN_APP, include_payload=False)
    full = client.jwt_sign(payload, SIGN_APP, include_certificate=True, include_cert_hash=True)
    assert attached.split(".")[1] == b64url_encode(payload)
    assert detached.split(".")[1] == ""
    assert set(jwt.get_unverified_header(attached)) == {"kid", "alg"}
    header = jwt.get_unverified_header(full)
    certificate_der = base64.b64decode(header["x5c"][0])
    assert header["x5t#S256"] == b64url_encode(hashlib.sha256(certificate_der).digest())
    current = x509.load_pem_x509_certificate(client.get_certificate(SIGN_APP)["certificate"].encode())
    assert x509.load_der_x509_certificate(certificate_der) == current
    assert header["kid"] == client.get_all_certificates(SIGN_APP)[-1]["keyId"]


def test_jws_verifies_with_pyjwt_and_a_jwks_from_keymanager(client, emulator):
    payload = {"voucher": "V-2"}
    data = json.dumps(payload).encode()
    before = client.jwt_sign(data, SIGN_APP)
    detached = client.jwt_sign(data, SIGN_APP, include_payload=False)
    emulator.rotate(SIGN_APP)
    after = client.jwt_sign(data, SIGN_APP)
    certificates = client.get_all_certificates(SIGN_APP)
    assert jwt.get_unverified_header(before)["kid"] != jwt.get_unverified_header(after)["kid"]
    for token in (before, after):
        assert verify_with_pyjwt(token, certificates) == payload
    assert verify_with_pyjwt(detached, certificates, payload=data) == payload


def test_jwt_verify(client, emulator):
    data = b'{"a":1}'
    token = client.jwt_sign(data, SIGN_APP)
    assert client.jwt_verify(token, SIGN_APP)["signatureValid"] is True
    detached = client.jwt_sign(data, SIGN_APP, include_payload=False)
    assert client.jwt_verify(detached, SIGN_APP, actual_data=data)["signatureValid"] is True
    assert client.jwt_verify(detached, SIGN_APP, actual_data=b'{"a":2}')["signatureValid"] is False
    # After a rotation KeyManager verifies with the current key only, unless told the certificate.
    old_certificate = client.get_certificate(SIGN_APP)["certificate"]
    emulator.rotate(SIGN_APP)
    assert client.jwt_verify(token, SIGN_APP)["signatureValid"] is False
    assert client.jwt_verify(token, SIGN_APP, certificate_data=old_certificate)["signatureValid"] is True


# -- query strings, logs, monitoring -------------------------------------------------------------


def test_certificate_query_strings(client, emulator):
    client.encrypt(b"make the base key", APP, REF)
    masters = client.get_all_certificates(APP)
    bases = client.get_all_certificates(APP, REF)
    client.get_certificate(APP, "")
    paths = [entry["path"] for entry in emulator.requests if "ertificate" in entry["path"]]
    assert paths == [
        "/v1/keymanager/getAllCertificates?applicationId=REGISTRATION",
        "/v1/keymanager/getAllCertificates?applicationId=REGISTRATION&referenceId=ENCRYPT",
        "/v1/keymanager/getCertificate?applicationId=REGISTRATION",
    ]

    def common_name(entry):
        certificate = x509.load_pem_x509_certificate(entry["certificateData"].encode())
        return certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value

    assert all("(REGISTRATION)" in common_name(entry) for entry in masters)
    assert {common_name(entry) for entry in bases} == {"REGISTRATION-ENCRYPT"}


def test_log_lines_have_request_ids_and_timings_but_no_token(client, emulator, caplog):
    caplog.set_level(logging.DEBUG)
    client.encrypt(b"secret registrant data", APP, REF)
    emulator.faults.error_next(1, "KER-CRY-011", "Not Allowed")
    with pytest.raises(KeyManagerError):
        client.encrypt(b"data", APP, REF)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("KeyManager ")]
    ok = re.fullmatch(r"KeyManager /encrypt answered 200 in \d+ ms \(request ([0-9a-f]{32})\)", lines[0])
    assert ok and ok.group(1) == emulator.requests[-2]["request_id"]
    assert re.fullmatch(
        r"KeyManager /encrypt answered 200 in \d+ ms with KER-CRY-011 \(request [0-9a-f]{32}\)", lines[1]
    )
    token = client.token_fetcher.get_token()
    for forbidden in (
        token,
        token.split(".")[2],
        "secret registrant data",
        b64url_encode(b"secret registrant data"),
    ):
        assert forbidden not in caplog.text


def test_monitoring_counters(client, emulator):
    client.encrypt(b"data", APP, REF)
    emulator.faults.fail_next(1, status=503, endpoint="/encrypt")
    client.encrypt(b"data", APP, REF)
    emulator.faults.error_next(1, "KER-CRY-011", "Not Allowed")
    with pytest.raises(KeyManagerError):
        client.encrypt(b"data", APP, REF)
    stats = keymanager_stats(emulator.keymanager_url)
    encrypt = stats["endpoints"]["/encrypt"]
    assert (stats["calls"], stats["errors"]) == (4, 2)
    assert encrypt["errors"] == {"unavailable": 1, "keymanager": 1}
    assert encrypt["max_ms"] >= encrypt["avg_ms"] > 0
    assert "KER-CRY-011" in encrypt["last_error"]
    assert DEFAULT_CLIENT_ID not in json.dumps(stats)
