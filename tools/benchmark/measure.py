"""Timing: the operations of one run, flushed to PostgreSQL, and where their time went.

The same code runs in the addon's process and in the baseline's (OpenG2P's own modules, another
database and process): nothing here imports the addon; what differs comes in as arguments.
"""

import contextlib
import gc
import json
import time

from .data import values_of_run

# The operations of a run, in the order they run; ``read10k`` runs on its own set of registrants.
OPERATIONS = ("create", "write", "list80", "list1000", "clerk80", "clerk1000")
ALL_OPERATIONS = OPERATIONS + ("read10k", "rpc80", "rpc1000", "rpc_clerk80", "rpc_clerk1000")
ENCRYPTED_FIELDS = ("name", "email", "phone", "mobile", "street", "street2", "city", "zip")
LIST_SPEC = dict.fromkeys(ENCRYPTED_FIELDS + ("display_name",), {})
WRITE_FIELD, WRITE_VALUE = "city", "Kisumu"
READ10K_FIELDS = ("name", "phone")
# Requests per list and run, in the server and over JSON-RPC; their median is the run's time. A
# list of 80 rows takes tens of milliseconds, as long as the machine's hiccups: 21 of them.
LIST_REPEATS = {
    80: 21,
    1000: 5,
}
# Writes per run (each of another city, the last of WRITE_VALUE); their median is the run's time.
# One UPDATE of a thousand rows varies by more than the addon's cost with the load of PostgreSQL's
# own work (WAL, the dead rows of the runs before): 5 of them. One where the write is one call
# per record (OpenG2P's baseline: a KeyManager call for each record).
WRITE_REPEATS = 5


class Sections:
    """Time spent in a few functions (outermost call only), and how many values they handled.

    ``install(owner, name, section, count)`` wraps ``owner.name`` (a class or a module);
    ``count(args)`` tells how many values one call handles.
    """

    def __init__(self):
        self.seconds = {}
        self.values = {}
        self.active = set()

    def install(self, owner, name, section, count=None, batch_section=None, batch_min=100):
        """``batch_section``: the same time, counted only for calls of ``batch_min`` values or more
        (a batch, not a flush writing one record at a time)."""
        original = getattr(owner, name)
        sections = self

        def timed(*args, **kwargs):
            if section in sections.active:
                return original(*args, **kwargs)
            sections.active.add(section)
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                sections.seconds[section] = sections.seconds.get(section, 0.0) + elapsed
                if count is not None:
                    values = count(args)
                    sections.values[section] = sections.values.get(section, 0) + values
                    if batch_section and values >= batch_min:
                        sections.seconds[batch_section] = sections.seconds.get(batch_section, 0.0) + elapsed
                        sections.values[batch_section] = sections.values.get(batch_section, 0) + values
                sections.active.discard(section)

        timed.__name__ = getattr(original, "__name__", name)
        setattr(owner, name, timed)

    def snapshot(self):
        return dict(self.seconds), dict(self.values)


class Bench:
    """The operations of one process on one database.

    ``admin_env`` reads with decryption on (a Crypto Admin; OpenG2P: "Decrypt registry" on),
    ``clerk_env`` reads masks; ``person_exit(env, name)`` is the context the web client's request
    runs the read in (the addon's exit; nothing for the baseline); ``before_clerk`` and
    ``after_clerk`` switch what the baseline needs switched for a clerk.
    """

    def __init__(self, env, sections, records, admin_env, clerk_env, person_exit=None):
        self.env = env
        self.sections = sections
        self.records = records
        self.admin_env = admin_env
        self.clerk_env = clerk_env
        self.person_exit = person_exit or (lambda env, name: contextlib.nullcontext())
        self.remote_counts = lambda: 0
        self.before_clerk = self.after_clerk = lambda: None
        # OpenG2P's ``write`` of several records in one call loses their values (it reuses and
        # overwrites ``vals`` across its loop: every record ends up with the placeholders
        # encrypted): in its database, the write is one call per record, as its forms make.
        self.write_each = False

    def measure(self, operation):
        """Run ``operation``, flush, and return (its result, a measurement)."""
        gc.collect()
        calls_before = self.remote_counts()
        seconds_before, values_before = self.sections.snapshot()
        started = time.perf_counter()
        result = operation()
        self.env.flush_all()
        elapsed = time.perf_counter() - started
        seconds_after, values_after = self.sections.snapshot()
        return result, {
            "seconds": elapsed,
            "km_calls": self.remote_counts() - calls_before,
            "sections": {k: v - seconds_before.get(k, 0.0) for k, v in seconds_after.items()},
            "values": {k: v - values_before.get(k, 0) for k, v in values_after.items()},
        }

    def write(self, records, value=WRITE_VALUE):
        if not self.write_each:
            return records.write({WRITE_FIELD: value})
        for record in records:
            record.write({WRITE_FIELD: value})
        return True

    def median_try(self, count, operation):
        """(result, measurement) of the median of ``count`` measured calls of ``operation(n)``,
        each on a cache emptied first."""
        tries = []
        for number in range(count):
            self.env.invalidate_all()
            tries.append(self.measure(lambda number=number: operation(number)))
        return sorted(tries, key=lambda t: t[1]["seconds"])[count // 2]

    def web_list(self, env, ids, limit):
        """The list view's request: ``web_search_read`` in an exit, its answer as JSON."""
        with self.person_exit(env, "res.partner.web_search_read"):
            answer = env["res.partner"].web_search_read(
                [("id", "in", ids)], LIST_SPEC, limit=limit, order="id"
            )
        json.dumps(answer, default=str)
        return answer

    def run_once(self, run_index, encrypted):
        """One run of the operations on fresh records, rolled back afterwards."""
        env = self.env
        count = self.records
        vals_list = values_of_run(run_index, count)
        partners = env["res.partner"]
        results = {}
        savepoint = env.cr.savepoint()
        try:
            # A copy: OpenG2P's create replaces the values of the dicts it is given by placeholders.
            given = [dict(vals) for vals in vals_list]
            records, results["create"] = self.measure(lambda: partners.create(given))
            ids = records.ids
            writes = 1 if self.write_each else WRITE_REPEATS
            cities = [f"{WRITE_VALUE} {number}" for number in range(1, writes)] + [WRITE_VALUE]
            _done, results["write"] = self.median_try(
                writes, lambda number: self.write(partners.browse(ids), cities[number])
            )
            for name, user_env, limit in (
                ("list80", self.admin_env, 80),
                ("list1000", self.admin_env, 1000),
                ("clerk80", self.clerk_env, 80),
                ("clerk1000", self.clerk_env, 1000),
            ):
                clerk = name.startswith("clerk")
                if clerk:
                    self.before_clerk()
                try:
                    answer, results[name] = self.median_try(  # short: the median of a few
                        LIST_REPEATS[limit],
                        lambda _number, user_env=user_env, limit=limit: self.web_list(user_env, ids, limit),
                    )
                finally:
                    if clerk:
                        self.after_clerk()
                check_answer(answer, vals_list, min(limit, count), plaintext=not (encrypted and clerk))
        finally:
            savepoint.close(rollback=True)
            env.invalidate_all(flush=False)
        return results

    def read_registrants(self, ids):
        """Server code reading name and phone of every registrant, as an eligibility run does."""
        env = self.env
        env.invalidate_all()

        def read():
            seen = 0
            for partner in env["res.partner"].browse(ids):
                if partner.name and partner.phone:
                    seen += 1
            return seen

        seen, result = self.measure(read)
        if seen != len(ids):
            raise RuntimeError(f"read10k saw {seen} of {len(ids)} registrants with a name and a phone")
        return result


def check_answer(answer, vals_list, expected_rows, plaintext):
    rows = answer["records"]
    if len(rows) != expected_rows:
        raise RuntimeError(f"the list returned {len(rows)} rows, expected {expected_rows}")
    first, expected = rows[0], vals_list[0]
    if plaintext and (first["email"] != expected["email"] or first["city"] != WRITE_VALUE):
        raise RuntimeError(
            f"the list did not show the plaintext that was written ({first['email']!r}, {first['city']!r} "
            f"for {expected['email']!r}, {WRITE_VALUE!r}): the benchmark is wrong"
        )
    if not plaintext and first["email"] == expected["email"]:
        raise RuntimeError("the clerk's list showed plaintext: the benchmark is wrong")


def make_registrants(env, run_index, count, batch=1000):
    """``count`` registrants (created in batches, flushed), for the server-side read."""
    ids = []
    for start in range(0, count, batch):
        vals_list = values_of_run(run_index, min(batch, count - start), offset=start)
        ids += env["res.partner"].create(vals_list).ids
        env.flush_all()
        env.invalidate_all()
    return ids
