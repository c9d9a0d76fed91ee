"""The emulator's keys: generations of RSA-2048 keys with X.509 certificates (KEYMANAGER_API.md §6).

A key is named by (applicationId, referenceId). Master keys (referenceId ``""``, and KERNEL/SIGN)
are certified by the ROOT key, base keys (any other referenceId) by their application's master
key. Keys are made lazily on first use, which keeps the emulator's start-up instant; the master
keys of the applications in the policy table count as made by MOSIP's keys-generator at install,
so they appear on first use too. Rotation adds a generation and keeps the old ones, so old
ciphertexts keep decrypting.
"""

import hashlib
import threading
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .formats import b64url, now_utc


class KeyManagerFault(Exception):
    """A business error of KeyManager: answered with HTTP 200 and ``errors`` (or ``status``)."""

    def __init__(self, code, message, status=200):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class Policy:
    """A row of ``key_policy_def``: validity and pre-expiry in days, who may use the keys."""

    def __init__(self, validity_days=1095, pre_expire_days=60, access_allowed="NA"):
        self.validity_days = validity_days
        self.pre_expire_days = pre_expire_days
        self.access_allowed = access_allowed

    def allows(self, username):
        if not self.access_allowed or self.access_allowed == "NA":
            return True
        allowed = {name.strip().lower() for name in self.access_allowed.split(",")}
        return (username or "").lower() in allowed


DEFAULT_APPLICATION_IDS = ("REGISTRATION", "ID_REPO", "OPENG2P", "KERNEL", "ROOT")
ROOT_POLICY = Policy(2920, 1125)
BASE_POLICY = Policy(730, 30)
# applicationIds that never get lazily generated base keys (§6.3)
NO_BASE_KEYS = {"ROOT", "KERNEL", "PARTNER"}
DEFAULT_COMMON_NAME = "www.mosip.io"


def is_master_reference(application_id, reference_id):
    """Whether (appId, refId) names a master (HSM) key rather than a base key."""
    return not reference_id or (application_id == "KERNEL" and reference_id in ("SIGN", "IDENTITY_CACHE"))


def unique_identifier(application_id, reference_id, day):
    """``key_alias.uni_ident``: upper hex SHA-1 of ``{appId}_{refId}_{MM-dd-yyyy}``."""
    text = f"{application_id}_{reference_id}_{day:%m-%d-%Y}"
    return hashlib.sha1(text.encode()).hexdigest().upper()


def key_id(uni_ident):
    """The JWS ``kid`` and ``/getAllCertificates`` ``keyId`` of a key (§5.2)."""
    return b64url(hashlib.sha256(bytes.fromhex(uni_ident)).digest())


class KeyGeneration:
    """One generation of a key: RSA private key, certificate, and its ``key_alias`` row."""

    def __init__(self, application_id, reference_id, private_key, certificate, generated_at, expires_at, uni):
        self.application_id = application_id
        self.reference_id = reference_id
        self.private_key = private_key
        self.certificate = certificate
        self.generated_at = generated_at
        self.expires_at = expires_at  # key_alias expiry: moved to the past by a revocation
        self.unique_identifier = uni
        self.certificate_der = certificate.public_bytes(serialization.Encoding.DER)
        self.thumbprint = hashlib.sha256(self.certificate_der).digest()

    @property
    def key_id(self):
        return key_id(self.unique_identifier)

    @property
    def certificate_pem(self):
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def __repr__(self):
        return (
            f"<KeyGeneration {self.application_id}/{self.reference_id} {self.generated_at:%Y-%m-%d %H:%M:%S}>"
        )


class KeyStore:
    """The keys of one emulator, thread-safe. ``clock`` returns an aware UTC datetime."""

    def __init__(self, application_ids=DEFAULT_APPLICATION_IDS, policies=None, clock=now_utc):
        self.policies = {app: Policy() for app in application_ids}
        self.policies.setdefault("ROOT", ROOT_POLICY)
        self.policies.update(policies or {})
        self.clock = clock
        self._generations = {}  # (appId, refId) -> [KeyGeneration], oldest first
        self._by_thumbprint = {}
        self._lock = threading.RLock()

    # -- lookups ---------------------------------------------------------------------------------

    def generations(self, application_id, reference_id=""):
        with self._lock:
            return list(self._generations.get((application_id, reference_id or ""), ()))

    def by_thumbprint(self, thumbprint):
        with self._lock:
            return self._by_thumbprint.get(thumbprint)

    def summary(self):
        with self._lock:
            return [
                {"applicationId": app, "referenceId": ref, "generations": len(gens)}
                for (app, ref), gens in sorted(self._generations.items())
            ]

    def policy(self, application_id):
        return self.policies.get(application_id)

    def current(self, application_id, reference_id="", create=True):
        """The current generation (§6.2), made now if there is none and ``create`` (§6.3)."""
        reference_id = reference_id or ""
        with self._lock:
            now = self.clock()
            current = [g for g in self.generations(application_id, reference_id) if self._is_current(g, now)]
            if len(current) > 1:
                raise KeyManagerFault("KER-KMS-003", "No unique alias is found")
            if current:
                return current[0]
            if not create:
                return None
            return self._generate(application_id, reference_id)

    def master_generations(self, application_id):
        """All generations of an application's master key, made if it has a policy (keys-generator)."""
        if application_id in self.policies:
            self.current(application_id, "")
        return self.generations(application_id, "")

    # -- changes ---------------------------------------------------------------------------------

    def rotate(self, application_id, reference_id=""):
        """Expire the current generation (a minute ago) and make a new one, like ``force:true``."""
        with self._lock:
            self.revoke(application_id, reference_id)
            return self._generate(application_id, reference_id or "")

    def revoke(self, application_id, reference_id):
        """Expire the current generation now − 1 min (``PUT /revokeKey``); False if there was none."""
        with self._lock:
            current = self.current(application_id, reference_id, create=False)
            if current is not None:
                current.expires_at = self.clock() - timedelta(minutes=1)
            return current is not None

    # -- internals -------------------------------------------------------------------------------

    def _pre_expire_days(self, generation):
        if is_master_reference(generation.application_id, generation.reference_id):
            return self.policies.get(generation.application_id, BASE_POLICY).pre_expire_days
        return self.policies.get("BASE", BASE_POLICY).pre_expire_days

    def _is_current(self, generation, now):
        start, end = generation.generated_at, generation.expires_at
        if now in (start, end):
            return True
        return start < now < end - timedelta(days=self._pre_expire_days(generation))

    def _generate(self, application_id, reference_id):
        policy = self.policies.get(application_id)
        if policy is None:
            raise KeyManagerFault(
                "KER-KMS-002", "ApplicationId not found in Key Policy. Key/CSR generation not allowed."
            )
        master = is_master_reference(application_id, reference_id)
        if master:
            validity = policy.validity_days
            if application_id == "ROOT":
                issuer = None
            else:
                issuer = self.current("ROOT", "")
            common_name = (
                f"{DEFAULT_COMMON_NAME} ({application_id}{'-' + reference_id if reference_id else ''})"
            )
        else:
            if application_id in NO_BASE_KEYS:
                raise KeyManagerFault(
                    "KER-KMS-016",
                    "Not allowed to generate new key pair for other domains or not allowed to generate "
                    "base key.",
                )
            # 1.2 takes the validity of base keys from the BASE policy (§6.2).
            validity = self.policies.get("BASE", BASE_POLICY).validity_days
            issuer = self.current(application_id, "")
            common_name = f"{application_id}-{reference_id}"
        now = self.clock().replace(microsecond=0)
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        expires_at = now + timedelta(days=validity)
        certificate = _certificate(private_key, common_name, issuer, now, expires_at, is_ca=master)
        generation = KeyGeneration(
            application_id,
            reference_id,
            private_key,
            certificate,
            now,
            expires_at,
            self._unique_identifier(application_id, reference_id, now),
        )
        self._generations.setdefault((application_id, reference_id), []).append(generation)
        self._by_thumbprint[generation.thumbprint] = generation
        return generation

    def _unique_identifier(self, application_id, reference_id, now):
        # MOSIP derives uni_ident (and so the kid) from the generation *day*; a second generation of
        # the same key on the same day would collide with the first (a UNIQUE constraint in MOSIP's
        # database; its behaviour there is unconfirmed). The emulator, where tests rotate keys
        # within seconds, dates such a generation one day after the previous one instead.
        taken = {g.unique_identifier for g in self._generations.get((application_id, reference_id), ())}
        day = now
        while unique_identifier(application_id, reference_id, day) in taken:
            day += timedelta(days=1)
        return unique_identifier(application_id, reference_id, day)


def _certificate(private_key, common_name, issuer, not_before, not_after, is_ca):
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "KeyManager emulator"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "g2p_encryption"),
        ]
    )
    signer_key = issuer.private_key if issuer else private_key
    issuer_name = issuer.certificate.subject if issuer else subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before.replace(tzinfo=None))
        .not_valid_after(not_after.replace(tzinfo=None))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    return builder.sign(signer_key, hashes.SHA256())
