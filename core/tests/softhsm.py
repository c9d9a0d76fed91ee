"""A SoftHSM2 in a temporary directory, for the tests of the ``pkcs11`` provider (pure and Odoo).

SoftHSM2 (Debian's ``softhsm2``) is a real PKCS#11 module that keeps its tokens in files. A
``SoftHSM`` writes a configuration naming a fresh token directory, points ``SOFTHSM2_CONF`` at it,
initialises tokens with ``softhsm2-util`` and initialises the library again so that this process
sees them. ``missing()`` says why it cannot run here (no SoftHSM2, no binding): tests skip with it.
"""

import os
import shutil
import subprocess
import tempfile

from .. import pkcs11 as p11

LIBRARY_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
USER_PIN = "g2p-test-user-pin-1234"
SO_PIN = "g2p-test-so-pin-5678"


def library_path():
    """Path of SoftHSM2's PKCS#11 module (``G2P_SOFTHSM2_LIBRARY`` overrides), or None."""
    candidates = (os.environ.get("G2P_SOFTHSM2_LIBRARY"),) + LIBRARY_CANDIDATES
    return next((path for path in candidates if path and os.path.isfile(path)), None)


def missing():
    """Why SoftHSM2 tests cannot run here (a sentence naming what to install), or None."""
    if not shutil.which("softhsm2-util") or not library_path():
        return "SoftHSM2 is not installed (apt-get install softhsm2; tools/test installs it)"
    return p11.binding_missing()


class SoftHSM:
    """Tokens of a SoftHSM2 living in a temporary directory, for one test module or class."""

    def __init__(self, *labels, pin=USER_PIN):
        self.library = library_path()
        self.pin = pin
        self.labels = list(labels)
        self.directory = None
        self._previous_conf = None

    def start(self):
        self.directory = tempfile.mkdtemp(prefix="g2p-softhsm-")
        os.mkdir(os.path.join(self.directory, "tokens"), 0o700)
        self.conf = os.path.join(self.directory, "softhsm2.conf")
        with open(self.conf, "w", encoding="utf-8") as handle:
            handle.write(
                f"directories.tokendir = {self.directory}/tokens\nobjectstore.backend = file\n"
                "log.level = ERROR\nslots.removable = false\n"
            )
        self._previous_conf = os.environ.get("SOFTHSM2_CONF")
        os.environ["SOFTHSM2_CONF"] = self.conf
        for label in self.labels:
            self._init_token(label)
        p11.forget_sessions(reinitialize=True)
        return self

    def stop(self):
        p11.forget_sessions()
        if self._previous_conf is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = self._previous_conf
        p11.forget_sessions(reinitialize=True)
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def add_token(self, label):
        """Initialise one more token (the library is initialised again to see it)."""
        self._init_token(label)
        self.labels.append(label)
        p11.forget_sessions(reinitialize=True)

    def delete_token(self, label):
        """Delete a token behind the library's back, as an HSM unplugged or wiped."""
        self._util("--delete-token", "--token", label)

    def token(self, label, pin=None, **kwargs):
        return p11.Token(self.library, token_label=label, pin=pin or self.pin, **kwargs)

    def token_files(self):
        """Every file of the token directory (what an HSM holds: tests show it is not the DB's)."""
        for root, _dirs, files in os.walk(os.path.join(self.directory, "tokens")):
            yield from (os.path.join(root, name) for name in files)

    def _init_token(self, label):
        self._util("--init-token", "--free", "--label", label, "--pin", self.pin, "--so-pin", SO_PIN)

    def _util(self, *args):
        result = subprocess.run(
            ["softhsm2-util", *args],
            env=dict(os.environ, SOFTHSM2_CONF=self.conf),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode:
            raise RuntimeError(f"softhsm2-util {args[0]} failed: {result.stderr.strip() or result.stdout}")
        return result.stdout
