"""The session layer's request and outcome: validated up front, aggregated per arch."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.kbuild.build import BuildRequest
from harness.progs.results import ProgResult
from harness.progs.suite import ArchRun
from harness.session import RunOutcome, RunRequest


def test_bad_requests_fail_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="at least one arch"):
        RunRequest(builds=())
    with pytest.raises(UsageError, match="target 'nosuch' is not a known target; a run "
                                         r"needs one that boots the built kernel \(qemu, board\)"):
        RunRequest(builds=(BuildRequest(),), target="nosuch")
    for name in ("local", "ssh"):  # until ssh deploys the built kernel
        with pytest.raises(UsageError, match=f"target '{name}' .* does not boot it"):
            RunRequest(builds=(BuildRequest(),), target=name)
    with pytest.raises(UsageError, match="no such BPF source"):
        RunRequest(builds=(BuildRequest(),), sources=(tmp_path / "missing.c",))
    both = RunRequest(builds=(BuildRequest(arch="x86_64"), BuildRequest(arch="arm64")))
    assert both.arches == ["x86_64", "arm64"] and both.target == "qemu"


def _result(arch: str, verdict: str) -> ProgResult:
    return ProgResult(object="wq", program="p", arch=arch, verdict=verdict,
                      expected="success", reason="")


def test_outcome_fails_on_a_failed_program_or_an_arch_error() -> None:
    good = ArchRun("x86_64", results=[_result("x86_64", "pass")])
    assert not RunOutcome([good]).failed
    bad = ArchRun("arm64", results=[_result("arm64", "fail")])
    assert RunOutcome([good, bad]).failed and len(RunOutcome([good, bad]).results) == 2
    dead = ArchRun("arm64", error="KernelPanic: boom")
    assert RunOutcome([good, dead]).errors == ["arm64: KernelPanic: boom"]
    assert RunOutcome([good, dead]).failed
