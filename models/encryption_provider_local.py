# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""The ``local`` provider: keys made and kept by this Odoo, wrapped by a master key.

The master key never enters the database. It comes, in this order, from the server
configuration (``g2p_encryption_master_key``, base64), from the key file it names
(``g2p_encryption_master_key_file``), from the file named by the environment variable
``G2P_ENCRYPTION_MASTER_KEY_FILE``, or from ``<data_dir>/g2p_encryption/master.key``, which is
generated on first use (mode 0600) with a warning: back it up, without it nothing decrypts.
"""

import logging
import os
import threading

from odoo import models
from odoo.tools import config

from ..core import jose
from ..core.master_key import resolve_master_key

_logger = logging.getLogger(__name__)

MASTER_KEY_ENV = "G2P_ENCRYPTION_MASTER_KEY_FILE"

_master_key_lock = threading.Lock()
# {source settings: MasterKey}; per worker process, rebuilt from the key file when lost.
_MASTER_KEYS = {}


def local_master_key():
    """The master key of this server, read once per process."""
    settings = (
        config.get("g2p_encryption_master_key") or None,
        config.get("g2p_encryption_master_key_file") or None,
        os.environ.get(MASTER_KEY_ENV) or None,
        os.path.join(config["data_dir"], "g2p_encryption", "master.key"),
    )
    with _master_key_lock:
        master_key = _MASTER_KEYS.get(settings)
        if master_key is None:
            master_key, source, generated = resolve_master_key(*settings)
            if generated:
                _logger.warning(
                    "No master key was configured: generated one in %s. Back it up apart from the "
                    "database, and name it in the server configuration "
                    "(g2p_encryption_master_key_file); without it the data cannot be decrypted.",
                    source,
                )
            else:
                _logger.info("Master key %s loaded from %s", master_key.key_id, source)
            _MASTER_KEYS[settings] = master_key
        return master_key


def forget_master_keys():
    """Drop the master keys held by this process (tests, a changed key file)."""
    with _master_key_lock:
        _MASTER_KEYS.clear()


class EncryptionProviderLocal(models.Model):
    _inherit = "g2p.encryption.provider"

    def _local_master_key(self):
        """The master key that wraps this provider's keys: the server's key file.

        ``models/key_custody.py`` overrides it for the ``sealed`` custody mode, where the key is the
        one rebuilt from the custodians' shares (and a sealed server has none).
        """
        return local_master_key()

    def _wrap_key_local(self, key_id, secret, purpose):
        master_key = self._local_master_key()
        return master_key.wrap(key_id, secret, purpose), master_key.key_id

    def _unwrap_key_local(self, key_id, wrapped, purpose):
        return self._local_master_key().unwrap(key_id, wrapped, purpose)

    # Signing --------------------------------------------------------------------------------
    def jwt_sign_local(
        self, data, include_payload=True, include_certificate=False, include_cert_hash=False, **kwargs
    ):
        key_record = self.env["g2p.encryption.key"].sudo()._active_key(self, "sign")
        signing_key = jose.SigningKey.from_private_pem(
            self._unwrap_key(key_record), key_record.algorithm, key_record.certificate
        )
        return jose.jws_sign(
            signing_key,
            data,
            include_payload=include_payload,
            include_certificate=include_certificate,
            include_cert_hash=include_cert_hash,
        )

    def jwt_verify_local(self, token, payload=None, **kwargs):
        return jose.jws_verify(token, self.get_jwks_local(), payload=payload)

    def get_jwks_local(self, **kwargs):
        return self.env["g2p.encryption.key"].sudo()._signing_jwks(self)
