# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""Shared fixtures of the Odoo tests: users, the default provider, and database scans."""

import base64
import contextlib
import os
import tempfile
from unittest.mock import patch

from odoo.tests.common import HttpCase, TransactionCase, new_test_user, tagged
from odoo.tools import config

from ..core import envelope
from ..models.encryption_provider import clear_data_key_cache
from ..models.encryption_provider_local import forget_master_keys


def database_text(cr):
    """Every row of every table in the public schema, as text, as this transaction sees it.

    Unlike ``pg_dump`` this also sees the rows a test has not committed, so a test can assert
    that a value never reached any column.
    """
    cr.execute(
        """SELECT quote_ident(table_name) FROM information_schema.tables
           WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"""
    )
    chunks = []
    for (table,) in cr.fetchall():
        # The table names come from the catalogue, not from user input.
        cr.execute(f"SELECT string_agg(t::text, E'\\n') FROM {table} t")  # pylint: disable=sql-injection
        chunks.append(cr.fetchone()[0] or "")
    return "\n".join(chunks)


@contextlib.contextmanager
def master_key_file(key=None):
    """Point the server configuration at a fresh key file (a new master key unless ``key``)."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "master.key")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(base64.b64encode(key or os.urandom(32)).decode())
        with patch.dict(config.options, {"g2p_encryption_master_key_file": path}):
            forget_master_keys()
            clear_data_key_cache()
            try:
                yield path
            finally:
                forget_master_keys()
                clear_data_key_cache()


# After the whole registry is loaded: tests use web_search_read (web) and mail tracking (contacts).
@tagged("post_install", "-at_install")
class G2PEncryptionCase(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.provider = cls.env.ref("g2p_encryption.encryption_provider_default")
        cls.crypto_admin = new_test_user(
            cls.env,
            login="g2p_crypto_admin",
            groups="base.group_user,base.group_partner_manager,g2p_encryption.crypto_admin",
        )
        cls.settings_admin = new_test_user(
            cls.env,
            login="g2p_settings_crypto_admin",
            groups="base.group_user,base.group_system,g2p_encryption.crypto_admin",
        )
        cls.clerk = new_test_user(
            cls.env, login="g2p_clerk", groups="base.group_user,base.group_partner_manager"
        )

        # On an OpenG2P registry its own groups guard the registry's models too.
        for user, xmlid in (
            (cls.crypto_admin, "g2p_registry_base.group_g2p_admin"),
            (cls.settings_admin, "g2p_registry_base.group_g2p_admin"),
            (cls.clerk, "g2p_registry_base.group_g2p_registrar"),
        ):
            group = cls.env.ref(xmlid, raise_if_not_found=False)
            if group:
                user.groups_id += group

    def setUp(self):
        super().setUp()
        # Each test starts cold, as a new worker would.
        clear_data_key_cache()
        self.addCleanup(clear_data_key_cache)


ENCRYPTED_FIELDS = ("name", "email", "phone", "mobile", "street", "street2", "city", "zip")


def marker_values(number):
    """Registrant values with a distinctive marker in every encrypted field."""
    return {
        "name": f"Zmarker{number:04d} Name",
        "email": f"zmarker{number:04d}@example.org",
        "phone": f"+254 70{number:07d}",
        "mobile": f"+254 71{number:07d}",
        "street": f"Zmarker{number:04d} Street",
        "street2": f"Zmarker{number:04d} Block",
        "city": f"Zmarker{number:04d}ville",
        "zip": f"Z{number:04d}Q",
    }


def marker_fragments(number):
    """Substrings that betray any of the marker values of ``number``."""
    return (f"marker{number:04d}", f"70{number:07d}", f"71{number:07d}", f"Z{number:04d}Q")


class RegistryCase(G2PEncryptionCase):
    """Encryption of the registry on, as an admin would set it in Settings."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.set_registry(encrypt=True, decrypt=False)

    @classmethod
    def set_registry(cls, encrypt=None, decrypt=None):
        params = cls.env["ir.config_parameter"].sudo()
        if encrypt is not None:
            params.set_param("g2p_encryption.encrypt_registry", encrypt and "True" or "")
        if decrypt is not None:
            params.set_param("g2p_encryption.decrypt_registry", decrypt and "True" or "")

    @classmethod
    def registrants_in_the_clear(cls, numbers):
        """Registrants stored while "Encrypt registry" was off (what the registry jobs convert);
        encryption is on again afterwards."""
        cls.set_registry(encrypt=False)
        partners = cls.env["res.partner"].create(
            [dict(marker_values(number), is_registrant=True) for number in numbers]
        )
        cls.set_registry(encrypt=True)
        return partners

    def create_registrant(self, number, **values):
        vals = dict(marker_values(number), is_registrant=True, **values)
        return self.env["res.partner"].create(vals)

    def create_registrants(self, numbers, **values):
        return self.env["res.partner"].create(
            [dict(marker_values(number), is_registrant=True, **values) for number in numbers]
        )

    def decryption_rows(self, **domain):
        """Decryption log rows written since the test started, with optional field filters."""
        self.env.cr.precommit.run()  # rows of server code are written when the transaction commits
        conditions = [(name, "=", value) for name, value in domain.items()]
        return self.env["g2p.decryption.log"].sudo().search(conditions + [("id", ">", self.first_log_id)])

    def setUp(self):
        super().setUp()
        last = self.env["g2p.decryption.log"].sudo().search([], order="id desc", limit=1)
        self.first_log_id = last.id or 0

    def raw_column(self, record, field_name):
        """The value stored in PostgreSQL, bypassing the ORM."""
        record.flush_recordset()
        self.env.cr.execute(
            f'SELECT "{field_name}" FROM "{record._table}" WHERE id = %s',  # pylint: disable=sql-injection
            (record.id,),
        )
        return self.env.cr.fetchone()[0]

    def assertNoMarker(self, text, numbers):
        for number in numbers:
            for fragment in marker_fragments(number):
                self.assertNotIn(fragment.lower(), text.lower())


class KeyManagerCase(G2PEncryptionCase):
    """A keymanager provider (envelope mode) talking over real HTTP to the emulator on 127.0.0.1.

    Each test starts with a healthy emulator, zeroed counters and cold caches (tokens, data keys,
    certificates), as a new worker would. Timeouts, retries and backoff are small so that fault
    tests stay fast.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Imported here: the emulator is a test tool, not a dependency of the addon's models.
        from ..emulator import DEFAULT_CLIENT_SECRET, Emulator

        cls.emulator = Emulator().start()
        cls.addClassCleanup(cls.emulator.stop)
        cls.km_provider = cls.make_keymanager_provider(name="KeyManager (envelope)")
        cls.client_secret = DEFAULT_CLIENT_SECRET

    @classmethod
    def keymanager_values(cls, **values):
        from ..emulator import DEFAULT_CLIENT_SECRET

        vals = {
            "type": "keymanager",
            "keymanager_api_base_url": cls.emulator.keymanager_url,
            "keymanager_auth_url": cls.emulator.token_url,
            "keymanager_auth_client_secret": DEFAULT_CLIENT_SECRET,
            "keymanager_api_timeout": 3,
            "keymanager_api_retries": 1,
            "keymanager_api_retry_backoff": 0.01,
        }
        vals.update(values)
        return vals

    @classmethod
    def make_keymanager_provider(cls, name="KeyManager", **values):
        return cls.env["g2p.encryption.provider"].create(cls.keymanager_values(name=name, **values))

    @classmethod
    def make_direct_provider(cls, name="KeyManager (direct)", **values):
        return cls.make_keymanager_provider(name=name, keymanager_mode="direct", **values)

    def setUp(self):
        super().setUp()
        from ..core import cache, monitoring

        self.emulator.faults.clear()
        self.emulator.reset_counts()
        cache.clear_all()  # tokens, certificates: cold, as a new worker
        monitoring.reset_stats()
        self.addCleanup(self.emulator.faults.clear)
        self.addCleanup(cache.clear_all)

    def km_counts(self):
        """Requests the emulator received per endpoint since the test started (or the last reset)."""
        return self.emulator.counts

    def km_calls(self):
        """KeyManager calls (not Keycloak ones) received."""
        return sum(count for endpoint, count in self.km_counts().items() if endpoint.startswith("/"))

    def use_as_registry_provider(self, provider):
        params = self.env["ir.config_parameter"].sudo()
        params.set_param("g2p_encryption.registry_encryption_provider_id", str(provider.id))
        params.set_param("g2p_encryption.encrypt_registry", "True")
        self.env.registry.clear_cache()


@tagged("post_install", "-at_install")
class RegistryHttpCase(HttpCase, RegistryCase):
    """Registry tests through the web client's own path: JSON-RPC to /web/dataset/call_kw."""

    def rpc(self, user, model, method, *args, **kwargs):
        """Call ``model.method(*args, **kwargs)`` over JSON-RPC as ``user`` (password = login)."""
        if getattr(self, "_rpc_login", None) != user.login:
            self.authenticate(user.login, user.login)
            self._rpc_login = user.login
        return self.make_jsonrpc_request(
            f"/web/dataset/call_kw/{model}/{method}",
            {"model": model, "method": method, "args": list(args), "kwargs": kwargs},
        )


# The provider's value API, as the engine calls it ------------------------------------------------
def encrypt_values(provider, values, aad=b""):
    """Tokens of ``values`` by ``provider``, all bound to ``aad`` (one batch)."""
    values = list(values)
    return provider._encrypt_values(values, [aad] * len(values))


def decrypt_values(provider, tokens, aad=b""):
    """Plaintexts of ``tokens``: envelope tokens in one batch, the type's own ones through it."""
    tokens = list(tokens)
    local = [i for i, token in enumerate(tokens) if envelope.is_token(token)]
    results = [None] * len(tokens)
    if local:
        for i, plaintext in zip(
            local, provider._decrypt_tokens([tokens[i] for i in local], [aad] * len(local)), strict=False
        ):
            results[i] = plaintext
    remote = [i for i in range(len(tokens)) if i not in local]
    if remote:
        opened = provider._dispatch("_decrypt_values", [tokens[i] for i in remote], [aad] * len(remote))
        for i, plaintext in zip(remote, opened, strict=False):
            results[i] = plaintext
    return results


def active_data_key(provider):
    """(key id, key) of ``provider``'s active data key."""
    key_id = provider._active_key("encrypt").key_id
    return key_id, provider._keyring().key(key_id)
