"""The lists as the web client asks for them: JSON-RPC ``web_search_read`` to a running Odoo.

The in-process lists (``measure``) time the server's work; these add what a person's request
costs around it: HTTP, the session, the JSON-RPC dispatch, the answer's encoding. A prefork Odoo
with one worker serves the benchmark's database; registrants of each configuration are committed
to it first (and removed at the end), the configuration is switched through JSON-RPC as an admin
would, and each request is timed by the client. Times are medians of ``--runs`` rounds,
interleaved like the others.
"""

import os
import time

from harness.odoo import OdooServer
from harness.rpc import OdooSession

from .data import values_of_run
from .measure import LIST_REPEATS, LIST_SPEC
from .scenarios import PARAM_DECRYPT, PARAM_ENCRYPT, PARAM_PROVIDER, activate, make_provider, progress

RPC_OPERATIONS = ("rpc80", "rpc1000", "rpc_clerk80", "rpc_clerk1000")
PASSWORD = "g2p-bench-password"  # throwaway users of the benchmark's own database
USERS = {
    "g2p_bench_rpc_admin": (
        "base.group_user",
        "base.group_partner_manager",
        "base.group_system",
        "g2p_encryption.crypto_admin",
    ),
    "g2p_bench_rpc_clerk": ("base.group_user", "base.group_partner_manager"),
}


class RpcLists:
    """Runs before the in-process phase opens its transaction: it commits, and so does the server
    it drives (a transaction opened earlier could not update the parameters it changes)."""

    def __init__(self, args, registry, configurations, emulator):
        self.args = args
        self.registry = registry
        self.configurations = configurations  # {name: Configuration} measured over RPC
        self.emulator = emulator
        self.providers = {}  # {name: provider id}, committed
        self.ids = {}
        self.server = None
        self.sessions = {}
        self.saved_params = {}

    def set_up(self):
        """Commit the users, the providers and each configuration's registrants, then start Odoo."""
        from odoo import SUPERUSER_ID, api

        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {"tracking_disable": True})
            params = env["ir.config_parameter"]
            self.saved_params = {
                key: params.get_param(key) for key in (PARAM_PROVIDER, PARAM_ENCRYPT, PARAM_DECRYPT)
            }
            users = env["res.users"].with_context(no_reset_password=True)
            for login, groups in USERS.items():
                user = users.search([("login", "=", login)]) or users.create({"name": login, "login": login})
                user.write({"password": PASSWORD, "groups_id": [(6, 0, [env.ref(g).id for g in groups])]})
            for index, (name, configuration) in enumerate(self.configurations.items()):
                provider = make_provider(env, configuration, self.emulator)
                self.providers[name] = provider.id
                activate(env, configuration, provider)
                vals_list = values_of_run(70 + index, self.args.records)
                self.ids[name] = env["res.partner"].create(vals_list).ids
                env.flush_all()
            cr.commit()
        log = os.path.join(self.args.rpc_dir, "odoo.log")
        os.makedirs(self.args.rpc_dir, exist_ok=True)
        self.server = OdooServer(self.args.python, self.args.odoo_bin, self.args.config, self.args.database)
        self.server.start(1, log + ".out", f"--logfile={log}", "--log-level=warn")
        self.sessions = {
            login: OdooSession(self.server.url, self.args.database, login=login, password=PASSWORD)
            for login in USERS
        }
        progress(f"Odoo on {self.server.url} (1 worker) for the JSON-RPC lists")

    def switch(self, name):
        """Make ``name`` the registry's configuration: committed from here as superuser (those
        parameters change in Settings only, behind the password check), and signalled to the
        running Odoo, which clears its caches at its next request."""
        from odoo import SUPERUSER_ID, api

        configuration = self.configurations[name]
        with self.registry.cursor() as cr:
            params = api.Environment(cr, SUPERUSER_ID, {})["ir.config_parameter"]
            params.set_param(PARAM_PROVIDER, str(self.providers[name]))
            params.set_param(PARAM_ENCRYPT, "True" if configuration.encrypt else "")
            params.set_param(PARAM_DECRYPT, "True")
            cr.commit()
        self.registry.clear_cache()
        self.registry.signal_changes()

    def list_call(self, login, name, limit):
        session = self.sessions[login]
        started = time.perf_counter()
        answer = session.call(
            "res.partner",
            "web_search_read",
            domain=[("id", "in", self.ids[name])],
            specification=LIST_SPEC,
            limit=limit,
            order="id",
        )
        elapsed = time.perf_counter() - started
        if len(answer["records"]) != min(limit, self.args.records):
            raise RuntimeError(f"the JSON-RPC list of {name} returned {len(answer['records'])} rows")
        return elapsed, answer["records"][0]

    def run_round(self, name):
        """{operation: {"seconds": ...}} of one round of ``name``."""
        self.switch(name)
        self.list_call("g2p_bench_rpc_admin", name, 80)  # warm-up: caches cleared by the switch
        self.list_call("g2p_bench_rpc_clerk", name, 80)
        results = {}
        expected = values_of_run(70 + list(self.configurations).index(name), 1)[0]["email"]
        for operation, login, limit in (
            ("rpc80", "g2p_bench_rpc_admin", 80),
            ("rpc1000", "g2p_bench_rpc_admin", 1000),
            ("rpc_clerk80", "g2p_bench_rpc_clerk", 80),
            ("rpc_clerk1000", "g2p_bench_rpc_clerk", 1000),
        ):
            tries = [self.list_call(login, name, limit) for _try in range(LIST_REPEATS[limit])]
            seconds, first = sorted(tries, key=lambda t: t[0])[len(tries) // 2]  # the median request
            shown = first["email"] == expected
            if shown != (login.endswith("admin") or not self.configurations[name].encrypt):
                raise RuntimeError(f"{operation} of {name}: the e-mail shown is not what the policy says")
            results[operation] = {"seconds": seconds, "km_calls": 0, "sections": {}, "values": {}}
        return results

    def tear_down(self):
        """Stop Odoo, remove the registrants, put the parameters back as they were."""
        if self.server is not None:
            self.server.stop()
        from odoo import SUPERUSER_ID, api

        ids = [record_id for ids in self.ids.values() for record_id in ids]
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            env["res.partner"].browse(ids).unlink()
            params = env["ir.config_parameter"]
            for key, value in self.saved_params.items():
                params.set_param(key, value or "")
            cr.commit()


def run_rpc_phase(args, registry, emulator, configurations):
    """{configuration: [round results]} of the JSON-RPC lists, rounds interleaved."""
    lists = RpcLists(args, registry, configurations, emulator)
    results = {name: [] for name in configurations}
    try:
        lists.set_up()
        for run_index in range(args.runs):
            for name in configurations:
                results[name].append(lists.run_round(name))
                timings = ", ".join(f"{op} {results[name][-1][op]['seconds']:.3f}" for op in RPC_OPERATIONS)
                progress(f"{name} JSON-RPC round {run_index + 1}/{args.runs}: {timings}")
    finally:
        lists.tear_down()
    return results
