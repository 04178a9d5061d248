"""__btf_path: the tree's verifier_bitfield_write.c relocates against the BTF of another
of its objects (btf__core_reloc_bitfields.bpf.o), built from the tree beside the program
and shipped with it; a run that was not given it says so instead of failing."""

from __future__ import annotations

from pathlib import Path

from harness.kbuild.artifacts import BuildArtifacts
from harness.progs.compile import compile_prog, toolchain_for
from harness.progs.runner import execute, plan
from harness.progs.suite import run_arch

SOURCE = "tools/testing/selftests/bpf/progs/verifier_bitfield_write.c"


def test_btf_path_programs_relocate_against_their_btf(x86_build: BuildArtifacts) -> None:
    source = Path(x86_build.source_tree) / SOURCE
    run = run_arch(x86_build, [source])
    assert run.error is None
    verdicts = {r.program: r.verdict for r in run.results}
    assert len(verdicts) == 4 and set(verdicts.values()) == {"pass"}, verdicts
    # planned without suite_jobs, nothing builds the BTF object: a skip that says so
    jobs = plan([compile_prog(source, toolchain_for(x86_build))], "x86_64")
    (first, *_) = execute(jobs, x86_build.libbpf_so)
    assert first.verdict == "skip" and "btf__core_reloc_bitfields.bpf.o was not built" \
        in first.reason
