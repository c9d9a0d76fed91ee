"""The report: results and where time went as Markdown tables, verdicts against the targets, limits."""

import datetime
import os
import platform
import statistics

from harness import machine

from .measure import ENCRYPTED_FIELDS, OPERATIONS, SECTIONS, WRITE_FIELD
from .scenarios import LABELS

LATENCY_MS = 5
LOAD_KEY = "Load average (1/5/15 min) before — after"
TARGETS = (
    # (label, kind, configuration, operation, limit)
    ("`local` create at most 1.25 × off", "ratio", "local", "create", 1.25),
    ("`local` write at most 1.25 × off", "ratio", "local", "write", 1.25),
    ("`keymanager` envelope create at most 1.5 × off", "ratio", "envelope", "create", 1.5),
    ("`keymanager` envelope write at most 1.5 × off", "ratio", "envelope", "write", 1.5),
    ("`keymanager` envelope read at least 20 × faster than direct read", "speedup", "envelope", "read", 20),
)


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
        "cryptography": crypto_version(),
        "Date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def crypto_version():
    import cryptography

    return cryptography.__version__


def load_average():
    try:
        return " / ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def median_of(results, config, operation, key="seconds"):
    runs = results.get(config)
    if not isinstance(runs, list) or not runs:
        return None
    return statistics.median(run[operation][key] for run in runs)


def format_seconds(value):
    return "n/a" if value is None else f"{value:.3f}"


def results_table(results, args):
    lines = [
        "| Configuration | Operation | Seconds (median) | Runs (s) | × off | KeyManager/HSM calls per run "
        "| Keycloak tokens per run |",
        "|---|---|---:|---|---:|---|---|",
    ]
    for config in args.configs:
        runs = results.get(config)
        if not isinstance(runs, list):
            lines.append(f"| {LABELS[config]} | all | {runs} | | | | |")
            continue
        for operation in OPERATIONS:
            seconds = median_of(results, config, operation)
            off = median_of(results, "off", operation)
            ratio = f"{seconds / off:.2f}" if off else "n/a"
            each = " / ".join(f"{run[operation]['seconds']:.3f}" for run in runs)
            calls = " / ".join(str(run[operation]["km_calls"]) for run in runs)
            tokens = " / ".join(str(run[operation]["tokens"]) for run in runs)
            lines.append(
                f"| {LABELS[config]} | {operation} | {format_seconds(seconds)} | {each} | {ratio} "
                f"| {calls} | {tokens} |"
            )
    return lines


def sections_table(results, args):
    names = [section for section, _model, _method in SECTIONS]
    lines = [
        "| Configuration | Operation | Total (s) | " + " | ".join(f"in {name} (s)" for name in names) + " |",
        "|---|---|---:|" + "---:|" * len(names),
    ]
    for config in args.configs:
        runs = results.get(config)
        if not isinstance(runs, list) or config == "off":
            continue
        for operation in OPERATIONS:
            cells = [
                f"{statistics.median(run[operation]['sections'].get(name, 0.0) for run in runs):.3f}"
                for name in names
            ]
            total = format_seconds(median_of(results, config, operation))
            lines.append(f"| {LABELS[config]} | {operation} | {total} | " + " | ".join(cells) + " |")
    return lines


def verdicts(results):
    lines = []
    for label, kind, config, operation, limit in TARGETS:
        seconds = median_of(results, config, operation)
        if kind == "ratio":
            base = median_of(results, "off", operation)
            value = seconds / base if seconds is not None and base else None
            met = value is not None and value <= limit
            shown = "not measured" if value is None else f"measured {value:.2f} ×"
        else:
            direct = median_of(results, "direct", operation)
            value = direct / seconds if seconds and direct is not None else None
            met = value is not None and value >= limit
            shown = "not measured" if value is None else f"measured {value:.0f} × faster"
        if value is None:
            why = [results[name] for name in (config, "direct") if isinstance(results.get(name), str)]
            lines.append(f"- {label}: not measured{f' ({why[0]})' if why else ''}.")
            continue
        lines.append(f"- {label}: {shown} — {'**met**' if met else '**not met**'}.")
    return lines


def spread_text(results):
    """How far the runs of one configuration and operation stray from their median."""
    spreads = {}
    for config, runs in results.items():
        if not isinstance(runs, list) or len(runs) < 2:
            continue
        for operation in OPERATIONS:
            times = [run[operation]["seconds"] for run in runs]
            middle = statistics.median(times)
            if middle:
                spreads[(config, operation)] = (max(times) - min(times)) / middle
    if not spreads:
        return []
    worst = max(spreads.values())
    off = ", ".join(
        f"{operation} {spreads[('off', operation)]:.0%}"
        for operation in OPERATIONS
        if ("off", operation) in spreads
    )
    return [
        f"- Noise: the runs of one configuration and operation differ by up to {worst:.0%} of their "
        f"median (encryption off alone: {off}). A ratio nearer to 1 than that cannot be told apart "
        "from encryption off on this run; more runs (`--runs`) on an idle machine narrow it."
    ]


def limits_text(results, args, floor, machine_facts):
    count, floor_encrypt, floor_decrypt = floor
    lines = [
        f"- The figures are of one process on one machine: Odoo, PostgreSQL and the emulator share "
        f"its {os.cpu_count()} logical CPUs, so other work on the machine shows in every figure; "
        f"{args.runs} runs per configuration"
        + (
            f" ({args.direct_runs} for `keymanager` direct, whose create and read make one HTTP "
            "call per value and dominate the run time)."
            if "direct" in args.configs and args.direct_runs != args.runs
            else "."
        ),
        f"- The AES-256-GCM floor is {floor_encrypt / count * 1e6:.0f} µs per encryption and "
        f"{floor_decrypt / count * 1e6:.0f} µs per decryption with `cryptography` {crypto_version()} "
        "(the version Odoo 17 pins, which sets up an OpenSSL cipher context for every call): "
        f"{floor_encrypt:.3f} s for the {count} values of a create, {floor_decrypt:.3f} s to decrypt "
        "them on a read. The addon's `encrypt_values` and `decrypt_values` take about that (table "
        "above): the cipher calls, not the code around them, are what encryption adds; an "
        "encrypted create also pays the blind index of the searchable fields (an HMAC and a "
        "`g2p_blind_index` row per value). A read of the list decrypts every value, so its cost "
        "over encryption off is the decryption floor whatever the provider.",
        "- Encrypted columns hold longer values than the plaintext (token prefix, key id, nonce, tag, "
        "base64), so PostgreSQL writes and reads more bytes per row.",
        "- Read as a Crypto Admin decrypts every value and writes one audit row per request; a "
        "clerk's read (masked values, no decryption) is not measured here.",
        f"- The emulator runs in the benchmark's own process with {LATENCY_MS} ms of added latency "
        "per call and no network: a real KeyManager behind a load balancer adds its own latency and "
        "crypto time (HSM), which multiplies the cost of every direct-mode call, while envelope mode "
        "makes a constant number of calls per batch (none once the data key is cached).",
        "- The first run of each configuration starts with cold worker caches (data keys, tokens): "
        "its KeyManager calls are the unwrapping of the data and blind-index keys; later runs are "
        "warm. Medians therefore show the warm cost.",
        "- Every run works on fresh records in a savepoint rolled back afterwards; the dead rows "
        "they leave are not vacuumed during the benchmark, which costs later configurations a "
        "little (the read selects by id, to keep that small).",
    ]
    lines += spread_text(results)
    load = machine_facts.get(LOAD_KEY, "")
    try:
        busy = float(load.split(" / ", 1)[0]) > 0.5 * (os.cpu_count() or 1)
    except ValueError:
        busy = False
    if busy:
        lines.append(
            f"- The machine was busy with other work during this run (load average {load}, on "
            f"{os.cpu_count()} logical CPUs): every figure carries that noise, the fast ones most."
        )
    direct_create = results.get("direct")
    if isinstance(direct_create, list):
        calls = statistics.median(run["create"]["km_calls"] for run in direct_create)
        seconds = median_of(results, "direct", "create")
        if calls:
            lines.append(
                f"- Direct mode's create made {calls:.0f} KeyManager calls, "
                f"{seconds / calls * 1000:.1f} ms each including the {LATENCY_MS} ms of injected latency: "
                "its cost grows with the number of values, whatever the machine."
            )
    return lines


def render(results, args, floor, machine_facts):
    count, floor_encrypt, floor_decrypt = floor
    table = results_table(results, args)
    lines = [
        "# Benchmarks",
        "",
        "Cost of encrypting the registry, measured by `tools/bench "
        f"--records {args.records} --runs {args.runs}` (see `tools/benchmark/`): "
        f"{args.records} registrants with the default encrypted fields "
        f"({', '.join(ENCRYPTED_FIELDS)}), realistic distinct values.",
        "",
        f"- **create**: one `create` call with {args.records} dicts;",
        f"- **write**: `{WRITE_FIELD}` changed on all {args.records} in one `write` call;",
        f"- **read**: `web_search_read` of the {args.records}-row list (the encrypted fields and the "
        'display name) as a member of Crypto Admin with "Decrypt registry" on.',
        "",
        "Each time is the median of the runs, flushed to PostgreSQL before the clock stops; the ratio "
        "is to encryption off measured in the same run of the benchmark. The runs of off, `local` "
        "and envelope are interleaved (off, local, envelope, off, local, envelope...), each on "
        "fresh records rolled back afterwards; direct mode runs last. The `keymanager` rows talk "
        f"over HTTP to the emulator on 127.0.0.1 with {LATENCY_MS} ms of added latency per call; "
        "KeyManager calls and Keycloak token requests are counted by the emulator, per run. The "
        "`pkcs11` row wraps data keys with an AES-256 key inside a SoftHSM2 token loaded in this "
        "process; its calls are the token's wrap and unwrap operations.",
        "",
        "## Targets",
        "",
        "From issue 5, as ratios to encryption off: `local` create and write at most 1.25, "
        "`keymanager` envelope create and write at most 1.5, and envelope read at least 20 times "
        "faster than direct read.",
        "",
        *verdicts(results),
        "",
        "## Results",
        "",
        *table,
        "",
        f"Physical floor, same process: {count} bare AES-256-GCM encryptions ({args.records} × "
        f"{len(ENCRYPTED_FIELDS)} values, `cryptography`'s AESGCM) take {floor_encrypt:.4f} s, "
        f"and their decryptions {floor_decrypt:.4f} s.",
        "",
        "Where the encrypted configurations spend their time (medians, seconds inside the addon's "
        "`encrypt_values`, `decrypt_values`, `_update_blind_index` and audit `_log_read`):",
        "",
        *sections_table(results, args),
        "",
        "## What limits these figures",
        "",
        *limits_text(results, args, floor, machine_facts),
        "",
        "## Machine",
        "",
        *[f"- {name}: {value}" for name, value in machine_facts.items()],
        "",
    ]
    return "\n".join(lines), table
