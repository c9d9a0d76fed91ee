"""Pure-Python layer of g2p_encryption.

Nothing in this package imports ``odoo``: it is the cryptography (ciphertext envelope, local
master key, JOSE), the HTTP clients of Keycloak and MOSIP KeyManager, and the blind index. The
Odoo models in ``models/`` are a thin layer on top of it. Modules here import each other
relatively, so the package works both as ``odoo.addons.g2p_encryption.core`` and, in the plain
pytest suite, without Odoo.
"""
