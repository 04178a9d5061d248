"""The outputs of `harness matrix`: JUnit XML, BPF CI's JSON summary and a step summary.

Why three: CI dashboards (Jenkins, GitLab, GitHub test reporters) read JUnit XML; BPF CI's
tooling (libbpf/ci's print_test_summary.py) reads test_progs' `-J` JSON, so a matrix run
can be summarised by the same script as a selftests run; and `$GITHUB_STEP_SUMMARY` takes
Markdown a human reads first. All three are built from one list of :class:`CellOutcome`
that the matrix runner fills, one per cell; outputs.py writes them (and the HTML page
and the baseline) whole or not at all.

Verdicts are shown as they are: a `fail` is a failure everywhere, even one an [[expect]]
foresaw (it is then tagged "expected"); a cell's :attr:`CellOutcome.status` is where the
matrix file's knowledge counts. Verifier logs can hold bytes XML 1.0 forbids (escape
sequences, NULs): they are written as visible `\\xNN` text rather than dropped.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from harness.matrix.breadth import cell_record, fact_columns
from harness.matrix.spec import AXES, Cell, Expect
from harness.progs.results import ProgResult
from harness.progs.suite import ArchRun

PASS, FAIL, INFRA, EXPECT = "pass", "fail", "infra", "expect"
FIRST_FAILURES = 20  # failures the Markdown summary lists before "... and N more"
NEVER_RAN = "the cell never ran"
SETUP = "setup"  # the test case (and JSON test) that carries a cell's infra error
EXPECTATIONS = "expectations"  # the test case (and JSON test) of [[expect]]s that did not hold
_MESSAGE_CHARS = 300  # a one-line message's longest form

# What XML 1.0 allows (section 2.2 Char); everything else is shown as an escape.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# One-line text for Markdown: every control character, and lone surrogates.
_NOT_PRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


@dataclass
class CellOutcome:
    """What happened to one cell of the matrix: the run, or why there is no verdict."""

    cell: Cell
    run: ArchRun | None  # None: the cell never ran (its build or boot never got that far)
    infra_error: str | None = None  # tooling, boot timeout, unreachable board: no verdict
    seconds: float = 0.0  # the cell's wall time: build, boot and suite
    flaky: list[str] = field(default_factory=list)  # test ids that passed only on retry
    expect_errors: list[str] = field(default_factory=list)  # [[expect]]s that did not hold
    btf_facts: dict[str, object] = field(default_factory=dict)  # shown as given
    notes: list[str] = field(default_factory=list)  # e.g. a selftest this tree lacks
    changes: list[str] = field(default_factory=list)  # against --baseline, one line each

    @property
    def results(self) -> list[ProgResult]:
        return self.run.results if self.run is not None else []

    @property
    def status(self) -> str:
        """One of infra, fail, expect, pass: the first that applies, in that order.

        infra first: with an infra error (or no run at all) the results are not a verdict
        on the kernel, so no failure among them is believed. fail next: a failed or errored
        program that no holding [[expect]] foresaw is a regression, the headline. expect:
        every failure was foreseen, but an expectation did not hold (the known-broken cell
        passed, a silent fix, or failed with another message): the matrix file needs a
        look. pass: everything as foreseen; flaky programs do not change it (they are
        listed, never hidden).
        """
        if self.infra_error or self.run is None:
            return INFRA
        if any(failed(r) and expected_failure(self.cell, r) is None for r in self.results):
            return FAIL
        if self.expect_errors:
            return EXPECT
        return PASS

    def counts(self) -> dict[str, int]:
        """Results per verdict (pass, fail, skip, error; others count as error)."""
        counts = dict.fromkeys(("pass", "fail", "skip", "error"), 0)
        for result in self.results:
            counts[result.verdict if result.verdict in counts else "error"] += 1
        return counts


def failed(result: ProgResult) -> bool:
    """A fail, an error, or a verdict this report does not know (shown as an error)."""
    return result.verdict not in ("pass", "skip")


def expected_failure(cell: Cell, result: ProgResult) -> Expect | None:
    """The [[expect]] that foresaw this failed result and holds for it, if one does.

    The expectation's messages are looked for in everything the run reported (reason,
    details, libbpf's lines, the whole verifier log), as the runner checks them.
    """
    if not failed(result):
        return None
    expect = cell.expect_for(result.object, result.program)
    if expect is None:
        return None
    return expect if expect.check(result.verdict, everything_reported(result)) is None else None


def everything_reported(result: ProgResult) -> str:
    """A result's reason, details, libbpf lines and whole verifier log: where an
    [[expect]]'s message is looked for (by this report and by the runner alike)."""
    return result.failure_text(log_lines=len(result.verifier_log.splitlines()) + 1)


def xml_text(text: str) -> str:
    """`text` with the characters XML 1.0 cannot carry written as visible escapes.

    ElementTree writes them raw and no parser then reads the file back, so one ESC in a
    verifier log would cost the whole night's report.
    """
    return _NOT_XML.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _first_line(text: str, fallback: str = "") -> str:
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= _MESSAGE_CHARS else line[:_MESSAGE_CHARS - 3] + "..."
    return fallback


def _message(result: ProgResult, expect: Expect | None) -> str:
    """A result's one-line message: the first line of its reason."""
    line = _first_line(result.reason, result.verdict)
    return f"[expected by {expect.entry}] {line}" if expect is not None else line


def _failure_body(result: ProgResult, run: ArchRun | None) -> str:
    """What a failure shows: the result's own text, then what the console said last."""
    body = result.failure_text()
    if run is None:
        return body
    excerpt = run.console_excerpt()
    if excerpt:
        count = len(excerpt.splitlines())
        body += f"\n--- console (last {count} lines of {run.header()}) ---\n{excerpt}"
    return body


def fact_text(value: object) -> str:
    """A BTF fact as one line: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _seconds(value: float | None) -> str:
    """Seconds as Surefire writes them (three decimals at most: its XSD's pattern)."""
    return f"{value:.3f}" if value is not None and math.isfinite(value) and value > 0 else "0.000"


def _objects(results: list[ProgResult]) -> dict[str, list[ProgResult]]:
    """Results grouped by object, objects in the order they first ran."""
    grouped: dict[str, list[ProgResult]] = {}
    for result in results:
        grouped.setdefault(result.object, []).append(result)
    return grouped


def _setup_error(outcome: CellOutcome) -> str | None:
    """Why a cell has no verdict (the infra error, or that it never ran), or None."""
    if outcome.infra_error:
        return outcome.infra_error
    return NEVER_RAN if outcome.run is None else None


# --- JUnit XML ---------------------------------------------------------------------------


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: xml_text(v) for k, v in attrs.items()})
    if text is not None:
        element.text = xml_text(text)
    return element


def _properties(suite: ET.Element, outcome: CellOutcome) -> None:
    cell, run = outcome.cell, outcome.run
    props: list[tuple[str, str]] = [(key, cell.axis(key)) for key in AXES]
    props.append(("status", outcome.status))
    if run is not None:
        props.append(("target", run.target))
        if run.identity is not None:
            props += [("kernel_release", run.identity.release),
                      ("btf_sha256", run.identity.btf_sha256)]
        if run.error:
            props.append(("run_error", run.error))
    if outcome.infra_error:
        props.append(("infra_error", outcome.infra_error))
    if outcome.flaky:
        props.append(("flaky", ", ".join(outcome.flaky)))
    props += [("expect_error", error) for error in outcome.expect_errors]
    props += [("note", note) for note in outcome.notes]
    props += [("baseline_change", change) for change in outcome.changes]
    props += [(f"btf.{key}", fact_text(value)) for key, value in outcome.btf_facts.items()]
    element = _sub(suite, "properties")
    for name, value in props:
        _sub(element, "property", name=name, value=value)


def _testcase(suite: ET.Element, outcome: CellOutcome, result: ProgResult,
              flaky: set[str]) -> str:
    """One program's <testcase>; returns the JUnit counter it adds to (or "" for a pass)."""
    attrs = {"classname": f"{outcome.cell.id}.{result.object}", "name": result.program}
    if result.time_ms is not None:
        attrs["time"] = _seconds(result.time_ms / 1000)
    case = _sub(suite, "testcase", **attrs)
    kind = ""
    if result.verdict == "skip":
        _sub(case, "skipped", message=_first_line(result.reason, "skipped"))
        kind = "skipped"
    elif result.verdict == "fail" and (expect := expected_failure(outcome.cell, result)):
        # A known regression failing as foreseen is CI-green, like pytest's xfail: the
        # matrix asserts it (a silent fix or another message is an expectation failure).
        _sub(case, "skipped", message=f"expected failure: {_message(result, expect)}")
        _sub(case, "system-out", _failure_body(result, outcome.run))
        kind = "skipped"
    elif result.verdict == "fail":
        _sub(case, "failure", _failure_body(result, outcome.run),
             message=_message(result, None))
        kind = "failures"
    elif result.verdict != "pass":  # "error", or a verdict this report does not know
        message = _message(result, None)
        if result.verdict != "error":
            message = f"unknown verdict {result.verdict!r}: {message}"
        _sub(case, "error", _failure_body(result, outcome.run), message=message)
        kind = "errors"
    if result.test_id in flaky:
        _sub(case, "system-out", "flaky: failed on the first try, passed on retry")
    return kind


def junit_xml(outcomes: list[CellOutcome], *, title: str) -> bytes:
    """The JUnit XML document: one <testsuite> per cell, one <testcase> per program run.

    A cell without a verdict (infra error, or never ran) gets a <testcase name="setup">
    holding an <error>; its results, if it has any, are still listed. A failure an
    [[expect]] foresaw is <skipped> ("expected failure: ..."), and each expectation that
    did not hold (a silent fix, another message) is a failing <testcase
    name="expectations">: CI turns red on news, not on the known state.
    """
    root = ET.Element("testsuites", {"name": xml_text(title)})
    totals = dict.fromkeys(("tests", "failures", "errors"), 0)
    for outcome in outcomes:
        suite = _sub(root, "testsuite", name=outcome.cell.id)
        _properties(suite, outcome)
        counts = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
        setup = _setup_error(outcome)
        if setup is not None:
            case = _sub(suite, "testcase", classname=outcome.cell.id, name=SETUP)
            _sub(case, "error", setup, message=_first_line(setup, NEVER_RAN))
            counts["tests"] += 1
            counts["errors"] += 1
        flaky = set(outcome.flaky)
        for result in outcome.results:
            kind = _testcase(suite, outcome, result, flaky)
            counts["tests"] += 1
            if kind:
                counts[kind] += 1
        for error in outcome.expect_errors:  # a silent fix is news: red, like a regression
            case = _sub(suite, "testcase", classname=outcome.cell.id, name=EXPECTATIONS)
            _sub(case, "failure", error, message=_first_line(error))
            counts["tests"] += 1
            counts["failures"] += 1
        if outcome.run is not None and outcome.run.console:
            _sub(suite, "system-out", outcome.run.console_excerpt())
        suite.attrib.update({key: str(value) for key, value in counts.items()})
        suite.set("time", _seconds(outcome.seconds))
        for key in totals:
            totals[key] += counts[key]
    # No "skipped" here: the Surefire/Jenkins schema allows it on <testsuite> only.
    root.attrib.update({key: str(value) for key, value in totals.items()})
    root.set("time", _seconds(sum(outcome.seconds for outcome in outcomes)))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


# --- BPF CI's JSON summary ---------------------------------------------------------------


def unforeseen(cell: Cell, result: ProgResult) -> bool:
    """A failure no [[expect]] of the cell foresaw: what turns a CI run red."""
    return failed(result) and expected_failure(cell, result) is None


def _subtest(number: int, outcome: CellOutcome, result: ProgResult,
             flaky: set[str]) -> dict[str, object]:
    message = ""
    if failed(result):
        expect = expected_failure(outcome.cell, result)
        message = result.failure_text()
        if expect is not None:
            message = f"[expected by {expect.entry}: {expect.reason}]\n{message}"
    elif result.verdict == "skip":
        message = f"skipped: {result.reason}" if result.reason else "skipped"
    if result.test_id in flaky:
        message = "flaky: failed on the first try, passed on retry\n" + message
    return {"name": result.program, "number": number,
            "failed": unforeseen(outcome.cell, result), "message": message}


def _test_message(outcome: CellOutcome) -> str:
    """A failed test's own log: where it ran, how the run ended, the console's tail."""
    run = outcome.run
    if run is None:
        return ""
    lines = [run.header()]
    if run.error:
        lines.append(f"run error: {run.error}")
    excerpt = run.console_excerpt()
    if excerpt:
        lines += ["--- console ---", excerpt]
    return "\n".join(lines)


def summary_json(outcomes: list[CellOutcome]) -> dict[str, object]:
    """The summary in the shape test_progs' `-J FILE` writes, so BPF CI's tools read it.

    Mapping: a test_progs *test* is one cell x object, named "<cell id>/<object>"; its
    *subtests* are that object's program runs, named as the program (with any @variant),
    numbered from 1 within the test. Tests are numbered from 1 across the whole summary
    (print_test_summary.py prints "#test/subtest" only when the test's number is truthy).
    A cell without a verdict adds a failed test "<cell id>/setup" whose message is the
    infra error, with no subtests; expectations that did not hold add a failed test
    "<cell id>/expectations". A test failed if any of its programs failed or errored
    unforeseen; a foreseen failure counts as skipped and its message says which
    [[expect]] foresaw it.

    Counts follow test_progs: `success` = tests that did not fail, `failed` = tests that
    did, `success_subtest` = programs that passed, `skipped` = programs skipped. Unlike
    test_progs without -v, every test is listed, passing ones too (a reader prints only
    entries whose `failed` is true); a passing program's message is empty, a failed one's
    is ProgResult.failure_text(), a flaky one's says so.
    """
    results: list[dict[str, object]] = []
    success_subtest = skipped = 0
    for outcome in outcomes:
        setup = _setup_error(outcome)
        if setup is not None:
            results.append({"name": f"{outcome.cell.id}/{SETUP}", "number": len(results) + 1,
                            "failed": True, "message": setup, "subtests": []})
        if outcome.expect_errors:
            results.append({"name": f"{outcome.cell.id}/{EXPECTATIONS}",
                            "number": len(results) + 1, "failed": True,
                            "message": "\n".join(outcome.expect_errors), "subtests": []})
        flaky = set(outcome.flaky)
        for obj, runs in _objects(outcome.results).items():
            subtests = [_subtest(n, outcome, r, flaky) for n, r in enumerate(runs, 1)]
            test_failed = any(unforeseen(outcome.cell, r) for r in runs)
            results.append({"name": f"{outcome.cell.id}/{obj}", "number": len(results) + 1,
                            "failed": test_failed,
                            "message": _test_message(outcome) if test_failed else "",
                            "subtests": subtests})
            success_subtest += sum(r.verdict == "pass" for r in runs)
            skipped += sum(r.verdict == "skip" or (failed(r) and not unforeseen(outcome.cell, r))
                           for r in runs)
    failed_tests = sum(bool(test["failed"]) for test in results)
    return {"success": len(results) - failed_tests, "success_subtest": success_subtest,
            "skipped": skipped, "failed": failed_tests, "results": results}


def json_bytes(outcomes: list[CellOutcome]) -> bytes:
    text = json.dumps(summary_json(outcomes), indent=2, ensure_ascii=False) + "\n"
    # A lone surrogate (undecodable guest output) becomes a \\udcXX JSON escape.
    return text.encode("utf-8", "backslashreplace")


# --- Markdown step summary ---------------------------------------------------------------

_STATUS_MARK = {PASS: ":white_check_mark:", FAIL: ":x:", EXPECT: ":warning:",
                INFRA: ":construction:"}


def _md(text: str) -> str:
    """One line of Markdown-safe text: no control characters, no table-breaking pipes."""
    return _NOT_PRINTABLE.sub(_escape, " ".join(text.split())).replace("|", "\\|")


def _code(text: str) -> str:
    return "`" + _md(text).replace("`", "'") + "`"


def summary_markdown(outcomes: list[CellOutcome], *, title: str,
                     first_failures: int = FIRST_FAILURES) -> str:
    """The step summary: a cells table, then the first failures, expectation, run and
    infra errors, flaky programs and BTF facts, each one line."""
    statuses = [outcome.status for outcome in outcomes]
    lines = [f"# {_md(title)}", "",
             f"{len(outcomes)} cells: " + ", ".join(
                 f"{statuses.count(s)} {s}" for s in (PASS, FAIL, EXPECT, INFRA)), "",
             "| cell | pass | fail | skip | error | flaky | status | seconds |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    unexpected: list[str] = []
    foreseen: list[str] = []
    for outcome, status in zip(outcomes, statuses, strict=True):
        counts = outcome.counts()
        fails = str(counts["fail"])
        expected = sum(expected_failure(outcome.cell, r) is not None for r in outcome.results)
        if expected:
            fails += f" ({expected} expected)"
        lines.append(f"| {_code(outcome.cell.id)} | {counts['pass']} | {fails} | "
                     f"{counts['skip']} | {counts['error']} | {len(outcome.flaky)} | "
                     f"{_STATUS_MARK[status]} {status} | {outcome.seconds:.1f} |")
        for result in outcome.results:
            if not failed(result):
                continue
            expect = expected_failure(outcome.cell, result)
            line = (f"- {_code(outcome.cell.id)} {_code(result.test_id)}: {result.verdict}: "
                    f"{_md(_first_line(result.reason, '(no reason given)'))}")
            if expect is None:
                unexpected.append(line)
            else:
                foreseen.append(f"{line} (expected: {_md(expect.entry)})")
    failures = unexpected + foreseen  # the ones to act on first
    if failures:
        lines += ["", "## First failures", ""] + failures[:first_failures]
        if len(failures) > first_failures:
            lines.append(f"- ... and {len(failures) - first_failures} more")
    errors = [  # each error as its first line
        ("Expectation errors", [(o, e) for o in outcomes for e in o.expect_errors]),
        ("Run errors", [(o, o.run.error) for o in outcomes if o.run is not None and o.run.error]),
        ("Infra errors", [(o, e) for o in outcomes if (e := _setup_error(o)) is not None]),
    ]
    for heading, items in errors:
        lines += _section(heading, [(o, _first_line(text, "(no message)")) for o, text in items])
    lines += _section("Flaky (failed once, passed on retry)",
                      [(o, ", ".join(o.flaky)) for o in outcomes if o.flaky])
    lines += _section("Notes", [(o, note) for o in outcomes for note in o.notes])
    lines += _section("Changes against the baseline",
                      [(o, change) for o in outcomes for change in o.changes])
    lines += breadth_table(outcomes)
    return "\n".join(lines) + "\n"


def breadth_table(outcomes: list[CellOutcome]) -> list[str]:
    """Kernel x pahole x btfids x arch with each cell's BTF facts next to its verdicts."""
    columns = fact_columns(o.btf_facts for o in outcomes)
    if not columns:
        return []
    lines = ["", "## Breadth: BTF facts per cell", "",
             "| " + " | ".join([*AXES, "status", "pass/fail", *columns]) + " |",
             "| " + " | ".join(["---"] * (len(AXES) + 2) + ["---:"] * len(columns)) + " |"]
    for outcome in outcomes:
        counts = outcome.counts()
        cells = [_md(outcome.cell.axis(key)) for key in AXES]
        cells += [outcome.status, f"{counts['pass']}/{counts['fail'] + counts['error']}"]
        cells += [_md(fact_text(outcome.btf_facts.get(key, "-"))) for key in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def baseline_records(outcomes: list[CellOutcome]) -> dict[str, dict[str, object]]:
    """What --baseline compares, per cell: status, each program's verdict, the BTF facts."""
    return {o.cell.id: cell_record(o.status, {r.test_id: r.verdict for r in o.results},
                                   o.btf_facts) for o in outcomes}


def _section(heading: str, items: list[tuple[CellOutcome, str]]) -> list[str]:
    if not items:
        return []
    return ["", f"## {heading}", ""] + [f"- {_code(o.cell.id)}: {_md(text)}" for o, text in items]
