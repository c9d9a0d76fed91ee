"""Keys of a token, named by label: the wrapped-key format, PKCS#11 URIs of keys, and the keys
made in the token (sensitive, non-extractable; an AES-256 master key, RSA-2048 or P-256 pairs)."""

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..encoding import b64url_decode_strict, b64url_encode
from ..errors import HsmKeyError, InvalidCiphertextError
from .binding import binding, count

WRAP_PREFIX = "g2pk1."
NONCE_SIZE = 12
MASTER_KEY_BITS = 256
RSA_BITS = 2048
P256_PARAMETERS = bytes.fromhex("06082a8648ce3d030107")  # DER of the OID of P-256 (secp256r1)


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


def generate_master_key(session, label):
    """Make the AES-256 key ``label`` in the binding's ``session``: wraps and unwraps data keys
    (encrypt, decrypt), nothing else, and never leaves the token."""
    pkcs11 = binding()
    attribute = pkcs11.Attribute
    key = session.generate_key(
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
    count("generate")
    return key


def generate_key_pair(session, label, alg):
    """Make a key pair ``label`` for ``alg`` in the binding's ``session``; return (its public key
    as a ``cryptography`` key, the token's private key object)."""
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
        public, private = session.generate_keypair(pkcs11.KeyType.RSA, RSA_BITS, **templates)
        public_key = rsa.RSAPublicNumbers(
            int.from_bytes(public[attribute.PUBLIC_EXPONENT], "big"),
            int.from_bytes(public[attribute.MODULUS], "big"),
        ).public_key()
    else:
        parameters = session.create_domain_parameters(
            pkcs11.KeyType.EC, {attribute.EC_PARAMS: P256_PARAMETERS}, local=True
        )
        public, private = parameters.generate_keypair(**templates)
        public_key = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), _octet_string_value(public[attribute.EC_POINT])
        )
    count("generate")
    return public_key, private


def check_unexportable(key, label, name):
    pkcs11 = binding()
    if not key[pkcs11.Attribute.SENSITIVE] or key[pkcs11.Attribute.EXTRACTABLE]:
        raise HsmKeyError(
            f"key {label!r} can leave the token (not sensitive, or extractable): it is not used; "
            "make a sensitive, non-extractable key",
            service=name,
            endpoint="C_GetAttributeValue",
        )


def missing_key(label, name, kind):
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
