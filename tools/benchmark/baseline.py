"""The baseline's process: OpenG2P's own ``g2p_registry_encryption`` in a database of its own.

OpenG2P's ``g2p_encryption`` has the same module name as this addon, so it runs in another
process, on another database (``tools/bench`` makes it), driven by the benchmark over stdin and
stdout: one JSON command a line in, one ``BENCH-RESULT <json>`` line out. Its KeyManager provider
talks to the benchmark's emulator (5 ms per call), one ``/encrypt`` per record written and one
``/decrypt`` per record read, as OpenG2P does. The operations are the benchmark's own
(``measure.Bench``); nothing is committed.

    python -m benchmark.baseline --config odoo-baseline.conf --database DB --emulator-url URL
"""

import argparse
import json
import sys

import requests

from .measure import ENCRYPTED_FIELDS, LIST_SPEC, Bench, Sections, make_registrants
from .scenarios import CONFIGURATIONS

RESULT = "BENCH-RESULT "
PARAM_PREFIX = "g2p_registry_encryption."
CLIENT_ID, CLIENT_SECRET = "openg2p-admin-client", "emulator-client-secret"


def reply(payload):
    sys.stdout.write(RESULT + json.dumps(payload) + "\n")
    sys.stdout.flush()


class BaselineBench(Bench):
    """The operations in OpenG2P's database. Its list, ``web_search_read``, shows the placeholders
    even with decryption on: Odoo 17's ``search_fetch`` calls ``_fetch_query`` on an empty
    recordset, so OpenG2P's hook, which loops over ``self``, decrypts nothing. What it costs to
    show the plaintext is measured on its working path, ``search`` then ``web_read`` (the form's
    read: one KeyManager ``/decrypt`` per record)."""

    def web_list(self, env, ids, limit):
        records = env["res.partner"].search([("id", "in", ids)], limit=limit, order="id")
        answer = {"length": len(records), "records": records.web_read(LIST_SPEC)}
        json.dumps(answer, default=str)
        return answer


class Baseline:
    def __init__(self, env, emulator_url, records):
        self.env = env
        self.emulator_url = emulator_url
        provider = env.ref("g2p_encryption.encryption_provider_default")
        provider.write(
            {
                "keymanager_api_base_url": emulator_url + "/v1/keymanager",
                "keymanager_auth_url": emulator_url + "/realms/openg2p/protocol/openid-connect/token",
                "keymanager_auth_client_id": CLIENT_ID,
                "keymanager_auth_client_secret": CLIENT_SECRET,
                "keymanager_encrypt_application_id": "REGISTRATION",
                "keymanager_encrypt_reference_id": "ENCRYPT",
                # The same eight fields as this addon's benchmark encrypts.
                "registry_fields_to_enc": json.dumps(list(ENCRYPTED_FIELDS)),
            }
        )
        provider.set_registry_provider(provider.id)
        admin_env = env(user=env.ref("base.user_admin").id)
        self.bench = BaselineBench(env, Sections(), records, admin_env, admin_env)
        self.bench.remote_counts = self.km_calls
        self.bench.write_each = True
        # OpenG2P decrypts for everybody or nobody: a clerk's list is a list with decryption off.
        self.bench.before_clerk = lambda: self.set_params(decrypt=False)
        self.bench.after_clerk = lambda: self.set_params(decrypt=self.decrypt)
        self.decrypt = False
        self.read_sets = {}

    def km_calls(self):
        counts = requests.get(self.emulator_url + "/_emulator/stats", timeout=10).json()["counts"]
        return sum(count for endpoint, count in counts.items() if str(endpoint).startswith("/"))

    def set_params(self, encrypt=None, decrypt=None):
        params = self.env["ir.config_parameter"].sudo()
        if encrypt is not None:
            params.set_param(PARAM_PREFIX + "encrypt_registry", "True" if encrypt else "")
        if decrypt is not None:
            params.set_param(PARAM_PREFIX + "decrypt_registry", "True" if decrypt else "")
        self.env.flush_all()
        self.env.invalidate_all()

    def activate(self, name):
        encrypt = CONFIGURATIONS[name].encrypt
        self.decrypt = encrypt
        self.set_params(encrypt=encrypt, decrypt=encrypt)

    def make_read_set(self, name, count, run_index):
        """Registrants of the server-side read. OpenG2P's ciphertext is not bound to its record:
        a thousand are written through its ``create`` (a KeyManager call each), the rest are SQL
        copies of them, which decrypt the same way."""
        self.activate(name)
        written = min(count, 1000 if CONFIGURATIONS[name].encrypt else count)
        ids = make_registrants(self.env, run_index, written)
        cr = self.env.cr
        cr.execute(
            """SELECT column_name FROM information_schema.columns
               WHERE table_name = 'res_partner' AND column_name <> 'id'"""
        )
        columns = ", ".join(f'"{row[0]}"' for row in cr.fetchall())
        while len(ids) < count:
            source = ids[: count - len(ids)]
            # The column names come from the catalogue.
            cr.execute(
                f"INSERT INTO res_partner ({columns}) SELECT {columns} FROM res_partner "
                "WHERE id = ANY(%s) ORDER BY id RETURNING id",
                (source,),
            )
            ids += [row[0] for row in cr.fetchall()]
        self.read_sets[name] = ids
        return len(ids)

    def handle(self, command):
        name = command.get("config")
        if command["cmd"] == "prepare":
            return {"registrants": self.make_read_set(name, command["count"], command["run_index"])}
        if command["cmd"] == "run":
            self.activate(name)
            return self.bench.run_once(command["run_index"], encrypted=CONFIGURATIONS[name].encrypt)
        if command["cmd"] == "read10k":
            self.activate(name)
            return self.bench.read_registrants(self.read_sets[name])
        raise ValueError(f"unknown command {command['cmd']!r}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmark.baseline")
    parser.add_argument("--config", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--emulator-url", required=True)
    parser.add_argument("--records", type=int, default=1000)
    args = parser.parse_args(argv)

    import odoo
    from odoo import SUPERUSER_ID, api

    odoo.tools.config.parse_config(["-c", args.config, "-d", args.database, "--log-level=warn"])
    registry = odoo.registry(args.database)
    cr = registry.cursor()
    try:
        env = api.Environment(cr, SUPERUSER_ID, {})
        baseline = Baseline(env, args.emulator_url, args.records)
        reply({"ready": True})
        for line in sys.stdin:
            command = json.loads(line)
            if command["cmd"] == "quit":
                break
            try:
                reply({"result": baseline.handle(command)})
            except Exception as error:  # pylint: disable=broad-except
                cr.rollback()
                reply({"error": f"{type(error).__name__}: {error}"})
                break
    finally:
        cr.rollback()
        cr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
