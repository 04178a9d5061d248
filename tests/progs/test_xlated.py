"""__xlated: the loaded program's translated instructions, disassembled on the host as
test_loader prints them, are matched line by line (real libbpf, this host's kernel)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.progs.compile import BpfToolchain, compile_prog
from harness.progs.runner import execute, plan
from tests.progs.conftest import can_load_bpf

pytestmark = pytest.mark.skipif(not can_load_bpf(), reason="needs root and kernel BTF")


def test_xlated_expectations_are_matched(toolchain_host: BpfToolchain,
                                         libbpf_so: Path) -> None:
    obj = compile_prog(Path(__file__).with_name("data") / "xlated.c", toolchain_host)
    jobs = plan([obj], "x86_64")
    assert all(job.skip is None for job in jobs)  # __xlated is judged, not skipped
    results = {r.program: r for r in execute(jobs, libbpf_so)}
    right, wrong = results["xlated_as_written"], results["xlated_expects_other_code"]
    assert (right.verdict, right.expected) == ("pass", "success retval=3 3 xlated")
    assert wrong.verdict == "fail" and wrong.reason.startswith("expect_xlated: ")
    assert "r0 -= 2" in wrong.reason + "".join(wrong.details)
