# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""What sealed custody must never leave behind: keys or shares in the database, on disk, in logs."""

import base64
import logging
import os
import stat
import time

from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user
from odoo.tools import config

from ..core import custody
from ..models import custody_server
from .common import database_text
from .test_custody import CustodyCase

MAX_SCANNED_FILE = 20 * 1024 * 1024


def secret_forms(key, shares):
    """Every spelling of the master key and of the shares that a leak could take."""
    forms = [
        key,
        key.hex().encode(),
        base64.b64encode(key),
        base64.urlsafe_b64encode(key).rstrip(b"="),
        base64.b64encode(key).rstrip(b"="),
    ]
    for share in shares:
        words = share.split()
        forms.append(share.encode())
        forms.append(" ".join(words[4:16]).encode())  # the value words, without the common prefix
        forms.append(" ".join(words[-12:]).encode())
    return forms


def files_holding(roots, needles):
    """[(path, needle index)] of the regular files under ``roots`` that contain a needle."""
    found = []
    for root in roots:
        for directory, _dirs, names in os.walk(root, onerror=lambda error: None):
            for name in names:
                path = os.path.join(directory, name)
                try:
                    info = os.lstat(path)
                    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_SCANNED_FILE:
                        continue
                    with open(path, "rb") as handle:
                        content = handle.read()
                except OSError:
                    continue
                found.extend((path, index) for index, needle in enumerate(needles) if needle in content)
    return found


class LogCapture(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(self.format(record))


class TestNothingLeaks(CustodyCase):
    def capture_key(self):
        """The master key as the provider holds it (white-box: only to search for it)."""
        return custody.decode_key_file(self.memory().get("key"))

    def test_database_and_filesystem_of_a_sealed_server_hold_no_key_and_no_share(self):
        shares = self.initialise()
        key = self.capture_key()
        self.sealed_provider.encrypt_data(b"Grace Otieno")
        self.custody._seal_here()
        self.enter(shares[:2])  # a custodian started again
        self.assertTrue(self.custody._progress("unseal"))
        needles = secret_forms(key, shares)
        self.env.flush_all()
        dump = database_text(self.env.cr).encode()
        self.assertEqual([i for i, needle in enumerate(needles) if needle in dump], [])
        # Shares entered so far sit in memory, encrypted under a key kept in the database: the
        # store alone holds none of them.
        roots = [config["data_dir"], "/tmp", custody_server.custody_store().directory]
        self.assertEqual(files_holding(roots, needles), [])
        self.custody._seal_here()
        self.assertEqual(files_holding(roots, needles), [])
        self.assertIn(self.custody.master_key_id, dump.decode())  # the scan did see custody

    def test_a_pending_ceremony_holds_its_shares_nowhere_in_the_clear(self):
        ceremony, shares = self.start_initialise(2, 3)
        self.confirm(ceremony, shares[:1])
        self.env.flush_all()
        needles = secret_forms(b"\0" * 32, shares)[5:]  # the shares only: the new key is not kept
        dump = database_text(self.env.cr).encode()
        self.assertEqual([i for i, needle in enumerate(needles) if needle in dump], [])
        roots = [config["data_dir"], "/tmp", custody_server.custody_store().directory]
        self.assertEqual(files_holding(roots, needles), [])
        self.assertTrue(self.memory().has("ceremony"))  # the scan saw the sealed box

    def test_unsealed_key_only_in_private_memory_bound_to_the_instance(self):
        self.initialise()
        memory = self.memory()
        path = memory.store.path(memory.scope, "key")
        self.assertTrue(custody.is_memory_backed(os.path.dirname(path)))
        self.assertIn(custody_server.current_instance_id(), os.path.basename(path))
        info = os.stat(path)
        self.assertEqual(stat.S_IMODE(info.st_mode), 0o600)
        self.assertEqual(info.st_uid, os.getuid())
        key = self.capture_key()
        self.assertEqual(files_holding([config["data_dir"], "/tmp"], secret_forms(key, [])), [])

    def test_no_share_or_key_in_the_logs(self):
        capture = LogCapture()
        loggers = [logging.getLogger(), logging.getLogger("odoo"), logging.getLogger("odoo.addons")]
        old_levels = [logger.level for logger in loggers]
        loggers[0].addHandler(capture)
        for logger in loggers:
            logger.setLevel(logging.DEBUG)
        try:
            shares = self.initialise()
            key = self.capture_key()
            self.restart()
            self.enter([shares[2].replace("a", "e", 1)] + shares[:3])
            self.sealed_provider.encrypt_data(b"x")
        finally:
            loggers[0].removeHandler(capture)
            for logger, level in zip(loggers, old_levels, strict=True):
                logger.setLevel(level)
        text = "\n".join(capture.records).encode()
        self.assertIn(b"unsealed", text)  # the capture worked
        self.assertEqual([i for i, needle in enumerate(secret_forms(key, shares)) if needle in text], [])

    def test_audit_log_holds_no_share(self):
        shares = self.initialise()
        self.restart()
        self.enter([shares[0], " ".join(shares[1].split()[:-1])])
        details = " ".join(
            self.env["g2p.encryption.event"]
            .search([("provider_id", "=", self.sealed_provider.id)])
            .mapped("detail")
        )
        for share in shares:
            words = share.split()
            for start in range(len(words) - 2):
                self.assertNotIn(" ".join(words[start : start + 3]), details)


class TestCustodyAccess(CustodyCase):
    def test_clerk_sees_no_custody(self):
        self.initialise()
        for model in (
            "g2p.encryption.event",
            "g2p.encryption.custody",
            "g2p.encryption.custody.ceremony",
            "g2p.encryption.custody.server",
            "g2p.encryption.custody.unseal.wizard",
            "g2p.encryption.custody.rekey.wizard",
            "g2p.encryption.custody.initialise.wizard",
        ):
            with self.subTest(model=model), self.assertRaises(AccessError):
                self.env[model].with_user(self.clerk).search([])
        with self.assertRaises(AccessError):
            self.env["g2p.encryption.custody.unseal.wizard"].with_user(self.clerk).create(
                {"custody_id": self.custody.id}
            )

    def test_crypto_admin_browses_the_events_but_cannot_change_them(self):
        self.initialise()
        logs = (
            self.env["g2p.encryption.event"]
            .with_user(self.crypto_admin)
            .search([("provider_id", "=", self.sealed_provider.id)])
        )
        self.assertIn("initialise", logs.mapped("event"))
        with self.assertRaises(AccessError):
            logs.write({"detail": "nothing happened"})
        with self.assertRaises(AccessError):
            logs.unlink()
        with self.assertRaises(AccessError):
            logs.sudo().write({"detail": "nothing happened"})
        with self.assertRaises(AccessError):
            logs.sudo().unlink()
        with self.assertRaises(AccessError):
            self.env["g2p.encryption.event"].with_user(self.crypto_admin).create({"event": "seal"})
        with self.assertRaises(AccessError):
            self.env["g2p.encryption.event"].sudo().create({"event": "seal"})

    def test_custody_is_written_only_by_its_ceremonies(self):
        self.initialise()
        custody_record = self.custody
        for vals in ({"threshold": 1}, {"check_value": "0" * 64}, {"master_key_id": "forged"}):
            with self.subTest(vals=vals):
                for record in (custody_record.with_user(self.crypto_admin), custody_record.sudo()):
                    with self.assertRaises(AccessError):
                        record.write(vals)
                    # A context key an RPC client could send opens nothing.
                    with self.assertRaises(AccessError):
                        record.with_context(g2p_internal=True, g2p_custody=True).write(vals)
        with self.assertRaises(AccessError):
            self.env["g2p.encryption.custody"].sudo().create(
                {"provider_id": self.provider.id, "threshold": 2}
            )
        with self.assertRaises(UserError):
            custody_record.sudo().unlink()
        copy = self.sealed_provider.copy()
        self.assertEqual(copy.custody_mode, "key_file")
        self.assertFalse(copy.custody_ids)

    def test_a_ceremony_changes_only_by_its_own_steps(self):
        ceremony, _shares = self.start_initialise()
        for vals in ({"state": "done"}, {"threshold": 1}, {"user_id": self.clerk.id}, {"box_key": "00" * 32}):
            with self.subTest(vals=vals), self.assertRaises(AccessError):
                self.ceremonies.browse(ceremony.id).sudo().write(vals)
        with self.assertRaises(AccessError):
            self.ceremonies.sudo().create({"provider_id": self.provider.id, "kind": "initialise"})

    def test_progress_key_and_ceremony_secrets_are_not_readable_through_the_orm(self):
        shares = self.initialise()
        self.restart()
        self.enter(shares[:1])
        server = self.memory().server()
        self.assertTrue(server.sudo().progress_key)
        with self.assertRaises(AccessError):
            server.with_user(self.crypto_admin).read(["progress_key"])
        with self.assertRaises(AccessError):
            self.custody.with_user(self.crypto_admin).read(["check_value"])
        ceremony = self.custody.ceremony_ids[:1]
        for field in ("box_key", "check_value", "base_check_value"):
            with self.subTest(field=field), self.assertRaises(AccessError):
                ceremony.with_user(self.crypto_admin).read([field])

    def test_clerk_meets_the_sealed_error_not_an_access_error(self):
        self.initialise()
        self.restart()
        # The registry reaches the provider through sudo (``_get_registry_provider``) for any user.
        provider = (
            self.env["g2p.encryption.provider"].with_user(self.clerk).sudo().browse(self.sealed_provider.id)
        )
        with self.assertRaisesRegex(UserError, "is sealed: 0 of 3 shares entered"):
            provider.encrypt_data(b"x")


class TestSeparationOfDuties(CustodyCase):
    def test_a_custodian_unseals_and_reads_only_masks(self):
        from ..models.encryption_exits import exit_for

        custodian = new_test_user(
            self.env, login="g2p_mask_custodian", groups="base.group_user,g2p_encryption.key_custodian"
        )
        params = self.env["ir.config_parameter"].sudo()
        params.set_param("g2p_encryption.encrypt_registry", "True")
        params.set_param("g2p_encryption.decrypt_registry", "True")
        params.set_param("g2p_encryption.registry_encryption_provider_id", str(self.sealed_provider.id))
        self.env.registry.clear_cache()
        registrant = self.env["res.partner"].create({"name": "Zcustodian Reader", "is_registrant": True})
        shares = self.initialise(2, 3)
        self.restart()
        for share in shares[:2]:
            self.custody.with_user(custodian)._enter_share(share)
        self.assertEqual(self.custody.state, "unsealed")
        # What a person's read returns (tests/test_registry_exits.py goes through JSON-RPC).
        for user, expected in (
            (custodian, f"Registrant #{registrant.id}"),
            (self.crypto_admin, "Zcustodian Reader"),
        ):
            reader = registrant.with_user(user)
            reader.invalidate_recordset()
            with exit_for(reader.env, "test"):
                self.assertEqual(reader.read(["name"])[0]["name"], expected)
        for model in ("g2p.encryption.key", "g2p.encryption.provider", "g2p.decryption.log"):
            with self.subTest(model=model), self.assertRaises(AccessError):
                self.env[model].with_user(custodian).search([])


class TestIdentityAction(CustodyCase):
    """The helper the settings use before turning "Decrypt registry" on."""

    def test_the_password_is_asked_unless_typed_in_the_last_ten_minutes(self):
        from types import SimpleNamespace
        from unittest.mock import patch

        from odoo.addons.base.models import res_users

        from ..models import rpc_guard

        session = {}
        fake = SimpleNamespace(session=session)
        records = self.env["res.config.settings"].create({}).with_user(self.crypto_admin)
        self.assertIsNone(rpc_guard.identity_action(records, "execute"))  # no request: server code
        with patch.object(rpc_guard, "request", fake), patch.object(res_users, "request", fake):
            action = rpc_guard.identity_action(records, "execute")
            self.assertEqual(action["res_model"], "res.users.identitycheck")
            check = self.env["res.users.identitycheck"].browse(action["res_id"])
            self.assertIn('"execute"', check.sudo().request)
            session["identity-check-last"] = time.time()
            self.assertIsNone(rpc_guard.identity_action(records, "execute"))
            self.assertIsNone(rpc_guard.identity_action(records.sudo(), "execute"))

    def test_a_method_asks_for_the_password_only_when_its_condition_holds(self):
        from types import SimpleNamespace
        from unittest.mock import patch

        from odoo.addons.base.models import res_users

        from ..models import rpc_guard

        calls = []

        @rpc_guard.identity_if(lambda records: records.env.context.get("turning_on"))
        def execute(records):
            calls.append(records)
            return "done"

        self.assertTrue(getattr(execute, "__has_check_identity"))  # Odoo may call it again
        session = {}
        fake = SimpleNamespace(session=session)
        records = self.env["res.config.settings"].create({}).with_user(self.crypto_admin)
        with patch.object(rpc_guard, "request", fake), patch.object(res_users, "request", fake):
            self.assertEqual(execute(records), "done")  # nothing turned on: no password
            asked = execute(records.with_context(turning_on=True))
            self.assertEqual(asked["res_model"], "res.users.identitycheck")
            self.assertEqual(len(calls), 1)
            session["identity-check-last"] = time.time()
            self.assertEqual(execute(records.with_context(turning_on=True)), "done")
        self.assertEqual(len(calls), 2)
