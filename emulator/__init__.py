"""MOSIP KeyManager 1.2 and Keycloak emulator: a development and test tool.

A real HTTP server on 127.0.0.1 that speaks the KeyManager API (``/v1/keymanager``) and Keycloak's
token endpoint with real cryptography, counts calls and injects faults (see ``KEYMANAGER_API.md``
and :mod:`.server`). The addon's runtime code never imports it; run it on its own with
``tools/emulator``.
"""

from .faults import Faults
from .keystore import DEFAULT_APPLICATION_IDS, KeyGeneration, KeyStore
from .server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_REALM, Emulator
