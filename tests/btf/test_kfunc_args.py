"""Per-argument kfunc flags (harness.btf.kfunc_args), emitted as decl tags by the
transformer on request, and what the host kernel's BTF checker says about them."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest

from harness.btf import INT_SIGNED, Btf, load
from harness.btf.kernel_check import kernel_load
from harness.btf.kfunc_args import (
    RETURN,
    ArgFlag,
    ArgTableError,
    derive,
    load_table,
    suffix_flags,
    tagged,
)
from harness.btf.kfuncs import find_kfuncs
from harness.btf.types import DeclTag
from harness.kfunc_abi import KF_ACQUIRE, KF_ARENA_ARG2, KF_RCU, KF_RELEASE, KF_RET_NULL
from tests.helpers import synth


def _kfuncs() -> tuple[Btf, dict[str, int]]:
    b = Btf()
    i = b.add_int("int", 4, INT_SIGNED)
    task = b.add_struct("task_struct", 4)
    b.add_field("pid", i, 0)
    p_task = b.add_ptr(task)
    p_int = b.add_ptr(i)
    ids = {}
    for name, ret, params in (
        ("bpf_task_acquire", p_task, [("p", p_task)]),
        ("bpf_task_release", 0, [("p", p_task)]),
        ("bpf_obj_new", p_int, [("local_type_id__k", i)]),
        ("bpf_copy", i, [("dst", p_int), ("dst__sz", i), ("ptr__sz", p_int)]),
        ("bpf_arena_thing", p_int, [("map__const_map", p_int), ("p__arena", p_int),
                                    ("__k", i)]),
    ):
        proto = b.add_func_proto(ret)
        for pname, ptype in params:
            b.add_func_param(pname, ptype)
        ids[name] = b.add_func(name, 1, proto)
    return b, ids


def _facts(flags: list[ArgFlag]) -> set[tuple[int, str, str]]:
    return {(f.index, f.flag, f.source) for f in flags}


def test_flags_say_which_argument() -> None:
    b, ids = _kfuncs()
    assert _facts(derive(b, ids["bpf_task_acquire"], KF_ACQUIRE | KF_RCU | KF_RET_NULL)) == {
        (0, "acquire", "KF_ACQUIRE"), (RETURN, "acquire", "KF_ACQUIRE"),
        (0, "rcu", "KF_RCU"), (RETURN, "nullable", "KF_RET_NULL")}
    assert _facts(derive(b, ids["bpf_task_release"], KF_RELEASE)) == {
        (0, "release", "KF_RELEASE")}
    # acquire without an argument of the returned type is about the return value only
    assert _facts(derive(b, ids["bpf_obj_new"], KF_ACQUIRE | KF_RET_NULL)) == {
        (0, "k", "suffix __k"), (RETURN, "acquire", "KF_ACQUIRE"),
        (RETURN, "nullable", "KF_RET_NULL")}
    # raw BTF: no flags, the names still speak
    assert _facts(derive(b, ids["bpf_task_acquire"], None)) == set()


def test_suffixes_match_as_the_verifier_matches_them() -> None:
    b, ids = _kfuncs()
    facts = _facts(derive(b, ids["bpf_copy"], 0))
    assert facts == {(1, "sz", "suffix __sz")}  # a pointer named __sz is no size
    facts = _facts(derive(b, ids["bpf_arena_thing"], KF_ARENA_ARG2))
    assert facts == {(0, "const_map", "suffix __const_map"),  # "t_map": no __map
                     (1, "arena", "suffix __arena"), (1, "nullable", "suffix __arena"),
                     (1, "arena", "KF_ARENA_ARG2")}  # a bare "__k" is too short to match
    assert suffix_flags("p__arena__nullable", False) == [
        ("nullable", "__nullable"), ("arena", "__arena__nullable")]
    assert suffix_flags("len__szk", True) == [("szk", "__szk")]


def test_the_sidecar_table(tmp_path: Path) -> None:
    b, ids = _kfuncs()
    table = tmp_path / "kfunc-args.toml"
    table.write_text('[bpf_task_release]\np = ["rcu"]\n"return" = ["nullable"]\n'
                     '[bpf_copy]\n0 = ["nullable"]\n')
    loaded = load_table(table)
    assert _facts(derive(b, ids["bpf_task_release"], 0, loaded["bpf_task_release"])) == {
        (0, "rcu", "kfunc-args.toml"), (RETURN, "nullable", "kfunc-args.toml")}
    assert (0, "nullable", "kfunc-args.toml") in _facts(
        derive(b, ids["bpf_copy"], 0, loaded["bpf_copy"]))
    with pytest.raises(ArgTableError, match="unknown flag 'sleepy'"):
        derive(b, ids["bpf_copy"], 0, {"dst": ["sleepy"]})
    with pytest.raises(ArgTableError, match="no parameter named 'q'"):
        derive(b, ids["bpf_copy"], 0, {"q": ["rcu"]})
    with pytest.raises(ArgTableError, match="argument 7 of 3"):
        derive(b, ids["bpf_copy"], 0, {"7": ["rcu"]})
    table.write_text("[bpf_copy]\ndst = 1\n")
    with pytest.raises(ArgTableError, match="must map parameters to lists of flags"):
        load_table(table)
    table.write_text("[bpf_copy\n")
    with pytest.raises(ArgTableError, match="not TOML"):
        load_table(table)


def _btfids(tmp: Path, obj: Path, raw: Path, *extra: str) -> subprocess.CompletedProcess:
    work = tmp / ("tags" if extra else "plain")
    work.mkdir()
    elf = work / obj.name
    elf.write_bytes(obj.read_bytes())
    return subprocess.run([sys.executable, "-m", "harness.btfids", "--btf", str(raw), *extra,
                           str(elf)], capture_output=True, text=True)


def test_the_transformer_emits_them_only_when_asked(tmp_path: Path) -> None:
    if not synth.have_assembler("x86_64", "little"):
        pytest.skip("no assembler for x86_64")
    raw = tmp_path / "in.BTF.1"
    raw.write_bytes(synth.make_btf().to_bytes())
    obj = synth.assemble(synth.default_asm(version="7.3.4"), tmp_path / "obj.o", "x86_64",
                         "little")
    plain = _btfids(tmp_path, obj, raw)
    tags = _btfids(tmp_path, obj, raw, "--per-arg-tags")
    assert plain.returncode == tags.returncode == 0, (plain.stderr, tags.stderr)
    out_plain = load(str(tmp_path / "plain" / "obj.o.BTF"))
    out_tags = load(str(tmp_path / "tags" / "obj.o.BTF"))
    assert not any(isinstance(t, DeclTag) and out_plain.name(t).startswith("bpf_kfunc_arg")
                   for t in out_plain.types)
    by_name = {out_tags.name(t): tid for tid, t in out_tags.all_items() if t.kind.name == "FUNC"}
    decls = [t for t in out_tags.types if isinstance(t, DeclTag)]
    arena = tagged(out_tags, by_name["bpf_arena_alloc"], decls)
    # synth: bpf_arena_alloc(int *p, int *q, int *r__arena), KF_ARENA_RET | KF_ARENA_ARG2
    assert {(f.index, f.flag) for f in arena} == {
        (1, "arena"), (2, "arena"), (2, "nullable"), (RETURN, "arena")}
    # `harness btf kfuncs` shows each argument's flags with where they came from
    (info,) = [k for k in find_kfuncs(out_tags) if k.name == "bpf_arena_alloc"]
    assert info.arg_flags == ["q: arena (BTF tag)",
                              "r__arena: arena (BTF tag, suffix __arena), "
                              "nullable (BTF tag, suffix __arena)",
                              "return: arena (BTF tag)"]
    # asking twice adds nothing: the output is already tagged
    again = tmp_path / "again"
    again.mkdir()
    (again / "obj.o").write_bytes(obj.read_bytes())
    run = subprocess.run([sys.executable, "-m", "harness.btfids", "--per-arg-tags", "--btf",
                          str(tmp_path / "tags" / "obj.o.BTF"), str(again / "obj.o")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (again / "obj.o.BTF").read_bytes() == (tmp_path / "tags" / "obj.o.BTF").read_bytes()


def test_the_host_kernel_checker_is_an_oracle() -> None:
    """A tag on an argument the prototype does not have is what the kernel rejects; the
    same BTF with the index in range loads."""
    b, ids = _kfuncs()
    b.add_decl_tag("bpf_kfunc_arg:release", ids["bpf_task_release"], 0)
    good = kernel_load(b.to_bytes())
    if not good.loaded and good.errno == errno.EPERM:
        pytest.skip("no CAP_BPF here: BPF_BTF_LOAD is refused")
    assert good.loaded, good.log
    b.add_decl_tag("bpf_kfunc_arg:release", ids["bpf_task_release"], 1)
    bad = kernel_load(b.to_bytes())
    assert not bad.loaded and bad.errno == errno.EINVAL
    assert "Invalid component_idx" in bad.log, bad.log


@pytest.mark.kernel
def test_a_real_vmlinux_gets_its_tags_and_the_kernel_loads_them(
        x86_build, x86_build_dir: Path, pahole_132: Path, tmp_path: Path) -> None:  # noqa: ANN001
    """The 7.3 x86_64 BTF stage replayed with --per-arg-tags: the known kfuncs carry what
    their flags and names say, and the host kernel's checker loads the result."""
    import shutil

    from harness.btfids.stage import pahole_flags, replay, resolve_btfids_flags
    from harness.kbuild import toolchains

    held = tmp_path / "held.tmp_vmlinux1"
    # tests/btf/conftest.py holds every build dir's lock around a kernel test already
    shutil.copyfile(x86_build_dir / ".tmp_vmlinux1", held)
    out = replay(held, tmp_path / "stage", pahole=pahole_132,
                 pahole_args=pahole_flags(x86_build_dir, jobs=2, config=x86_build.config),
                 btfids=[str(toolchains.python_btfids_wrapper(toolchains.PER_ARG_TAGS))],
                 btfids_args=resolve_btfids_flags(x86_build_dir, x86_build.config))
    btf = load(str(out.btf))
    funcs = {btf.name(t): tid for tid, t in btf.all_items() if t.kind.name == "FUNC"}
    decls = [t for t in btf.types if isinstance(t, DeclTag)]

    def facts(name: str) -> set[tuple[int, str]]:
        return {(f.index, f.flag) for f in tagged(btf, funcs[name], decls)}

    assert facts("bpf_task_acquire") == {(0, "acquire"), (0, "rcu"), (RETURN, "acquire"),
                                         (RETURN, "nullable")}
    assert facts("bpf_task_release") == {(0, "release")}
    # int bpf_copy_from_user_str(void *dst, u32 dst__sz, const void *unsafe_ptr__ign, ...)
    assert facts("bpf_copy_from_user_str") == {(1, "sz"), (2, "ign")}
    verdict = kernel_load(out.btf.read_bytes())
    if not verdict.loaded and verdict.errno == errno.EPERM:
        pytest.skip("no CAP_BPF here: BPF_BTF_LOAD is refused")
    assert verdict.loaded, verdict.reason
