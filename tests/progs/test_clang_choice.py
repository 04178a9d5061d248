"""--clang: the compiler is part of each compiled object's cache key and heads every run."""

from __future__ import annotations

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


def test_the_default_clang_plans_the_same_programs(x86_build: BuildArtifacts) -> None:
    system = {j.id for j in suite_jobs(x86_build, clang="system")}
    pinned = {j.id for j in suite_jobs(x86_build)}  # the default: 21
    assert system == pinned and len(system) > 20
