# Part of OpenG2P. See LICENSE file for full copyright and licensing details.
"""A sealed server says so: the status endpoint, the warning at start, and its memory at shutdown."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from unittest.mock import patch

import requests

import odoo
from odoo.tests import HttpCase, tagged
from odoo.tools import config

from ..core import custody
from ..models import custody_server
from ..models.custody_server import ServerMemory
from ..models.encryption_provider import clear_data_key_cache

STATUS_URL = "/api/v1/g2p_encryption/seal-status"
ODOO_BIN = os.path.join(os.path.dirname(os.path.dirname(odoo.__file__)), "odoo-bin")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@tagged("post_install", "-at_install")
class TestSealedServer(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sealed_provider = cls.env["g2p.encryption.provider"].create({"name": "Status check"})
        ceremony = cls.env["g2p.encryption.custody.ceremony"]._start_initialise(cls.sealed_provider, 2, 3)
        cls.shares = ceremony._pending().shares
        ceremony.action_confirm_start()
        for share in cls.shares[:2]:
            ceremony._take_share(share)
        cls.custody = cls.sealed_provider.custody_id
        cls.addClassCleanup(clear_data_key_cache)

    def setUp(self):
        super().setUp()
        self.memory = ServerMemory(self.env, self.sealed_provider.id)
        self.addCleanup(self.memory.forget)

    def status(self, **params):
        response = self.url_open(
            STATUS_URL + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")
        )
        return response.status_code, response.json(), response

    def mine(self, body):
        return [entry for entry in body["providers"] if entry["provider_id"] == self.sealed_provider.id]

    def test_the_status_says_sealed_or_unsealed_and_nothing_secret(self):
        self.memory.forget()
        code, body, response = self.status()
        self.assertEqual(code, 200)
        self.assertEqual(response.headers["Cache-Control"], "no-store")
        self.assertTrue(body["sealed"])
        self.assertEqual(body["instance"], custody_server.current_instance_id())
        self.assertEqual(
            self.mine(body),
            [
                {
                    "provider_id": self.sealed_provider.id,
                    "provider": "Status check",
                    "sealed": True,
                    "threshold": 2,
                    "shares_issued": 3,
                    "shares_entered": 0,
                }
            ],
        )
        self.custody._enter_share(self.shares[2])
        self.assertEqual(self.mine(self.status()[1])[0]["shares_entered"], 1)
        self.custody._enter_share(self.shares[0])
        self.assertFalse(self.mine(self.status()[1])[0]["sealed"])
        text = json.dumps(body)
        for secret in (self.custody.master_key_id, self.custody.sudo().check_value, *self.shares):
            self.assertNotIn(secret, text)

    def test_a_health_check_can_fail_while_sealed(self):
        self.memory.forget()
        self.assertEqual(self.status(fail_when_sealed=1)[0], 503)
        for share in self.shares[:2]:
            self.custody._enter_share(share)
        others_sealed = any(entry["sealed"] for entry in self.status()[1]["providers"])
        self.assertEqual(self.status(fail_when_sealed=1)[0], 503 if others_sealed else 200)

    def test_a_configured_token_is_required(self):
        with patch.dict(config.options, {"g2p_encryption_status_token": "s3cret-token"}):
            self.assertEqual(self.status()[0], 401)
            wrong = self.url_open(STATUS_URL, headers={"Authorization": "Bearer nope"})
            self.assertEqual(wrong.status_code, 401)
            right = self.url_open(STATUS_URL, headers={"Authorization": "Bearer s3cret-token"})
            self.assertEqual(right.status_code, 200)
            self.assertIn("providers", right.json())

    def test_a_start_warns_while_sealed(self):
        self.memory.forget()
        with self.assertLogs("odoo.addons.g2p_encryption.models.encryption_custody", "WARNING") as logs:
            self.env["g2p.encryption.custody"]._register_hook()
        self.assertTrue(
            any("Status check" in line and "is sealed on this server" in line for line in logs.output)
        )
        for share in self.shares[:2]:
            self.custody._enter_share(share)
        with self.assertNoLogs("odoo.addons.g2p_encryption.models.encryption_custody", "WARNING"):
            self.custody._warn_if_sealed()


@tagged("post_install", "-at_install")
class TestShutdown(HttpCase):
    def test_only_the_master_process_removes_the_files_at_exit(self):
        directory = tempfile.mkdtemp(prefix="g2p_custody_exit_")
        self.addCleanup(shutil.rmtree, directory, True)
        store = custody.InstanceStore(
            custody_server.current_instance_id(), directory, require_memory_backed=False
        )
        store.put("db-p1", "key", custody.encode_key_file(os.urandom(32)))
        master = os.getpid()
        with (
            patch.object(custody_server, "custody_store", return_value=store),
            patch.object(custody_server, "server_master_pid", return_value=master),
        ):
            child = os.fork()
            if child == 0:  # a prefork worker exiting: it must leave the files alone
                os._exit(custody_server._remove_own_files())
            _pid, status = os.waitpid(child, 0)
            self.assertEqual(os.waitstatus_to_exitcode(status), 0)
            self.assertTrue(store.exists("db-p1", "key"))
            self.assertEqual(custody_server._remove_own_files(), 1)  # the master, at exit
        self.assertFalse(store.exists("db-p1", "key"))

    def test_a_prefork_server_removes_its_files_when_it_stops(self):
        if not os.path.exists(ODOO_BIN):
            self.skipTest(f"odoo-bin not found at {ODOO_BIN}")
        port = free_port()
        work = tempfile.mkdtemp(prefix="g2p_custody_stop_")
        self.addCleanup(shutil.rmtree, work, True)
        server = subprocess.Popen(  # noqa: S603 - our own Odoo, our own arguments
            [
                sys.executable,
                ODOO_BIN,
                "-c",
                config.rcfile,
                "-d",
                self.env.cr.dbname,
                "--workers=2",
                "--max-cron-threads=0",
                f"--http-port={port}",
                f"--gevent-port={free_port()}",
                "--http-interface=127.0.0.1",
                f"--db-filter=^{self.env.cr.dbname}$",
                f"--logfile={work}/server.log",
                "--log-level=warn",
            ],
            start_new_session=True,
        )
        self.addCleanup(lambda: server.poll() is None and os.killpg(server.pid, signal.SIGKILL))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):  # not listening yet
                if requests.get(f"http://127.0.0.1:{port}/web/health", timeout=2).status_code == 200:
                    break
            self.assertIsNone(server.poll(), "Odoo stopped while starting")
            time.sleep(0.5)
        else:
            self.fail("Odoo did not start")
        store = custody.InstanceStore(
            custody.instance_id(server.pid), custody_server.custody_store().directory
        )
        store.put("db-p1", "key", custody.encode_key_file(os.urandom(32)))
        self.addCleanup(store.remove_instance)
        workers = [pid for pid in _children(server.pid) if _command(pid).count("odoo-bin")]
        self.assertTrue(workers, "no worker process")
        os.kill(workers[0], signal.SIGTERM)  # a worker stops: the master's key stays
        time.sleep(2)
        self.assertTrue(store.exists("db-p1", "key"))
        server.send_signal(signal.SIGTERM)  # a clean shutdown
        server.wait(timeout=60)
        self.assertFalse(store.exists("db-p1", "key"), open(f"{work}/server.log").read()[-2000:])  # noqa: SIM115


def _children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    if int(handle.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def _command(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().decode(errors="replace")
    except OSError:
        return ""
