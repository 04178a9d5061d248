"""`harness matrix`: cells to requests, programs to sources, [[expect]]s against results,
and one real cell end to end (the suite's cached 7.3 x86_64 kernel, a QEMU guest)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.matrix.run import REPO, SELFTEST_PROGS, build_request, cell_sources, check_expects
from harness.matrix.spec import load_matrix
from harness.progs.results import ProgResult
from harness.progs.suite import ArchRun
from tests.helpers.terminal import default_sigint

MINI = """
[[include]]
kernel = "7.3"
pahole = "1.32"
btfids = "python"
arch = "x86_64"

[defaults]
programs = ["bpf_progs/implicit_args", "upstream:kfunc_implicit_args"]

[[expect]]
match = { kernel = "7.3" }
programs = ["kfunc_implicit_args/*"]
verdict = "pass"
reason = "7.3 with the Python resolve_btfids resolves the implicit-arg kfuncs"
"""


@pytest.fixture
def mini(tmp_path: Path) -> Path:
    path = tmp_path / "mini.toml"
    path.write_text(MINI)
    return path


def test_a_cell_is_a_build_request(mini: Path) -> None:
    (cell,) = load_matrix(mini).cells
    request = build_request(cell)
    assert (request.kernel, request.pahole, request.btfids, request.arch) == \
        ("7.3", "1.32", "python", "x86_64")
    assert request.tree is None and request.kconfigs == []


def test_programs_resolve_to_ours_and_the_trees(mini: Path, tmp_path: Path) -> None:
    (cell,) = load_matrix(mini).cells
    tree = tmp_path / "linux"
    progs = tree / SELFTEST_PROGS
    progs.mkdir(parents=True)
    (progs / "kfunc_implicit_args.c").write_text("/* upstream */\n")
    assert cell_sources(cell, tree) == ([REPO / "bpf_progs/implicit_args.c",
                                         progs / "kfunc_implicit_args.c"], [])
    (progs / "kfunc_implicit_args.c").unlink()
    sources, (note,) = cell_sources(cell, tree)  # an older tree: a note, not an error
    assert sources == [REPO / "bpf_progs/implicit_args.c"]
    assert note.startswith("upstream:kfunc_implicit_args: not in this tree")
    cell = dataclasses.replace(cell, programs=("bpf_progs/no_such_prog",))
    with pytest.raises(HarnessError, match="'bpf_progs/no_such_prog' matches nothing"):
        cell_sources(cell, tree)


def test_expects_are_checked_against_real_verdicts(mini: Path) -> None:
    (cell,) = load_matrix(mini).cells
    good = ProgResult("kfunc_implicit_args", "test_kfunc_implicit_arg", "x86_64", "pass",
                      "success retval=5")
    bad = ProgResult("kfunc_implicit_args", "test_kfunc_implicit_arg_legacy", "x86_64",
                     "fail", "success retval=7", reason="bpf_object__load failed",
                     verifier_log="arg#0 ... incompatible with kernel")
    assert check_expects(cell, ArchRun("x86_64", results=[good])) == []
    (error,) = check_expects(cell, ArchRun("x86_64", results=[good, bad]))
    assert error.startswith("kfunc_implicit_args/test_kfunc_implicit_arg_legacy: expect 1: "
                            "expected pass, got fail")
    (none,) = check_expects(cell, ArchRun("x86_64", results=[]))
    assert "no program of the cell matched kfunc_implicit_args/*" in none


def test_list_shard_and_cells(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["matrix", str(REPO / "matrix.toml"), "--list"]) == 0
    every = capsys.readouterr().out.split()
    assert len(every) == 36
    shards = []
    for index in (1, 2, 3):
        assert main(["matrix", str(REPO / "matrix.toml"), "--list", "--shard",
                     f"{index}/3"]) == 0
        shards += capsys.readouterr().out.split()
    assert sorted(shards) == sorted(every)
    assert main(["matrix", str(REPO / "matrix.toml"), "--list", "--shard", "4/3"]) == 2


@pytest.mark.guest
def test_one_cell_end_to_end(mini: Path, tmp_path: Path, x86_build: object,
                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["matrix", str(mini), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "7.3-pahole1.32-python-x86_64  pass" in text
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("name") == "7.3-pahole1.32-python-x86_64"
    assert int(suite.get("tests", "0")) > 4 and suite.get("failures") == "0"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == 0 and summary["success_subtest"] > 4
    markdown = (out / "summary.md").read_text()
    assert "7.3-pahole1.32-python-x86_64" in markdown
    # The breadth row: the kfuncs our library reads from the cell's vmlinux, none of
    # the implicit-argument ones left without its _impl.
    row = next(ln for ln in markdown.splitlines() if ln.startswith("| 7.3 | 1.32 | python"))
    facts = json.loads((out / "baseline.json").read_text())["cells"][
        "7.3-pahole1.32-python-x86_64"]["btf"]
    assert facts["kfuncs"] > 100 and facts["implicit_args"] > 0
    assert facts["implicit_without_impl"] == 0 and f"| {facts['kfuncs']} |" in row

    # The same run against its own baseline is no change; a baseline that remembers a
    # program failing is one, and turns the exit status to 1.
    again = tmp_path / "again"
    assert main(["matrix", str(mini), "--out", str(again),
                 "--baseline", str(out / "baseline.json")]) == 0
    stored = json.loads((out / "baseline.json").read_text())
    verdicts = stored["cells"]["7.3-pahole1.32-python-x86_64"]["verdicts"]
    test = next(iter(verdicts))
    verdicts[test] = "fail"
    (out / "baseline.json").write_text(json.dumps(stored))
    capsys.readouterr()
    assert main(["matrix", str(mini), "--out", str(again),
                 "--baseline", str(out / "baseline.json")]) == 1
    assert f"7.3-pahole1.32-python-x86_64: {test}: fail -> pass" in capsys.readouterr().out


def test_the_ci_examples_shard_nightly_toml_exactly() -> None:
    """ci/'s GitHub and GitLab examples: their shards cover nightly.toml's cells once.
    (Read with regular expressions: no YAML parser among the project's dependencies.)"""
    import re

    from harness.matrix.spec import shard

    github = (REPO / "ci/github-nightly.yml").read_text()
    gitlab = (REPO / "ci/gitlab-nightly.yml").read_text()
    total = int(re.search(r"^\s+SHARDS: (\d+)$", github, re.M).group(1))  # type: ignore[union-attr]
    listed = re.search(r"^\s+shard: \[([\d, ]+)\]$", github, re.M).group(1)  # type: ignore[union-attr]
    assert [int(n) for n in listed.split(",")] == list(range(1, total + 1))
    assert re.search(rf"^\s+parallel: {total}$", gitlab, re.M)
    assert "--shard ${{ matrix.shard }}/${{ env.SHARDS }}" in github
    assert '--shard "${CI_NODE_INDEX}/${CI_NODE_TOTAL}"' in gitlab
    cells = load_matrix(REPO / "nightly.toml").cells
    split = [c.id for index in range(1, total + 1) for c in shard(cells, index, total)]
    assert sorted(split) == sorted(c.id for c in cells)


TWO_ARCHES = """
[axes]
kernel = ["7.3"]
pahole = ["1.32"]
btfids = ["python"]
arch = ["x86_64", "arm64"]

[defaults]
programs = ["bpf_progs/implicit_args"]
"""


@pytest.mark.guest
def test_cells_in_parallel_and_a_ctrl_c(tmp_path: Path, x86_build: object,
                                        arm64_build: object) -> None:
    """--jobs 2: both arches' guests at once, outcomes in matrix order; a Ctrl-C during
    the boots ends the run with 130 at once, no report, no guest left behind."""
    matrix = tmp_path / "two.toml"
    matrix.write_text(TWO_ARCHES)
    argv = [sys.executable, "-m", "harness", "matrix", str(matrix), "--jobs", "2"]
    done = subprocess.run([*argv, "--out", str(tmp_path / "out")], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    table = [ln.split()[0] for ln in done.stdout.splitlines() if "  pass  " in ln]
    assert table == ["7.3-pahole1.32-python-x86_64", "7.3-pahole1.32-python-arm64"]
    assert (tmp_path / "out" / "report.html").is_file()

    tag = f"HARNESS_TEST_RUN={uuid.uuid4()}"  # inherited by everything the run starts
    env = dict(os.environ, HARNESS_TEST_RUN=tag.split("=", 1)[1])
    proc = subprocess.Popen([*argv, "--out", str(tmp_path / "cut")], text=True, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=default_sigint)
    assert proc.stdout is not None
    for line in proc.stdout:  # both cells are booting
        if "arm64: boot and judge" in line:
            break
    time.sleep(1.0)
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130 and time.monotonic() - sent < 10
    assert "interrupted" in rest and ": fail (" not in rest
    assert not (tmp_path / "cut").exists()
    left = started_by(tag)
    deadline = time.monotonic() + 10  # a guest gets SIGTERM with its harness: let it go
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = started_by(tag)
    assert not left, f"left behind: {left}"


def started_by(tag: str) -> list[str]:
    """Live processes whose environment carries `tag` (their command lines)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if tag.encode() in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ")
                                 .decode(errors="replace")[:200])
        except OSError:
            continue
    return found
