"""Command line of the fault suite: its arguments, the run, the exit status (0 pass, 1 fail, 2 error)."""

import argparse
import os
import subprocess
import time

import requests
from harness.rpc import RpcError

from . import __doc__ as description
from .report import out
from .suite import Suite

# The numeric options: (option, default, what it is).
NUMBERS = (
    ("--seconds", 60, "duration of the load"),
    ("--workers", 2, "Odoo HTTP workers"),
    ("--clients", 4, "concurrent HTTP clients"),
    ("--token-lifetime", 20, "Keycloak token lifetime, s"),
    ("--key-cache-uses", 16, "uses of a cached data key"),
    ("--limit-time-real", 60, "Odoo's --limit-time-real"),
    ("--outage-seconds", 0, "also make KeyManager /decrypt time out for this long in the middle of the run"),
)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="tools/fault_suite/run", description=description.split("\n\n")[0])
    for option, default, meaning in NUMBERS:
        parser.add_argument(option, type=int, default=default, help=f"{meaning} (default {default})")
    parser.add_argument(
        "--cold-start",
        action="store_true",
        help="let the clients' first creates make the provider's keys (no registrant made at set-up)",
    )
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database at the end")
    # Given by tools/fault_suite/run from tools/setup.sh:
    parser.add_argument("--python", required=True)
    parser.add_argument("--odoo-bin", required=True)
    parser.add_argument("--odoo-conf", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--tools-dir", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    suite = Suite(args)
    started = time.monotonic()
    try:
        try:
            passed = suite.run()
        except (RuntimeError, RpcError, subprocess.CalledProcessError, requests.RequestException) as error:
            out(f"[fault_suite] ERROR: {type(error).__name__}: {error}")
            return 2
    finally:
        suite.cleanup()
        out(f"[fault_suite] finished in {time.monotonic() - started:.0f} s")
    return 0 if passed else 1
