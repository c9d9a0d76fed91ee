"""Print the test counts of JUnit XML reports, one line per suite and a total; print CI's summary.

    python tools/test_counts.py REPORT.xml... [--summary FILE]
    python tools/test_counts.py --record FILE KIND NAME [STATUS] [SECONDS]
    python tools/test_counts.py --table FILE

The first form exits non-zero when a report is missing or holds no test: a suite that did not
run is a failure. With --summary it appends one row per report to FILE, named after the report.
--record appends a row of another kind: a step and its time ("step"; status "-" for a row that
only tells a time), or a suite without counts ("suite": a suite that was skipped). --table
prints FILE as the table that ends .ci/run, then the closing line "total: N passed, N failed,
N skipped", and exits non-zero when a row failed. Known failures (tests excused by name, see
openg2p_results.py) count there as skipped.
"""

import sys
import xml.etree.ElementTree as ET

COLUMNS = ("passed", "failed", "errors", "skipped", "known")


def counts(path):
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        for key in total:
            total[key] += int(suite.get(key, 0))
    return total


def write_summary_row(path, name, status, **numbers):
    """Append a suite's row: suite NAME passed failed errors skipped known STATUS."""
    values = [str(numbers.get(column, "")) for column in COLUMNS]
    with open(path, "a", encoding="utf-8") as summary:
        summary.write("\t".join(["suite", name, *values, status]) + "\n")


def report_counts(paths, summary=None):
    grand = {"passed": 0, "failed": 0, "skipped": 0}
    ok = True
    for path in paths:
        name = path.rsplit("/", 1)[-1].removesuffix(".xml")
        try:
            c = counts(path)
        except (OSError, ET.ParseError) as exc:
            sys.stdout.write(f"{name}: no report ({exc})\n")
            if summary:
                write_summary_row(summary, name, "FAILED (no report)")
            ok = False
            continue
        failed = c["failures"] + c["errors"]
        passed = c["tests"] - failed - c["skipped"]
        sys.stdout.write(f"{name} suite: {passed} passed, {failed} failed, {c['skipped']} skipped\n")
        grand["passed"] += passed
        grand["failed"] += failed
        grand["skipped"] += c["skipped"]
        suite_ok = c["tests"] > 0 and failed == 0
        ok = ok and suite_ok
        if summary:
            status = "ok" if suite_ok else ("FAILED" if failed else "FAILED (no test)")
            write_summary_row(
                summary,
                name,
                status,
                passed=passed,
                failed=c["failures"],
                errors=c["errors"],
                skipped=c["skipped"],
                known=0,
            )
    sys.stdout.write(f"{grand['passed']} passed, {grand['failed']} failed, {grand['skipped']} skipped\n")
    return 0 if ok else 1


def record(path, kind, name, status="ok", seconds=""):
    with open(path, "a", encoding="utf-8") as summary:
        if kind == "step":
            summary.write("\t".join(["step", name, str(seconds), status]) + "\n")
        else:
            summary.write("\t".join(["suite", name, *[""] * len(COLUMNS), status]) + "\n")
    return 0


def _minutes(seconds):
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s"


def table(path):
    suites, steps = [], []
    with open(path, encoding="utf-8") as summary:
        for line in summary:
            fields = line.rstrip("\n").split("\t")
            if fields[0] == "suite" and len(fields) == 3 + len(COLUMNS):
                suites.append(fields[1:])
            elif fields[0] == "step" and len(fields) == 4:
                steps.append(fields[1:])
    ok = True
    totals = dict.fromkeys(COLUMNS, 0)
    width = max([len(s[0]) for s in suites + steps] + [5])
    out = sys.stdout
    out.write(f"\n{'suite':<{width}}  " + " ".join(f"{c:>7}" for c in COLUMNS) + "  status\n")
    for name, *numbers, status in suites:
        out.write(f"{name:<{width}}  " + " ".join(f"{n:>7}" for n in numbers) + f"  {status}\n")
        for column, value in zip(COLUMNS, numbers, strict=True):
            totals[column] += int(value or 0)
        ok = ok and not status.startswith("FAILED")
    if steps:
        out.write(f"\n{'step':<{width}}  {'time':>8}  status\n")
        for name, seconds, status in steps:
            out.write(f"{name:<{width}}  {_minutes(seconds):>8}  {status}\n")
            ok = ok and status in ("ok", "-")
    if totals["known"]:
        out.write(f"({totals['known']} known failure(s) of tests that need the internet count as skipped)\n")
    failed = totals["failed"] + totals["errors"]
    skipped = totals["skipped"] + totals["known"]
    out.write(f"total: {totals['passed']} passed, {failed} failed, {skipped} skipped\n")
    return 0 if ok else 1


def main(argv):
    if argv[:1] == ["--table"] and len(argv) == 2:
        return table(argv[1])
    if argv[:1] == ["--record"] and 4 <= len(argv) <= 6:
        return record(*argv[1:])
    summary = None
    paths = []
    args = iter(argv)
    for arg in args:
        if arg == "--summary":
            summary = next(args, None)
        else:
            paths.append(arg)
    return report_counts(paths, summary)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
