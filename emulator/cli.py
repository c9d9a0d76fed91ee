"""``tools/emulator``: run the emulator on its own until interrupted."""

import argparse
import logging
import signal
import sys
import threading

from .server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_REALM, Emulator


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="tools/emulator",
        description="MOSIP KeyManager 1.2 + Keycloak emulator (development and load-test tool).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8088, help="0 picks a free port (default: 8088)")
    parser.add_argument("--realm", default=DEFAULT_REALM)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument(
        "--roles", default="KEYMANAGER_ADMIN", help="comma-separated realm roles of the client"
    )
    parser.add_argument("--token-lifetime", type=int, default=300, help="seconds (default: 300)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    roles = [role.strip() for role in args.roles.split(",") if role.strip()]
    emulator = Emulator(
        args.host,
        args.port,
        token_lifetime=args.token_lifetime,
        clients={args.client_id: {"secret": args.client_secret, "roles": roles}},
        realm=args.realm,
    ).start()
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    # The first line says where it listens, so that a script starting it with --port 0 can read it.
    sys.stdout.write(
        f"emulator listening on {emulator.url}\n"
        f"  KeyManager: {emulator.keymanager_url}\n"
        f"  token URL:  {emulator.token_url}  (client {args.client_id})\n"
        f"  control:    {emulator.url}/_emulator/stats\n"
    )
    sys.stdout.flush()
    try:
        while not stopped.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0
