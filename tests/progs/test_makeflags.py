"""The selftests' compile flags come from the tree's own Makefile, per test_progs flavor."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from harness.elf import ElfFile
from harness.kbuild.artifacts import BuildArtifacts
from harness.kbuild.toolchains import select_clang
from harness.progs.compile import CompileError, compile_prog, toolchain_for
from harness.progs.makeflags import (
    MakeflagsError,
    _rule_flags,
    runner_flavors,
    selftests_flags,
)

MAKEFILE = """\
TRUNNER_BPF_BUILD_RULE := CLANG_BPF_BUILD_RULE
TRUNNER_BPF_CFLAGS := $(BPF_CFLAGS) $(CLANG_CFLAGS) -DENABLE_ATOMICS_TESTS
$(eval $(call DEFINE_TEST_RUNNER,test_progs))

TRUNNER_BPF_BUILD_RULE := CLANG_NOALU32_BPF_BUILD_RULE
TRUNNER_BPF_CFLAGS := $(BPF_CFLAGS) $(CLANG_CFLAGS)
$(eval $(call DEFINE_TEST_RUNNER,test_progs,no_alu32))

TRUNNER_BPF_BUILD_RULE := GCC_BPF_BUILD_RULE
TRUNNER_BPF_CFLAGS := $(BPF_CFLAGS) $(call get_sys_includes,gcc,)
$(eval $(call DEFINE_TEST_RUNNER,test_progs,bpf_gcc))
$(eval $(call DEFINE_TEST_RUNNER,test_maps))
"""


def test_the_runners_are_read_as_the_makefile_assigns_them() -> None:
    assert runner_flavors(MAKEFILE) == [
        ("default", "CLANG_BPF_BUILD_RULE",
         "$(BPF_CFLAGS) $(CLANG_CFLAGS) -DENABLE_ATOMICS_TESTS"),
        ("no_alu32", "CLANG_NOALU32_BPF_BUILD_RULE", "$(BPF_CFLAGS) $(CLANG_CFLAGS)")]


def test_a_rule_gives_the_flags_around_the_source() -> None:
    recipe = ("@printf '  %-12s %s\\n' 'CLNG-BPF' '[test_progs] HARNESS-OUT.o' 1>&2 "
              "clang HARNESS-CFLAGS -O2 --target=bpfel -c HARNESS-SRC.c -mcpu=v3 "
              "-o HARNESS-OUT.o || (rm HARNESS-OUT.o)")
    assert _rule_flags(recipe) == ("-O2", "--target=bpfel", "-mcpu=v3")
    with pytest.raises(MakeflagsError, match="no -mcpu"):
        _rule_flags("clang HARNESS-CFLAGS -O2 -c HARNESS-SRC.c -o HARNESS-OUT.o")


@pytest.fixture(scope="module")
def tree_612() -> Path:
    """The 6.12 Debian source (fetched into the cache once)."""
    from harness.kbuild.sources import from_debian

    return from_debian("6.12").path


@pytest.mark.kernel  # the 7.3 and 6.12 sources, make runs the tree's feature checks
@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_each_release_answers_for_itself(arch: str, tree_73: Path, tree_612: Path) -> None:
    clang = select_clang("21")
    new = selftests_flags(tree_73, arch, str(clang.path), clang.version)
    old = selftests_flags(tree_612, arch, str(clang.path), clang.version)
    for flags in (new, old):
        assert {n: f.rule_flags[-1] for n, f in flags.flavors.items()} == {
            "default": "-mcpu=v3", "no_alu32": "-mcpu=v2", "cpuv4": "-mcpu=v4"}
        atomics = {n for n, f in flags.flavors.items() if "-DENABLE_ATOMICS_TESTS" in f.cflags}
        assert atomics == {"default", "cpuv4"}
        default = new.flavors["default"].cflags
        assert "-Werror" in default and f"-D__TARGET_ARCH_{'x86' if arch == 'x86_64' else arch}" \
            in default
    # 7.3 targets the host's byte order explicitly, 6.12 says --target=bpf; 7.x adds the
    # anonymous-tag flags and libarena, 6.12 builds a few programs with per-file flags
    assert "--target=bpfel" in new.flavors["default"].rule_flags
    assert "--target=bpf" in old.flavors["default"].rule_flags
    assert "-fms-extensions" in new.flavors["default"].cflags
    assert "-fms-extensions" not in old.flavors["default"].cflags
    assert old.per_source["progs/syscall.c"] == ("-fno-strict-aliasing",)
    # the second ask is the cached answer
    assert selftests_flags(tree_73, arch, str(clang.path), clang.version) == new


def _alu32_insns(obj: Path) -> int:
    """BPF_ALU (class 4: 32-bit) instructions in the object's program sections."""
    count = 0
    with ElfFile(obj) as elf:
        for section in elf.sections:
            if section.flags & 0x4 and section.size:  # SHF_EXECINSTR
                code = elf.section_data(section)
                count += sum(1 for (op,) in struct.iter_unpack("<B7x", code) if op & 7 == 4)
    return count


@pytest.mark.kernel
def test_the_flavor_changes_the_object_and_werror_holds(x86_build: BuildArtifacts,
                                                        tmp_path: Path) -> None:
    clang = str(select_clang("21").path)
    src = Path(x86_build.source_tree) / "tools/testing/selftests/bpf/progs/wq.c"
    default = compile_prog(src, toolchain_for(x86_build, clang))
    no_alu32 = compile_prog(src, toolchain_for(x86_build, clang, "no_alu32"))
    assert default != no_alu32
    assert _alu32_insns(default) > 0 and _alu32_insns(no_alu32) == 0
    warns = tmp_path / "unused.c"
    warns.write_text("#include <vmlinux.h>\nint f(void) { int unused; return 0; }\n")
    with pytest.raises(CompileError, match="-Werror"):  # the tree's BPF_CFLAGS has -Werror
        compile_prog(warns, toolchain_for(x86_build, clang))
    with pytest.raises(MakeflagsError, match="no test_progs flavor 'bpf_gcc'"):
        compile_prog(src, toolchain_for(x86_build, clang, "bpf_gcc"))
