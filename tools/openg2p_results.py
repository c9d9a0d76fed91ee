"""Read the log of Odoo's test runner on the OpenG2P database and judge OpenG2P's own test suites.

    python tools/openg2p_results.py LOG [--summary FILE] [--suite NAME]

Prints "openg2p suite: N passed, F failed, E errors", then each failing or erroring test with
the first line of its error, and exits 1 when a test failed or erred other than the known ones
below, or when the runner did not report (it crashed, or ran no test). With --summary it also
appends the suite's row to the summary file that tools/test_counts.py --table prints.

A known failure is named (module, class.method), never counted: it is excused only when that
test fails with its expected error; the same test failing otherwise fails the suite.
"""

import argparse
import re
import sys

from test_counts import write_summary_row

# OpenG2P's tests that cannot pass on a machine without internet, with what their error must
# contain there (every pattern, searched in the whole traceback): pyld fails to load a JSON-LD
# context from w3id.org. With OpenG2P's own encryption modules these are the only two (0 failed,
# 2 errors of 110; tools/openg2p_test --baseline).
_NO_INTERNET = (r"JsonLdError", r"loading document failed")
KNOWN_FAILURES = {
    ("g2p_openid_vci", "TestVCIIssuerRegistry.test_issue_vc_normal"): (
        _NO_INTERNET,
        "fetches a JSON-LD context from the internet",
    ),
    ("g2p_openid_vci", "TestVCIIssuerRegistry.test_issue_vc_normal_without_face"): (
        _NO_INTERNET,
        "fetches a JSON-LD context from the internet",
    ),
}

BASELINE = "108 passed, 0 failed, 2 errors (the two known ones) of 110 tests"

RECORD = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \d+ (?P<level>[A-Z]+) (?P<db>\S+) (?P<logger>\S+): (?P<msg>.*)$"
)
TEST_LOGGER = re.compile(r"^odoo\.addons\.(?P<module>\w+)\.tests(\.|$)")
FINAL = re.compile(r"^(?P<failed>\d+) failed, (?P<errors>\d+) error\(s\) of (?P<tests>\d+) tests when")
# An error of a class set-up is logged by unittest's holder: "ERROR: setUpClass (odoo.addons.m.tests...)".
DESCRIBED_MODULE = re.compile(r"^(?:FAIL|ERROR): .*\(odoo\.addons\.(?P<module>\w+)\.tests\.")
SUBTEST = re.compile(r"^Subtest (?P<name>\S+) .*$")


def records(lines):
    """Yield (level, logger, message with its continuation lines) for each log record."""
    current = []  # [level, logger, [message lines]] of the record being read
    for line in lines:
        match = RECORD.match(line)
        if match:
            if current:
                yield current
            current = [match["level"], match["logger"], [match["msg"].rstrip()]]
        elif current:
            current[2].append(line.rstrip("\n"))
    if current:
        yield current


def first_error_line(text_lines):
    """The first line of the exception that ends a traceback (after its last frame)."""
    last_frame = max((i for i, line in enumerate(text_lines) if line.startswith("  File ")), default=None)
    if last_frame is None:
        candidates = text_lines
    else:
        candidates = [line for line in text_lines[last_frame + 1 :] if not line.startswith("    ")]
    for line in candidates:
        if line.strip() and not line.startswith(("Traceback", "During handling", "The above exception")):
            return line.strip()
    return text_lines[0].strip() if text_lines else ""


def parse(lines):
    result = {"started": set(), "skipped": set(), "problems": [], "final": None}
    for level, logger, message in records(lines):
        head = message[0]
        final = FINAL.match(head) if logger == "odoo.tests.result" else None
        if final:
            result["final"] = {key: int(value) for key, value in final.groupdict().items()}
            continue
        match = TEST_LOGGER.match(logger) or DESCRIBED_MODULE.search(head)
        if not match:
            continue
        module = match["module"]
        if level == "INFO" and head.startswith("Starting ") and head.endswith(" ..."):
            result["started"].add((module, head[len("Starting ") : -len(" ...")]))
        elif level == "INFO" and head.startswith("skipped "):
            result["skipped"].add((module, head[len("skipped ") :].split(" : ", 1)[0]))
        elif level == "ERROR" and head.startswith(("FAIL: ", "ERROR: ")):
            flavour, name = head.split(": ", 1)
            subtest = SUBTEST.match(name)
            result["problems"].append(
                {
                    "flavour": flavour,
                    "module": module,
                    "test": subtest["name"] if subtest else name,
                    "description": name,
                    "error": first_error_line(message[1:]),
                    "text": "\n".join(message[1:]),
                }
            )
    return result


def judge(result):
    """Split the failing tests into known (excused) and unexpected."""
    known, unexpected = [], []
    for problem in result["problems"]:
        expected = KNOWN_FAILURES.get((problem["module"], problem["test"]))
        if expected and all(re.search(pattern, problem["text"]) for pattern in expected[0]):
            problem["why"] = expected[1]
            known.append(problem)
        else:
            unexpected.append(problem)
    return known, unexpected


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("log")
    parser.add_argument("--summary", help="append the suite's row to this summary file")
    parser.add_argument("--suite", default="openg2p", help="name of the suite in the output")
    args = parser.parse_args(argv)
    try:
        with open(args.log, encoding="utf-8", errors="replace") as log:
            result = parse(log)
    except OSError as exc:
        sys.stdout.write(f"{args.suite} suite: no log ({exc})\n")
        result = {"started": set(), "skipped": set(), "problems": [], "final": None}
    known, unexpected = judge(result)
    failing_tests = {(p["module"], p["test"]) for p in result["problems"]}
    skipped = len(result["skipped"])
    passed = len(result["started"] - failing_tests - result["skipped"])
    failed = sum(1 for p in result["problems"] if p["flavour"] == "FAIL")
    errors = len(result["problems"]) - failed
    final = result["final"]
    sys.stdout.write(f"{args.suite} suite: {passed} passed, {failed} failed, {errors} errors\n")
    sys.stdout.write(f"  baseline, with OpenG2P's own encryption modules: {BASELINE}\n")
    notes = []
    if final is None:
        notes.append("the test runner did not report: it stopped before the end (see the log)")
    else:
        if final["tests"] == 0:
            notes.append("the test runner ran no test")
        if (final["failed"], final["errors"]) != (failed, errors) or final["tests"] != len(result["started"]):
            counted = f"{final['failed']} failed, {final['errors']} error(s) of {final['tests']} tests"
            notes.append(f"the runner counted {counted}")
    sys.stdout.write(
        f"  {len(result['started'])} tests ran, {skipped} skipped; "
        f"{len(known)} known failure(s) excused (tests that need the internet), "
        f"{len(unexpected)} unexpected\n"
    )
    for problem in sorted(unexpected, key=lambda p: (p["module"], p["description"])):
        sys.stdout.write(f"  {problem['flavour']:5} {problem['module']} {problem['description']}\n")
        sys.stdout.write(f"        {problem['error']}\n")
    for problem in known:
        sys.stdout.write(f"  known {problem['module']} {problem['description']}: {problem['why']}\n")
        sys.stdout.write(f"        {problem['error']}\n")
    for note in notes:
        sys.stdout.write(f"  {note}\n")
    ok = not unexpected and bool(final) and final.get("tests", 0) > 0
    if args.summary:
        write_summary_row(
            args.summary,
            args.suite,
            passed=passed,
            failed=failed - sum(1 for p in known if p["flavour"] == "FAIL"),
            errors=errors - sum(1 for p in known if p["flavour"] == "ERROR"),
            skipped=skipped,
            known=len(known),
            status="ok" if ok else "FAILED",
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
