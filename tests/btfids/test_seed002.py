"""Seed 002's promise on real kernels: with our transformer, pahole 1.24 no longer matters.

Builds (through the pipeline, relinking one compile dir per tree) and compares the kfunc
view — BPF prototypes, `_impl` prototypes, decl tags, arena attributes, flags — of:
- 7.3 + pahole 1.24 + Python transformer  vs  7.3 + pahole 1.30 + C resolve_btfids;
- 7.2 + pahole 1.24 + Python transformer  vs  7.2 + pahole 1.32 + C resolve_btfids;
and shows the regression: 7.2 + pahole 1.24 + C silently lacks bpf_wq_set_callback_impl.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.btf import Kind, load
from harness.btf.kfuncs import kfuncs_of
from harness.kbuild.artifacts import BuildArtifacts

pytestmark = pytest.mark.kernel

Builder = Callable[..., BuildArtifacts]


def kfunc_view(artifacts: BuildArtifacts) -> dict[str, tuple]:
    return {k.name: (k.proto, k.impl, tuple(sorted(k.tags)), tuple(sorted(k.impl_tags)),
                     tuple(k.arena), k.flags)
            for k in kfuncs_of(artifacts.vmlinux)}


def assert_same_kfuncs(ours: BuildArtifacts, reference: BuildArtifacts) -> None:
    mine, theirs = kfunc_view(ours), kfunc_view(reference)
    assert mine.keys() == theirs.keys()
    different = {n: (mine[n], theirs[n]) for n in mine if mine[n] != theirs[n]}
    assert different == {}
    impls = {n for n, v in mine.items() if v[1]}
    assert {"bpf_wq_set_callback", "bpf_stream_vprintk",
            "bpf_task_work_schedule_signal"} <= impls
    assert sum("bpf_kfunc" in v[2] for v in mine.values()) == len(mine)


def test_73_with_pahole_124_and_python_matches_pahole_130_and_c(kernel_builder: Builder) -> None:
    ours = kernel_builder("x86_64", pahole="1.24", btfids="python")
    reference = kernel_builder("x86_64", pahole="1.30", btfids="c")
    assert_same_kfuncs(ours, reference)
    fastcall = [n for n, v in kfunc_view(ours).items() if "bpf_fastcall" in v[2]]
    assert fastcall  # the 7.3 profile emits bpf_fastcall tags pahole 1.24 knows nothing of


def test_72_with_pahole_124_needs_our_transformer(kernel_builder: Builder) -> None:
    reference = kernel_builder("x86_64", kernel="7.2", pahole="1.32", btfids="c")
    broken = kernel_builder("x86_64", kernel="7.2", pahole="1.24", btfids="c")
    fixed = kernel_builder("x86_64", kernel="7.2", pahole="1.24", btfids="python")

    btf = load(broken.vmlinux)
    assert btf.find_by_name("bpf_wq_set_callback", Kind.FUNC)
    assert not btf.find_by_name("bpf_wq_set_callback_impl", Kind.FUNC)  # the silent loss
    assert load(reference.vmlinux).find_by_name("bpf_wq_set_callback_impl", Kind.FUNC)

    assert_same_kfuncs(fixed, reference)
