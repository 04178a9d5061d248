"""A program the kernel splats or panics under costs that program's result: the guest is
restarted and every other program, in its file and in the others, is judged.

The real case boots the suite kernel under QEMU and runs bpf_testmod's WARN_ON_ONCE kfunc
(tests/progs/data/warns_in_kfunc.c), with and without panic_on_warn. The halving case
(a target whose console names no job: a board without a serial line) drives the same
loop on the local target with an executor that dies whenever one given job is in its
batch.
"""

from __future__ import annotations

from itertools import takewhile
from pathlib import Path

import pytest

from harness.kbuild.artifacts import BuildArtifacts
from harness.progs.expectations import Mode, Run, Spec
from harness.progs.isolation import Isolated, batches, running_jobs
from harness.progs.judge import PASS
from harness.progs.results import ProgResult
from harness.progs.runner import Job
from harness.progs.suite import run_arch
from harness.targets.errors import CommandTimeout, KernelSplat
from harness.targets.local import LocalTarget

REPO = Path(__file__).resolve().parents[2]
WARNS = Path(__file__).with_name("data") / "warns_in_kfunc.c"


@pytest.mark.parametrize("append", [(), ("panic_on_warn=1",)], ids=["warning", "panic"])
def test_a_program_that_kills_the_guest_costs_only_its_result(
        x86_build: BuildArtifacts, append: tuple[str, ...]) -> None:
    heard: list[str] = []
    run = run_arch(x86_build, [WARNS, REPO / "bpf_progs/implicit_args.c"],
                   target_options={"append": append}, progress=heard.append)
    verdicts = {r.test_id: (r.verdict, r.reason) for r in run.results}
    blamed = verdicts.pop("warns_in_kfunc/warns[x86_64]")
    assert blamed[0] == "error" and blamed[1].startswith("the target died under this program: ")
    assert ("KernelPanic" if append else "KernelSplat") in blamed[1]
    assert verdicts and {v for v, _ in verdicts.values()} == {PASS}, verdicts
    assert "warns_in_kfunc/after_the_warning[x86_64]" in verdicts
    assert run.error is None
    # a job per vCPU, two vCPUs: the warning's PID names the job's process among them
    assert [(r.blamed, r.reason.split(":")[0]) for r in run.restarts] == [
        ("warns_in_kfunc/warns", "KernelPanic" if append else "KernelSplat")]
    # Both boots' consoles are kept, the splat's lines in the first, with the restart noted.
    first, _, second = run.console.partition("----- harness: the target died under "
                                             "warns_in_kfunc/warns")
    assert "bpf_kfunc_call_test_offset" in first and second
    assert any("restarting it" in line for line in heard)


def _job(stem: str, name: str) -> Job:
    """A planned job for `execute` below (which never opens its object)."""
    mode = Mode(name=name, description=None, expect_failure=False, msgs=(), xlated=(),
                jited=(), stderr=(), stdout=(), retval=0, execute=True, caps=0)
    spec = Spec(prog_name=name, section="syscall", arch="x86_64", tags=(), legacy_tags=False,
                valid=True, error=None, priv=mode, unpriv=None, log_level=0, flag_ops=(),
                arches=None, load_modes=frozenset(), linear_size=0, auxiliary=False,
                btf_custom_path=None, btf_custom_func_path=None)
    return Job(id=f"{stem}/{name}", object=Path(f"/nonexistent/{stem}.o"), object_stem=stem,
               run=Run(spec, mode, unpriv=False))


def test_without_console_marks_the_batch_is_halved_to_the_job_that_kills_it() -> None:
    jobs = [_job(f"obj{n // 2}", f"p{n}") for n in range(10)]  # 5 objects, 2 jobs each
    bad = jobs[7]
    calls: list[list[str]] = []

    def execute(some: list[Job]) -> list[ProgResult]:
        calls.append([j.name for j in some])
        if bad in some:
            raise CommandTimeout("command timed out after 60 s")
        return [ProgResult(j.object_stem, j.name, "x86_64", PASS, "success") for j in some]

    with LocalTarget() as target:
        isolated = Isolated(target, execute, "x86_64", batch_objects=2)
        results = isolated(jobs)
    assert [r.verdict for r in results] == [PASS] * 7 + ["error"] + [PASS] * 2
    assert results[7].reason == ("the target died under this program: "
                                 "CommandTimeout: command timed out after 60 s")
    assert [r.blamed for r in isolated.restarts] == [None, None, "obj3/p7"]
    # batches of 2 objects: [p0-p3] [p4-p7] [p8 p9]; [p4-p7] dies, halves, [p6 p7] dies,
    # halves again, p7 alone dies and is blamed.
    assert calls == [["p0", "p1", "p2", "p3"], ["p4", "p5", "p6", "p7"], ["p4", "p5"],
                     ["p6", "p7"], ["p6"], ["p7"], ["p8", "p9"]]


class _ConsoleTarget(LocalTarget):
    """This host as the target, with the console the executor below writes."""

    text = ""

    def console(self) -> str:
        return self.text


def test_a_splat_under_two_jobs_at_once_runs_them_again_alone() -> None:
    jobs = [_job("obj", f"p{n}") for n in range(4)]
    bad = jobs[2]
    calls: list[list[tuple[str, bool]]] = []

    def execute(some: list[Job]) -> list[ProgResult]:
        """The agent's marks: two jobs at a time unless alone; the bad one splats."""
        calls.append([(j.name, j.alone) for j in some])
        at = 0
        while at < len(some):
            group = some[at:at + 1] if some[at].alone else list(
                takewhile(lambda j: not j.alone, some[at:at + 2]))
            at += len(group)
            target.text += "".join(f"kfunc-harness: job {j.id}\n" for j in group)
            if bad in group:
                target.text += "BUG: kernel NULL pointer dereference, address: 0\n"
                raise KernelSplat("BUG", ["BUG: kernel NULL pointer dereference"])
            target.text += "".join(f"kfunc-harness: done {j.id}\n" for j in group)
        return [ProgResult(j.object_stem, j.name, "x86_64", PASS, "success") for j in some]

    with _ConsoleTarget() as target:
        isolated = Isolated(target, execute, "x86_64")
        results = isolated(jobs)
    assert [r.verdict for r in results] == [PASS, PASS, "error", PASS]
    # p2 and p3 were running when it splatted: both again, alone; then p2 is named
    assert [r.blamed for r in isolated.restarts] == [None, "obj/p2"]
    assert calls[1] == [("p0", False), ("p1", False), ("p2", True), ("p3", True)]
    assert calls[2] == [("p0", False), ("p1", False), ("p3", True)]


def test_a_target_that_keeps_dying_ends_the_run_with_every_job_unjudged() -> None:
    jobs = [_job("obj", f"p{n}") for n in range(3)]

    def execute(some: list[Job]) -> list[ProgResult]:
        raise CommandTimeout("command timed out after 60 s")

    with LocalTarget() as target:
        isolated = Isolated(target, execute, "x86_64", max_restarts=2)
        results = isolated(jobs)
    assert [r.verdict for r in results] == ["error"] * 3
    assert isolated.fatal is not None and "died 3 times" in isolated.fatal
    assert all(r.reason.startswith("no verdict: ") for r in results if "died under" not in
               r.reason)


def test_marks_and_batches() -> None:
    console = ("[ 1.0] kfunc-harness: job a/x\n[ 1.1] kfunc-harness: job b/y\n"
               "[ 1.2] WARNING: CPU: 0 PID: 9 at lib/x.c:1 f+0x0/0x10\n"
               "[ 1.3] ---[ end trace 0000000000000000 ]---\n"
               "[ 1.4] kfunc-harness: job c/z\n")
    assert running_jobs(console) == ["a/x", "b/y"]  # no done marks: both may be running
    assert running_jobs(console, since=console.index("[ 1.3]")) == ["c/z"]  # a hang
    assert running_jobs(console, since=console.index("[ 1.2]")) == []
    assert running_jobs("") == []
    serial = ("[ 1.0] kfunc-harness: job a/x\n[ 1.0] kfunc-harness: done a/x\n"
              "[ 1.1] kfunc-harness: job b/y\n[ 1.2] BUG: kernel NULL pointer dereference\n")
    assert running_jobs(serial) == ["b/y"]
    parallel = ("[ 1.0] kfunc-harness: job a/x\n[ 1.0] kfunc-harness: job b/y\n"
                "[ 1.1] kfunc-harness: done a/x\n[ 1.1] kfunc-harness: job c/z\n"
                "[ 1.2] BUG: kernel NULL pointer dereference\n[ 1.3] kfunc-harness: done c/z\n")
    assert running_jobs(parallel) == ["b/y", "c/z"]
    # the splat's PID is one job's process: that one (a kworker's is no job's: both)
    pids = ("[ 1.0] kfunc-harness: job a/x pid 70\n[ 1.0] kfunc-harness: job b/y pid 71\n"
            "[ 1.2] BUG: kernel NULL pointer dereference, address: 0\n"
            "[ 1.2] CPU: 1 UID: 0 PID: {} Comm: python3 Tainted: G O\n")
    assert running_jobs(pids.format(70)) == ["a/x"]
    assert running_jobs(pids.format(12)) == ["a/x", "b/y"]
    # a splat after its job ended (a callback that ran later): the job started last
    late = "[ 1.0] kfunc-harness: job a/x\n[ 1.1] kfunc-harness: done a/x\n[ 1.2] BUG: x\n"
    assert running_jobs(late) == ["a/x"]
    jobs = [_job(f"o{n // 3}", f"p{n}") for n in range(9)]  # 3 objects, 3 jobs each
    assert [[j.name for j in b] for b in batches(jobs, 2)] == [
        [f"p{n}" for n in range(6)], ["p6", "p7", "p8"]]
    assert batches([], 2) == []
