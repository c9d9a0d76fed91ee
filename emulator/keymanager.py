"""KeyManager's side of the emulator: the endpoints under ``/v1/keymanager`` (KEYMANAGER_API.md §1-§7).

It checks what the real service checks (token from a cookie, signature, expiry, audience, roles,
bean validation of the request) and answers in MOSIP's envelope with MOSIP's error codes.
"""

import json
import re
from datetime import timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from ..core.encoding import b64decode, b64encode
from . import hybrid
from .formats import (
    MOSIP_TIMESTAMP,
    b64url,
    java_b64decode,
    local_date_time,
    mosip_time,
    now_utc,
)
from .jws import sign_rs256, verify_rs256
from .keystore import KeyManagerFault, is_master_reference
from .realm import InvalidToken

BASE_PATH = "/v1/keymanager"
# @Pattern(regexp = ".+\\S.*") of salt and aad: at least two characters, not all blank (§4.1).
_SALT_PATTERN = re.compile(r".+\S.*")
NOT_BASE64 = " input data is not base64 encoded"  # sic, with the leading space (§8)


class _ValidationErrors(Exception):
    """Bean-validation failures: one ``KER-KMS-005`` entry per invalid field."""

    def __init__(self, messages):
        super().__init__("; ".join(messages))
        self.messages = messages


class KeyManagerService:
    """The endpoints. ``required_roles``: realm roles of which a token needs one (403 otherwise)."""

    def __init__(self, keystore, realm, required_roles=("KEYMANAGER_ADMIN",), validate_sign_json=False):
        self.keystore = keystore
        self.realm = realm
        self.required_roles = set(required_roles)
        # mosip.kernel.keymanager.jwtsign.validate.json: false in OpenG2P's and MOSIP's config.
        self.validate_sign_json = validate_sign_json
        self._routes = {
            "/encrypt": ("POST", self._encrypt),
            "/decrypt": ("POST", self._decrypt),
            "/jwtSign": ("POST", self._jwt_sign),
            "/jwtVerify": ("POST", self._jwt_verify),
            "/getCertificate": ("GET", self._get_certificate),
            "/getAllCertificates": ("GET", self._get_all_certificates),
            "/generateMasterKey": ("POST", self._generate_master_key),
            "/revokeKey": ("PUT", self._revoke_key),
        }

    @staticmethod
    def endpoint_name(sub_path):
        """The counted name of a path below the base: ``/generateMasterKey/CSR`` -> ``/generateMasterKey``."""
        if sub_path.startswith("/generateMasterKey/") or sub_path == "/generateMasterKey":
            return "/generateMasterKey"
        return sub_path

    def handle(self, method, sub_path, query, cookie_header, body, base_url):
        """Answer one request: ``(http_status, json_body)``."""
        is_get = method == "GET"
        try:
            claims = self.realm.validate(_token_from_cookies(cookie_header), base_url)
        except InvalidToken:
            return 401, response_envelope(
                None, errors=[("KER-ATH-401", "Authentication Failed")], is_get=True
            )
        roles = (claims.get("realm_access") or {}).get("roles") or []
        if not self.required_roles & set(roles):
            return 403, response_envelope(None, errors=[("KER-ATH-403", "Forbidden")], is_get=True)
        endpoint = self.endpoint_name(sub_path)
        route = self._routes.get(endpoint)
        if route is None:
            return 404, _spring_error(404, "Not Found", BASE_PATH + sub_path)
        if route[0] != method:
            return 405, _spring_error(405, "Method Not Allowed", BASE_PATH + sub_path)
        envelope = {}
        try:
            if not is_get:
                envelope = _parse_request_envelope(body)
            response = route[1](
                request=envelope.get("request"),
                query=query,
                path_parameter=sub_path[len(endpoint) + 1 :],
                claims=claims,
            )
        except _ValidationErrors as exc:
            errors = [("KER-KMS-005", message) for message in exc.messages]
            return 200, response_envelope(envelope, errors=errors, is_get=is_get)
        except KeyManagerFault as fault:
            return fault.status, response_envelope(
                envelope, errors=[(fault.code, fault.message)], is_get=is_get
            )
        except Exception as exc:  # noqa: BLE001 - Spring answers any uncaught exception with 500
            return 500, response_envelope(envelope, errors=[("KER-KMS-500", str(exc))], is_get=is_get)
        return 200, response_envelope(envelope, response=response, is_get=is_get)

    # -- /encrypt, /decrypt (§4) -----------------------------------------------------------------

    def _encrypt(self, request, **_kwargs):
        _check_crypto_request(request)
        application_id, reference_id = request["applicationId"], request.get("referenceId") or ""
        if not reference_id.strip() or (
            application_id.upper() == "KERNEL" and reference_id.upper() in ("SIGN", "IDENTITY_CACHE")
        ):
            raise KeyManagerFault(
                "KER-CRY-011",
                "Not Allowed to preform encryption with Master Key. Use Base/Encrypt key to encrypt data.",
            )
        data, salt, aad = _decode_crypto_fields(request)
        generation = self.keystore.current(application_id, reference_id)
        return {"data": b64url(hybrid.encrypt(generation, data, salt, aad))}

    def _decrypt(self, request, claims, **_kwargs):
        _check_crypto_request(request)
        application_id, reference_id = request["applicationId"], request.get("referenceId") or ""
        self._check_key_access(application_id, claims, "KER-CRY-012", _NO_DECRYPT_ACCESS)
        blob, salt, aad = _decode_crypto_fields(request)
        has_header, key_part, encrypted = hybrid.split(blob)
        if len(key_part) == hybrid.THUMBPRINT_LENGTH + hybrid.RSA_2048_BLOCK:
            generation = self.keystore.by_thumbprint(key_part[: hybrid.THUMBPRINT_LENGTH])
            if generation is None:
                raise KeyManagerFault(
                    "KER-KMS-025", "Key Not found for the thumbprint prepended in encrypted data."
                )
            if generation.application_id != application_id:
                raise KeyManagerFault(
                    "KER-KMS-024", "Application Id & Reference Id not matching with the input thumbprint."
                )
            session_key = hybrid.unwrap(generation.private_key, key_part[hybrid.THUMBPRINT_LENGTH :])
        else:
            session_key = self._legacy_unwrap(application_id, reference_id, key_part)
        return {"data": b64url(hybrid.decrypt_data(session_key, encrypted, has_header, salt, aad))}

    def _legacy_unwrap(self, application_id, reference_id, wrapped):
        """Ciphertexts without a thumbprint: try the keys in the order of §4.5 step 5."""
        base = self.keystore.generations(application_id, reference_id)
        masters = self.keystore.generations(application_id, "")
        candidates = [*base[:1], *(masters[:1] if not base else ()), *base, *masters]
        seen = set()
        for generation in candidates:
            if id(generation) in seen:
                continue
            seen.add(id(generation))
            try:
                return hybrid.unwrap(generation.private_key, wrapped)
            except KeyManagerFault:
                continue
        raise KeyManagerFault("KER-FSE-004", "Decryption error")

    # -- /jwtSign, /jwtVerify (§5) ---------------------------------------------------------------

    def _jwt_sign(self, request, claims, **_kwargs):
        request = _require_request(request)
        _raise_if(_not_blank(request, "dataToSign", "must not be blank"))
        application_id, reference_id = _signing_key_ids(request)
        self._check_key_access(
            application_id, claims, "KER-JWS-108", "Signing data not allowed for the authenticated token."
        )
        try:
            payload = java_b64decode(request["dataToSign"])
        except ValueError as exc:
            raise KeyManagerFault("KER-JWS-102", "Data to sign is not valid.") from exc
        if self.validate_sign_json and not _is_json(payload):
            raise KeyManagerFault("KER-JWS-103", "Data to sign is not valid JSON.")
        if not (reference_id == "" or (application_id == "KERNEL" and reference_id == "SIGN")):
            raise KeyManagerFault(
                "KER-KMS-020", "Signing operation not allowed for the provided application id & reference id."
            )
        generation = self.keystore.current(application_id, reference_id)
        now = self.keystore.clock()
        if not _certificate_valid_at(generation.certificate, now):
            raise KeyManagerFault(
                "KER-KMA-005", "Error occured while processing exception: certificate expired"
            )
        # jose4j's member order in 1.2: x5c, x5t#S256, x5u, kid, alg (§5.2).
        header = {}
        if request.get("includeCertificate"):
            header["x5c"] = [b64encode(generation.certificate_der)]
        if request.get("includeCertHash"):
            header["x5t#S256"] = b64url(generation.thumbprint)
        if request.get("certificateUrl"):
            header["x5u"] = request["certificateUrl"]
        header["kid"] = generation.key_id
        header["alg"] = "RS256"
        detached = not request.get("includePayload", False)
        signed = sign_rs256(generation.private_key, header, payload, detached=detached)
        return {"jwtSignedData": signed, "timestamp": local_date_time(now)}

    def _jwt_verify(self, request, **_kwargs):
        request = _require_request(request)
        _raise_if(_not_blank(request, "jwtSignatureData", "must not be blank"))
        application_id, reference_id = _signing_key_ids(request)
        parts = request["jwtSignatureData"].split(".")
        if len(parts) != 3:
            raise KeyManagerFault("KER-JWS-105", "Error - Unable to verify the data.")
        try:
            header = json.loads(java_b64decode(parts[0]))
            if not isinstance(header, dict):
                raise ValueError("header is not an object")
        except ValueError as exc:
            raise KeyManagerFault("KER-JWS-106", "Signature data to verify not valid.") from exc
        if request.get("actualData"):
            parts[1] = request["actualData"]
        certificate = self._verification_certificate(header, request, application_id, reference_id)
        if not _certificate_valid_at(certificate, self.keystore.clock()):
            raise KeyManagerFault("KER-JWS-107", "Signature verification certificate not valid.")
        if header.get("alg") != "RS256":
            raise KeyManagerFault("KER-JWS-105", "Error - Unable to verify the data.")
        valid = verify_rs256(certificate.public_key(), f"{parts[0]}.{parts[1]}", parts[2])
        return {
            "signatureValid": valid,
            "message": "Validation Successful" if valid else "Validation Failed",
            "trustValid": "TRUST_NOT_VERIFIED",
        }

    def _verification_certificate(self, header, request, application_id, reference_id):
        """``x5c[0]``, else ``certificateData``, else the *current* certificate (§5.3)."""
        try:
            if header.get("x5c"):
                return x509.load_der_x509_certificate(b64decode(header["x5c"][0]))
            if request.get("certificateData"):
                return x509.load_pem_x509_certificate(request["certificateData"].encode())
        except (ValueError, TypeError, IndexError) as exc:
            raise KeyManagerFault("KER-JWS-107", "Signature verification certificate not valid.") from exc
        return self.keystore.current(application_id, reference_id).certificate

    # -- certificates and keys (§7) --------------------------------------------------------------

    def _get_certificate(self, query, **_kwargs):
        application_id, reference_id = _query_key_ids(query)
        generation = self.keystore.current(application_id, reference_id)
        certificate = generation.certificate
        return {
            "certificate": generation.certificate_pem,
            "certSignRequest": None,
            "issuedAt": mosip_time(_aware(certificate.not_valid_before)),
            "expiryAt": mosip_time(_aware(certificate.not_valid_after)),
            "timestamp": mosip_time(self.keystore.clock()),
        }

    def _get_all_certificates(self, query, **_kwargs):
        application_id, reference_id = _query_key_ids(query)
        # 1.2 lists the KERNEL master keys for KERNEL/SIGN (§7.2).
        if is_master_reference(application_id, reference_id) and reference_id != "IDENTITY_CACHE":
            generations = self.keystore.master_generations(application_id)
        else:
            generations = self.keystore.generations(application_id, reference_id)
        return {
            "allCertificates": [
                {
                    "certificateData": generation.certificate_pem,
                    "issuedAt": mosip_time(generation.generated_at),
                    "expiryAt": mosip_time(generation.expires_at),
                    "keyId": generation.key_id,
                }
                for generation in generations
            ]
        }

    def _generate_master_key(self, request, path_parameter, **_kwargs):
        request = _require_request(request)
        object_type = path_parameter.strip()
        messages = _not_blank(request, "applicationId", "must not be blank")
        if not object_type:
            messages.append("objectType must not be blank")
        _raise_if(messages)
        application_id, reference_id = request["applicationId"], request.get("referenceId") or ""
        if not is_master_reference(application_id, reference_id) or reference_id == "IDENTITY_CACHE":
            raise KeyManagerFault("KER-KMS-010", "Reference Id Not Supported for the Application ID.")
        if request.get("force"):
            generation = self.keystore.rotate(application_id, reference_id)
        else:
            generation = self.keystore.current(application_id, reference_id)
        certificate, csr = None, None
        if object_type.upper() == "CERTIFICATE":
            certificate = generation.certificate_pem
        elif object_type.upper() == "CSR":
            csr = _csr_pem(generation)
        else:
            # InvalidResponseObjectTypeException has no handler: HTTP 500 (§7.3).
            raise KeyManagerFault("KER-KMS-500", "Invalid Response Object Type.", status=500)
        return {
            "certificate": certificate,
            "certSignRequest": csr,
            "issuedAt": mosip_time(generation.generated_at),
            "expiryAt": mosip_time(generation.expires_at),
            "timestamp": mosip_time(self.keystore.clock()),
        }

    def _revoke_key(self, request, **_kwargs):
        request = _require_request(request)
        messages = _not_blank(request, "applicationId", "must not be blank")
        messages += _not_blank(request, "referenceId", "must not be blank")
        _raise_if(messages)
        application_id, reference_id = request["applicationId"], request["referenceId"]
        if application_id == "KERNEL" and reference_id == "SIGN":
            raise KeyManagerFault("KER-KMS-021", "Key Revocation not allowed.")
        if not self.keystore.revoke(application_id, reference_id):
            raise KeyManagerFault("KER-KMS-003", "No unique alias is found")
        return {"status": "Key Revoked", "timestamp": local_date_time(self.keystore.clock())}

    def _check_key_access(self, application_id, claims, code, message):
        """The per-application access list (§6.5); a blank applicationId passes."""
        if not application_id:
            return
        policy = self.keystore.policy(application_id)
        if policy is None or not policy.allows(claims.get("preferred_username")):
            raise KeyManagerFault(code, message)


_NO_DECRYPT_ACCESS = (
    "Not Allowed to preform decryption for the provided application id and with authentication token"
)


def _token_from_cookies(cookie_header):
    # The 1.2 AuthFilter takes the value of any cookie whose name contains "Authorization".
    for part in (cookie_header or "").split(";"):
        name, separator, value = part.strip().partition("=")
        if separator and "Authorization" in name and value.strip():
            return value.strip()
    return ""


def _parse_request_envelope(body):
    try:
        envelope = json.loads(body or b"null")
    except ValueError as exc:
        raise _ValidationErrors(["Invalid request: the body is not JSON"]) from exc
    if not isinstance(envelope, dict):
        raise _ValidationErrors(["Invalid request: the body is not a JSON object"])
    requesttime = envelope.get("requesttime")
    # Stricter than MOSIP (whose Jackson accepts other ISO forms): the envelope's time must be
    # in the format MOSIP documents, so that clients are tested against it.
    if requesttime is not None and not (
        isinstance(requesttime, str) and MOSIP_TIMESTAMP.fullmatch(requesttime)
    ):
        raise _ValidationErrors([f"Invalid Format in field : requesttime ({requesttime!r})"])
    return envelope


def _require_request(request):
    if not isinstance(request, dict):
        raise _ValidationErrors(["request must not be null"])
    return request


def _not_blank(request, field, message):
    value = request.get(field)
    if not isinstance(value, str) or not value.strip():
        return [f"request.{field} {message}"]
    return []


def _raise_if(messages):
    if messages:
        raise _ValidationErrors(messages)


def _check_crypto_request(request):
    """Bean validation of ``CryptomanagerRequestDto`` (§4.1)."""
    request = _require_request(request)
    messages = _not_blank(request, "applicationId", "should not be null or empty")
    messages += _not_blank(request, "data", "should not be null or empty")
    time_stamp = request.get("timeStamp")
    if time_stamp is None:
        messages.append("request.timeStamp must not be null")
    elif not (isinstance(time_stamp, str) and MOSIP_TIMESTAMP.fullmatch(time_stamp)):
        messages.append(
            f"request.timeStamp Text {time_stamp!r} could not be parsed as yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
        )
    for field in ("salt", "aad"):
        value = request.get(field)
        if value is not None and not (isinstance(value, str) and _SALT_PATTERN.fullmatch(value)):
            messages.append(f"request.{field} should not be empty")
    _raise_if(messages)


def _decode_crypto_fields(request):
    try:
        return tuple(
            java_b64decode(request[field]) if request.get(field) is not None else None
            for field in ("data", "salt", "aad")
        )
    except ValueError as exc:
        raise KeyManagerFault("KER-CRY-003", NOT_BASE64) from exc


def _signing_key_ids(request):
    application_id = request.get("applicationId")
    reference_id = request.get("referenceId")
    if not application_id or not application_id.strip():
        return "KERNEL", "SIGN"
    if reference_id is None:
        # Optional.of(null) in 1.2: a NullPointerException, HTTP 500 without a message (§5.1).
        raise KeyManagerFault("KER-KMS-500", None, status=500)
    return application_id, reference_id


def _query_key_ids(query):
    application_id = (query.get("applicationId") or [""])[0]
    if not application_id.strip():
        raise _ValidationErrors(["Required String parameter 'applicationId' is not present"])
    return application_id, (query.get("referenceId") or [""])[0].strip()


def _certificate_valid_at(certificate, moment):
    return _aware(certificate.not_valid_before) <= moment <= _aware(certificate.not_valid_after)


def _aware(naive_utc):
    return naive_utc.replace(tzinfo=timezone.utc)


def _is_json(payload):
    try:
        json.loads(payload)
    except ValueError:
        return False
    return True


def _csr_pem(generation):
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{generation.application_id}")])
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .sign(generation.private_key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def response_envelope(request_envelope, response=None, errors=None, is_get=False):
    """MOSIP's ``ResponseWrapper`` (§2.2): echoed id/version, UTC responsetime, errors or response."""
    if is_get or request_envelope is None:
        envelope_id = version = None
    elif errors:
        # ResponseBodyAdviceConfig reads them with path("id").asText(): "" when absent.
        envelope_id = str(request_envelope.get("id") or "")
        version = str(request_envelope.get("version") or "")
    else:
        envelope_id, version = request_envelope.get("id"), request_envelope.get("version")
    return {
        "id": envelope_id,
        "version": version,
        "responsetime": mosip_time(now_utc()),
        "metadata": None,
        "response": None if errors else response,
        "errors": [{"errorCode": code, "message": message} for code, message in errors] if errors else None,
    }


def _spring_error(status, error, path):
    return {"timestamp": now_utc().isoformat(), "status": status, "error": error, "message": "", "path": path}
