"""Counts what a test phase of tests/run.sh really ran, and fails when it ran nothing or less than
it registered. A phase that "passes" without running its tests is how a cached FSTM_BUILD_TESTS=OFF
once went unnoticed (ctest: "No tests were found!!!", exit 0).

  summarise_tests.py ctest CTEST_JUNIT.xml --expect N   the Release suite (ctest --output-junit)
  summarise_tests.py gtest GTEST.json [--log LOG]       a GoogleTest binary (--gtest_output=json:;
                                                        LOG: its console output, for skip reasons)
  summarise_tests.py total [CTEST_JUNIT.xml] [GTEST.json ...]
                                                        the closing line: "all: N passed, N failed, N skipped"

Prints one line, "N passed, M skipped (reasons)", and exits 1 with the reason on stderr when the
phase ran no test, passed none, failed one, or ran a different number than expected.
"""
import collections
import json
import re
import sys
import xml.etree.ElementTree as ET

Counts = collections.namedtuple("Counts", "passed failed skipped reasons")


def skip_reason(output):
    """The reason a skipped test gave: GoogleTest prints 'file:line: Skipped' and the message on the
    next line; the Python tests print theirs last before exiting 77."""
    lines = [l.strip() for l in (output or "").splitlines() if l.strip()]
    for i, line in enumerate(lines):
        if line.endswith(": Skipped") and i + 1 < len(lines):
            return lines[i + 1]
    return lines[-1] if lines else "no reason given"


def short(reason):
    """Group reasons that differ only in details (device numbers, paths) under their first clause."""
    reason = re.split(r"[;(\[]", reason, maxsplit=1)[0].strip().rstrip(":")
    return reason[:80] or "no reason given"


def ctest_counts(path):
    root = ET.parse(path).getroot()
    cases = root.iter("testcase")
    passed = failed = skipped = 0
    reasons = collections.Counter()
    for case in cases:
        status = case.get("status", "")
        if case.find("skipped") is not None or status in ("notrun", "disabled"):
            skipped += 1
            out = case.find("system-out")
            reasons[short(skip_reason(out.text if out is not None else ""))] += 1
        elif case.find("failure") is not None or case.find("error") is not None or status == "fail":
            failed += 1
        else:
            passed += 1
    return Counts(passed, failed, skipped, reasons)


def gtest_log_reasons(log_path):
    """{'Suite.Test': reason} from a GoogleTest console log (its JSON report has no skip message
    before GoogleTest 1.13): the message follows 'file:line: Skipped', then '[  SKIPPED ] Suite.Test'."""
    reasons, pending = {}, None
    if not log_path:
        return reasons
    with open(log_path, errors="replace") as f:
        lines = [l.rstrip("\n") for l in f]
    for i, line in enumerate(lines):
        if line.endswith(": Skipped") and i + 1 < len(lines):
            pending = lines[i + 1].strip()
        m = re.match(r"^\[ +SKIPPED +\] (\S+) \(", line)
        if m:
            reasons[m.group(1)] = pending or "no reason given"
            pending = None
    return reasons


def gtest_counts(path, log_path=None):
    with open(path) as f:
        report = json.load(f)
    from_log = gtest_log_reasons(log_path)
    passed = failed = skipped = 0
    reasons = collections.Counter()
    for suite in report.get("testsuites", []):
        for case in suite.get("testsuite", []):
            if case.get("status") != "RUN":
                continue  # filtered out or disabled: not run, not counted
            if case.get("failures"):
                failed += 1
            elif case.get("result") == "SKIPPED":
                skipped += 1
                msg = (case.get("skipped") or [{}])[0].get("message", "")
                full = f"{suite.get('name')}.{case.get('name')}"
                reasons[short(skip_reason(msg) if msg else from_log.get(full, "no reason given"))] += 1
            else:
                passed += 1
    return Counts(passed, failed, skipped, reasons)


def describe(c):
    text = f"{c.passed} passed, {c.skipped} skipped"
    if c.reasons:
        text += " (" + "; ".join(f"{n} x {r}" for r, n in c.reasons.most_common()) + ")"
    return text


def check(c, what, expect=None):
    ran = c.passed + c.failed + c.skipped
    problems = []
    if ran == 0:
        problems.append("ran no test")
    elif c.passed == 0:
        problems.append("passed no test")
    if c.failed:
        problems.append(f"{c.failed} failed")
    if expect is not None and ran != expect:
        problems.append(f"ran {ran} tests but the build registered {expect}")
    if problems:
        sys.exit(f"summarise_tests: {what}: " + ", ".join(problems) + f" ({describe(c)})")


def main(argv):
    if len(argv) >= 2 and argv[0] == "ctest":
        expect = int(argv[argv.index("--expect") + 1]) if "--expect" in argv else None
        c = ctest_counts(argv[1])
        check(c, argv[1], expect)
        print(describe(c))
    elif len(argv) >= 2 and argv[0] == "gtest":
        c = gtest_counts(argv[1], argv[argv.index("--log") + 1] if "--log" in argv else None)
        check(c, argv[1])
        print(describe(c))
    elif len(argv) >= 2 and argv[0] == "total":
        parts = [ctest_counts(p) if p.endswith(".xml") else gtest_counts(p) for p in argv[1:]]
        for p, c in zip(argv[1:], parts):
            check(c, p)
        print(f"all: {sum(c.passed for c in parts)} passed, {sum(c.failed for c in parts)} failed, "
              f"{sum(c.skipped for c in parts)} skipped")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
