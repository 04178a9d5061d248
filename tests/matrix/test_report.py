"""`harness matrix` reports: JUnit XML that parses back (even with ESC and NUL in verifier
logs), test_progs-shaped JSON that BPF CI's print_test_summary.py reads, a step summary,
cell statuses in their documented precedence, and files written whole or not at all."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import harness.cache
from harness.cache import cache_root
from harness.matrix import report
from harness.matrix.outputs import write_reports
from harness.matrix.report import CellOutcome, junit_xml, summary_json
from harness.matrix.spec import Cell
from harness.progs.suite import ArchRun
from tests.matrix.samples import (
    BROKEN,
    BTF_SHA,
    FIXED,
    REGRESSED,
    UNREACHABLE,
    result,
)


def by_id(outcomes: list[CellOutcome]) -> dict[str, CellOutcome]:
    return {outcome.cell.id: outcome for outcome in outcomes}


# --- status ------------------------------------------------------------------------------


def test_status_of_each_cell(outcomes: list[CellOutcome]) -> None:
    assert [o.status for o in outcomes] == ["pass", "fail", "infra", "expect"]


def test_status_precedence(outcomes: list[CellOutcome]) -> None:
    cells = by_id(outcomes)
    regressed, fixed = cells[REGRESSED], cells[FIXED]
    # infra beats a failure: results from a run cut short are not a verdict
    assert dataclasses.replace(regressed, infra_error="boot timeout").status == "infra"
    # a regression beats an expectation error
    assert dataclasses.replace(regressed, expect_errors=["expect 1: ..."]).status == "fail"
    # an expectation error beats a pass; flaky programs alone leave a pass
    assert fixed.status == "expect"
    assert dataclasses.replace(fixed, expect_errors=[], flaky=["wq/x[x86_64]"]).status == "pass"
    # a failure an [[expect]] foresaw is a pass until its message changes
    broken = cells[BROKEN]
    assert broken.status == "pass"
    assert broken.run is not None
    moved = dataclasses.replace(broken.run.results[0], reason="load failed: -EINVAL",
                                libbpf_log=["libbpf: prog 'x': BPF program load failed"])
    other = ArchRun("x86_64", results=[moved])
    assert dataclasses.replace(broken, run=other).status == "fail"


# --- JUnit XML ---------------------------------------------------------------------------


def parse_junit(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def suites(root: ET.Element) -> dict[str, ET.Element]:
    return {suite.get("name", ""): suite for suite in root.iter("testsuite")}


def properties(suite: ET.Element) -> list[tuple[str | None, str | None]]:
    return [(p.get("name"), p.get("value")) for p in suite.iter("property")]


def test_junit_counts_per_cell_and_in_total(tmp_path: Path, outcomes: list[CellOutcome]) -> None:
    paths = write_reports(outcomes, tmp_path / "out", title="nightly 2026-05-09")
    root = parse_junit(paths["junit"])
    assert root.tag == "testsuites" and root.get("name") == "nightly 2026-05-09"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("12", "2", "2")
    assert root.get("time") == f"{412.25 + 388.0 + 31.5 + 401.0:.3f}"
    counts = {name: tuple(s.get(k) for k in ("tests", "failures", "errors", "skipped"))
              for name, s in suites(root).items()}
    assert counts == {BROKEN: ("3", "0", "0", "2"), REGRESSED: ("4", "1", "1", "1"),
                      UNREACHABLE: ("1", "0", "1", "0"), FIXED: ("4", "1", "0", "0")}
    for name, suite in suites(root).items():  # the attributes agree with the test cases
        cases = suite.findall("testcase")
        assert int(suite.get("tests", "")) == len(cases)
        assert int(suite.get("failures", "")) == sum(c.find("failure") is not None for c in cases)
        assert int(suite.get("errors", "")) == sum(c.find("error") is not None for c in cases)
        assert int(suite.get("skipped", "")) == sum(c.find("skipped") is not None for c in cases)
        assert suite.get("time") == f"{by_id(outcomes)[name].seconds:.3f}"


def test_junit_testcases_properties_and_failure_body(tmp_path: Path,
                                                     outcomes: list[CellOutcome]) -> None:
    root = parse_junit(write_reports(outcomes, tmp_path, title="t")["junit"])
    regressed = suites(root)[REGRESSED]
    props = properties(regressed)
    assert props[:4] == [("kernel", "7.2"), ("pahole", "1.24"), ("btfids", "python"),
                         ("arch", "x86_64")]
    assert ("target", "board rk3588") in props
    assert ("kernel_release", "7.2.0-kfunc") in props and ("btf_sha256", BTF_SHA) in props
    assert ("status", "fail") in props
    assert ("flaky", "wq/wq_syscall_sleepable_cb@rnd_hi32[x86_64]") in props
    assert ("run_error", "KernelPanic: BUG: kernel NULL pointer dereference") in props

    cases = {(c.get("classname"), c.get("name")): c for c in regressed.iter("testcase")}
    assert list(cases) == [(f"{REGRESSED}.wq", "wq_tc_plain"),
                           (f"{REGRESSED}.wq", "wq_syscall_sleepable_cb@rnd_hi32"),
                           (f"{REGRESSED}.task_work", "tw_signal"),
                           (f"{REGRESSED}.stream", "stream_stdout_line")]
    failing = cases[(f"{REGRESSED}.wq", "wq_tc_plain")]
    assert failing.get("time") == "0.002"  # 2.25 ms, in seconds with Surefire's 3 decimals
    failure = failing.find("failure")
    assert failure is not None
    assert failure.get("message") == "expect_msg: 1 of 1 messages not found"
    body = failure.text or ""
    wq = outcomes[1].results[0]
    # the failure text, with ESC shown as text and the non-ASCII kept
    assert body.startswith(wq.failure_text().replace("\x1b", "\\x1b").split("\n")[0])
    assert "  expected: 'R1 type=scalar expected=fp'" in body
    assert "\\x1b[31marg#0 pointer type STRUCT bpf_wq must point to scalar" in body
    assert "/* → 10µs */" in body and "\x1b" not in body
    # then the console's tail, without the overlayfs chatter
    assert "--- console (last 3 lines of x86_64 on board rk3588: 7.2.0-kfunc" in body
    assert body.rstrip().endswith("RIP: 0010:bpf_task_work_schedule+0x2a/0x90")
    assert "overlayfs" not in body

    flaky = cases[(f"{REGRESSED}.wq", "wq_syscall_sleepable_cb@rnd_hi32")]
    assert flaky.find("failure") is None and flaky.get("time") == "0.003"
    assert "flaky" in (flaky.findtext("system-out") or "")
    error = cases[(f"{REGRESSED}.task_work", "tw_signal")].find("error")
    assert error is not None and error.get("message", "").startswith("no verdict: KernelPanic")
    skipped = cases[(f"{REGRESSED}.stream", "stream_stdout_line")].find("skipped")
    assert skipped is not None and skipped.get("message") == "program type not supported"


def test_junit_cells_without_a_verdict_and_expected_failures(
        tmp_path: Path, outcomes: list[CellOutcome]) -> None:
    root = parse_junit(write_reports(outcomes, tmp_path, title="t")["junit"])
    unreachable = suites(root)[UNREACHABLE]
    [setup] = unreachable.findall("testcase")
    assert (setup.get("classname"), setup.get("name")) == (UNREACHABLE, "setup")
    error = setup.find("error")
    assert error is not None
    assert error.get("message") == ("board rk3588 unreachable: ssh: connect to host "
                                    "10.0.0.7 port 22: No route to host")
    assert (error.text or "").endswith("retried 3 times")
    assert ("infra_error", outcomes[2].infra_error) in properties(unreachable)
    assert ("kernel_release", "7.2.0-kfunc") not in properties(unreachable)

    # a run cut short by infra keeps its results next to the setup error
    partial = dataclasses.replace(outcomes[0], infra_error="boot timeout after 180 s")
    root = ET.fromstring(junit_xml([partial], title="t"))
    names = [case.get("name") for case in root.iter("testcase")]
    assert names[0] == "setup" and len(names) == 4

    # a foreseen failure is CI-green: <skipped> naming the [[expect]], its text kept
    broken = suites(parse_junit(tmp_path / "junit.xml"))[BROKEN]
    assert all(case.find("failure") is None for case in broken.iter("testcase"))
    tagged = [case for case in broken.iter("testcase") if case.find("skipped") is not None]
    assert len(tagged) == 2
    message = tagged[0].find("skipped").get("message", "")  # type: ignore[union-attr]
    assert message.startswith("expected failure: [expected by expect 1] bpf_object__open")
    assert "bpf_object__open" in (tagged[0].findtext("system-out") or "")
    # ... and an [[expect]] that did not hold (a silent fix) is a failing test case
    fixed = suites(parse_junit(tmp_path / "junit.xml"))[FIXED]
    [expectations] = [c for c in fixed.iter("testcase") if c.get("name") == "expectations"]
    failure = expectations.find("failure")
    assert failure is not None and failure.get("message", "").startswith("expect 2: expected")
    assert ("btf.kfuncs", "214") in properties(broken)
    assert ("btf.decl_tags", '["bpf_fastcall"]') in properties(broken)
    assert ("expect_error", "expect 2: expected fail, got pass (thought broken on 7.3 too)") \
        in properties(suites(parse_junit(tmp_path / "junit.xml"))[FIXED])


def test_junit_escapes_what_xml_cannot_carry(cells: dict[str, Cell]) -> None:
    forbidden = "".join(chr(c) for c in range(0x20) if chr(c) not in "\t\n\r")
    nasty = f"a{forbidden}b\ufffe\uffff\udcffz é→"
    run = ArchRun("x86_64", console=f"[ 1.0] {nasty}\n", results=[
        result("obj", f"prog{nasty}", "fail", nasty, verifier_log=nasty,
               libbpf_log=[nasty], details=[nasty]),
        result("obj", "skipped", "skip", nasty),
    ])
    outcome = CellOutcome(cells[REGRESSED], run, infra_error=nasty, flaky=[nasty],
                          expect_errors=[nasty], btf_facts={nasty: nasty})
    data = junit_xml([outcome], title=nasty)
    root = ET.fromstring(data)  # expat refuses any of them raw
    texts = [root.get("name", "")] + [v for e in root.iter() for v in e.attrib.values()]
    texts += [e.text or "" for e in root.iter()]
    assert any("a\\x00\\x01" in t for t in texts)
    assert any("\\x1f" in t and "b\\ufffe\\uffff\\udcffz é→" in t for t in texts)
    assert not any(ch in t for t in texts for ch in forbidden + "\ufffe\uffff\udcff")
    assert "é→".encode() in data  # non-ASCII is written as UTF-8, not escaped


# --- summary.json and print_test_summary.py ----------------------------------------------


def print_test_summary(summary: dict) -> tuple[list[str], list[str]]:
    """What BPF CI's print_test_summary.py (libbpf/ci, run-vmtest/ and run-qemu/) does
    with a test_progs JSON summary: the four counts in one line ("Success: S/SS"), then
    "#N name" for each failed test and "#N/M name/sub" for each failed subtest (every
    test's "subtests" list is walked, failed or not), each failure's message stripped
    into a console group. Written here from that reading, as the checks it implies."""
    step = [f"Success: {summary['success']}/{summary['success_subtest']}, "
            f"Skipped: {summary['skipped']}, Failed: {summary['failed']}"]
    console: list[str] = []
    for test in summary["results"]:
        if test["failed"]:
            step.append(f"#{test['number']} {test['name']}")
            console.append(test["message"].strip())
        for sub in test["subtests"]:
            if sub["failed"]:
                # the newer script prints this form only when the parent's number is truthy
                assert test["number"] and test["name"]
                step.append(f"#{test['number']}/{sub['number']} {test['name']}/{sub['name']}")
                console.append(sub["message"].strip())
    return step, console


def test_summary_json_reads_like_test_progs_output(tmp_path: Path,
                                                   outcomes: list[CellOutcome]) -> None:
    path = write_reports(outcomes, tmp_path, title="t")["json"]
    summary = json.loads(path.read_text(encoding="utf-8"))
    assert list(summary) == ["success", "success_subtest", "skipped", "failed", "results"]
    for test in summary["results"]:
        assert set(test) == {"name", "number", "failed", "message", "subtests"}
        assert all(set(sub) == {"name", "number", "failed", "message"}
                   for sub in test["subtests"])
        assert [sub["number"] for sub in test["subtests"]] == list(
            range(1, len(test["subtests"]) + 1))
    assert [t["number"] for t in summary["results"]] == list(range(1, 10))

    step, console = print_test_summary(summary)
    assert step == [
        "Success: 5/5, Skipped: 3, Failed: 4",  # the 2 foreseen failures count as skipped
        f"#3 {REGRESSED}/wq",
        f"#3/1 {REGRESSED}/wq/wq_tc_plain",
        f"#4 {REGRESSED}/task_work",
        f"#4/1 {REGRESSED}/task_work/tw_signal",
        f"#6 {UNREACHABLE}/setup",
        f"#7 {FIXED}/expectations",
    ]
    # counts as test_progs makes them: tests that failed or not, programs passed, skipped
    results = summary["results"]
    assert summary["failed"] == sum(t["failed"] for t in results)
    assert summary["success"] == len(results) - summary["failed"]
    assert all(t["failed"] == any(s["failed"] for s in t["subtests"])
               for t in results if t["subtests"])
    # messages: the run's context for a test, the failure text for a program
    wq_test = results[2]
    assert wq_test["message"].startswith("x86_64 on board rk3588: 7.2.0-kfunc, BTF sha256")
    assert "run error: KernelPanic" in wq_test["message"]
    assert "RIP: 0010:bpf_task_work_schedule" in wq_test["message"]
    assert wq_test["subtests"][0]["message"] == outcomes[1].results[0].failure_text()
    assert "\x1b[31marg#0" in wq_test["subtests"][0]["message"]  # JSON carries ESC as is
    assert wq_test["subtests"][1]["message"].startswith("flaky:")
    assert console[0].startswith("x86_64 on board rk3588: 7.2.0-kfunc, BTF sha256")
    foreseen = results[0]["subtests"][0]  # not a failure for CI, and says why
    assert foreseen["failed"] is False
    assert foreseen["message"].startswith("[expected by expect 1: C resolve_btfids drops")
    assert results[5]["message"].startswith("board rk3588 unreachable")
    assert results[4]["subtests"][0] == {"name": "stream_stdout_line", "number": 1,
                                         "failed": False,
                                         "message": "skipped: program type not supported"}
    assert results[6]["message"].startswith("expect 2: expected fail, got pass")
    assert [s["message"] for s in results[7]["subtests"]] == ["", ""]


def test_summary_json_of_nothing() -> None:
    assert summary_json([]) == {"success": 0, "success_subtest": 0, "skipped": 0,
                                "failed": 0, "results": []}


def test_summary_json_survives_a_lone_surrogate(tmp_path: Path,
                                                cells: dict[str, Cell]) -> None:
    """Guest output decoded with surrogateescape can hold one; the file stays UTF-8."""
    run = ArchRun("x86_64", results=[result("obj", "prog", "fail", "bad byte \udcff here")])
    paths = write_reports([CellOutcome(cells[FIXED], run)], tmp_path, title="t")
    text = paths["json"].read_bytes().decode("utf-8")
    assert "bad byte \\udcff here" in text
    assert "bad byte \\udcff here" in paths["markdown"].read_text(encoding="utf-8")


# --- summary.md --------------------------------------------------------------------------


def test_summary_markdown(tmp_path: Path, outcomes: list[CellOutcome]) -> None:
    text = write_reports(outcomes, tmp_path, title="nightly | kfunc")["markdown"].read_text(
        encoding="utf-8")
    lines = text.splitlines()
    assert lines[0] == "# nightly \\| kfunc"
    assert "4 cells: 1 pass, 1 fail, 1 expect, 1 infra" in lines
    header = lines.index("| cell | pass | fail | skip | error | flaky | status | seconds |")
    rows = lines[header + 2:header + 6]
    assert rows == [
        f"| `{BROKEN}` | 1 | 2 (2 expected) | 0 | 0 | 0 | :white_check_mark: pass | 412.2 |",
        f"| `{REGRESSED}` | 1 | 1 | 1 | 1 | 1 | :x: fail | 388.0 |",
        f"| `{UNREACHABLE}` | 0 | 0 | 0 | 0 | 0 | :construction: infra | 31.5 |",
        f"| `{FIXED}` | 3 | 0 | 0 | 0 | 0 | :warning: expect | 401.0 |",
    ]
    first = lines.index("## First failures")
    failures = lines[first + 2:first + 6]
    assert failures[0] == (f"- `{REGRESSED}` `wq/wq_tc_plain[x86_64]`: fail: "
                           "expect_msg: 1 of 1 messages not found")
    assert failures[1].startswith(f"- `{REGRESSED}` `task_work/tw_signal[x86_64]`: error: "
                                  "no verdict: KernelPanic")
    assert failures[2].startswith(f"- `{BROKEN}` `kfunc_implicit_args/test_kfunc_implicit_arg")
    assert failures[2].endswith("incompatible with kernel [70171]) (expected: expect 1)")
    assert (f"- `{FIXED}`: expect 2: expected fail, got pass (thought broken on 7.3 too)"
            in lines[lines.index("## Expectation errors"):])
    infra = lines[lines.index("## Infra errors"):]
    assert (f"- `{UNREACHABLE}`: board rk3588 unreachable: ssh: connect to host 10.0.0.7 "
            "port 22: No route to host") in infra
    assert f"- `{REGRESSED}`: KernelPanic: BUG: kernel NULL pointer dereference" in lines
    assert f"- `{REGRESSED}`: wq/wq_syscall_sleepable_cb@rnd_hi32[x86_64]" in lines
    breadth = lines[lines.index("## Breadth: BTF facts per cell"):]
    assert breadth[2] == ("| kernel | pahole | btfids | arch | status | pass/fail | kfuncs | "
                          "decl_tags |")
    assert breadth[4] == '| 7.2 | 1.24 | c | x86_64 | pass | 1/2 | 214 | ["bpf_fastcall"] |'
    assert breadth[5] == "| 7.2 | 1.24 | python | x86_64 | fail | 1/2 | - | - |"
    assert "retried 3 times" not in text  # errors are one line each


def test_summary_markdown_caps_the_failures(outcomes: list[CellOutcome]) -> None:
    text = report.summary_markdown(outcomes, title="t", first_failures=2)
    section = text.split("## First failures\n\n")[1].split("\n\n")[0].splitlines()
    assert len(section) == 3 and section[2] == "- ... and 2 more"
    assert "\x1b" not in report.summary_markdown(
        [CellOutcome(outcomes[0].cell, None, infra_error="tty \x1b[0m gone")], title="t")


# --- writing -----------------------------------------------------------------------------


def test_write_reports_creates_the_directory_and_returns_paths(
        tmp_path: Path, outcomes: list[CellOutcome]) -> None:
    out = tmp_path / "a" / "b"
    paths = write_reports(outcomes, out, title="t")
    assert paths == {"junit": out / "junit.xml", "json": out / "summary.json",
                     "markdown": out / "summary.md", "html": out / "report.html",
                     "baseline": out / "baseline.json"}
    assert sorted(p.name for p in out.iterdir()) == ["baseline.json", "junit.xml",
                                                     "report.html", "summary.json",
                                                     "summary.md"]
    assert paths["junit"].read_bytes().startswith(b"<?xml version='1.0' encoding='utf-8'?>")


def test_a_failing_serializer_writes_nothing(tmp_path: Path, outcomes: list[CellOutcome],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    paths = write_reports(outcomes[:1], tmp_path, title="last night")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken(*_args: object, **_kw: object) -> dict[str, object]:
        raise RuntimeError("serializer bug")

    monkeypatch.setattr(report, "summary_json", broken)
    with pytest.raises(RuntimeError, match="serializer bug"):
        write_reports(outcomes, tmp_path, title="tonight")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp file
    assert b"last night" in paths["junit"].read_bytes()

    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError):
        write_reports(outcomes, fresh, title="tonight")
    assert not fresh.exists() or not any(fresh.iterdir())


def test_a_write_cut_short_leaves_the_old_file(tmp_path: Path, outcomes: list[CellOutcome],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills half way through summary.json: the old one stays, whole."""
    out = tmp_path / "out"
    write_reports(outcomes[:1], out, title="last night")
    old_json = (out / "summary.json").read_bytes()
    real_open = open
    cut: list[int] = []

    class HalfWriter:
        def __init__(self, handle: object) -> None:
            self.handle = handle

        def __enter__(self) -> HalfWriter:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()  # type: ignore[attr-defined]

        def write(self, data: bytes) -> int:
            cut.append(self.handle.write(data[:len(data) // 2]))  # type: ignore[attr-defined]
            raise OSError(28, "No space left on device")

    def fake_open(path: os.PathLike[str], mode: str = "r") -> object:
        handle = real_open(path, mode)
        return HalfWriter(handle) if "summary.json" in os.fspath(path) else handle

    monkeypatch.setattr(harness.cache, "open", fake_open, raising=False)
    with pytest.raises(OSError, match="No space left"):
        write_reports(outcomes, out, title="tonight")
    assert cut and cut[0] > 0  # half a file did reach the disk, under a temp name
    assert (out / "summary.json").read_bytes() == old_json
    json.loads(old_json)
    assert b"tonight" in (out / "junit.xml").read_bytes()  # written before, whole
    assert sorted(p.name for p in out.iterdir()) == [
        "baseline.json", "junit.xml", "report.html", "summary.json",
        "summary.md"]  # no .tmp- file left


# --- schema ------------------------------------------------------------------------------


def junit_xsd() -> Path | None:
    """A JUnit XSD: $HARNESS_JUNIT_XSD, else the one scripts/setup.sh fetched into the
    cache, else one an installed distribution ships."""
    explicit = os.environ.get("HARNESS_JUNIT_XSD")
    if explicit:
        return Path(explicit)
    fetched = cache_root() / "xsd" / "junit-10.xsd"
    if fetched.is_file():
        return fetched
    for dist in importlib.metadata.distributions():
        for file in dist.files or ():
            if file.name.lower().endswith(".xsd") and "junit" in file.name.lower():
                return Path(str(dist.locate_file(file)))
    return None


def test_junit_validates_against_the_jenkins_schema(tmp_path: Path,
                                                    outcomes: list[CellOutcome]) -> None:
    """Surefire/Jenkins xunit's junit-10.xsd, which pytest checks its own --junitxml with.

    No wheel ships it (pytest's copy, testing/example_scripts/junit-10.xsd, is in its sdist
    only): scripts/setup.sh fetches it into the cache; HARNESS_JUNIT_XSD names another.
    """
    xsd = junit_xsd()
    if xsd is None:
        pytest.skip("no JUnit XSD: run scripts/setup.sh (fetches junit-10.xsd) or set "
                    "HARNESS_JUNIT_XSD")
    if not xsd.is_file():
        pytest.skip(f"HARNESS_JUNIT_XSD={xsd}: no such file")
    path = write_reports(outcomes, tmp_path, title="nightly")["junit"]
    if importlib.util.find_spec("xmlschema") is not None:
        import xmlschema  # noqa: PLC0415 - optional

        xmlschema.XMLSchema(str(xsd)).validate(str(path))
    elif importlib.util.find_spec("lxml") is not None:
        from lxml import etree  # noqa: PLC0415 - optional

        schema = etree.XMLSchema(etree.parse(str(xsd)))
        assert schema.validate(etree.parse(str(path))), schema.error_log
    else:
        pytest.skip("neither xmlschema nor lxml is installed to validate with")
