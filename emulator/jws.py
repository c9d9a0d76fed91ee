"""Compact RS256 JWS, written by hand so that header members come in the order the services use."""

import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from .formats import b64url, b64url_decode


def compact_json(value):
    return json.dumps(value, separators=(",", ":")).encode()


def sign_rs256(private_key, header, payload, detached=False):
    """``b64u(header).b64u(payload).b64u(signature)``; ``header..signature`` when ``detached``."""
    signing_input = b64url(compact_json(header)) + "." + b64url(payload)
    signature = private_key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    header_segment, payload_segment = signing_input.split(".")
    return f"{header_segment}.{'' if detached else payload_segment}.{b64url(signature)}"


def verify_rs256(public_key, signing_input, signature_segment):
    try:
        signature = b64url_decode(signature_segment)
        public_key.verify(signature, signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def rsa_jwk(public_key, kid):
    numbers = public_key.public_numbers()
    return {
        "kid": kid,
        "kty": "RSA",
        "alg": "RS256",
        "use": "sig",
        "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
        "e": b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
    }
