"""Expectations read from real objects: the tree's selftests and our bpf_progs.

Decl tags read through harness.btf are checked against bpftool's dump of the
same object, and the derived specs against values visible in the C sources.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from harness.kbuild.artifacts import BuildArtifacts
from harness.progs import jit_disasm
from harness.progs.expectations import (
    BPF_F_TEST_RND_HI32,
    POINTER_VALUE,
    object_specs,
    parse_spec,
    sort_tags,
)
from harness.progs.objinfo import read_object
from harness.progs.runner import default_sources, kernel_files_of, kernel_implicit_kfuncs, plan
from harness.progs.source_ids import calls_any, declared_implicit_kfuncs

_FUNC = re.compile(r"^\[(\d+)\] FUNC '([^']*)'")
_TAG = re.compile(r"^\[\d+\] DECL_TAG '(.*)' type_id=(\d+) component_idx=(-?\d+)$")


def bpftool_func_tags(bpftool: Path, obj: Path) -> dict[str, list[str]]:
    """Independent oracle: bpftool's raw dump, tags per FUNC name in BTF order."""
    out = subprocess.run([str(bpftool), "btf", "dump", "file", str(obj)], capture_output=True,
                         text=True, check=True).stdout
    names: dict[int, str] = {}
    tags: dict[str, list[str]] = {}
    for line in out.splitlines():
        if m := _FUNC.match(line):
            names[int(m.group(1))] = m.group(2)
            tags.setdefault(m.group(2), [])
        elif (m := _TAG.match(line)) and m.group(3) == "-1" and int(m.group(2)) in names:
            tags[names[int(m.group(2))]].append(m.group(1))
    return tags


def test_decl_tags_match_bpftool(compiled_73: dict[str, Path], bpftool: Path) -> None:
    for obj in compiled_73.values():
        info = read_object(obj)
        oracle = bpftool_func_tags(bpftool, obj)
        for prog in info.programs:
            assert info.func_tags[prog.name] == oracle[prog.name], (obj, prog.name)


def test_programs_in_libbpf_order(compiled_73: dict[str, Path]) -> None:
    info = read_object(compiled_73["wq_failures"])
    names = [p.name for p in info.programs]
    # SEC("tc") before SEC("?tc") sections; within a section, by offset.
    assert names[:2] == ["test_wq_init_nomap", "test_wq_init_wrong_map"]
    assert set(names) == {"test_wq_init_nomap", "test_wq_init_wrong_map", "test_bad_wq_off",
                          "test_wrong_wq_pointer", "test_wrong_wq_pointer_offset"}
    assert {p.section for p in info.programs} == {"tc", "?tc"}


def test_kfunc_implicit_args_specs(compiled_73: dict[str, Path]) -> None:
    specs = object_specs(compiled_73["kfunc_implicit_args"], "x86_64")
    by = {s.prog_name: s for s in specs.specs}
    assert list(by) == ["test_kfunc_implicit_arg", "test_kfunc_implicit_arg_impl_illegal",
                        "test_kfunc_implicit_arg_legacy", "test_kfunc_implicit_arg_legacy_impl"]
    plain = by["test_kfunc_implicit_arg"]
    assert plain.valid and plain.priv and plain.unpriv is None
    assert (plain.priv.expect_failure, plain.priv.execute, plain.priv.retval) == (False, True, 5)
    illegal = by["test_kfunc_implicit_arg_impl_illegal"].priv
    assert illegal and illegal.expect_failure and not illegal.execute
    assert [p.text for p in illegal.msgs] == [
        "cannot find address for kernel function bpf_kfunc_implicit_arg_impl"]
    assert by["test_kfunc_implicit_arg_legacy"].priv.retval == 7  # type: ignore[union-attr]
    assert by["test_kfunc_implicit_arg_legacy_impl"].priv.retval == 11  # type: ignore[union-attr]


def test_wq_failures_specs(compiled_73: dict[str, Path]) -> None:
    by = {s.prog_name: s for s in object_specs(compiled_73["wq_failures"], "arm64").specs}
    nomap = by["test_wq_init_nomap"]
    assert nomap.log_level == 2
    assert nomap.flag_ops == ((False, 8),)  # BPF_F_TEST_STATE_FREQ
    assert nomap.static_flags(0) == 8 and nomap.static_flags(BPF_F_TEST_RND_HI32) == 12
    assert [p.text for p in nomap.priv.msgs] == [  # type: ignore[union-attr]
        ": (85) call bpf_wq_init#", "pointer in R2 isn't map pointer"]
    assert [p.text for p in by["test_wrong_wq_pointer_offset"].priv.msgs] == [  # type: ignore
        ": (85) call bpf_wq_set_callback#", "off 1 doesn't point to 'struct bpf_wq' that is at 0"]
    assert all(s.priv and s.priv.expect_failure for s in by.values())


def test_wq_specs(compiled_73: dict[str, Path]) -> None:
    by = {s.prog_name: s for s in object_specs(compiled_73["wq"], "x86_64").specs}
    assert by["test_map_no_btf"].priv is not None
    assert not by["test_map_no_btf"].priv.execute  # no annotation: load only, success
    assert by["test_syscall_array_sleepable"].priv.retval == 0  # type: ignore[union-attr]
    assert all(s.valid and not s.auxiliary for s in by.values())


def test_ours_parse(compiled_73: dict[str, Path]) -> None:
    wq = {s.prog_name: s for s in object_specs(compiled_73["ours/wq"], "x86_64").specs}
    assert wq["wq_done"].auxiliary and wq["wq_done"].runs == []
    assert wq["wq_tc_plain"].then_run == ("wq_done", 1, 2000)
    assert wq["wq_tc_plain"].priv.description.startswith("wq from")  # type: ignore[union-attr]
    stream = {s.prog_name: s for s in object_specs(compiled_73["ours/stream"], "x86_64").specs}
    lines = stream["stream_stderr_lines"].priv.stderr  # type: ignore[union-attr]
    assert [(p.text, p.on_next_line) for p in lines] == [
        ("first {{[0-9]+}}", True), ("second line", True), ("last {{[a-z]+}}", False)]
    assert stream["stream_stack"].arches == frozenset({"x86_64", "arm64"})


def test_plan_keeps_every_program(compiled_73: dict[str, Path],
                                  x86_build: BuildArtifacts) -> None:
    objs = list(compiled_73.values())
    implicit = kernel_implicit_kfuncs(kernel_files_of(x86_build))
    jobs = plan(objs, "x86_64", implicit_kfuncs=implicit)
    names = {j.id for j in jobs}
    for obj in objs:
        for spec in object_specs(obj, "x86_64").specs:
            if not spec.auxiliary:
                assert any(n.split("@")[0].endswith("/" + spec.prog_name) for n in names)
    # every implicit-arg object gets the zero-extension variant
    assert "kfunc_implicit_args/test_kfunc_implicit_arg@rnd_hi32" in names
    assert any(j.force_flags == BPF_F_TEST_RND_HI32 for j in jobs)
    # auxiliaries ride along with every run of their object
    wq_jobs = [j for j in jobs if j.object_stem == "wq" and "wq_tc_plain" in j.id]
    assert wq_jobs and all("wq_done" in j.autoload for j in wq_jobs)


# ---- parse_spec on hand-written tag lists: test_loader's rules one by one ----

def test_counter_order_not_byte_order() -> None:
    tags = ["comment:10:test_expect_msg=second", "comment:9:test_expect_msg=first",
            "comment:11:test_expect_failure"]
    spec = parse_spec("p", "tc", tags, "x86_64")
    assert [p.text for p in spec.priv.msgs] == ["first", "second"]  # type: ignore[union-attr]


def test_legacy_tags_keep_btf_order() -> None:
    tags = ["comment:test_expect_msg=zeta", "comment:test_expect_msg=alpha",
            "comment:test_expect_failure"]
    ordered, legacy = sort_tags(tags)
    assert legacy and ordered == tags
    spec = parse_spec("p", "tc", tags, "x86_64")
    assert [p.text for p in spec.priv.msgs] == ["zeta", "alpha"]  # type: ignore[union-attr]


def test_unpriv_defaults_follow_priv() -> None:
    tags = ["comment:1:test_expect_failure", "comment:2:test_expect_msg=m",
            "comment:3:test_expect_success_unpriv", "comment:4:test_retval=_INT_MIN",
            "comment:5:test_caps_unpriv=21|39", "comment:6:test_description=d"]
    spec = parse_spec("p", "socket", tags, "x86_64")
    assert spec.priv and spec.unpriv
    assert spec.unpriv.name == "p @unpriv" and spec.unpriv.description == "d @unpriv"
    assert not spec.unpriv.expect_failure
    assert spec.unpriv.retval == -(2**31) and spec.unpriv.execute
    assert [p.text for p in spec.unpriv.msgs] == ["m"]
    assert spec.unpriv.caps == (1 << 21) | (1 << 39)


def test_retval_forms() -> None:
    def retval(text: str) -> int:
        spec = parse_spec("p", "tc", [f"comment:1:test_retval={text}"], "x86_64")
        return spec.priv.retval  # type: ignore[union-attr]

    assert retval("0xbadcafe") == POINTER_VALUE
    assert retval("-5") == -5
    assert retval("4294967295") == -1  # long truncated to int
    bad = parse_spec("p", "tc", ["comment:1:test_retval=-EINVAL"], "x86_64")
    assert not bad.valid and "failed to parse __retval" in (bad.error or "")


def test_flags_and_clear() -> None:
    spec = parse_spec("p", "tc", ["comment:1:test_prog_flags=BPF_F_TEST_RND_HI32",
                                  "comment:2:test_prog_flags=!BPF_F_TEST_RND_HI32",
                                  "comment:3:test_prog_flags=0x10"], "x86_64")
    assert spec.static_flags(BPF_F_TEST_RND_HI32) == 0x10


def test_jited_depends_on_arch_and_needs_arch_first() -> None:
    tags = ["comment:1:test_arch=X86_64", "comment:2:test_jited=  endbr64",
            "comment:3:test_arch=ARM64", "comment:4:test_jited=  paciasp"]
    x86 = parse_spec("p", "tc", tags, "x86_64")
    arm = parse_spec("p", "tc", tags, "arm64")
    assert [p.text for p in x86.priv.jited] == ["  endbr64"]  # type: ignore[union-attr]
    assert [p.text for p in arm.priv.jited] == ["  paciasp"]  # type: ignore[union-attr]
    assert x86.arches == frozenset({"x86_64", "arm64"})
    early = parse_spec("p", "tc", ["comment:1:test_jited=x"], "x86_64")
    assert not early.valid and early.error == "__jited used before __arch_*"


def test_arch_skip_and_bad_arch() -> None:
    spec = parse_spec("p", "tc", ["comment:1:test_arch=RISCV64"], "x86_64")
    assert spec.runs[0].arch_skip("x86_64")
    assert not parse_spec("p", "tc", ["comment:1:test_arch=MIPS"], "x86_64").valid


def test_stream_patterns_next_line_and_ellipsis() -> None:
    tags = ["comment:1:test_expect_stderr=a", "comment:2:test_expect_stderr=b",
            "comment:3:test_expect_stderr=...", "comment:4:test_expect_stderr=c"]
    spec = parse_spec("p", "syscall", tags, "x86_64")
    got = [(p.text, p.on_next_line) for p in spec.priv.stderr]  # type: ignore[union-attr]
    assert got == [("a", True), ("b", True), ("c", False)]


def test_linear_size_only_for_skb_programs() -> None:
    assert parse_spec("p", "tc", ["comment:1:test_linear_size=20"], "x86_64").linear_size == 20
    assert not parse_spec("p", "syscall", ["comment:1:test_linear_size=20"], "x86_64").valid


def test_unsupported_become_skip_reasons() -> None:
    spec = parse_spec("p", "tc", ["comment:1:test_btf_func_path=btf.o"], "x86_64")
    assert spec.valid and spec.runs[0].unsupported()


def test_jited_is_judged_where_an_llvm_disassembles_and_skipped_where_none_does(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """As test_loader built with or without LLVM: jit_disasm.available() decides."""
    spec = parse_spec("p", "tc", ["comment:1:test_arch=ARM64", "comment:2:test_jited=  nop"],
                      "arm64")
    monkeypatch.setattr(jit_disasm, "available", lambda arch=None: None)
    assert spec.valid and spec.runs[0].mode.jited and not spec.runs[0].unsupported()
    monkeypatch.setattr(jit_disasm, "available",
                        lambda arch=None: f"no libLLVM found for {arch}")
    assert spec.runs[0].unsupported() == ["__jited: no libLLVM found for arm64"]


def test_xlated_is_judged_not_skipped() -> None:
    spec = parse_spec("p", "tc", ["comment:1:test_expect_xlated=r0 = 1"], "x86_64")
    assert spec.valid and spec.runs[0].mode.xlated and not spec.runs[0].unsupported()


def test_source_prediction_agrees_with_the_built_kernel(x86_build: BuildArtifacts,
                                                        tree_73: Path) -> None:
    """Collection predicts implicit-arg callers from the tree's BTF_ID_FLAGS lines; the
    plan reads the built vmlinux and bpf_testmod's .BTF_ids. On the suite they agree."""
    built = kernel_implicit_kfuncs(kernel_files_of(x86_build))
    assert {"bpf_wq_set_callback", "bpf_wq_set_callback_impl",
            "bpf_kfunc_implicit_arg"} <= built
    assert "bpf_task_acquire" not in built
    declared = declared_implicit_kfuncs(tree_73)
    assert built <= declared
    for src in default_sources(tree_73):
        assert calls_any(src, declared) == calls_any(src, built), src


def test_implicit_kfuncs_of_a_module_split_on_vmlinux(x86_build: BuildArtifacts) -> None:
    """An in-tree module (no distilled .BTF.base, like every module pahole < 1.26 builds)
    is read on the vmlinux it was built with (the matrix's 6.12 + pahole 1.24 cells once
    failed with 'string section does not start with an empty string')."""
    # the published modules, not the build dir's: other tests relink that in place
    in_tree = sorted(Path(x86_build.modules_dir).rglob("*.ko"))
    if not in_tree:
        pytest.skip("this build has no in-tree module")
    assert kernel_implicit_kfuncs([x86_build.vmlinux, in_tree[0]]) == kernel_implicit_kfuncs(
        [x86_build.vmlinux])
