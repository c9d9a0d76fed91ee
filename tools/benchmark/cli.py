"""Command line of the benchmark: arguments, Odoo, the emulator and the baseline's process, the rounds."""

import argparse
import json
import os
import subprocess
import sys
import time

from . import __doc__ as description
from .floor import aead_floor, merge_floors
from .measure import OPERATIONS, Bench, Sections, make_registrants
from .report import LATENCY_MS, LOAD_KEY, load_average, machine_info, render, verdicts
from .rpc import run_rpc_phase
from .scenarios import (
    CONFIGURATIONS,
    DEFAULT_CONFIGS,
    NO_HSM,
    NOT_INSTALLED,
    activate,
    clear_worker_caches,
    install_sections,
    keymanager_installed,
    make_provider,
    make_users,
    person_exit,
    progress,
)

BASELINE_RESULT = "BENCH-RESULT "
TOKEN_LIFETIME = 4 * 3600  # seconds: longer than a run of the benchmark


def out(text=""):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="tools/bench", description=description.split("\n\n", 1)[0])
    parser.add_argument("--config", required=True, help="Odoo configuration file")
    parser.add_argument("--database", required=True, help="database with g2p_encryption and contacts")
    parser.add_argument("--records", type=int, default=1000, help="registrants per run (default 1000)")
    parser.add_argument("--read-records", type=int, default=10000, help="registrants of the server-side read")
    parser.add_argument("--runs", type=int, default=5, help="runs per configuration (median; default 5)")
    parser.add_argument(
        "--slow-runs", type=int, default=1, help="runs of the per-value baselines (default 1)"
    )
    parser.add_argument(
        "--configs", default=",".join(DEFAULT_CONFIGS), help=f"subset of {','.join(CONFIGURATIONS)}"
    )
    parser.add_argument("--baseline-config", help="Odoo configuration of OpenG2P's own modules (baseline)")
    parser.add_argument("--baseline-database", help="database with OpenG2P's g2p_registry_encryption")
    parser.add_argument("--baseline-log", default=os.devnull, help="where the baseline process logs")
    parser.add_argument("--output", help="markdown file to write the results to (e.g. BENCHMARKS.md)")
    parser.add_argument("--no-rpc", dest="rpc", action="store_false", help="skip the JSON-RPC lists")
    parser.add_argument("--python", default=sys.executable, help="Python of the Odoo that serves JSON-RPC")
    parser.add_argument("--odoo-bin", help="odoo-bin of the Odoo that serves JSON-RPC")
    parser.add_argument("--rpc-dir", default="/tmp/g2p_bench_rpc", help="where that Odoo logs")
    args = parser.parse_args(argv)
    args.configs = [name.strip() for name in args.configs.split(",") if name.strip()]
    unknown = set(args.configs) - set(CONFIGURATIONS)
    if unknown:
        parser.error(f"unknown configurations: {', '.join(sorted(unknown))}")
    if "off" not in args.configs:
        args.configs.insert(0, "off")  # the ratios need it
    if "openg2p" in args.configs and "og_off" not in args.configs:
        args.configs.insert(args.configs.index("openg2p"), "og_off")
    if args.rpc and not args.odoo_bin:
        args.rpc = False  # no Odoo to start
    if args.records < 80 or args.runs < 1 or args.slow_runs < 1:
        parser.error("--records must be at least 80, --runs and --slow-runs at least 1")
    return args


class BaselineProcess:
    """OpenG2P's modules in their own process (``benchmark.baseline``), one command at a time."""

    def __init__(self, args, emulator_url):
        tools_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, PYTHONPATH=tools_dir + os.pathsep + os.environ.get("PYTHONPATH", ""))
        command = [sys.executable, "-m", "benchmark.baseline", "--config", args.baseline_config]
        command += ["--database", args.baseline_database, "--emulator-url", emulator_url]
        command += ["--records", str(args.records)]
        self.log = open(args.baseline_log, "a", encoding="utf-8")  # pylint: disable=consider-using-with
        self.process = subprocess.Popen(  # pylint: disable=consider-using-with
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env
        )
        self.receive()

    def receive(self):
        for line in self.process.stdout:
            if line.startswith(BASELINE_RESULT):
                answer = json.loads(line[len(BASELINE_RESULT) :])
                if "error" in answer:
                    raise RuntimeError(f"the baseline process failed: {answer['error']}")
                return answer.get("result")
        raise RuntimeError(f"the baseline process stopped (exit code {self.process.wait()})")

    def call(self, **command):
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self.receive()

    def close(self):
        if self.process.poll() is None:
            try:
                self.process.stdin.write('{"cmd": "quit"}\n')
                self.process.stdin.close()
                self.process.wait(60)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
        self.log.close()


class Runner:
    """The rounds of every configuration, interleaved, in this process and the baseline's."""

    def __init__(self, args, env, bench, emulator, hsm=None):
        self.args, self.env, self.bench, self.emulator, self.hsm = args, env, bench, emulator, hsm
        self.providers = {}
        self.read_sets = {}
        self.baseline = None
        self.results = {}
        self.floors = []

    def set_up(self, installed):
        for name in self.args.configs:
            configuration = CONFIGURATIONS[name]
            if configuration.process == "baseline":
                if not (self.args.baseline_config and self.args.baseline_database):
                    self.results[name] = "n/a (no OpenG2P baseline database: see tools/bench)"
                    continue
                if self.baseline is None:
                    progress("starting the baseline process (OpenG2P's g2p_registry_encryption)")
                    self.baseline = BaselineProcess(self.args, self.emulator.url)
            elif configuration.keymanager_mode and not installed:
                self.results[name] = NOT_INSTALLED
                continue
            elif configuration.hsm and self.hsm is None:
                self.results[name] = NO_HSM
                continue
            elif configuration.process == "addon":
                self.providers[name] = make_provider(self.env, configuration, self.emulator, self.hsm)
            self.results[name] = []

    def measured(self):
        return [name for name in self.args.configs if isinstance(self.results.get(name), list)]

    def prepare_reads(self):
        for index, name in enumerate(self.measured()):
            progress(f"{name}: {self.args.read_records} registrants for the server-side read")
            if CONFIGURATIONS[name].process == "baseline":
                self.baseline.call(
                    cmd="prepare", config=name, count=self.args.read_records, run_index=50 + index
                )
            else:
                activate(self.env, CONFIGURATIONS[name], self.providers[name])
                self.read_sets[name] = make_registrants(self.env, 50 + index, self.args.read_records)

    def runs_of(self, name):
        return self.args.slow_runs if CONFIGURATIONS[name].slow else self.args.runs

    def run_round(self, run_index):
        # The order is reversed every other round: what runs first in a round (a colder cache, a
        # table just vacuumed) weighs on each side of a ratio alike.
        names = self.measured()
        for name in names if run_index % 2 == 0 else names[::-1]:
            if run_index >= self.runs_of(name):
                continue
            configuration = CONFIGURATIONS[name]
            if configuration.process == "baseline":
                run = self.baseline.call(cmd="run", config=name, run_index=run_index)
            else:
                activate(self.env, configuration, self.providers[name])
                run = self.bench.run_once(run_index, encrypted=configuration.encrypt)
            self.results[name].append(run)
            timings = ", ".join(f"{op} {run[op]['seconds']:.3f}" for op in OPERATIONS)
            progress(f"{name} run {run_index + 1}/{self.runs_of(name)}: {timings}")

    def read_round(self, run_index):
        for name in self.measured():
            if run_index >= self.runs_of(name):
                continue
            configuration = CONFIGURATIONS[name]
            if configuration.process == "baseline":
                read = self.baseline.call(cmd="read10k", config=name)
            else:
                activate(self.env, configuration, self.providers[name])
                read = self.bench.read_registrants(self.read_sets[name])
            self.results[name][run_index]["read10k"] = read
            progress(f"{name} read {run_index + 1}/{self.runs_of(name)}: {read['seconds']:.3f} s")

    def run(self):
        progress("warm-up (not counted): encryption off, then local")
        for name in ("off", "local"):
            if name in self.providers:
                activate(self.env, CONFIGURATIONS[name], self.providers[name])
                self.bench.run_once(90, encrypted=CONFIGURATIONS[name].encrypt)
        self.prepare_reads()
        # Each configuration starts cold, as a freshly started worker would.
        clear_worker_caches()
        self.emulator.reset_counts()
        # The floor is measured between rounds too: the machine's load weighs on it as on the rest.
        for run_index in range(self.args.runs):
            self.run_round(run_index)
            self.floors.append(aead_floor(self.args.records, repeats=3))
        for run_index in range(self.args.runs):
            self.read_round(run_index)
            self.floors.append(aead_floor(self.args.records, repeats=3))
        return self.results


def start_softhsm():
    """A SoftHSM2 token in a temporary directory for the ``pkcs11`` row, or None when it cannot run."""
    from odoo.addons.g2p_encryption.core.tests.softhsm import SoftHSM, missing

    reason = missing()
    if reason:
        progress(f"pkcs11: {reason}")
        return None
    hsm = SoftHSM("g2p-bench").start()
    progress(f"SoftHSM2 token g2p-bench in {hsm.directory}")
    return hsm


def hsm_operations():
    """Wrap and unwrap operations of PKCS#11 tokens in this process (0 when none was used)."""
    module = sys.modules.get("odoo.addons.g2p_encryption.core.pkcs11.binding")
    counts = module.operation_counts() if module else {}
    return counts.get("wrap", 0) + counts.get("unwrap", 0)


def start_emulator():
    from odoo.addons.g2p_encryption.emulator import Emulator

    # Tokens outlive the run: OpenG2P's client reuses its token until the second it expires, so a
    # call sent in the last milliseconds reaches the emulator expired (401) and fails the baseline
    # (seen in a long read10k). Token renewal is not what is measured here.
    emulator = Emulator(token_lifetime=TOKEN_LIFETIME).start()
    emulator.faults.set_latency(LATENCY_MS)
    progress(f"emulator on {emulator.url}, {LATENCY_MS} ms added latency per call")
    return emulator


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    load_before = load_average()

    import odoo
    from odoo import SUPERUSER_ID, api

    odoo.tools.config.parse_config(["-c", args.config, "-d", args.database, "--log-level=warn"])
    registry = odoo.registry(args.database)
    emulator = runner = cr = hsm = None
    try:
        emulator = start_emulator()
        rpc_results = {}
        if args.rpc:
            # Before the in-process phase opens its transaction (see rpc.RpcLists).
            served = {
                name: CONFIGURATIONS[name]
                for name in args.configs
                if CONFIGURATIONS[name].process == "addon"
                and not CONFIGURATIONS[name].slow
                and not CONFIGURATIONS[name].hsm  # its PIN is given to this process only
            }
            rpc_results = run_rpc_phase(args, registry, emulator, served)
        cr = registry.cursor()
        env = api.Environment(cr, SUPERUSER_ID, {})
        sections = Sections()
        install_sections(env, sections)
        admin_env, clerk_env = make_users(env)
        env.flush_all()
        bench = Bench(env, sections, args.records, admin_env, clerk_env, person_exit())
        bench.remote_counts = lambda: hsm_operations() + sum(
            count for endpoint, count in emulator.counts.items() if str(endpoint).startswith("/")
        )
        if any(CONFIGURATIONS[name].hsm for name in args.configs):
            hsm = start_softhsm()
        runner = Runner(args, env, bench, emulator, hsm)
        runner.set_up(keymanager_installed(env))
        results = runner.run()
        for name, rounds in rpc_results.items():
            for run, rpc_run in zip(results.get(name) or [], rounds, strict=False):
                run.update(rpc_run)
        floor = merge_floors(runner.floors)
        machine = machine_info(env)
        machine[LOAD_KEY] = f"{load_before} — {load_average()}"
    finally:
        if cr is not None:
            cr.rollback()
            cr.close()
        if runner is not None and runner.baseline is not None:
            runner.baseline.close()
        if emulator is not None:
            emulator.stop()
        if hsm is not None:
            hsm.stop()

    notes = [
        f"- One process per database on one machine: Odoo, PostgreSQL, the emulator and the baseline "
        f"share its {os.cpu_count()} logical CPUs with whatever else runs there (load average before — "
        f"after: {machine[LOAD_KEY]}); {args.runs} runs per configuration, {args.slow_runs} for the "
        "per-value baselines (a KeyManager call per record or value: their time is the calls').",
        f"- The emulator's tokens live {TOKEN_LIFETIME // 3600} hours, longer than the run: no token "
        "renewal is in these figures (OpenG2P's client, which renews a token only once it has expired, "
        "fails a call sent in its last milliseconds).",
        "- With encryption off, *Values* counts the stored values that pass through "
        "`decrypt_stored_fields` as they are (plaintext: nothing is decrypted); its *engine* figure is "
        "the cost of that pass.",
    ]
    document = render(results, args, floor, machine, notes)
    out()
    out("\n".join(verdicts(results, floor)))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(document)
        out(f"\nwritten to {args.output} ({time.monotonic() - started:.0f} s in all)")
    else:
        out(document)
    return 0
