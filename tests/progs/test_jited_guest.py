"""``__jited`` judged in real guests: the tree's arena_kfunc_jit.c pins the JIT's rebase
sequences for ``__arena`` and ``__arena__nullable`` kfunc arguments on x86_64 and arm64.

The agent fetches each program's JIT image, the host disassembles it as selftests'
jit_disasm_helpers.c does (harness/progs/jit_disasm.py) and matches the patterns. A
pattern the image does not have must fail, or a pass would mean nothing: the same
program is judged once more against a copy of its source with one pattern changed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.progs import jit_disasm
from harness.progs.suite import run_arch
from tests.helpers.kernels import suite_kernel

pytestmark = [pytest.mark.slow, pytest.mark.guest]

PROGRAMS = ("arena_arg_jit_rebase", "arena_arg_jit_nullable", "arena_arg_jit_args5")
# one line each arch's image has, and the wrong one put in its place
WRONG = {"x86_64": ('__jited("	addq	%r12, %rdi")', '__jited("	subq	%r12, %rdi")'),
         "arm64": ('__jited("	add	x0, x28, w0, uxtw")', '__jited("	sub	x0, x28, w0, uxtw")')}


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_arena_kfunc_jit_sequences_match_and_a_wrong_one_fails(
        arch: str, arches: list[str], request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if arch not in arches:
        pytest.skip(f"--arch does not include {arch}")
    why = jit_disasm.available(arch)
    if why is not None:
        pytest.skip(f"no JIT disassembler: {why}")
    artifacts = suite_kernel(arch, request.config)
    progs = Path(artifacts.source_tree) / "tools/testing/selftests/bpf/progs"
    source = progs / "arena_kfunc_jit.c"
    if not source.is_file():
        pytest.skip(f"{source} is not in this tree")
    right, wrong = WRONG[arch]
    text = source.read_text()
    assert right in text
    changed = tmp_path / "arena_kfunc_jit_wrong.c"
    changed.write_text(text.replace(right, wrong, 1).replace(
        '"bpf_misc.h"', f'"{progs / "bpf_misc.h"}"').replace(
        '"bpf_experimental.h"', f'"{progs.parent / "bpf_experimental.h"}"').replace(
        '"../test_kmods/', f'"{progs.parent / "test_kmods"}/'))
    run = run_arch(artifacts, [source, changed], only="arena_arg_jit")
    assert run.error is None, run.error
    verdicts = {r.test_id: (r.verdict, r.reason) for r in run.results}
    for name in PROGRAMS:
        got = verdicts[f"arena_kfunc_jit/{name}[{arch}]"]
        assert got[0] == "pass", got
    first = verdicts[f"arena_kfunc_jit_wrong/{PROGRAMS[0]}[{arch}]"]
    assert first[0] == "fail" and first[1].startswith("expect_jited: "), first
    assert wrong.split('"')[1].strip().replace("\t", "\\t") in first[1]  # the reason escapes
