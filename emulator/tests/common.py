"""Helpers of the emulator tests: raw KeyManager requests with a chosen token, cookie and envelope."""

import base64
from datetime import datetime, timezone

import requests

TIMEOUT = 5
APP, REF = "REGISTRATION", "ENCRYPT"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mosip_now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def crypto_request(data, application_id=APP, reference_id=REF, **fields):
    """An /encrypt or /decrypt request; ``data`` bytes are base64url-encoded, a str is sent as is."""
    request = {
        "applicationId": application_id,
        "referenceId": reference_id,
        "timeStamp": mosip_now(),
        "data": b64url(data) if isinstance(data, bytes) else data,
    }
    request.update(fields)
    return request


def call(emulator, method, endpoint, request=None, *, token=None, cookie="Authorization", headers=None, **kw):
    """``(status, json)`` of a raw KeyManager request; ``token=None`` uses a valid admin token."""
    token = emulator.issue_token() if token is None else token
    headers = dict(headers or {})
    if cookie and token:
        headers["Cookie"] = f"{cookie}={token}"
    if request is not None and "json" not in kw and "data" not in kw:
        kw["json"] = {
            "id": "mosip.test",
            "version": "1.0",
            "requesttime": mosip_now(),
            "metadata": {},
            "request": request,
        }
    response = requests.request(
        method, emulator.keymanager_url + endpoint, headers=headers, timeout=TIMEOUT, **kw
    )
    return response.status_code, response.json()


def ok(emulator, method, endpoint, request=None, **kw):
    """The ``response`` of a call that must succeed."""
    status, body = call(emulator, method, endpoint, request, **kw)
    assert status == 200 and body["errors"] is None, body
    return body["response"]


def error_of(emulator, method, endpoint, request=None, **kw):
    """``(status, first errorCode, first message)`` of a call that must fail."""
    status, body = call(emulator, method, endpoint, request, **kw)
    assert body["errors"] and body["response"] is None, body
    return status, body["errors"][0]["errorCode"], body["errors"][0]["message"]
