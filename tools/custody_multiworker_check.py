"""Shows that one unseal serves every worker of a multi-worker Odoo (sealed key custody).

In a throwaway database it starts Odoo with --workers=2 on a free 127.0.0.1 port, puts a new local
provider in sealed custody (3 of 5 shares), seals it, checks that both workers refuse to use its
keys, unseals it with three shares entered in three separate requests, then asks the workers,
concurrently, to decrypt a probe value until two different worker processes (children of the same
Odoo master) have answered. Then it seals again, stops Odoo and drops the database. Prints PASS or
FAIL; exits 0 on PASS. Bounded: about a minute, two at most.

    python tools/custody_multiworker_check.py ODOO_DIR ODOO_CONF   (tools/ on the path; run by
    tools/custody_multiworker_check)
"""

import os
import shutil
import sys
import tempfile
import threading
import time

from harness.odoo import OdooServer, drop_database, parent_pid
from harness.rpc import OdooSession, RpcError

DEADLINE = time.monotonic() + 115
PROVIDER = "g2p.encryption.provider"


def say(message):
    sys.stdout.write(f"[multiworker] {message}\n")
    sys.stdout.flush()


def check(server, rpc):
    """Seal, unseal with three shares in three requests, then probe both workers; True on PASS."""
    provider = rpc.call(PROVIDER, "create", {"name": "Multi-worker check", "type": "local"})
    rpc.call(PROVIDER, "action_custody_check", [provider])  # a data key, under the key file
    wizard = rpc.call(
        "g2p.encryption.custody.initialise.wizard",
        "create",
        {"provider_id": provider, "threshold": 3, "share_count": 5},
    )
    action = rpc.call("g2p.encryption.custody.initialise.wizard", "action_initialise", [wizard])
    shares = action["context"]["g2p_custody_shares"]
    say(f"sealed custody initialised: {len(shares)} shares, 3 needed")
    rpc.call(PROVIDER, "action_custody_seal", [provider])
    refusals = 0
    for _attempt in range(6):
        try:
            rpc.call(PROVIDER, "action_custody_check", [provider])
        except RpcError as error:
            refusals += "is sealed" in error.message
    say(f"sealed: {refusals} of 6 decryption requests refused with the sealed error")
    for number in (5, 1, 3):  # three custodians, three requests
        entry = rpc.call(
            "g2p.encryption.custody.unseal.wizard",
            "create",
            {"provider_id": provider, "share": shares[number - 1]},
        )
        message = rpc.call("g2p.encryption.custody.unseal.wizard", "read", [entry], ["message"])[0]["message"]
        say(f"share {number} entered: {message}")
    state = rpc.call(PROVIDER, "read", [provider], ["custody_state"])[0]["custody_state"]
    first = rpc.call(PROVIDER, "action_custody_check", [provider])["params"]
    say(f"custody state {state}; probe encrypted by worker {first['pid']}")
    seen, failures = probe_workers(rpc, provider, first)
    master = server.process.pid
    children = {pid: parent_pid(pid) == master for pid in seen}
    for pid, count in sorted(seen.items()):
        say(f"worker pid {pid} (child of master {master}: {children[pid]}) decrypted the probe {count} times")
    rpc.call(PROVIDER, "action_custody_seal", [provider])
    leftovers = [
        name
        for name in os.listdir("/dev/shm")
        if name.startswith("g2p_encryption.") and f"-{master}-" in name
    ]
    say(f"sealed again; custody files of this server left in /dev/shm: {len(leftovers)}")
    if failures:
        say(f"errors: {failures[:3]}")
    return (
        state == "unsealed"
        and refusals == 6
        and len(seen) >= 2
        and all(children.values())
        and not (failures or leftovers)
    )


def probe_workers(rpc, provider, first):
    """({worker pid: probes decrypted}, [errors]) of four threads asking until two workers answered."""
    seen, failures, lock = {}, [], threading.Lock()

    def ask():
        while len(seen) < 2 and time.monotonic() < DEADLINE - 20:
            try:
                params = rpc.call(PROVIDER, "action_custody_check", [provider], token=first["token"])[
                    "params"
                ]
            except RpcError as error:
                with lock:
                    failures.append(error.message)
                return
            with lock:
                if params["decrypted"] == first["probe"] and params["round_trip"]:
                    seen[params["pid"]] = seen.get(params["pid"], 0) + 1

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return seen, failures


def main(argv=None):
    odoo_dir, odoo_conf = (argv or sys.argv[1:])[:2]
    database = f"g2p_custody_mw_{os.getpid()}"
    work = tempfile.mkdtemp(prefix="g2p_custody_mw_")
    server = OdooServer(sys.executable, os.path.join(odoo_dir, "odoo-bin"), odoo_conf, database)
    started = time.monotonic()
    passed = False
    try:
        say(f"installing g2p_encryption into the throwaway database {database}")
        server.create_database(f"--data-dir={work}", f"--logfile={work}/install.log", timeout=100)
        say("starting Odoo with --workers=2")
        # The gevent (websocket) process that the prefork master spawns is not needed here: its
        # output goes to a file, shown on failure with the rest.
        extra = (
            f"--db-filter=^{database}$",
            "--log-level=warn",
            f"--data-dir={work}",
            f"--logfile={work}/server.log",
        )
        server.start(2, os.path.join(work, "server.stderr"), *extra)
        passed = check(server, OdooSession(server.url, database, timeout=30))
    # Any failure is a FAIL, shown with its cause and the end of the logs.
    except Exception as error:  # noqa: BLE001  # pylint: disable=broad-exception-caught
        say(f"error: {error}")
        for log in ("install.log", "server.log", "server.stderr"):
            path = os.path.join(work, log)
            if os.path.exists(path):
                with open(path, encoding="utf-8", errors="replace") as handle:
                    tail = handle.read()[-2000:]
                if tail.strip():
                    say(f"{log} (end):\n{tail}")
    finally:
        say("stopping Odoo")
        server.stop()
        drop_database(database)
        shutil.rmtree(work, ignore_errors=True)
    say(f"{'PASS' if passed else 'FAIL'} in {time.monotonic() - started:.0f} s")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
