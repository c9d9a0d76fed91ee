"""Load and fault suite of registry encryption with the KeyManager provider (``tools/fault_suite/run``).

Everything runs on 127.0.0.1 and is thrown away at the end:

1. a fresh database with ``g2p_encryption`` installed, a KeyManager provider (envelope mode, short
   timeouts, one retry, a data-key cache of a few uses so that workers call KeyManager often)
   chosen as registry provider, "Encrypt registry" and "Decrypt registry" on;
2. the KeyManager + Keycloak emulator (``tools/emulator``, short token lifetime) and a
   multi-worker (prefork) Odoo;
3. ``--clients`` HTTP clients (JSON-RPC, one session each, logged in as admin) create, edit and
   read registrants for ``--seconds`` while a fault thread drives the emulator: 10 % of 5xx,
   latency spikes, token expiry, expired tokens, KeyManager error codes, a timeout spike and
   short downtimes. Each client keeps a ledger: a create or write whose call succeeded is
   committed, one that failed is not;
4. then, faults cleared, a fresh session checks that every committed record decrypts to what was
   written last, that nothing a failed call wrote survives (searched through the blind index),
   that the blind index matches, that no plaintext is in a ``pg_dump`` nor in Odoo's log, and
   that no worker is stuck.

It prints a summary and exits 1 when a check fails (2 when the set-up fails).

The package, a module a step: ``cli`` (arguments, exit status) runs the ``suite`` (processes,
set-up, load), whose ``checks`` and ``report`` read what the ``clients`` (writing ``markers``) and
the ``faults`` driver did. ``harness`` (a throwaway Odoo, JSON-RPC, the machine) is shared with the
other tools.
"""
