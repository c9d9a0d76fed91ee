# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""What sealed custody must never leave behind: keys or shares in the database, on disk, in logs."""

import base64
import logging
import os
import stat

from odoo.exceptions import AccessError, UserError
from odoo.tools import config

from ..core import custody
from ..models import key_custody
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
        data = key_custody.custody_store().get(self.sealed_provider._custody_scope(), "key")
        return custody.decode_key_file(data)

    def test_database_and_filesystem_of_a_sealed_server_hold_no_key_and_no_share(self):
        share_set = self.initialise()
        key = self.capture_key()
        self.sealed_provider.encrypt_data(b"Grace Otieno")
        self.sealed_provider.action_custody_seal()
        self.sealed_provider._custody_enter_share(share_set.shares[0])  # a custodian started again
        self.sealed_provider._custody_enter_share(share_set.shares[1])
        self.assertTrue(self.sealed_provider._custody_progress("unseal"))
        needles = secret_forms(key, share_set.shares)
        self.env.flush_all()
        dump = database_text(self.env.cr).encode()
        self.assertEqual([i for i, needle in enumerate(needles) if needle in dump], [])
        # Shares entered so far sit in memory, encrypted under a key kept in the database: the
        # store alone holds none of them.
        roots = [config["data_dir"], "/tmp", key_custody.custody_store().directory]
        self.assertEqual(files_holding(roots, needles), [])
        self.sealed_provider.action_custody_seal()
        self.assertEqual(files_holding(roots, needles), [])
        self.assertIn(self.sealed_provider.custody_master_key_id, dump.decode())  # the scan did see custody

    def test_unsealed_key_only_in_private_memory_bound_to_the_instance(self):
        self.initialise()
        store = key_custody.custody_store()
        path = store.path(self.sealed_provider._custody_scope(), "key")
        self.assertTrue(custody.is_memory_backed(os.path.dirname(path)))
        self.assertIn(key_custody.current_instance_id(), os.path.basename(path))
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
            share_set = self.initialise()
            key = self.capture_key()
            self.restart()
            self.sealed_provider._custody_enter_share(share_set.shares[2].replace("a", "e", 1))
            for share in share_set.shares[:3]:
                self.sealed_provider._custody_enter_share(share)
            self.sealed_provider.encrypt_data(b"x")
        finally:
            loggers[0].removeHandler(capture)
            for logger, level in zip(loggers, old_levels, strict=True):
                logger.setLevel(level)
        text = "\n".join(capture.records).encode()
        self.assertIn(b"unsealed", text)  # the capture worked
        self.assertEqual(
            [i for i, needle in enumerate(secret_forms(key, share_set.shares)) if needle in text], []
        )

    def test_audit_log_holds_no_share(self):
        share_set = self.initialise()
        self.restart()
        self.sealed_provider._custody_enter_share(share_set.shares[0])
        self.sealed_provider._custody_enter_share(" ".join(share_set.shares[1].split()[:-1]))
        details = " ".join(
            self.env["g2p.encryption.custody.log"]
            .search([("provider_id", "=", self.sealed_provider.id)])
            .mapped("detail")
        )
        for share in share_set.shares:
            words = share.split()
            for start in range(len(words) - 2):
                self.assertNotIn(" ".join(words[start : start + 3]), details)


class TestCustodyAccess(CustodyCase):
    def test_clerk_sees_no_custody(self):
        self.initialise()
        for model in (
            "g2p.encryption.custody.log",
            "g2p.encryption.custody.server",
            "g2p.encryption.custody.unseal.wizard",
            "g2p.encryption.custody.rekey.wizard",
            "g2p.encryption.custody.initialise.wizard",
        ):
            with self.subTest(model=model), self.assertRaises(AccessError):
                self.env[model].with_user(self.clerk).search([])
        with self.assertRaises(AccessError):
            self.env["g2p.encryption.custody.unseal.wizard"].with_user(self.clerk).create(
                {"provider_id": self.sealed_provider.id}
            )

    def test_crypto_admin_browses_the_log_but_cannot_change_it(self):
        self.initialise()
        logs = (
            self.env["g2p.encryption.custody.log"]
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
            self.env["g2p.encryption.custody.log"].with_user(self.crypto_admin).create({"event": "seal"})

    def test_custody_fields_are_written_only_by_the_custody_code(self):
        self.initialise()
        provider = self.sealed_provider.with_user(self.crypto_admin)
        for vals in (
            {"custody_mode": "key_file"},
            {"custody_check_value": "0" * 64},
            {"custody_threshold": 1},
        ):
            with self.subTest(vals=vals), self.assertRaises(AccessError):
                provider.write(vals)
        with self.assertRaises(AccessError):
            self.env["g2p.encryption.provider"].create({"name": "sneaky", "custody_mode": "sealed"})
        copy = self.sealed_provider.copy()
        self.assertEqual(copy.custody_mode, "key_file")
        self.assertFalse(copy.custody_check_value)

    def test_progress_key_is_not_readable_through_the_orm(self):
        share_set = self.initialise()
        self.restart()
        self.sealed_provider._custody_enter_share(share_set.shares[0])
        server = self.sealed_provider._custody_server()
        self.assertTrue(server.sudo().progress_key)
        with self.assertRaises(AccessError):
            server.with_user(self.crypto_admin).read(["progress_key"])

    def test_clerk_meets_the_sealed_error_not_an_access_error(self):
        self.initialise()
        self.restart()
        # The registry reaches the provider through sudo (``_get_registry_provider``) for any user.
        provider = (
            self.env["g2p.encryption.provider"].with_user(self.clerk).sudo().browse(self.sealed_provider.id)
        )
        with self.assertRaisesRegex(UserError, "is sealed: 0 of 3 shares entered"):
            provider.encrypt_data(b"x")
