"""JWS, built on jwcrypto: compact signatures that anyone holding the published JWKS verifies.

Vouchers and credentials are signed as compact JWS so that anyone holding the published JWKS can
verify them offline. The rules that matter for security are enforced here rather than left to
the callers:

* the verifier picks the key by ``kid`` from the JWKS it was given, never from a key or
  certificate carried by the token itself (``x5c`` in a token header is informative only);
* the ``alg`` of the token must be the key's own algorithm: ``none``, HMAC with a public key,
  or any other algorithm confusion is refused.

The keys, their certificates and JWKs are ``jwk.py``.
"""

import json
import time

from jwcrypto import jws as jwcrypto_jws

from .encoding import b64encode, b64url_decode, b64url_encode
from .errors import G2PCryptoError, SignatureError
from .jwk import ExternalSigningKey, verification_key, x5t_s256


def jws_sign(key, data, include_payload=True, include_certificate=False, include_cert_hash=False):
    """Sign ``data`` (dict, str or bytes) with ``key`` and return a compact JWS.

    ``key`` is a ``SigningKey`` or an ``ExternalSigningKey`` (an HSM's: one ``sign`` call per JWS).
    A dict is serialized as compact JSON with sorted keys, so that the same claims always give
    the same bytes (a detached signature can be checked against claims rebuilt from storage).
    ``include_payload=False`` returns the detached form ``header..signature``.
    """
    payload = encode_payload(data)
    header = {"alg": key.alg, "kid": key.kid}
    if _json_object(payload) is not None:
        header["typ"] = "JWT"
    if include_certificate or include_cert_hash:
        der = key.certificate_der
        if der is None:
            raise G2PCryptoError(f"signing key {key.kid} has no certificate to include")
        if include_certificate:
            header["x5c"] = [b64encode(der)]
        if include_cert_hash:
            header["x5t#S256"] = x5t_s256(der)
    protected = json.dumps(header, separators=(",", ":"))
    if isinstance(key, ExternalSigningKey):
        signing_input = f"{b64url_encode(protected.encode())}.{b64url_encode(payload)}"
        compact = f"{signing_input}.{b64url_encode(key.sign(signing_input.encode('ascii')))}"
    else:
        token = jwcrypto_jws.JWS(payload)
        token.add_signature(key._jwk, alg=key.alg, protected=protected)
        compact = token.serialize(compact=True)
    if include_payload:
        return compact
    protected, _payload, signature = compact.split(".")
    return f"{protected}..{signature}"


def jws_verify(token, jwks, payload=None, now=None, leeway=0):
    """Verify a compact JWS against ``jwks`` and return its claims (dict) or payload (str).

    The key is the one of ``jwks`` whose ``kid`` the token names, and the token's ``alg`` must be
    that key's. A detached token (``header..signature``) needs ``payload`` (bytes, str, or a
    dict serialized as ``jws_sign`` does). When the payload is a JSON object, ``exp`` and
    ``nbf`` are checked against ``now`` (default: the current time) with ``leeway`` seconds.
    A payload that is not UTF-8 text is returned as bytes. Every failure is a ``SignatureError``.
    """
    header, protected_b64, payload_b64, signature_b64 = parse_jws(token)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none":
        raise SignatureError("unsigned JWS (alg none) rejected")
    if "crit" in header or "b64" in header:
        raise SignatureError("JWS header uses extensions (crit, b64) that are not supported")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise SignatureError("JWS header has no kid: cannot select the verification key")
    key_dict = _find_key(jwks, kid)
    public_key, key_alg = verification_key(key_dict)
    if alg != key_alg:
        raise SignatureError(f"JWS alg {alg} does not match key {kid}, which verifies {key_alg}")

    payload_bytes = jws_payload(payload_b64, payload)
    full = ".".join((protected_b64, b64url_encode(payload_bytes), signature_b64))
    verifier = jwcrypto_jws.JWS()
    verifier.allowed_algs = [key_alg]
    try:
        verifier.deserialize(full)
        verifier.verify(public_key, alg=key_alg)
    except Exception:  # jwcrypto raises several unrelated types for a bad signature or encoding
        raise SignatureError(f"JWS signature does not verify with key {kid}") from None

    return verified_claims(payload_bytes, now, leeway)


def parse_jws(token):
    """``(header, protected, payload, signature)`` of a compact JWS (the last three base64url).

    Only the form is checked (three parts, a JSON object as header): nothing is verified. A
    ``SignatureError`` names what is malformed.
    """
    if isinstance(token, bytes):
        token = token.decode("ascii", "replace")
    if not isinstance(token, str) or token.count(".") != 2:
        raise SignatureError("malformed JWS: expected the compact form header.payload.signature")
    protected_b64, payload_b64, signature_b64 = token.split(".")
    return _decode_header(protected_b64), protected_b64, payload_b64, signature_b64


def jws_payload(payload_b64, payload=None):
    """The bytes a JWS signs: its own payload, or ``payload`` for a detached one.

    ``payload`` (bytes, str, or a dict serialized as ``jws_sign`` does), when given for a JWS
    that carries its payload, must be that payload.
    """
    if payload is not None:
        given = encode_payload(payload)
        if payload_b64 and _b64url_decode_or_error(payload_b64) != given:
            raise SignatureError("the payload given differs from the one inside the JWS")
        return given
    if not payload_b64:
        raise SignatureError("detached JWS: the payload must be given to verify it")
    return _b64url_decode_or_error(payload_b64)


def verified_claims(payload, now=None, leeway=0):
    """What a verified JWS carries: its claims when the payload is a JSON object (``exp`` and
    ``nbf`` checked: ``SignatureError`` when out of time), else the payload as text (bytes when it
    is not UTF-8)."""
    claims = _json_object(payload)
    if claims is None:
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            return payload
    _check_time_claims(claims, time.time() if now is None else now, leeway)
    return claims


def encode_payload(data):
    """The bytes signed for ``data``: a dict as compact JSON with sorted keys, str as UTF-8."""
    if isinstance(data, dict):
        return json.dumps(data, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    raise TypeError(f"can only sign a dict, str or bytes, not {type(data).__name__}")


def _json_object(payload):
    """Return the payload as a dict when it is a JSON object, else None."""
    if not payload.lstrip().startswith(b"{"):
        return None
    try:
        value = json.loads(payload.decode("utf-8"))
    except ValueError:  # includes UnicodeDecodeError and JSONDecodeError
        return None
    return value if isinstance(value, dict) else None


def _decode_header(protected_b64):
    try:
        header = json.loads(b64url_decode(protected_b64).decode("utf-8"))
    except (ValueError, TypeError):
        raise SignatureError("malformed JWS: the header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise SignatureError("malformed JWS: the header is not a JSON object")
    return header


def _find_key(jwks, kid):
    keys = jwks.get("keys", []) if isinstance(jwks, dict) else jwks
    for key_dict in keys or ():
        if isinstance(key_dict, dict) and key_dict.get("kid") == kid:
            return key_dict
    raise SignatureError(f"JWS signed by unknown key {kid}")


def _b64url_decode_or_error(text):
    try:
        return b64url_decode(text)
    except ValueError:
        raise SignatureError("malformed JWS: the payload is not base64url") from None


def _check_time_claims(claims, now, leeway):
    for claim in ("exp", "nbf"):
        value = claims.get(claim)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise SignatureError(f"JWS claim {claim} is not a number")
    if claims.get("exp") is not None and claims["exp"] <= now - leeway:
        raise SignatureError("token expired")
    if claims.get("nbf") is not None and claims["nbf"] > now + leeway:
        raise SignatureError("token not yet valid (nbf)")
