"""The summary printed at the end: operations, latencies, errors by cause, the checks and the verdict."""

import collections
import sys

from harness import machine

from .markers import UNREADABLE
from .state import SuiteState


def out(text=""):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def percentile(values, fraction):
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


class SuiteReport(SuiteState):
    """The report of :class:`fault_suite.suite.Suite` (a mixin: it reads the suite's state)."""

    def report(self, committed):
        done = collections.Counter()
        errors = collections.Counter()
        samples = {}
        latency = collections.defaultdict(list)
        for client in self.clients:
            done.update(client.done)
            errors.update(client.errors)
            samples.update(client.error_samples)
            for kind, values in client.latency.items():
                latency[kind].extend(values)
        total_ok = sum(done.values())
        total_err = sum(errors.values())
        out()
        out("=" * 100)
        out(
            f"Load and fault suite: {self.args.clients} clients, {self.args.workers} Odoo workers, "
            f"{self.load_seconds:.0f} s, token lifetime {self.args.token_lifetime} s"
        )
        out(f"Machine: {machine.description()}")
        rate = total_ok / max(self.load_seconds, 1)
        out(f"Operations: {total_ok} succeeded, {total_err} failed ({rate:.1f} successful operations/s)")
        out(f"  {'kind':<8} {'ok':>6} {'failed':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        for kind in ("create", "write", "read"):
            values = latency.get(kind, [])
            failed = len(values) - done[kind]
            out(
                f"  {kind:<8} {done[kind]:>6} {failed:>7} {percentile(values, 0.5) * 1000:>8.0f} "
                f"{percentile(values, 0.95) * 1000:>8.0f} {max(values, default=0) * 1000:>8.0f}"
            )
        all_latency = [s for values in latency.values() for s in values]
        out(
            f"  {'all':<8} {total_ok:>6} {total_err:>7} {percentile(all_latency, 0.5) * 1000:>8.0f} "
            f"{percentile(all_latency, 0.95) * 1000:>8.0f} {max(all_latency, default=0) * 1000:>8.0f}"
        )
        out("Errors by cause:")
        for cause, count in errors.most_common():
            out(f"  {count:>5}  {cause}")
            if cause.startswith("other") or cause.endswith(" other"):
                out(f"         e.g. {samples[cause]}")
        unreadable = sum(c.reads_unreadable for c in self.clients)
        out(f"Reads that showed {UNREADABLE} while KeyManager failed: {unreadable}")
        out(
            f"Faults applied: {dict(self.faults.applied)}"
            + (f"; not applied: {self.faults.failures}" if self.faults.failures else "")
        )
        counts = self.stats.get("counts", {})
        per_endpoint = ", ".join(f"{name} {count}" for name, count in sorted(counts.items()))
        out(f"Emulator calls: {sum(counts.values())} ({per_endpoint})")
        uncertain = sum(len(c.uncertain) for c in self.clients) + sum(
            len(c.unknown_creates) for c in self.clients
        )
        out(
            f"Ledger: {len(committed)} committed records checked; "
            f"{sum(len(c.failed_creates) for c in self.clients)} failed creates and "
            f"{sum(len(c.failed_writes) for c in self.clients)} failed writes checked absent; "
            f"{uncertain} outcomes unknown"
        )
        out(f"Odoo log: {self.log_errors} ERROR lines, {self.log_tracebacks} tracebacks ({self.odoo_log})")
        if self.metrics_rows:
            out(
                f"Metrics endpoint (sum of {self.metrics_processes} Odoo processes) against the emulator, "
                f"{self.scraper.scrapes} scrapes during the load:"
            )
            out(f"  {'endpoint':<20} {'counted':>8} {'unreached':>10} {'reached':>8} {'emulator':>9}")
            for endpoint, counted, unreached, reached, received in self.metrics_rows:
                mark = "" if reached == received else "  <- differs"
                out(f"  {endpoint:<20} {counted:>8} {unreached:>10} {reached:>8} {received:>9}{mark}")
            causes = ", ".join(f"{cause} {count}" for cause, count in sorted(self.metrics_causes.items()))
            out(f"  failed requests by cause (endpoint's counters): {causes or 'none'}")
        if self.gevent_crashes:
            out(
                f"Odoo's longpolling (gevent) process crashed at start {self.gevent_crashes} times and was "
                f"restarted by the master (environment; see {self.odoo_stderr})"
            )
        out("Checks:")
        for label, value, passed in self.checks:
            out(f"  {'PASS' if passed else 'FAIL'}  {label}: {value}")
        for example in self.corrupted_examples + self.mismatch_examples + self.crashes:
            out(f"  example: {example}")
        verdict = "PASS" if all(passed for _l, _v, passed in self.checks) else "FAIL"
        out(f"Result: {verdict}")
        out("=" * 100)
