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


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="tools/fault_suite/run", description=description.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60, help="duration of the load (default 60)")
    parser.add_argument("--workers", type=int, default=2, help="Odoo HTTP workers (default 2)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients (default 4)")
    parser.add_argument(
        "--token-lifetime", type=int, default=20, help="Keycloak token lifetime, s (default 20)"
    )
    parser.add_argument(
        "--key-cache-uses", type=int, default=16, help="uses of a cached data key (default 16)"
    )
    parser.add_argument(
        "--limit-time-real", type=int, default=60, help="Odoo's --limit-time-real (default 60)"
    )
    parser.add_argument(
        "--outage-seconds",
        type=int,
        default=0,
        help="also make KeyManager /decrypt time out for this long in the middle of the run (default 0)",
    )
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
