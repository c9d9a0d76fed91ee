"""Print the test counts of JUnit XML reports, one line per suite and a total.

Exits non-zero when a report is missing or holds no test: a suite that did not run is a failure.
"""

import sys
import xml.etree.ElementTree as ET


def counts(path):
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        for key in total:
            total[key] += int(suite.get(key, 0))
    return total


def main(paths):
    grand = {"passed": 0, "failed": 0, "skipped": 0}
    ok = True
    for path in paths:
        name = path.rsplit("/", 1)[-1].removesuffix(".xml")
        try:
            c = counts(path)
        except (OSError, ET.ParseError) as exc:
            sys.stdout.write(f"{name}: no report ({exc})\n")
            ok = False
            continue
        failed = c["failures"] + c["errors"]
        passed = c["tests"] - failed - c["skipped"]
        sys.stdout.write(f"{name} suite: {passed} passed, {failed} failed, {c['skipped']} skipped\n")
        grand["passed"] += passed
        grand["failed"] += failed
        grand["skipped"] += c["skipped"]
        ok = ok and c["tests"] > 0 and failed == 0
    sys.stdout.write(f"{grand['passed']} passed, {grand['failed']} failed, {grand['skipped']} skipped\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
