"""--clang: the compiler is part of each compiled object's cache key and heads every run."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness.kbuild.artifacts import BuildArtifacts
from harness.kbuild.toolchains import select_clang
from harness.progs.compile import compile_prog, toolchain_for
from harness.progs.runner import default_sources
from harness.progs.suite import ArchRun, suite_jobs


def test_compiler_is_part_of_the_object_key_and_the_header(x86_build: BuildArtifacts) -> None:
    """The same source under two compilers is two cached objects, and a run's header names
    the compiler its programs were built with."""
    src = default_sources(Path(x86_build.source_tree))[0]
    system, pinned = select_clang("system"), select_clang("21")
    a = compile_prog(src, toolchain_for(x86_build, str(system.path)))
    b = compile_prog(src, toolchain_for(x86_build, str(pinned.path)))
    assert a != b and a.read_bytes() != b.read_bytes()
    assert ArchRun("x86_64", target="qemu", clang=pinned.version).header() == (
        f"x86_64 on qemu: {pinned.version}")


def _defines(clang: Path, macro: str) -> bool:
    """Whether `clang` predefines `macro` for BPF (its feature macros: __BPF_FEATURE_*)."""
    out = subprocess.run([str(clang), "-target", "bpf", "-dM", "-E", "-"], input="",
                         capture_output=True, text=True, check=True).stdout
    return f"#define {macro} " in out


def test_the_default_clang_plans_the_same_programs(x86_build: BuildArtifacts) -> None:
    """The system clang plans the pinned one's programs, but for those a feature macro of
    the newer clang guards: arena_kfunc_jit.c's need __BPF_FEATURE_ADDR_SPACE_CAST (18+)."""
    system_clang = select_clang("system")
    system = {j.id for j in suite_jobs(x86_build, clang="system")}
    pinned = {j.id for j in suite_jobs(x86_build)}  # the default: 21
    assert system <= pinned and len(system) > 20
    missing = {job_id.split("/", 1)[0] for job_id in pinned - system}
    if _defines(system_clang.path, "__BPF_FEATURE_ADDR_SPACE_CAST"):
        assert not missing
    else:
        assert missing == {"arena_kfunc_jit"}
