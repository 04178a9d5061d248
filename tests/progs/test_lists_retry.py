"""BPF CI's lists and the one retry, applied to real jobs run by real libbpf on this host:
a denied program becomes a skip naming its entry, a program that fails only on its first
run is reported flaky, and one that fails twice keeps its failure."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.progs.compile import BpfToolchain, compile_prog
from harness.progs.lists import Lists
from harness.progs.runner import Job, execute, plan
from harness.progs.suite import apply_lists, retry_failures
from tests.progs.conftest import can_load_bpf

pytestmark = pytest.mark.skipif(not can_load_bpf(), reason="needs root and kernel BTF")
PIN = Path("/sys/fs/bpf/harness_flaky_once")


def test_a_denied_program_is_a_skip_naming_its_entry(host_basic: Path) -> None:
    lists = Lists.parse({"ci/DENYLIST": "# known broken\nhost_basic/host_reject\n"})
    jobs = apply_lists(plan([host_basic], "x86_64"), lists)
    skips = {j.name: j.skip for j in jobs if j.skip is not None}
    assert skips == {"host_reject": "denied by ci/DENYLIST:2: host_basic/host_reject"}
    assert apply_lists(jobs, None) is jobs and apply_lists(jobs, Lists()) is jobs


@pytest.fixture
def flaky_obj(toolchain_host: BpfToolchain) -> Iterator[Path]:
    """The object, with bpffs at /sys/fs/bpf for its pinned counter (mounted for the test
    and unmounted after if this host has none there)."""
    mounted = False
    if not os.path.ismount(PIN.parent):
        subprocess.run(["mount", "-t", "bpf", "bpf", str(PIN.parent)], check=True)
        mounted = True
    PIN.unlink(missing_ok=True)
    try:
        yield compile_prog(Path(__file__).with_name("data") / "flaky_once.c", toolchain_host)
    finally:
        PIN.unlink(missing_ok=True)
        if mounted:
            subprocess.run(["umount", str(PIN.parent)], check=True)


def test_a_failure_runs_once_more_and_a_pass_then_is_flaky(flaky_obj: Path,
                                                             libbpf_so: Path) -> None:
    jobs = plan([flaky_obj], "x86_64")
    calls: list[list[str]] = []

    def run(some: list[Job]) -> list:
        calls.append([j.name for j in some])
        return execute(some, libbpf_so)

    first = run(jobs)
    assert [r.verdict for r in first] == ["fail", "fail"]
    results, flaky = retry_failures(jobs, first, run)
    assert calls[1] == ["flaky_second_try", "always_wrong"]  # only the failures, once
    assert flaky == ["flaky_once/flaky_second_try[x86_64]"]
    verdicts = {r.program: r.verdict for r in results}
    assert verdicts == {"flaky_second_try": "pass", "always_wrong": "fail"}
    assert "retval" in next(r for r in results if r.program == "always_wrong").reason
    passed = [r for r in results if r.verdict == "pass"]
    assert retry_failures(jobs[:1], passed, run) == (passed, []) and len(calls) == 2
