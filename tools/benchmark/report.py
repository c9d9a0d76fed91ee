"""The report: results as Markdown tables, cost per value next to the floor, verdicts, the machine."""

import datetime
import os
import platform
import statistics

from harness import machine

from .floor import FLOOR_CIPHER
from .measure import (
    ALL_OPERATIONS,
    ENCRYPTED_FIELDS,
    LIST_REPEATS,
    READ10K_FIELDS,
    WRITE_FIELD,
    WRITE_REPEATS,
)
from .scenarios import CONFIGURATIONS, LABELS

LATENCY_MS = 5
LOAD_KEY = "Load average (1/5/15 min) before — after"
# Operations that encrypt (compared with the floor's seal) and the ones that decrypt (its open).
SEALING = ("create", "write")
SECTION_OF = {"create": "encrypt", "write": "encrypt"}
# The per-value verdict of writes: the batches (100 values or more), not the flush's one-record writes.
BATCH_SECTION_OF = {"create": "encrypt batch", "write": "encrypt batch"}
# (label, configuration, operation, limit): issue 13's acceptance, as ratios to encryption off.
TARGETS = (
    ("create at most 1.10 × off", "local", "create", 1.10),
    ("write at most 1.10 × off", "local", "write", 1.10),
    (
        "list of 80 rows, JSON-RPC request (Crypto Admin, decryption on) at most 1.3 × off",
        "local",
        "rpc80",
        1.3,
    ),
    (
        "list of 1,000 rows, JSON-RPC request (Crypto Admin, decryption on) at most 2 × off",
        "local",
        "rpc1000",
        2.0,
    ),
    ("list of 80 rows, in the server through the exit, at most 1.3 × off", "local", "list80", 1.3),
    ("list of 1,000 rows, in the server through the exit, at most 2 × off", "local", "list1000", 2.0),
    ("server-side read of name and phone of the registrants at most 2 × off", "local", "read10k", 2.0),
)
PER_VALUE_LIMIT = 3.0
OPERATION_TEXT = {
    "create": "one `create` of {records} registrants",
    "write": f"`{WRITE_FIELD}` changed on the {{records}} in one `write` (the time of a run: the median "
    f"of its {WRITE_REPEATS} writes, each of another value; one in OpenG2P's database, a record at a time)",
    "list80": "list of 80 rows, Crypto Admin, decryption on",
    "list1000": "list of 1,000 rows, Crypto Admin, decryption on",
    "clerk80": "list of 80 rows, clerk (masks)",
    "clerk1000": "list of 1,000 rows, clerk (masks)",
    "read10k": "server code reads name and phone of {read_records} registrants",
    "rpc80": "list of 80 rows, Crypto Admin, a JSON-RPC request to a running Odoo (web client's path)",
    "rpc1000": "list of 1,000 rows, the same",
    "rpc_clerk80": "list of 80 rows, clerk, JSON-RPC",
    "rpc_clerk1000": "list of 1,000 rows, clerk, JSON-RPC",
}


def machine_info(env):
    import odoo

    cpu = machine.proc_value("/proc/cpuinfo", "model name") or platform.processor() or "unknown"
    memory = machine.proc_value("/proc/meminfo", "MemTotal")
    memory = f"{int(memory.split()[0]) / 1024 / 1024:.1f} GiB" if memory else "unknown"
    env.cr.execute("SHOW server_version")
    return {
        "CPU": cpu,
        "Logical CPUs": str(os.cpu_count()),
        "RAM": memory,
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "Odoo": odoo.release.version,
        "PostgreSQL": env.cr.fetchone()[0],
        "cryptography": _version("cryptography"),
        "PyNaCl": _version("nacl"),
        "Date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _version(module_name):
    module = __import__(module_name)
    return getattr(module, "__version__", "?")


def load_average():
    try:
        return " / ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def runs_of(results, config, operation):
    runs = results.get(config)
    if not isinstance(runs, list):
        return []
    return [run[operation] for run in runs if operation in run]


def median_of(results, config, operation, key="seconds"):
    values = [run[key] for run in runs_of(results, config, operation)]
    return statistics.median(values) if values else None


def ratio_of(results, config, operation):
    seconds = median_of(results, config, operation)
    reference = median_of(results, CONFIGURATIONS[config].reference, operation)
    return seconds / reference if seconds is not None and reference else None


def round_ratios_of(results, config, operation):
    """The ratios round by round: each run to the reference's run of the same round (the order
    of the two alternates from round to round), so that a slow drift of the machine weighs on
    both sides of each ratio alike. Rounds where either side did not run are left out."""
    runs = results.get(config)
    references = results.get(CONFIGURATIONS[config].reference)
    if not (isinstance(runs, list) and isinstance(references, list)):
        return []
    return [
        run[operation]["seconds"] / reference[operation]["seconds"]
        for run, reference in zip(runs, references, strict=False)
        if operation in run and operation in reference and reference[operation]["seconds"]
    ]


def paired_ratio_of(results, config, operation):
    ratios = round_ratios_of(results, config, operation)
    return statistics.median(ratios) if ratios else None


def values_of(results, config, operation, args):
    """How many values the operation encrypted or decrypted (counted by the addon's sections;
    for the baseline, records × fields read or written)."""
    runs = runs_of(results, config, operation)
    section = SECTION_OF.get(operation, "decrypt")
    counted = [run["values"].get(section, 0) for run in runs]
    if any(counted):
        return statistics.median(counted)
    if not CONFIGURATIONS[config].encrypt or operation.startswith("clerk"):
        return 0
    fields = len(ENCRYPTED_FIELDS)
    return {
        "create": args.records * fields,
        "write": args.records * fields,
        "list80": 80 * fields,
        "list1000": args.records * fields,
        "read10k": args.read_records * len(READ10K_FIELDS),
    }.get(operation, 0)


def per_value(results, config, operation, args):
    """(values, extra µs per value over the reference, µs per value inside the engine's batch)."""
    values = values_of(results, config, operation, args)
    if not values:
        return 0, None, None
    seconds = median_of(results, config, operation)
    reference = median_of(results, CONFIGURATIONS[config].reference, operation)
    extra = (seconds - reference) / values * 1e6 if seconds is not None and reference is not None else None
    section = SECTION_OF.get(operation, "decrypt")
    inside = [run["sections"].get(section, 0.0) for run in runs_of(results, config, operation)]
    engine = statistics.median(inside) / values * 1e6 if any(inside) else None
    return values, extra, engine


def floor_us(floor, operation):
    count, seal_seconds, open_seconds = floor[FLOOR_CIPHER]
    return (seal_seconds if operation in SEALING else open_seconds) / count * 1e6


def _cell(value, text="{:.2f}"):
    return "n/a" if value is None else text.format(value)


def results_table(results, args, floor):
    lines = [
        "| Configuration | Operation | Seconds (median) | Runs (s) | × reference "
        "| × reference, round by round | KeyManager/HSM calls per run | Values | Extra µs per value "
        "| Engine µs per value | Floor µs per value | Engine ÷ floor |",
        "|---|---|---:|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for config in args.configs:
        runs = results.get(config)
        if not isinstance(runs, list):
            lines.append(f"| {LABELS[config]} | all | {runs} | | | | | | | | | |")
            continue
        for operation in ALL_OPERATIONS:
            measured = runs_of(results, config, operation)
            if not measured:
                continue
            seconds = median_of(results, config, operation)
            each = " / ".join(f"{run['seconds']:.3f}" for run in measured)
            calls = " / ".join(str(run["km_calls"]) for run in measured)
            values, extra, engine = per_value(results, config, operation, args)
            floor_value = floor_us(floor, operation) if values else None
            lines.append(
                f"| {LABELS[config]} | {operation} | {seconds:.3f} | {each} "
                f"| {_cell(ratio_of(results, config, operation))} "
                f"| {_cell(paired_ratio_of(results, config, operation))} | {calls} | {values:.0f} "
                f"| {_cell(extra, '{:.1f}')} | {_cell(engine, '{:.1f}')} | {_cell(floor_value, '{:.1f}')} "
                f"| {_cell(engine / floor_value if engine and floor_value else None)} |"
            )
    return lines


def sections_table(results, args):
    names = ("encrypt", "encrypt batch", "decrypt", "blind index", "audit log")
    lines = [
        "| Configuration | Operation | Total (s) | " + " | ".join(f"in {name} (s)" for name in names) + " |",
        "|---|---|---:|" + "---:|" * len(names),
    ]
    for config in args.configs:
        if CONFIGURATIONS[config].process != "addon" or not CONFIGURATIONS[config].encrypt:
            continue
        for operation in ALL_OPERATIONS:
            measured = runs_of(results, config, operation)
            if not measured:
                continue
            cells = [
                f"{statistics.median(run['sections'].get(name, 0.0) for run in measured):.3f}"
                for name in names
            ]
            total = median_of(results, config, operation)
            lines.append(f"| {LABELS[config]} | {operation} | {total:.3f} | " + " | ".join(cells) + " |")
    return lines


def verdicts(results, floor):
    lines = []
    for label, config, operation, limit in TARGETS:
        ratio = ratio_of(results, config, operation)
        paired = paired_ratio_of(results, config, operation)
        if ratio is None:
            lines.append(f"- {label}: not measured.")
            continue
        # Met only when both estimates are within the target: where they disagree, noise decides.
        met = ratio <= limit and (paired is None or paired <= limit)
        rounds = round_ratios_of(results, config, operation)
        spread = f"; {len(rounds)} rounds from {min(rounds):.2f} to {max(rounds):.2f} ×" if rounds else ""
        lines.append(
            f"- {label}: measured {ratio:.2f} × (ratio of the medians), {_cell(paired)} × (median of the "
            f"ratios round by round{spread}) — **{'met' if met else 'not met'}** (point estimates)."
        )
    for operation in ("create", "list1000", "read10k"):
        runs = runs_of(results, "local", operation)
        section = BATCH_SECTION_OF.get(operation, "decrypt")
        values = statistics.median(run["values"].get(section, 0) for run in runs) if runs else 0
        if not values:
            lines.append(
                f"- cost per value of `{operation}` within {PER_VALUE_LIMIT:g} × the floor: not measured."
            )
            continue
        engine = statistics.median(run["sections"].get(section, 0.0) for run in runs) / values * 1e6
        floor_value = floor_us(floor, operation)
        ratio = engine / floor_value
        verb = "seal" if operation in SEALING else "open"
        lines.append(
            f"- cost per value of `{operation}` ({section}, {values:.0f} values) within "
            f"{PER_VALUE_LIMIT:g} × the floor: {engine:.1f} µs against a bare {verb} of "
            f"{floor_value:.1f} µs, {ratio:.2f} × — **{'met' if ratio <= PER_VALUE_LIMIT else 'not met'}**."
        )
    return lines


def spread_text(results):
    """How far the runs of one configuration and operation stray from their median."""
    spreads = {}
    for config, runs in results.items():
        if not isinstance(runs, list) or len(runs) < 2:
            continue
        for operation in ALL_OPERATIONS:
            times = [run["seconds"] for run in runs_of(results, config, operation)]
            if len(times) > 1 and statistics.median(times):
                spreads[(config, operation)] = (max(times) - min(times)) / statistics.median(times)
    if not spreads:
        return []
    worst = max(spreads.values())
    off = ", ".join(
        f"{operation} {spreads[('off', operation)]:.0%}"
        for operation in ALL_OPERATIONS
        if ("off", operation) in spreads
    )
    return [
        f"- Noise: the runs of one configuration and operation differ by up to {worst:.0%} of their "
        f"median (encryption off alone: {off}). A ratio nearer to 1 than that cannot be told apart "
        "from encryption off on this run."
    ]


def floor_lines(floor):
    lines = []
    for cipher, (count, seal_seconds, open_seconds) in floor.items():
        lines.append(
            f"- {cipher}: {count} values sealed in {seal_seconds:.4f} s "
            f"({seal_seconds / count * 1e6:.2f} µs each), opened in {open_seconds:.4f} s "
            f"({open_seconds / count * 1e6:.2f} µs each)."
        )
    return lines


def render(results, args, floor, machine_facts, notes=()):
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `tools/bench --records {args.records} --runs {args.runs} --read-records "
        f"{args.read_records}` (see `tools/benchmark/`), all figures of one run of it. Registrants "
        f"with the default encrypted fields ({', '.join(ENCRYPTED_FIELDS)}), realistic distinct values.",
        "",
        *[
            f"- **{operation}**: {text.format(records=args.records, read_records=args.read_records)};"
            for operation, text in OPERATION_TEXT.items()
        ],
        "",
        "Lists run as the web client's request does: `web_search_read` (the encrypted fields and the "
        "display name) inside the addon's exit (`encryption_exits.exit_for`: the policy, the masks, "
        "the decryption log row), the answer encoded as JSON (the time of a run: the median of its "
        f"{LIST_REPEATS[80]} requests of 80 rows, {LIST_REPEATS[1000]} of 1,000, in the server as over "
        "JSON-RPC). Each time is the median of the runs, flushed to PostgreSQL before the clock "
        "stops; runs of the configurations are interleaved (off, local, envelope, OpenG2P off, "
        "OpenG2P, then the other way round: OpenG2P, OpenG2P off... local, off), each on fresh "
        "records rolled back afterwards. The ratio is to the reference measured in the same run, "
        "given two ways: the ratio of the medians, and the median of the ratios round by round (each "
        "run to the reference's run of its round); a target is met only when both are within it. The "
        "reference is encryption off in the same database (OpenG2P's modules are in a database and "
        "process of their own, so its ratio is to encryption off there). KeyManager rows talk over "
        f"HTTP to the emulator on 127.0.0.1 with {LATENCY_MS} ms of added latency per call.",
        "",
        "Cost per value: *extra* is (time − reference time) ÷ values encrypted or decrypted, all the "
        "costs of encryption together (blind index, longer rows, audit row); *engine* is the time "
        "inside the engine's batch (`_g2p_encrypt_rows` for writes, `decrypt_stored_fields` for reads: key "
        "look-up, token parsing, AAD, the AEAD call, typing) ÷ values (for the verdicts on writes, the "
        "batches of 100 values or more: `encrypt batch`; a flush also writes computed fields one record "
        "at a time, `encrypt` counts those too); the *floor* is a bare "
        f"{FLOOR_CIPHER} seal (writes) or open (reads) of the same values in the same process.",
        "",
        "## Targets (issue 13)",
        "",
        *verdicts(results, floor),
        "",
        "## Results",
        "",
        *results_table(results, args, floor),
        "",
        "Floor, same process, same values (the median of measurements taken after every round):",
        "",
        *floor_lines(floor),
        "",
        "Where this addon's configurations spend their time (medians, seconds inside `_g2p_encrypt_rows`, "
        "`decrypt_stored_fields`, the blind index's `_store` and the decryption log's `_write_row`):",
        "",
        *sections_table(results, args),
        "",
        "## What limits these figures",
        "",
        *notes,
        *spread_text(results),
        "",
        "## Machine",
        "",
        *[f"- {name}: {value}" for name, value in machine_facts.items()],
        "",
    ]
    return "\n".join(lines)
