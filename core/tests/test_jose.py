import base64
import datetime
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws

from ..errors import G2PCryptoError, SignatureError
from ..jose import jws_payload, jws_sign, jws_verify, parse_jws
from ..jwk import SigningKey, jwk_from_certificate, public_jwks

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
CLAIMS = {"sub": "voucher-42", "amount": 1500, "name": "Ñandú", "exp": int(time.time()) + 3600}


@pytest.fixture(scope="module")
def rs256_key():
    return SigningKey.generate("RS256", common_name="test-rs")


@pytest.fixture(scope="module")
def es256_key():
    return SigningKey.generate("ES256", common_name="test-es")


@pytest.fixture(params=["RS256", "ES256"])
def signing_key(request, rs256_key, es256_key):
    return {"RS256": rs256_key, "ES256": es256_key}[request.param]


@pytest.fixture
def jwks(rs256_key, es256_key):
    return public_jwks([rs256_key.public_jwk(), es256_key.public_jwk()])


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def header_of(token):
    return json.loads(b64url_decode(token.split(".")[0]))


def test_sign_and_verify_claims(signing_key, jwks):
    token = jws_sign(signing_key, CLAIMS)
    header = header_of(token)
    assert header == {"alg": signing_key.alg, "kid": signing_key.kid, "typ": "JWT"}
    assert jws_verify(token, jwks) == CLAIMS


def test_str_and_bytes_payloads_come_back_as_str(signing_key, jwks):
    token = jws_sign(signing_key, "plain text ✓")
    assert "typ" not in header_of(token)
    assert jws_verify(token, jwks) == "plain text ✓"
    assert jws_verify(jws_sign(signing_key, b"raw bytes"), jwks) == "raw bytes"


def test_dict_serialization_is_deterministic(rs256_key):
    reordered = dict(reversed(list(CLAIMS.items())))
    first = jws_sign(rs256_key, CLAIMS).split(".")[1]
    assert first == jws_sign(rs256_key, reordered).split(".")[1]
    assert json.loads(b64url_decode(first)) == CLAIMS


def test_detached_token_verifies_only_with_its_payload(signing_key, jwks):
    token = jws_sign(signing_key, CLAIMS, include_payload=False)
    protected, payload, signature = token.split(".")
    assert payload == "" and protected and signature
    assert jws_verify(token, jwks, payload=CLAIMS) == CLAIMS
    serialized = json.dumps(CLAIMS, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
    assert jws_verify(token, jwks, payload=serialized) == CLAIMS
    with pytest.raises(SignatureError, match="payload must be given"):
        jws_verify(token, jwks)
    with pytest.raises(SignatureError):
        jws_verify(token, jwks, payload={**CLAIMS, "amount": 1501})


def test_a_payload_given_with_an_attached_token_must_be_the_same(rs256_key, jwks):
    token = jws_sign(rs256_key, CLAIMS)
    assert jws_verify(token, jwks, payload=CLAIMS) == CLAIMS
    with pytest.raises(SignatureError, match="differs"):
        jws_verify(token, jwks, payload={**CLAIMS, "amount": 1})


def test_include_certificate_puts_the_key_certificate_in_x5c(signing_key, jwks):
    token = jws_sign(signing_key, CLAIMS, include_certificate=True)
    header = header_of(token)
    certificate = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    assert jwcrypto_jwk.JWK.from_pyca(certificate.public_key()).thumbprint() == signing_key.kid
    assert "x5t#S256" not in header
    assert jws_verify(token, jwks) == CLAIMS


def test_include_cert_hash_puts_the_sha256_of_the_certificate(signing_key, jwks):
    token = jws_sign(signing_key, CLAIMS, include_cert_hash=True)
    header = header_of(token)
    der = x509.load_pem_x509_certificate(signing_key.certificate_pem.encode()).public_bytes(
        serialization.Encoding.DER
    )
    assert header["x5t#S256"] == b64url_encode(hashlib.sha256(der).digest())
    assert "x5c" not in header
    assert jws_verify(token, jwks) == CLAIMS


def test_kid_is_the_rfc7638_thumbprint(signing_key):
    public = signing_key.public_jwk()
    members = ("e", "kty", "n") if public["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canonical = json.dumps({name: public[name] for name in members}, separators=(",", ":"), sort_keys=True)
    assert signing_key.kid == b64url_encode(hashlib.sha256(canonical.encode()).digest())
    assert public["kid"] == signing_key.kid


def test_public_jwk_has_public_members_and_certificate_only(signing_key):
    public = signing_key.public_jwk()
    assert not PRIVATE_MEMBERS & public.keys()
    key_members = {"n", "e"} if signing_key.alg == "RS256" else {"crv", "x", "y"}
    assert key_members <= public.keys()
    assert (public["alg"], public["use"]) == (signing_key.alg, "sig")
    der = base64.b64decode(public["x5c"][0])
    assert public["x5t#S256"] == b64url_encode(hashlib.sha256(der).digest())
    assert der == x509.load_pem_x509_certificate(signing_key.certificate_pem.encode()).public_bytes(
        serialization.Encoding.DER
    )


@pytest.mark.parametrize("options", [{}, {"include_certificate": True, "include_cert_hash": True}])
def test_pyjwt_verifies_our_tokens_with_the_published_jwks(signing_key, jwks, options):
    token = jws_sign(signing_key, CLAIMS, **options)
    header = jwt.get_unverified_header(token)
    jwk_dict = next(key for key in jwks["keys"] if key["kid"] == header["kid"])
    verifier = jwt.PyJWK(jwk_dict)
    assert jwt.decode(token, verifier.key, algorithms=[signing_key.alg]) == CLAIMS
    other = SigningKey.generate(signing_key.alg)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, jwt.PyJWK(other.public_jwk()).key, algorithms=[signing_key.alg])


def test_pyjwt_verifies_a_detached_token_once_the_payload_is_put_back(rs256_key, jwks):
    """RFC 7515 appendix F: a detached JWS is checked by reinserting the base64url payload."""
    protected, _empty, signature = jws_sign(rs256_key, b"detached document", include_payload=False).split(".")
    attached = f"{protected}.{b64url_encode(b'detached document')}.{signature}"
    key = jwt.PyJWK(jwks["keys"][0]).key
    assert jwt.PyJWS().decode(attached, key, algorithms=["RS256"]) == b"detached document"


@pytest.mark.parametrize("part", [0, 1, 2])
def test_tampering_with_any_part_is_rejected(signing_key, jwks, part):
    token = jws_sign(signing_key, CLAIMS)
    parts = token.split(".")
    if part == 0:
        parts[0] = b64url_encode(json.dumps({**header_of(token), "typ": "JOSE"}).encode())
    elif part == 1:
        parts[1] = b64url_encode(json.dumps({**CLAIMS, "amount": 999999}).encode())
    else:
        signature = bytearray(b64url_decode(parts[2]))
        signature[len(signature) // 2] ^= 0x01
        parts[2] = b64url_encode(bytes(signature))
    with pytest.raises(SignatureError, match="does not verify"):
        jws_verify(".".join(parts), jwks)


def test_a_kid_absent_from_the_jwks_is_rejected(signing_key):
    other = SigningKey.generate("ES256")
    token = jws_sign(signing_key, CLAIMS)
    with pytest.raises(SignatureError, match="unknown key"):
        jws_verify(token, public_jwks([other.public_jwk()]))


def test_a_token_naming_our_kid_but_signed_by_another_key_is_rejected(rs256_key, jwks):
    intruder = jwcrypto_jwk.JWK.generate(kty="RSA", size=2048)
    forged = jwcrypto_jws.JWS(json.dumps(CLAIMS).encode())
    forged.add_signature(intruder, alg="RS256", protected=json.dumps({"alg": "RS256", "kid": rs256_key.kid}))
    with pytest.raises(SignatureError, match="does not verify"):
        jws_verify(forged.serialize(compact=True), jwks)


def test_alg_none_is_rejected(rs256_key, jwks):
    header = b64url_encode(json.dumps({"alg": "none", "kid": rs256_key.kid}).encode())
    payload = b64url_encode(json.dumps(CLAIMS).encode())
    with pytest.raises(SignatureError, match="alg none"):
        jws_verify(f"{header}.{payload}.", jwks)


def test_hmac_with_the_public_key_as_secret_is_rejected(rs256_key, jwks):
    """The classic algorithm confusion: HS256 keyed with the published RSA key."""
    header = b64url_encode(json.dumps({"alg": "HS256", "kid": rs256_key.kid}).encode())
    payload = b64url_encode(json.dumps(CLAIMS).encode())
    secret = rs256_key.certificate_pem.encode()
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    with pytest.raises(SignatureError, match="does not match key"):
        jws_verify(f"{header}.{payload}.{b64url_encode(signature)}", jwks)


def test_an_alg_other_than_the_key_alg_is_rejected(es256_key, jwks):
    token = jws_sign(es256_key, CLAIMS)
    for entry in jwks["keys"]:
        if entry["kid"] == es256_key.kid:
            entry["alg"] = "ES384"
    with pytest.raises(SignatureError, match="does not match key"):
        jws_verify(token, jwks)


@pytest.mark.parametrize("garbage", ["", "a.b", "a.b.c.d", "!!!.e30.sig", b"\xff.\xff.\xff", None])
def test_malformed_tokens_are_signature_errors(jwks, garbage):
    with pytest.raises(SignatureError):
        jws_verify(garbage, jwks)


def test_expired_token_is_rejected_and_leeway_applies(rs256_key, jwks):
    token = jws_sign(rs256_key, {"sub": "x", "exp": 1_000_000})
    with pytest.raises(SignatureError, match="token expired"):
        jws_verify(token, jwks)
    with pytest.raises(SignatureError, match="token expired"):
        jws_verify(token, jwks, now=1_000_000)
    assert jws_verify(token, jwks, now=999_999) == {"sub": "x", "exp": 1_000_000}
    assert jws_verify(token, jwks, now=1_000_030, leeway=60)["sub"] == "x"


def test_not_before_and_malformed_time_claims_are_rejected(rs256_key, jwks):
    future = jws_sign(rs256_key, {"sub": "x", "nbf": time.time() + 600})
    with pytest.raises(SignatureError, match="not yet valid"):
        jws_verify(future, jwks)
    assert jws_verify(future, jwks, leeway=3600)["sub"] == "x"
    with pytest.raises(SignatureError, match="not a number"):
        jws_verify(jws_sign(rs256_key, {"exp": "tomorrow"}), jwks)


def test_public_jwks_removes_private_members_and_refuses_secret_keys(rs256_key):
    private_jwk = jwcrypto_jwk.JWK.from_pem(rs256_key.private_pem()).export_private(as_dict=True)
    assert {"d", "p", "q"} <= private_jwk.keys()
    published = public_jwks([{**private_jwk, "kid": "leaky"}, rs256_key.public_jwk(), rs256_key.public_jwk()])
    assert len(published["keys"]) == 2
    for entry in published["keys"]:
        assert not PRIVATE_MEMBERS & entry.keys()
    with pytest.raises(G2PCryptoError):
        public_jwks([{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}])


def test_private_pem_round_trip_keeps_kid_and_certificate(signing_key, jwks):
    pem = signing_key.private_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = SigningKey.from_private_pem(pem, signing_key.alg, signing_key.certificate_pem)
    assert (loaded.kid, loaded.certificate_pem) == (signing_key.kid, signing_key.certificate_pem)
    assert loaded.public_jwk() == signing_key.public_jwk()
    assert jws_verify(jws_sign(loaded, CLAIMS), jwks) == CLAIMS
    assert SigningKey.from_private_pem(pem, signing_key.alg).certificate_pem is None
    assert "PRIVATE" not in repr(loaded) and signing_key.kid in repr(loaded)


def test_from_private_pem_refuses_a_foreign_certificate_or_the_wrong_alg(rs256_key, es256_key):
    with pytest.raises(G2PCryptoError, match="certificate does not belong"):
        SigningKey.from_private_pem(rs256_key.private_pem(), "RS256", es256_key.certificate_pem)
    with pytest.raises(G2PCryptoError, match="ES256 needs"):
        SigningKey.from_private_pem(rs256_key.private_pem(), "ES256")
    with pytest.raises(G2PCryptoError):
        SigningKey.from_private_pem(b"not a pem", "RS256")
    with pytest.raises(G2PCryptoError, match="unsupported"):
        SigningKey.generate("HS256")


def test_generated_certificate_is_self_signed_sha256_for_three_years(signing_key):
    certificate = x509.load_pem_x509_certificate(signing_key.certificate_pem.encode())
    common_name = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert common_name in ("test-rs", "test-es")
    assert certificate.issuer == certificate.subject
    assert isinstance(certificate.signature_hash_algorithm, hashes.SHA256)
    lifetime = certificate.not_valid_after - certificate.not_valid_before
    assert datetime.timedelta(days=3 * 365) <= lifetime <= datetime.timedelta(days=3 * 366)


def test_signing_with_a_certificate_needs_one():
    key = SigningKey.from_private_pem(SigningKey.generate("ES256").private_pem(), "ES256")
    with pytest.raises(G2PCryptoError, match="no certificate"):
        jws_sign(key, CLAIMS, include_certificate=True)


@pytest.mark.parametrize("encoding", ["pem-str", "pem-bytes", "der", "x5c"])
def test_jwk_from_certificate_verifies_tokens_of_that_key(signing_key, encoding):
    pem = signing_key.certificate_pem
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    given = {"pem-str": pem, "pem-bytes": pem.encode(), "der": der, "x5c": base64.b64encode(der).decode()}
    public = jwk_from_certificate(given[encoding], kid=signing_key.kid, use="sig", alg=signing_key.alg)
    assert public["kid"] == signing_key.kid and public["use"] == "sig"
    assert public["x5t"] == b64url_encode(hashlib.sha1(der).digest())
    assert public["x5t#S256"] == b64url_encode(hashlib.sha256(der).digest())
    assert not PRIVATE_MEMBERS & public.keys()
    assert jws_verify(jws_sign(signing_key, CLAIMS), {"keys": [public]}) == CLAIMS
    other = jwk_from_certificate(
        SigningKey.generate(signing_key.alg).certificate_pem, signing_key.kid, "sig", alg=signing_key.alg
    )
    with pytest.raises(SignatureError, match="does not verify"):
        jws_verify(jws_sign(signing_key, CLAIMS), {"keys": [other]})


def test_jwk_from_certificate_reads_der_that_ends_with_a_whitespace_byte():
    """DER is binary: a last byte of 0x20 or 0x0a must not be stripped as if it were text."""
    for _attempt in range(2000):
        key = SigningKey.generate("ES256")
        der = x509.load_pem_x509_certificate(key.certificate_pem.encode()).public_bytes(
            serialization.Encoding.DER
        )
        if der[-1:].isspace():
            break
    assert der[-1:].isspace()
    assert jwk_from_certificate(der, kid=key.kid, use="sig", alg="ES256")["x"] == key.public_jwk()["x"]


def test_jwk_from_certificate_checks_the_alg(rs256_key):
    with pytest.raises(G2PCryptoError, match="ES256 needs"):
        jwk_from_certificate(rs256_key.certificate_pem, kid="x", use="sig", alg="ES256")
    with pytest.raises(G2PCryptoError, match="not an X.509 certificate"):
        jwk_from_certificate("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", "x", "sig")


def test_a_jwks_entry_with_only_its_certificate_verifies(es256_key):
    entry = {"kty": "EC", "kid": es256_key.kid, "alg": "ES256", "x5c": es256_key.public_jwk()["x5c"]}
    assert jws_verify(jws_sign(es256_key, CLAIMS), {"keys": [entry]}) == CLAIMS


def test_parse_jws_and_its_payload(rs256_key):
    token = jws_sign(rs256_key, CLAIMS)
    header, protected, payload_b64, signature = parse_jws(token)
    assert header["kid"] == rs256_key.kid and token == f"{protected}.{payload_b64}.{signature}"
    assert parse_jws(token.encode())[0] == header
    assert jws_payload(payload_b64) == b64url_decode(payload_b64)
    detached = jws_sign(rs256_key, CLAIMS, include_payload=False)
    assert jws_payload(parse_jws(detached)[2], CLAIMS) == jws_payload(payload_b64)
    with pytest.raises(SignatureError, match="must be given"):
        jws_payload("")
    with pytest.raises(SignatureError, match="differs"):
        jws_payload(payload_b64, {"other": 1})
    for garbage in ("a.b", "!!.e30.sig", "WzFd.e30.sig"):  # two parts, not base64url, not an object
        with pytest.raises(SignatureError):
            parse_jws(garbage)
