"""A throwaway Odoo: its database, and a multi-worker server on a free 127.0.0.1 port."""

import contextlib
import os
import signal
import socket
import subprocess
import time

import requests


def free_port():
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OdooServer:
    """``odoo-bin`` of ``python`` with the configuration ``odoo_conf``, on the database ``database``."""

    def __init__(self, python, odoo_bin, odoo_conf, database):
        self.python, self.odoo_bin, self.odoo_conf, self.database = python, odoo_bin, odoo_conf, database
        self.process = None
        self.url = None

    def command(self, *extra):
        return [self.python, self.odoo_bin, "-c", self.odoo_conf, "-d", self.database, *extra]

    def create_database(self, *extra, timeout=None):
        """Drop the database, then install ``g2p_encryption`` into a new one (without demo data)."""
        drop_database(self.database)
        install = ("-i", "g2p_encryption", "--without-demo=all", "--stop-after-init", "--log-level=warn")
        subprocess.run(self.command(*install, *extra), check=True, timeout=timeout)

    def start(self, workers, output, *extra, ready_seconds=60):
        """Start a prefork server with ``workers`` HTTP workers and wait until it answers.

        Its stdout and stderr go to the file ``output``.
        """
        port, gevent_port = free_port(), free_port()
        command = self.command(
            f"--workers={workers}",
            f"--http-port={port}",
            f"--gevent-port={gevent_port}",
            "--http-interface=127.0.0.1",
            "--max-cron-threads=0",
            *extra,
        )
        with open(output, "wb") as sink:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                command,
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + ready_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Odoo stopped at start (see {output})")
            with contextlib.suppress(requests.RequestException):
                if requests.post(self.url + "/web/webclient/version_info", json={}, timeout=5).ok:
                    return self.url
            time.sleep(0.5)
        raise RuntimeError(f"Odoo does not answer on {self.url} (see {output})")

    def stop(self):
        stop_process(self.process)


def stop_process(process, timeout=20):
    """Stop ``process`` and its process group: SIGTERM, then SIGKILL after ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def drop_database(database):
    subprocess.run(["dropdb", "--if-exists", "--force", database], check=False)


def parent_pid(pid):
    """The parent of process ``pid`` (from /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])
