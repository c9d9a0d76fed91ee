"""Signing keys, their certificates and their JWKs (the public halves that a JWKS publishes).

* ``SigningKey`` (a private key held here) and ``ExternalSigningKey`` (one held by an HSM, signing
  through a callable) carry their X.509 certificate; ``kid`` is the RFC 7638 thumbprint;
* published JWKs never carry private members, whatever the caller passed in (``public_jwks``);
* ``verification_key`` turns a JWKS entry into a key and the one algorithm it verifies.

JWS signing and verification with these keys is ``jose.py``.
"""

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID
from jwcrypto import jwk as jwcrypto_jwk

from .encoding import b64decode, b64encode, b64url_encode
from .errors import G2PCryptoError, SignatureError

SUPPORTED_ALGS = ("RS256", "ES256")
CERTIFICATE_VALIDITY = datetime.timedelta(days=3 * 365)
# Members of a JWK that hold secret material (RFC 7518 section 6): never published.
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# The algorithm each public key can verify, when its JWK does not state one.
_DEFAULT_ALG = {("RSA", None): "RS256", ("EC", "P-256"): "ES256", ("EC", "P-384"): "ES384"}


class SigningKey:
    """A private key for RS256 (RSA-2048) or ES256 (P-256) with its X.509 certificate.

    ``kid`` is the RFC 7638 thumbprint of the public key, so it is stable wherever the key is
    loaded and needs no registry. The private key never appears in ``repr``.
    """

    def __init__(self, private_key, alg, certificate=None):
        _check_key_for_alg(private_key, alg)
        if certificate is not None and _spki(certificate.public_key()) != _spki(private_key.public_key()):
            raise G2PCryptoError("the certificate does not belong to this signing key")
        self.alg = alg
        self._private_key = private_key
        self._certificate = certificate
        self._jwk = jwcrypto_jwk.JWK.from_pyca(private_key)
        self.kid = self._jwk.thumbprint()

    def __repr__(self):
        return f"<SigningKey {self.alg} {self.kid}>"

    @classmethod
    def generate(cls, alg="RS256", common_name="g2p_encryption"):
        """Create a new key and a self-signed certificate (SHA-256, three years) for it."""
        if alg == "RS256":
            private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "ES256":
            private_key = ec.generate_private_key(ec.SECP256R1())
        else:
            raise G2PCryptoError(f"unsupported signing algorithm {alg!r}: use one of {SUPPORTED_ALGS}")
        return cls(private_key, alg, _self_signed_certificate(private_key, common_name))

    @classmethod
    def from_private_pem(cls, pem, alg, certificate_pem=None):
        """Load a key saved by ``private_pem`` (and its certificate, checked to match it)."""
        if isinstance(pem, str):
            pem = pem.encode("ascii")
        try:
            private_key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            raise G2PCryptoError("the signing key is not an unencrypted PEM private key") from None
        certificate = _load_certificate(certificate_pem) if certificate_pem else None
        return cls(private_key, alg, certificate)

    @property
    def certificate_pem(self):
        """The certificate as PEM text, or None when the key has none."""
        if self._certificate is None:
            return None
        return self._certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @property
    def certificate_der(self):
        """The certificate as DER bytes (what ``x5c`` carries in base64), or None."""
        if self._certificate is None:
            return None
        return self._certificate.public_bytes(serialization.Encoding.DER)

    def private_pem(self):
        """The private key as unencrypted PKCS#8 PEM: the caller wraps it before storing it."""
        return self._private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_jwk(self, use="sig"):
        """The public JWK to publish: key members, ``kid``, ``alg``, ``use`` and the certificate."""
        public = self._jwk.export_public(as_dict=True)
        public.update(kid=self.kid, alg=self.alg, use=use)
        der = self.certificate_der
        if der is not None:
            public["x5c"] = [b64encode(der)]
            public["x5t#S256"] = x5t_s256(der)
        return _strip_private(public)


class ExternalSigningKey:
    """A signing key whose private half is held elsewhere (an HSM) and signs through ``sign``.

    ``sign(signing_input: bytes) -> bytes`` returns the signature in its JWS form (RS256: RSASSA
    PKCS#1 v1.5 with SHA-256; ES256: ``r || s``, 32 bytes each). ``public_key`` is the
    ``cryptography`` public key; ``certificate`` (optional) its X.509 certificate. ``kid`` is the
    RFC 7638 thumbprint of the public key, as for ``SigningKey``.
    """

    def __init__(self, public_key, alg, sign, certificate=None):
        _check_key_for_alg(public_key, alg)
        if certificate is not None and _spki(certificate.public_key()) != _spki(public_key):
            raise G2PCryptoError("the certificate does not belong to this signing key")
        self.alg = alg
        self.sign = sign
        self._public_key = public_key
        self._certificate = certificate
        self._jwk = jwcrypto_jwk.JWK.from_pyca(public_key)
        self.kid = self._jwk.thumbprint()

    def __repr__(self):
        return f"<ExternalSigningKey {self.alg} {self.kid}>"

    @classmethod
    def from_certificate(cls, certificate_pem, alg, sign):
        """The key of a certificate made by ``self_signed_certificate``, signing through ``sign``."""
        certificate = _load_certificate(certificate_pem)
        return cls(certificate.public_key(), alg, sign, certificate)

    certificate_pem = SigningKey.certificate_pem
    certificate_der = SigningKey.certificate_der
    public_jwk = SigningKey.public_jwk

    def self_signed_certificate(self, common_name):
        """A self-signed certificate (SHA-256, three years) of this key, signed through ``sign``.

        The certificate is built for a throwaway key of the same type, whose signature is then
        replaced by ours over the same to-be-signed bytes (``cryptography`` signs only with keys
        it holds). Returns a new ``ExternalSigningKey`` carrying the certificate.
        """
        throwaway = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if self.alg == "RS256"
            else ec.generate_private_key(ec.SECP256R1())
        )
        draft = _certificate_builder(self._public_key, common_name).sign(throwaway, hashes.SHA256())
        signature = self.sign(draft.tbs_certificate_bytes)
        if self.alg == "ES256":  # X.509 carries ECDSA signatures DER-encoded, JWS as r || s
            half = len(signature) // 2
            signature = encode_dss_signature(
                int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
            )
        certificate = x509.load_der_x509_certificate(_resigned_certificate(draft, signature))
        try:
            _verify_certificate_signature(certificate, self.alg)
        except Exception:  # cryptography's InvalidSignature, or a malformed signature
            raise G2PCryptoError("the external signer did not sign with this key") from None
        return type(self)(self._public_key, self.alg, self.sign, certificate)


def public_jwks(jwk_dicts):
    """Return ``{"keys": [...]}`` with every private member removed; refuse symmetric keys."""
    keys = []
    for jwk_dict in jwk_dicts:
        if jwk_dict.get("kty") not in ("RSA", "EC", "OKP"):
            raise G2PCryptoError(
                f"key {jwk_dict.get('kid')} of type {jwk_dict.get('kty')} cannot be published"
            )
        public = _strip_private(jwk_dict)
        if public not in keys:
            keys.append(public)
    return {"keys": keys}


def jwk_from_certificate(cert_pem_or_der, kid, use, alg="RS256"):
    """Build the public JWK of a certificate (e.g. a KeyManager signing certificate).

    ``cert_pem_or_der`` is PEM (str or bytes), DER bytes, or base64 DER as found in ``x5c``.
    """
    certificate = _load_certificate(cert_pem_or_der)
    public_key = certificate.public_key()
    _check_key_for_alg(public_key, alg, expected_rsa_bits=None)
    der = certificate.public_bytes(serialization.Encoding.DER)
    public = jwcrypto_jwk.JWK.from_pyca(public_key).export_public(as_dict=True)
    public.update(kid=kid, alg=alg, use=use)
    public["x5c"] = [b64encode(der)]
    public["x5t"] = b64url_encode(_digest(hashes.SHA1(), der))  # SHA-1 names the cert; not a security use
    public["x5t#S256"] = x5t_s256(der)
    return public


def x5t_s256(der):
    """The ``x5t#S256`` member naming a certificate: base64url of the SHA-256 of its DER."""
    return b64url_encode(_digest(hashes.SHA256(), der))


def verification_key(key_dict):
    """Return (jwcrypto public JWK, the one alg it verifies) for a JWKS entry."""
    kid = key_dict.get("kid")
    public = _strip_private(key_dict)
    if public.get("kty") not in ("RSA", "EC"):
        raise SignatureError(f"key {kid} is not an RSA or EC public key")
    try:
        if not any(member in public for member in ("n", "x")) and public.get("x5c"):
            # A JWKS entry that only carries its certificate: take the key from it.
            key = jwcrypto_jwk.JWK.from_pyca(_load_certificate(public["x5c"][0]).public_key())
        else:
            key = jwcrypto_jwk.JWK(**public)
    except Exception:  # jwcrypto's and cryptography's errors for a malformed key
        raise SignatureError(f"key {kid} in the JWKS is malformed") from None
    alg = public.get("alg") or _DEFAULT_ALG.get((key.get("kty"), key.get("crv")))
    if not alg:
        raise SignatureError(f"key {kid} states no alg and none can be inferred")
    return key, alg


# Helpers ------------------------------------------------------------------------------------


def _check_key_for_alg(key, alg, expected_rsa_bits=2048):
    if alg not in SUPPORTED_ALGS:
        raise G2PCryptoError(f"unsupported signing algorithm {alg!r}: use one of {SUPPORTED_ALGS}")
    if alg == "RS256":
        if not isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
            raise G2PCryptoError("RS256 needs an RSA key")
        if expected_rsa_bits and key.key_size < expected_rsa_bits:
            raise G2PCryptoError(f"RS256 needs an RSA key of at least {expected_rsa_bits} bits")
    elif not isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) or not isinstance(
        key.curve, ec.SECP256R1
    ):
        raise G2PCryptoError("ES256 needs a P-256 elliptic-curve key")


def _self_signed_certificate(private_key, common_name):
    return _certificate_builder(private_key.public_key(), common_name).sign(private_key, hashes.SHA256())


def _certificate_builder(public_key, common_name):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # tolerate clock skew
        .not_valid_after(now + CERTIFICATE_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _resigned_certificate(certificate, signature):
    """DER of ``certificate`` with its signature value replaced by ``signature`` (DER bytes).

    Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }:
    the to-be-signed part and the algorithm are kept as they are.
    """
    der = certificate.public_bytes(serialization.Encoding.DER)
    tbs = certificate.tbs_certificate_bytes
    body_start = der.index(tbs)
    algorithm_start = body_start + len(tbs)
    algorithm = der[algorithm_start : algorithm_start + _der_length_of(der, algorithm_start)]
    bit_string = b"\x03" + _der_length(len(signature) + 1) + b"\x00" + signature
    body = tbs + algorithm + bit_string
    return b"\x30" + _der_length(len(body)) + body


def _der_length(length):
    if length < 0x80:
        return bytes([length])
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(encoded)]) + encoded


def _der_length_of(der, start):
    """Length in bytes of the whole DER element (tag, length, value) that starts at ``start``."""
    first = der[start + 1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    return 2 + count + int.from_bytes(der[start + 2 : start + 2 + count], "big")


def _verify_certificate_signature(certificate, alg):
    public_key = certificate.public_key()
    if alg == "RS256":
        public_key.verify(
            certificate.signature, certificate.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA256()
        )
    else:
        public_key.verify(certificate.signature, certificate.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))


def _load_certificate(data):
    if isinstance(data, str):
        data = data.encode("ascii", "replace")
    data = bytes(data)
    try:
        if data.startswith(b"\x30"):  # DER: an ASN.1 SEQUENCE (never strip it: any byte may end it)
            return x509.load_der_x509_certificate(data)
        data = data.strip()
        if data.startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(b64decode(data))  # as in x5c
    except ValueError:
        raise G2PCryptoError("not an X.509 certificate (PEM, DER or base64 DER expected)") from None


def _spki(public_key):
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _strip_private(jwk_dict):
    return {name: value for name, value in jwk_dict.items() if name not in PRIVATE_MEMBERS}


def _digest(algorithm, data):
    digest = hashes.Hash(algorithm)
    digest.update(data)
    return digest.finalize()
