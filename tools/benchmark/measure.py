"""Timing: one operation flushed to PostgreSQL, the KeyManager calls it made, where its time went."""

import gc
import os
import statistics
import time

from .data import values_of_run

OPERATIONS = ("create", "write", "read")
ENCRYPTED_FIELDS = ("name", "email", "phone", "mobile", "street", "street2", "city", "zip")
READ_SPEC = dict.fromkeys(ENCRYPTED_FIELDS + ("display_name",), {})
WRITE_FIELD, WRITE_VALUE = "city", "Kisumu"
SECTIONS = (
    ("encrypt", "g2p.encryption.provider", "encrypt_values"),
    ("decrypt", "g2p.encryption.provider", "decrypt_values"),
    ("blind index", "res.partner", "_update_blind_index"),
    ("audit log", "g2p.decryption.log", "_log_read"),
)


class Sections:
    """Time spent in a few methods of the addon (outermost call only), to say where time goes."""

    def __init__(self):
        self.totals = {}
        self.active = set()  # sections being timed (nested calls count once)

    def install(self, env):
        for section, model, method_name in SECTIONS:
            cls = type(env[model])
            if method_name in cls.__dict__ or not hasattr(cls, method_name):
                continue
            setattr(cls, method_name, self._wrapper(section, getattr(cls, method_name)))

    def _wrapper(self, section, original):
        sections = self

        def timed(record, *args, **kwargs):
            if section in sections.active:
                return original(record, *args, **kwargs)
            sections.active.add(section)
            started = time.perf_counter()
            try:
                return original(record, *args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                sections.totals[section] = sections.totals.get(section, 0.0) + elapsed
                sections.active.discard(section)

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
        """(KeyManager calls and HSM wrap/unwrap operations, Keycloak token requests) so far."""
        hsm = hsm_operations()
        if self.emulator is None:
            return hsm, 0
        counts = self.emulator.counts
        return (
            hsm + sum(count for endpoint, count in counts.items() if str(endpoint).startswith("/")),
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


def hsm_operations():
    """Wrap and unwrap operations of PKCS#11 tokens in this process (0 when none was used)."""
    import sys

    module = sys.modules.get("odoo.addons.g2p_encryption.core.pkcs11_token")
    counts = module.operation_counts() if module else {}
    return counts.get("wrap", 0) + counts.get("unwrap", 0)


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
