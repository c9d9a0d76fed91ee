"""Benchmark of registry encryption, run inside Odoo by ``tools/bench`` (not addon code).

For each configuration (encryption off; ``local``; ``keymanager`` envelope; ``keymanager`` direct,
the per-record baseline of OpenG2P's module) it times, on N registrants with the default
encrypted fields:

* create: one ``create`` call with N dicts;
* write: one encrypted field changed on all N, in one ``write`` call;
* read: ``web_search_read`` of the N rows (encrypted fields and display name), as a member of
  Crypto Admin with "Decrypt registry" on;

each the median of several runs, every run on fresh records inside a savepoint that is rolled
back. The KeyManager rows talk over HTTP to the emulator, started in this process on 127.0.0.1
with 5 ms of added latency per call; its counters give the KeyManager calls of each operation.
The physical floor is the same number of bare AES-256-GCM operations in this process. Nothing is
committed: the whole transaction is rolled back at the end.

    python tools/bench_registry.py --config odoo.conf --database DB [--records 1000] [--runs 3]
"""

import argparse
import datetime
import gc
import os
import platform
import statistics
import sys
import time

CONFIGURATIONS = ("off", "local", "envelope", "direct")
LABELS = {
    "off": "encryption off",
    "local": "`local`",
    "envelope": "`keymanager` envelope",
    "direct": "`keymanager` direct",
}
OPERATIONS = ("create", "write", "read")
ENCRYPTED_FIELDS = ("name", "email", "phone", "mobile", "street", "street2", "city", "zip")
READ_SPEC = dict.fromkeys(ENCRYPTED_FIELDS + ("display_name",), {})
WRITE_FIELD, WRITE_VALUE = "city", "Kisumu"
LATENCY_MS = 5
PARAM_ENCRYPT = "g2p_encryption.encrypt_registry"
PARAM_DECRYPT = "g2p_encryption.decrypt_registry"
PARAM_PROVIDER = "g2p_encryption.registry_encryption_provider_id"
LOAD_KEY = "Load average (1/5/15 min) before — after"
NOT_INSTALLED = "n/a (keymanager provider type not installed)"
SECTIONS = (
    ("encrypt", "g2p.encryption.provider", "encrypt_values"),
    ("decrypt", "g2p.encryption.provider", "decrypt_values"),
    ("blind index", "res.partner", "_update_blind_index"),
    ("audit log", "g2p.decryption.log", "_log_read"),
)
TARGETS = (
    # (label, kind, configuration, operation, limit)
    ("`local` create at most 1.25 × off", "ratio", "local", "create", 1.25),
    ("`local` write at most 1.25 × off", "ratio", "local", "write", 1.25),
    ("`keymanager` envelope create at most 1.5 × off", "ratio", "envelope", "create", 1.5),
    ("`keymanager` envelope write at most 1.5 × off", "ratio", "envelope", "write", 1.5),
    ("`keymanager` envelope read at least 20 × faster than direct read", "speedup", "envelope", "read", 20),
)

FIRST_NAMES = (
    "Amina", "Brian", "Chebet", "David", "Esther", "Faith", "George", "Halima", "Ibrahim", "Joyce",
    "Kevin", "Lilian", "Moses", "Njeri", "Otieno", "Purity", "Rehema", "Samuel", "Teresa", "Umar",
    "Violet", "Wanjiru", "Yusuf", "Zawadi", "Akinyi",
)  # fmt: skip
LAST_NAMES = (
    "Achieng", "Barasa", "Chege", "Gitau", "Hassan", "Kamau", "Kariuki", "Kiprono", "Macharia",
    "Mutua", "Mwangi", "Njoroge", "Odhiambo", "Omondi", "Onyango", "Wafula", "Waweru", "Jeptoo",
)  # fmt: skip
STREETS = (
    "Moi Avenue", "Kenyatta Avenue", "Ngong Road", "Jogoo Road", "Oginga Odinga Street",
    "Haile Selassie Avenue", "Thika Road", "Lang'ata Road", "Kimathi Street", "Tom Mboya Street",
)  # fmt: skip
CITIES = (
    ("Nairobi", "00100"), ("Mombasa", "80100"), ("Kisumu", "40100"), ("Nakuru", "20100"),
    ("Eldoret", "30100"), ("Thika", "01000"), ("Machakos", "90100"), ("Nyeri", "10100"),
    ("Garissa", "70100"), ("Kakamega", "50100"),
)  # fmt: skip


def out(text=""):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def progress(text):
    sys.stderr.write(f"[bench] {text}\n")
    sys.stderr.flush()


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------
def _phone(prefix, number, multiplier):
    digits = (number * multiplier + 12345) % 10**8  # a bijection on 8 digits: distinct numbers
    return f"+254 7{prefix}{digits // 10**6 % 10:01d} {digits // 1000 % 1000:03d} {digits % 1000:03d}"


def registrant_values(number):
    """Realistic values of registrant ``number``: names, e-mails and phones differ for each."""
    first = FIRST_NAMES[number % len(FIRST_NAMES)]
    middle = FIRST_NAMES[(number // len(FIRST_NAMES)) % len(FIRST_NAMES)]
    last = LAST_NAMES[(number // len(FIRST_NAMES) ** 2) % len(LAST_NAMES)]
    city, postcode = CITIES[(number * 7) % len(CITIES)]
    return {
        "name": f"{first} {middle} {last}",
        "email": f"{first}.{last}.{number}@example.org".lower().replace("'", ""),
        "phone": _phone(2, number, 7919),
        "mobile": _phone(1, number, 104729),
        "street": f"{number % 997 + 1} {STREETS[number % len(STREETS)]}",
        "street2": f"Apartment {number % 40 + 1}, Block {'ABCDEFGH'[number % 8]}",
        "city": city,
        "zip": postcode,
    }


def values_of_run(run_index, records):
    base = 1 + run_index * records
    return [dict(registrant_values(number), is_registrant=True) for number in range(base, base + records)]


# ----------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------
class Sections:
    """Time spent in a few methods of the addon (outermost call only), to say where time goes."""

    def __init__(self):
        self.totals = {}
        self._active = set()

    def install(self, env):
        for section, model, method_name in SECTIONS:
            cls = type(env[model])
            if method_name in cls.__dict__ or not hasattr(cls, method_name):
                continue
            setattr(cls, method_name, self._wrapper(section, getattr(cls, method_name)))

    def _wrapper(self, section, original):
        sections = self

        def timed(record, *args, **kwargs):
            if section in sections._active:
                return original(record, *args, **kwargs)
            sections._active.add(section)
            started = time.perf_counter()
            try:
                return original(record, *args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                sections.totals[section] = sections.totals.get(section, 0.0) + elapsed
                sections._active.discard(section)

        timed.__name__ = getattr(original, "__name__", section)
        return timed

    def snapshot(self):
        return dict(self.totals)


class Bench:
    def __init__(self, env, emulator, sections, records):
        self.env = env
        self.emulator = emulator
        self.sections = sections
        self.records = records

    def remote_counts(self):
        """(KeyManager calls, Keycloak token requests) received so far by the emulator."""
        if self.emulator is None:
            return 0, 0
        counts = self.emulator.counts
        return (
            sum(count for endpoint, count in counts.items() if str(endpoint).startswith("/")),
            counts.get("token", 0),
        )

    def measure(self, operation):
        """Run ``operation``, flush, and return (its result, a measurement)."""
        gc.collect()
        calls_before, tokens_before = self.remote_counts()
        sections_before = self.sections.snapshot()
        started = time.perf_counter()
        result = operation()
        self.env.flush_all()
        elapsed = time.perf_counter() - started
        calls_after, tokens_after = self.remote_counts()
        sections_after = self.sections.snapshot()
        spent = {
            name: sections_after.get(name, 0.0) - sections_before.get(name, 0.0) for name in sections_after
        }
        return result, {
            "seconds": elapsed,
            "km_calls": calls_after - calls_before,
            "tokens": tokens_after - tokens_before,
            "sections": spent,
        }

    def run_once(self, run_index, admin_env, check_plaintext, count=None):
        """One run of create, write and read on fresh records; everything is rolled back after."""
        env = self.env
        count = count or self.records
        vals_list = values_of_run(run_index, count)
        partners = env["res.partner"]
        results = {}
        savepoint = env.cr.savepoint()
        try:
            records, results["create"] = self.measure(lambda: partners.create(vals_list))
            ids = records.ids
            env.invalidate_all()
            _done, results["write"] = self.measure(
                lambda: partners.browse(ids).write({WRITE_FIELD: WRITE_VALUE})
            )
            env.invalidate_all()
            readable = admin_env["res.partner"]
            answer, results["read"] = self.measure(
                lambda: readable.web_search_read([("id", "in", ids)], READ_SPEC, limit=count, order="id")
            )
            check_answer(answer, vals_list, check_plaintext)
            if check_plaintext:
                check_stored_ciphertext(env, ids[0], vals_list[0]["email"])
        finally:
            savepoint.close(rollback=True)
            env.invalidate_all(flush=False)
        return results


def check_answer(answer, vals_list, check_plaintext):
    rows = answer["records"]
    if len(rows) != len(vals_list):
        raise RuntimeError(f"read returned {len(rows)} rows, expected {len(vals_list)}")
    first, expected = rows[0], vals_list[0]
    if first["email"] != expected["email"] or first["city"] != WRITE_VALUE:
        raise RuntimeError("read did not return the plaintext that was written: the benchmark is wrong")
    if check_plaintext and first["display_name"] != expected["name"]:
        raise RuntimeError("read did not decrypt the display name")


def check_stored_ciphertext(env, record_id, email):
    env.cr.execute("SELECT email FROM res_partner WHERE id = %s", (record_id,))
    stored = env.cr.fetchone()[0]
    if not stored or stored == email:
        raise RuntimeError("the e-mail was stored in the clear: the configuration is not encrypting")


def aes_floor(records, runs):
    """Seconds of N × 8 bare AES-256-GCM encryptions and decryptions (medians), in this process."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aesgcm = AESGCM(AESGCM.generate_key(bit_length=256))
    plaintexts = [
        (str(vals[name]).encode(), f"res.partner|{name}".encode())
        for vals in values_of_run(0, records)
        for name in ENCRYPTED_FIELDS
    ]
    encrypt_times, decrypt_times = [], []
    for _run in range(max(runs, 3)):
        gc.collect()
        started = time.perf_counter()
        sealed = []
        for plaintext, aad in plaintexts:
            nonce = os.urandom(12)
            sealed.append((nonce, aesgcm.encrypt(nonce, plaintext, aad), aad))
        encrypt_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        for nonce, ciphertext, aad in sealed:
            aesgcm.decrypt(nonce, ciphertext, aad)
        decrypt_times.append(time.perf_counter() - started)
    return len(plaintexts), statistics.median(encrypt_times), statistics.median(decrypt_times)


# ----------------------------------------------------------------------------------------------
# Configurations
# ----------------------------------------------------------------------------------------------
def keymanager_installed(env):
    selection = env["g2p.encryption.provider"]._fields["type"].selection
    return "keymanager" in dict(selection if isinstance(selection, list) else [])


def clear_worker_caches():
    """Forget data keys, tokens and certificates, as a freshly started worker would."""
    from odoo.addons.g2p_encryption.core import cache
    from odoo.addons.g2p_encryption.models.encryption_provider import clear_data_key_cache

    clear_data_key_cache()  # until the data-key cache is a core.cache.Cache too
    cache.clear_all()


def make_provider(env, config, emulator):
    """The provider of ``config``, its keys already made (as in any registry already in use)."""
    if config in ("off", "local"):
        provider = env.ref("g2p_encryption.encryption_provider_default")
    else:
        from odoo.addons.g2p_encryption.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

        provider = (
            env["g2p.encryption.provider"]
            .sudo()
            .create(
                {
                    "name": f"Benchmark KeyManager ({config})",
                    "type": "keymanager",
                    "keymanager_mode": config,
                    "keymanager_api_base_url": emulator.keymanager_url,
                    "keymanager_auth_url": emulator.token_url,
                    "keymanager_auth_client_id": DEFAULT_CLIENT_ID,
                    "keymanager_auth_client_secret": DEFAULT_CLIENT_SECRET,
                    "keymanager_encrypt_application_id": "REGISTRATION",
                    "keymanager_encrypt_reference_id": "ENCRYPT",
                }
            )
        )
    if config != "off":
        provider._active_data_key()
        provider._blind_index_key()
    env.flush_all()
    return provider


def activate(env, config, provider):
    """Make ``config`` the registry's configuration, as an admin would in Settings."""
    params = env["ir.config_parameter"].sudo()
    params.set_param(PARAM_PROVIDER, str(provider.id))
    params.set_param(PARAM_ENCRYPT, "" if config == "off" else "True")
    params.set_param(PARAM_DECRYPT, "True")
    env.registry.clear_cache()
    env.flush_all()
    env.invalidate_all()


def crypto_admin_env(env):
    groups = [
        env.ref(xmlid).id
        for xmlid in ("base.group_user", "base.group_partner_manager", "g2p_encryption.crypto_admin")
    ]
    user = (
        env["res.users"]
        .with_context(no_reset_password=True, mail_create_nolog=True)
        .create(
            {
                "name": "Benchmark Crypto Admin",
                "login": "g2p_bench_crypto_admin",
                "groups_id": [(6, 0, groups)],
            }
        )
    )
    return env(user=user.id)


def run_all(bench, env, emulator, admin_env, args, installed):
    """{configuration: [run results] or why it was not measured}.

    The runs of the fast configurations are interleaved (off, local, envelope, off, local...), so
    that a slower moment of the machine weighs on all of them alike; direct mode runs last.
    """
    results, providers = {}, {}
    for config in args.configs:
        if config in ("envelope", "direct") and not installed:
            results[config] = NOT_INSTALLED
            progress(f"{config}: {NOT_INSTALLED}")
            continue
        providers[config] = make_provider(env, config, emulator)
        results[config] = []
    progress("warm-up (not timed into the results): encryption off, then local")
    for config, records in (("off", args.records), ("local", min(args.records, 100))):
        activate(env, config, providers.get(config) or providers["off"])
        bench.run_once(args.runs + args.direct_runs + 10, admin_env, config != "off", records)
    # Each configuration starts cold, as a freshly started worker would.
    clear_worker_caches()
    if emulator is not None:
        emulator.reset_counts()
    fast = [config for config in providers if config != "direct"]
    rounds = [(run_index, fast) for run_index in range(args.runs)]
    if "direct" in providers:
        rounds += [(run_index, ["direct"]) for run_index in range(args.direct_runs)]
    for run_index, configs in rounds:
        for config in configs:
            activate(env, config, providers[config])
            run = bench.run_once(run_index, admin_env, check_plaintext=config != "off")
            results[config].append(run)
            runs = args.direct_runs if config == "direct" else args.runs
            progress(
                f"{config} run {run_index + 1}/{runs}: "
                + ", ".join(
                    f"{op} {run[op]['seconds']:.3f} s ({run[op]['km_calls']} KM calls)" for op in OPERATIONS
                )
            )
    return results


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------
def proc_value(path, name):
    """The value of the first line ``name: value`` of a /proc file, or None."""
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith(name) and ":" in line:
                return line.split(":", 1)[1].strip()
    return None


def machine_info(env):
    import odoo

    cpu = proc_value("/proc/cpuinfo", "model name") or platform.processor() or "unknown"
    memory = proc_value("/proc/meminfo", "MemTotal")
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
        "| Configuration | Operation | Seconds (median) | Runs (s) | × off | KeyManager calls per run "
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


def limits_text(results, args, floor, machine):
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
    load = machine.get(LOAD_KEY, "")
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


def render(results, args, floor, machine):
    count, floor_encrypt, floor_decrypt = floor
    table = results_table(results, args)
    lines = [
        "# Benchmarks",
        "",
        "Cost of encrypting the registry, measured by `tools/bench "
        f"--records {args.records} --runs {args.runs}` (see `tools/bench_registry.py`): "
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
        "KeyManager calls and Keycloak token requests are counted by the emulator, per run.",
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
        *limits_text(results, args, floor, machine),
        "",
        "## Machine",
        "",
        *[f"- {name}: {value}" for name, value in machine.items()],
        "",
    ]
    return "\n".join(lines), table


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------
def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
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
        remote = [config for config in args.configs if config in ("envelope", "direct")]
        if remote and installed:
            from odoo.addons.g2p_encryption.emulator import Emulator

            emulator = Emulator().start()
            emulator.faults.set_latency(LATENCY_MS)
            progress(f"emulator on {emulator.url}, {LATENCY_MS} ms added latency per call")
        sections = Sections()
        sections.install(env)
        admin_env = crypto_admin_env(env)
        env.flush_all()
        bench = Bench(env, emulator, sections, args.records)

        results = run_all(bench, env, emulator, admin_env, args, installed)
        floor = aes_floor(args.records, args.runs)
        machine = machine_info(env)
        machine[LOAD_KEY] = f"{load_before} — {load_average()}"
    finally:
        cr.rollback()
        cr.close()
        if emulator is not None:
            emulator.stop()

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


if __name__ == "__main__":
    sys.exit(main())
