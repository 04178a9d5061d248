"""Fixtures of the matrix tests: the sample cells and outcomes of samples.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.matrix.report import CellOutcome
from harness.matrix.spec import Cell, load_matrix
from harness.progs.suite import ArchRun
from harness.targets.base import TargetIdentity
from tests.matrix.samples import (
    BROKEN,
    BTF_SHA,
    CONSOLE,
    FIXED,
    IMPLICIT_LIBBPF,
    MATRIX,
    REGRESSED,
    UNREACHABLE,
    WQ_LOG,
    result,
)


@pytest.fixture
def cells(tmp_path: Path) -> dict[str, Cell]:
    path = tmp_path / "matrix.toml"
    path.write_text(MATRIX)
    return {cell.id: cell for cell in load_matrix(path).cells}


@pytest.fixture
def outcomes(cells: dict[str, Cell]) -> list[CellOutcome]:
    """Four cells: a known-broken one that broke as foreseen, a regression (with a flaky
    program, a skip and a splat), one whose board was unreachable, and a silent fix."""
    identity = TargetIdentity(release="7.2.0-kfunc", btf_sha256=BTF_SHA)
    broken = ArchRun("x86_64", target="qemu", identity=identity, boot_s=4.1, suite_s=9.0,
                     console="[    0.000000] Linux version 7.2.0-kfunc\n", results=[
        result("kfunc_implicit_args", "test_kfunc_implicit_arg", "fail",
               "bpf_object__open failed: -22 (libbpf: extern (func ksym) "
               "'bpf_kfunc_implicit_arg': func_proto [25] incompatible with kernel [70171])",
               libbpf_log=IMPLICIT_LIBBPF),
        result("kfunc_implicit_args", "test_kfunc_implicit_arg @unpriv", "fail",
               "bpf_object__open failed: -22", libbpf_log=IMPLICIT_LIBBPF),
        result("wq", "wq_tc_plain", "pass", time_ms=1.5),
    ])
    regressed = ArchRun("x86_64", target="board rk3588", identity=identity, console=CONSOLE,
                        error="KernelPanic: BUG: kernel NULL pointer dereference", results=[
        result("wq", "wq_tc_plain", "fail", "expect_msg: 1 of 1 messages not found\nmore",
               verifier_log=WQ_LOG, time_ms=2.25,
               details=["  expected: 'R1 type=scalar expected=fp'"]),
        result("wq", "wq_syscall_sleepable_cb@rnd_hi32", "pass", time_ms=3.0),
        result("task_work", "tw_signal", "error",
               "no verdict: KernelPanic: BUG: kernel NULL pointer dereference"),
        result("stream", "stream_stdout_line", "skip", "program type not supported"),
    ])
    fixed = ArchRun("x86_64", target="qemu", results=[
        result("kfunc_implicit_args", "test_kfunc_implicit_arg", "pass", time_ms=0.9),
        result("kfunc_implicit_args", "test_kfunc_implicit_arg @unpriv", "pass"),
        result("wq", "wq_tc_plain", "pass"),
    ])
    return [
        CellOutcome(cells[BROKEN], broken, seconds=412.25,
                    btf_facts={"kfuncs": 214, "decl_tags": ["bpf_fastcall"]}),
        CellOutcome(cells[REGRESSED], regressed, seconds=388.0,
                    flaky=["wq/wq_syscall_sleepable_cb@rnd_hi32[x86_64]"]),
        CellOutcome(cells[UNREACHABLE], None, seconds=31.5,
                    infra_error="board rk3588 unreachable: ssh: connect to host 10.0.0.7 "
                                "port 22: No route to host\nretried 3 times"),
        CellOutcome(cells[FIXED], fixed, seconds=401.0,
                    expect_errors=["expect 2: expected fail, got pass "
                                   "(thought broken on 7.3 too)"]),
    ]
