"""The pytest plugin from a project of its own: programs as items, a deliberately failing
program's verifier log in the JUnit failure, a user's test on `harness_target`, and BPF
CI's deny list. Each run is a real pytest in a subprocess, in a directory that is not
this repository (so only the plugin, by its entry point, is in play)."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.kbuild.artifacts import BuildArtifacts

HERE = Path(__file__).resolve().parent
FAILING = "deliberately_failing"
USER_TEST = '''
def test_the_guest_runs_our_kernel(harness_target):
    assert harness_target.run("uname -r").out.strip() == harness_target.artifacts.kernel_release

def test_judge_a_program_on_it(harness_target):
    run = harness_target.judge("deliberately_failing.c", only="returns_three")
    result = run.by_id()[f"deliberately_failing/returns_three[{harness_target.arch}]"]
    assert result.verdict == "pass", result.failure_text()
'''


def pytest_in(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=project, capture_output=True, text=True, timeout=900, env=env)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # this directory is the rootdir
    (tmp_path / f"{FAILING}.c").write_text((HERE / f"{FAILING}.c").read_text())
    (tmp_path / "test_mine.py").write_text(USER_TEST)
    return tmp_path


def cases(junit: Path) -> dict[str, ET.Element]:
    return {case.get("name", ""): case for case in ET.parse(junit).getroot().iter("testcase")}


def test_collection_reads_ids_from_the_sources(project: Path, x86_build: BuildArtifacts) -> None:
    """Items named as test_progs would, plus arch and target; nothing is built."""
    proc = pytest_in(project, "-p", "kfunc_harness", "--prog", f"{FAILING}.c",
                     "--collect-only", "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[:2] == [
        f"kfunc_harness::{FAILING}/exits_without_r0[x86_64-qemu]",
        f"kfunc_harness::{FAILING}/returns_three[x86_64-qemu]"]
    assert "test_mine" not in proc.stdout  # no test path given: the programs alone


@pytest.mark.guest
def test_items_junit_user_tests_and_the_deny_list(project: Path,
                                                  x86_build: BuildArtifacts) -> None:
    proc = pytest_in(project, "--kfunc-harness", "--prog", f"{FAILING}.c", "test_mine.py",
                     "--junitxml", "out.xml")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    found = cases(project / "out.xml")
    failed = found[f"{FAILING}/exits_without_r0[x86_64-qemu]"].find("failure")
    assert failed is not None and failed.text is not None
    assert "--- verifier log" in failed.text and "R0 !read_ok" in failed.text
    assert "--- console (x86_64) ---" in failed.text
    assert found[f"{FAILING}/returns_three[x86_64-qemu]"].find("failure") is None
    for name in ("test_the_guest_runs_our_kernel[x86_64-qemu]",
                 "test_judge_a_program_on_it[x86_64-qemu]"):
        assert len(found[name]) == 0 or found[name].find("failure") is None, name
    assert "1 failed, 3 passed" in proc.stdout

    lists = project / "lists"
    lists.mkdir()
    (lists / "DENYLIST").write_text(f"{FAILING}/exits_without_r0  # known broken\n")
    proc = pytest_in(project, "-p", "kfunc_harness", "--prog", f"{FAILING}.c",
                     "--denylist", str(lists), "-rs")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"denied by {lists}/DENYLIST:1: {FAILING}/exits_without_r0" in proc.stdout
