"""The emulator's Keycloak token endpoint, JWKS and discovery (KEYMANAGER_API.md §13)."""

import base64

import jwt
import pytest
import requests

TIMEOUT = 5


def post_token(emulator, form, headers=None, realm="openg2p"):
    url = f"{emulator.url}/realms/{realm}/protocol/openid-connect/token"
    return requests.post(url, data=form, headers=headers or {}, timeout=TIMEOUT)


def basic(client_id, secret):
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


GOOD = {
    "grant_type": "client_credentials",
    "client_id": "openg2p-admin-client",
    "client_secret": "admin-secret",
}


@pytest.mark.parametrize(
    ("form", "realm", "status", "error"),
    [
        (GOOD, "elsewhere", 404, "Realm does not exist"),
        (
            {"client_id": "openg2p-admin-client", "client_secret": "admin-secret"},
            "openg2p",
            400,
            "invalid_request",
        ),
        (dict(GOOD, grant_type="password"), "openg2p", 400, "unsupported_grant_type"),
        ({"grant_type": "client_credentials"}, "openg2p", 400, "invalid_client"),
        (dict(GOOD, client_id="nobody"), "openg2p", 401, "invalid_client"),
        (dict(GOOD, client_secret="wrong"), "openg2p", 401, "unauthorized_client"),
        (
            {"grant_type": "client_credentials", "client_id": "robot", "client_secret": "robot-secret"},
            "openg2p",
            401,
            "unauthorized_client",
        ),
    ],
)
def test_token_errors(emulator, form, realm, status, error):
    response = post_token(emulator, form, realm=realm)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert emulator.counts["token"] == 1


def test_token_is_a_keycloak_service_account_jwt(emulator):
    response = post_token(emulator, GOOD)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert (body["token_type"], body["expires_in"], body["refresh_expires_in"]) == ("Bearer", 300, 0)
    jwks = requests.get(emulator.certs_url, timeout=TIMEOUT).json()
    kid = jwt.get_unverified_header(body["access_token"])["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid].key
    claims = jwt.decode(body["access_token"], key=key, algorithms=["RS256"], audience="account")
    assert claims["iss"] == emulator.realm_url
    assert claims["exp"] - claims["iat"] == 300
    assert claims["azp"] == "openg2p-admin-client"
    assert claims["preferred_username"] == "service-account-openg2p-admin-client"
    assert claims["realm_access"]["roles"] == ["KEYMANAGER_ADMIN"]
    assert {"jti", "sub"} <= set(claims)


def test_basic_authentication_and_form_precedence(emulator):
    form = {"grant_type": "client_credentials"}
    assert post_token(emulator, form, basic("openg2p-admin-client", "admin-secret")).status_code == 200
    assert post_token(emulator, form, basic("openg2p-admin-client", "wrong")).status_code == 401
    # Form values override the header.
    assert post_token(emulator, GOOD, basic("openg2p-admin-client", "wrong")).status_code == 200
    assert [entry["client_auth"] for entry in emulator.requests] == ["basic", "basic", "post"]


def test_discovery_document(emulator):
    url = f"{emulator.realm_url}/.well-known/openid-configuration"
    document = requests.get(url, timeout=TIMEOUT).json()
    assert document["issuer"] == emulator.realm_url
    assert document["token_endpoint"] == emulator.token_url
    assert document["jwks_uri"] == emulator.certs_url
    assert requests.get(emulator.token_url, timeout=TIMEOUT).status_code == 405
