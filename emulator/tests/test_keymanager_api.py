"""The emulator checks and answers what KeyManager 1.2 checks and answers (KEYMANAGER_API.md §1-§9)."""

import base64
import json
import re

import pytest

from ..keystore import key_id, unique_identifier
from .common import APP, b64url, b64url_decode, call, crypto_request, error_of, mosip_now, ok

MOSIP_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


# -- authentication (§1) -------------------------------------------------------------------------


def test_token_only_from_a_cookie(emulator):
    token = emulator.issue_token()
    status, body = call(
        emulator,
        "POST",
        "/encrypt",
        crypto_request(b"x"),
        token=token,
        cookie=None,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert status == 401
    assert body["errors"] == [{"errorCode": "KER-ATH-401", "message": "Authentication Failed"}]
    # Any cookie whose name contains "Authorization" is read.
    assert ok(emulator, "POST", "/encrypt", crypto_request(b"x"), cookie="X-Authorization-Token")["data"]


def test_forged_malformed_and_expired_tokens_are_401(emulator):
    token = emulator.issue_token()
    header, payload, signature = token.split(".")
    claims = json.loads(b64url_decode(payload))
    claims["realm_access"]["roles"].append("GLOBAL_ADMIN")
    forged = f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"
    for bad in (forged, "not-a-jwt", token[:-4] + "AAAA"):
        assert call(emulator, "POST", "/encrypt", crypto_request(b"x"), token=bad)[0] == 401
    emulator.faults.issue_expired_tokens()
    assert call(emulator, "POST", "/encrypt", crypto_request(b"x"), token=emulator.issue_token())[0] == 401
    emulator.faults.issue_expired_tokens(False)
    fresh = emulator.issue_token()
    emulator.faults.expire_tokens()
    assert call(emulator, "GET", "/getCertificate", token=fresh, params={"applicationId": APP})[0] == 401


def test_role_is_required(emulator):
    token = emulator.issue_token("reader")
    status, code, message = error_of(emulator, "POST", "/encrypt", crypto_request(b"x"), token=token)
    assert (status, code, message) == (403, "KER-ATH-403", "Forbidden")


# -- envelope and validation (§2, §4.1) ----------------------------------------------------------


def test_response_envelope(emulator):
    status, body = call(emulator, "POST", "/encrypt", crypto_request(b"x"))
    assert status == 200
    assert list(body) == ["id", "version", "responsetime", "metadata", "response", "errors"]
    assert (body["id"], body["version"], body["metadata"], body["errors"]) == (
        "mosip.test",
        "1.0",
        None,
        None,
    )
    assert MOSIP_TIME.fullmatch(body["responsetime"])
    status, body = call(emulator, "GET", "/getCertificate", params={"applicationId": APP})
    assert (body["id"], body["version"]) == (None, None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"timeStamp": "2024-05-01T10:20:30Z"}, "request.timeStamp"),
        ({"timeStamp": None}, "request.timeStamp must not be null"),
        ({"data": ""}, "request.data should not be null or empty"),
        ({"applicationId": " "}, "request.applicationId should not be null or empty"),
        ({"salt": ""}, "request.salt should not be empty"),
        ({"aad": " "}, "request.aad should not be empty"),
    ],
)
def test_bean_validation_is_kms_005(emulator, change, message):
    request = dict(crypto_request(b"data"), **change)
    status, code, text = error_of(emulator, "POST", "/encrypt", request)
    assert (status, code) == (200, "KER-KMS-005")
    assert text.startswith(message)


def test_bad_requesttime_and_missing_request(emulator):
    envelope = {
        "id": "x",
        "version": "1",
        "requesttime": "2024-05-01T10:20:30",
        "request": crypto_request(b"x"),
    }
    assert error_of(emulator, "POST", "/encrypt", json=envelope)[1] == "KER-KMS-005"
    envelope = {"id": "x", "version": "1", "requesttime": mosip_now()}
    assert error_of(emulator, "POST", "/encrypt", json=envelope)[1:] == (
        "KER-KMS-005",
        "request must not be null",
    )


# -- /encrypt and /decrypt (§4) ------------------------------------------------------------------


def test_encrypt_refuses_master_keys(emulator):
    for reference_id in ("", "  "):
        status, code, message = error_of(
            emulator, "POST", "/encrypt", crypto_request(b"x", APP, reference_id)
        )
        assert (status, code) == (200, "KER-CRY-011")
        assert (
            message
            == "Not Allowed to preform encryption with Master Key. Use Base/Encrypt key to encrypt data."
        )
    assert error_of(emulator, "POST", "/encrypt", crypto_request(b"x", "KERNEL", "SIGN"))[1] == "KER-CRY-011"


def test_decrypt_errors(emulator):
    ciphertext = b64url_decode(ok(emulator, "POST", "/encrypt", crypto_request(b"secret"))["data"])
    assert ciphertext.startswith(b"VER_R2")  # mode B: header, then the thumbprint
    unknown_thumbprint = b64url(ciphertext[:6] + bytes(32) + ciphertext[38:])
    tampered = b64url(ciphertext[:-1] + bytes([ciphertext[-1] ^ 1]))
    cases = {
        unknown_thumbprint: "KER-KMS-025",
        tampered: "KER-FSE-004",
        b64url(b"no splitter in here"): "KER-CRY-003",
        "not base64 !": "KER-CRY-003",
    }
    for data, expected in cases.items():
        assert error_of(emulator, "POST", "/decrypt", crypto_request(data))[1] == expected
    # The key of the thumbprint belongs to REGISTRATION, not OPENG2P.
    assert (
        error_of(emulator, "POST", "/decrypt", crypto_request(b64url(ciphertext), "OPENG2P"))[1]
        == "KER-KMS-024"
    )


def test_keys_need_a_key_policy(emulator):
    assert error_of(emulator, "POST", "/encrypt", crypto_request(b"x", "NO_POLICY"))[1] == "KER-KMS-002"
    assert error_of(emulator, "POST", "/decrypt", crypto_request("eA", "NO_POLICY"))[1] == "KER-CRY-012"
    assert error_of(emulator, "POST", "/encrypt", crypto_request(b"x", "ROOT", "ENCRYPT"))[1] == "KER-KMS-016"


def test_standard_base64_and_padding_are_accepted(emulator):
    data = base64.b64encode(b"\xfb\xff\xfe padded").decode()  # '+', '/' and '='
    ciphertext = ok(emulator, "POST", "/encrypt", crypto_request(data))["data"]
    assert "=" not in ciphertext
    plaintext = ok(emulator, "POST", "/decrypt", crypto_request(ciphertext))["data"]
    assert b64url_decode(plaintext) == b"\xfb\xff\xfe padded"


def test_lazy_keys_and_rotation_by_revocation(emulator):
    assert ok(
        emulator, "GET", "/getAllCertificates", params={"applicationId": "OPENG2P", "referenceId": "LAZY"}
    ) == {"allCertificates": []}  # listing never creates a base key
    first = ok(emulator, "POST", "/encrypt", crypto_request(b"one", "OPENG2P", "LAZY"))["data"]
    ok(emulator, "PUT", "/revokeKey", {"applicationId": "OPENG2P", "referenceId": "LAZY"})
    second = ok(emulator, "POST", "/encrypt", crypto_request(b"two", "OPENG2P", "LAZY"))["data"]
    assert b64url_decode(first)[:38] != b64url_decode(second)[:38]
    listed = ok(
        emulator, "GET", "/getAllCertificates", params={"applicationId": "OPENG2P", "referenceId": "LAZY"}
    )
    assert len(listed["allCertificates"]) == 2
    decrypted = ok(emulator, "POST", "/decrypt", crypto_request(first, "OPENG2P", "LAZY"))["data"]
    assert b64url_decode(decrypted) == b"one"
    revoke_sign = {"applicationId": "KERNEL", "referenceId": "SIGN"}
    assert error_of(emulator, "PUT", "/revokeKey", revoke_sign)[1] == "KER-KMS-021"


# -- signing (§5) and certificates (§7) ----------------------------------------------------------


def test_kid_formula_of_the_spec():
    from datetime import date

    uni = unique_identifier("ID_REPO", "", date(2024, 5, 1))
    assert uni == "4997BA53F368877D079C9ED2A27BDAC6F7EF479F"
    assert key_id(uni) == "Gcp3Bq7QbIaCIoBwvpMSe3AKJaZHNy5mTGAAU58GWVk"


def test_jwt_sign_defaults_and_reference_rules(emulator):
    request = {"dataToSign": b64url(b'{"a":1}'), "applicationId": "ID_REPO", "referenceId": ""}
    signed = ok(emulator, "POST", "/jwtSign", request)["jwtSignedData"]
    header_segment, payload_segment, _ = signed.split(".")
    assert payload_segment == ""  # includePayload defaults to false: detached
    assert list(json.loads(b64url_decode(header_segment))) == ["kid", "alg"]
    kids = [
        c["keyId"]
        for c in ok(emulator, "GET", "/getAllCertificates", params={"applicationId": "ID_REPO"})[
            "allCertificates"
        ]
    ]
    assert json.loads(b64url_decode(header_segment))["kid"] == kids[-1]
    assert error_of(emulator, "POST", "/jwtSign", dict(request, referenceId="ENCRYPT"))[1] == "KER-KMS-020"
    del request["referenceId"]  # omitted: a NullPointerException in 1.2
    assert error_of(emulator, "POST", "/jwtSign", request)[:2] == (500, "KER-KMS-500")
    assert (
        error_of(emulator, "POST", "/jwtSign", {"applicationId": "ID_REPO", "referenceId": ""})[1]
        == "KER-KMS-005"
    )


def test_jwt_verify_picks_x5c_then_current_certificate(emulator):
    request = {
        "dataToSign": b64url(b'{"b":2}'),
        "applicationId": "KERNEL",
        "referenceId": "SIGN",
        "includePayload": True,
    }
    plain = ok(emulator, "POST", "/jwtSign", request)["jwtSignedData"]
    with_x5c = ok(emulator, "POST", "/jwtSign", dict(request, includeCertificate=True))["jwtSignedData"]
    verify = {"applicationId": "KERNEL", "referenceId": "SIGN"}
    assert ok(emulator, "POST", "/jwtVerify", dict(verify, jwtSignatureData=plain)) == {
        "signatureValid": True,
        "message": "Validation Successful",
        "trustValid": "TRUST_NOT_VERIFIED",
    }
    emulator.rotate("KERNEL", "SIGN")
    assert ok(emulator, "POST", "/jwtVerify", dict(verify, jwtSignatureData=plain))["signatureValid"] is False
    assert (
        ok(emulator, "POST", "/jwtVerify", dict(verify, jwtSignatureData=with_x5c))["signatureValid"] is True
    )
    garbage = dict(verify, jwtSignatureData="bm90IGpzb24.e30.AAAA")
    assert error_of(emulator, "POST", "/jwtVerify", garbage)[1] == "KER-JWS-106"


def test_certificates_and_master_key_generation(emulator):
    current = ok(emulator, "GET", "/getCertificate", params={"applicationId": "REGISTRATION"})
    assert current["certificate"].startswith("-----BEGIN CERTIFICATE-----\n")
    assert MOSIP_TIME.fullmatch(current["issuedAt"]) and MOSIP_TIME.fullmatch(current["expiryAt"])
    same = ok(
        emulator,
        "POST",
        "/generateMasterKey/CERTIFICATE",
        {"applicationId": "REGISTRATION", "referenceId": ""},
    )
    assert same["certificate"] == current["certificate"]
    csr = ok(emulator, "POST", "/generateMasterKey/csr", {"applicationId": "REGISTRATION", "force": True})
    assert csr["certificate"] is None and csr["certSignRequest"].startswith(
        "-----BEGIN CERTIFICATE REQUEST-----"
    )
    listed = ok(emulator, "GET", "/getAllCertificates", params={"applicationId": "REGISTRATION"})[
        "allCertificates"
    ]
    assert len(listed) == 2 and listed[0]["certificateData"] == current["certificate"]
    bad_type = error_of(emulator, "POST", "/generateMasterKey/PDF", {"applicationId": "REGISTRATION"})
    assert bad_type == (500, "KER-KMS-500", "Invalid Response Object Type.")
    bad_ref = {"applicationId": "REGISTRATION", "referenceId": "ENCRYPT"}
    assert error_of(emulator, "POST", "/generateMasterKey/CERTIFICATE", bad_ref)[1] == "KER-KMS-010"
    assert error_of(emulator, "GET", "/getCertificate", params={"referenceId": "X"})[1] == "KER-KMS-005"


def test_generate_master_key_rotates_on_force(emulator):
    # Moved from the client's tests with KeyManagerClient.generate_master_key, which only they used.
    def all_certificates():
        query = {"applicationId": "OPENG2P"}
        return ok(emulator, "GET", "/getAllCertificates", params=query)["allCertificates"]

    def generate(**force):
        request = {"applicationId": "OPENG2P", "referenceId": "", **force}
        return ok(emulator, "POST", "/generateMasterKey/CERTIFICATE", request)

    before = all_certificates()
    same = generate()
    rotated = generate(force=True)
    after = all_certificates()
    assert same["certificate"] == before[-1]["certificateData"]
    assert rotated["certificate"] == after[-1]["certificateData"] != same["certificate"]
    assert len(after) == len(before) + 1


def test_unknown_endpoint_and_wrong_method(emulator):
    assert call(emulator, "GET", "/nowhere")[0] == 404
    assert call(emulator, "GET", "/encrypt")[0] == 405
