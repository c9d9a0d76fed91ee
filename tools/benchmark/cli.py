"""Command line of the benchmark: arguments, Odoo and the emulator, the runs, the output file."""

import argparse
import sys
import time

from . import __doc__ as description
from .measure import Bench, Sections, aes_floor
from .report import LATENCY_MS, LOAD_KEY, load_average, machine_info, render, verdicts
from .scenarios import CONFIGURATIONS, crypto_admin_env, keymanager_installed, progress, run_all


def out(text=""):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="tools/bench", description=description.split("\n\n", 1)[0])
    parser.add_argument("--config", required=True, help="Odoo configuration file")
    parser.add_argument("--database", required=True, help="database with g2p_encryption and contacts")
    parser.add_argument("--records", type=int, default=1000, help="registrants per operation")
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration (median)")
    parser.add_argument(
        "--direct-runs",
        type=int,
        default=1,
        help="runs of keymanager direct mode (one HTTP call per value: slow by design)",
    )
    parser.add_argument(
        "--configs",
        default=",".join(CONFIGURATIONS),
        help=f"comma-separated subset of {','.join(CONFIGURATIONS)}",
    )
    parser.add_argument("--output", help="markdown file to write the results to (e.g. BENCHMARKS.md)")
    args = parser.parse_args(argv)
    args.configs = [name.strip() for name in args.configs.split(",") if name.strip()]
    unknown = set(args.configs) - set(CONFIGURATIONS)
    if unknown:
        parser.error(f"unknown configurations: {', '.join(sorted(unknown))}")
    if "off" not in args.configs:
        args.configs.insert(0, "off")  # the ratios need it
    if args.records < 1 or args.runs < 1 or args.direct_runs < 1:
        parser.error("--records, --runs and --direct-runs must be at least 1")
    return args


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


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    load_before = load_average()

    import odoo
    from odoo import SUPERUSER_ID, api

    odoo.tools.config.parse_config(["-c", args.config, "-d", args.database, "--log-level=warn"])
    registry = odoo.registry(args.database)
    cr = registry.cursor()
    emulator = None
    try:
        env = api.Environment(cr, SUPERUSER_ID, {})
        installed = keymanager_installed(env)
        remote = [name for name in args.configs if CONFIGURATIONS[name].remote]
        if remote and installed:
            from odoo.addons.g2p_encryption.emulator import Emulator

            emulator = Emulator().start()
            emulator.faults.set_latency(LATENCY_MS)
            progress(f"emulator on {emulator.url}, {LATENCY_MS} ms added latency per call")
        hsm = start_softhsm() if any(CONFIGURATIONS[name].hsm for name in args.configs) else None
        sections = Sections()
        sections.install(env)
        admin_env = crypto_admin_env(env)
        env.flush_all()
        bench = Bench(env, emulator, sections, args.records)

        results = run_all(bench, env, emulator, admin_env, args, installed, hsm)
        floor = aes_floor(args.records, args.runs)
        machine = machine_info(env)
        machine[LOAD_KEY] = f"{load_before} — {load_average()}"
    finally:
        cr.rollback()
        cr.close()
        if emulator is not None:
            emulator.stop()
        if hsm is not None:
            hsm.stop()

    document, table = render(results, args, floor, machine)
    out()
    out("\n".join(table))
    out()
    count, floor_encrypt, floor_decrypt = floor
    out(
        f"Floor: {count} bare AES-256-GCM encryptions {floor_encrypt:.4f} s, "
        f"decryptions {floor_decrypt:.4f} s"
    )
    out()
    out("\n".join(verdicts(results)))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(document)
        out(f"\nwritten to {args.output} ({time.monotonic() - started:.0f} s in all)")
    return 0
