"""The regression this harness exists to catch, in real 7.2 guests.

7.2 + pahole 1.24 + the C resolve_btfids builds without a warning, yet libbpf refuses the
implicit-args kfuncs in the guest. Rebuilt from the same tree and pahole with the Python
transformer (discovering kfuncs from the BTF ID sets), every program behaves as on
7.2 + pahole 1.32 + C.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.kbuild.artifacts import BuildArtifacts
from harness.progs.suite import run_arch

pytestmark = [pytest.mark.guest, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SOURCES = [REPO / "bpf_progs" / name for name in ("wq.c", "task_work.c", "stream.c")]
IMPLICIT_USERS = ("wq/wq_tc_plain", "wq/wq_syscall_sleepable_cb", "task_work/tw_signal",
                  "stream/stream_stdout_line")


def verdicts(artifacts: BuildArtifacts) -> dict[str, tuple[str, str]]:
    run = run_arch(artifacts, SOURCES)
    assert run.error is None, f"{run.error}\n{run.console_excerpt()}"
    return {f"{r.object}/{r.program}": (r.verdict, " ".join(r.libbpf_log) + r.verifier_log)
            for r in run.results}


def test_72_pahole_124_c_fails_and_python_transformer_fixes_it(
        kernel_builder: Callable[..., BuildArtifacts]) -> None:
    reference = verdicts(kernel_builder("x86_64", kernel="7.2", pahole="1.32", btfids="c"))
    broken = verdicts(kernel_builder("x86_64", kernel="7.2", pahole="1.24", btfids="c"))
    fixed = verdicts(kernel_builder("x86_64", kernel="7.2", pahole="1.24", btfids="python"))

    for name in IMPLICIT_USERS:
        assert reference[name][0] == "pass", (name, reference[name])
        verdict, log = broken[name]
        assert verdict != "pass", name
        # libbpf refuses the extern's prototype, or the verifier cannot resolve the kfunc
        assert re.search(r"incompatible with kernel|wasn't resolved", log), (name, log[-400:])
    assert {n: v[0] for n, v in fixed.items()} == {n: v[0] for n, v in reference.items()}
