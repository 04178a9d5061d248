"""`harness btf kfuncs` and `harness btf diff` on real BTF.

Oracles: the 7.3 C resolve_btfids emitted the built vmlinux's bpf_kfunc and
bpf_fastcall tags and arena attributes from the very .BTF_ids sets we read, so
tags, flags and arena positions must agree with each other; binutils' readelf
lists the set symbols; the unresolved .tmp_vmlinux1 (ids still zero) must give
the same kfuncs through its __BTF_ID__func__ symbols.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.btf import Btf, BTFError, Kind
from harness.btf.diff import diff_btf
from harness.btf.kfuncs import (
    c_decl,
    find_kfuncs,
    func_decl,
    read_set8s,
)
from harness.btf.load import btf_bytes
from harness.btf.sort import reorder
from harness.btf.types import DeclTag, Func, FuncProto, Param
from harness.cli import main
from harness.kbuild.artifacts import BuildArtifacts
from harness.kfunc_abi import (
    BTF_SET8_KFUNCS,
    KF_ARENA_ARG1,
    KF_ARENA_ARG2,
    KF_ARENA_RET,
    KF_FASTCALL,
    KF_FLAGS,
    KF_IMPLICIT_ARGS,
)

SYSFS_VMLINUX = Path("/sys/kernel/btf/vmlinux")


def _tagged_funcs(btf: Btf, tag: str) -> set[str]:
    return {btf.name(btf[t.type]) for _i, t in btf.all_items()
            if isinstance(t, DeclTag) and t.component_idx == -1 and btf.name(t) == tag}


# ---- C declarations ------------------------------------------------------------------------


def test_c_decl_forms() -> None:
    b = Btf()
    i = b.add_int("int", 4, 1)
    c = b.add_int("char", 1, 2)
    pc = b.add_ptr(b.add_const(c))                      # const char *
    cp = b.add_const(b.add_ptr(i))                      # int *const
    arr = b.add_array(i, b.add_ptr(i), 4)               # int *[4]
    fp = b.add_func_proto(i)
    b.add_func_param("", i)
    b.add_func_param("", 0)                             # varargs
    pfp = b.add_ptr(fp)                                 # int (*)(int, ...)
    parr = b.add_ptr(b.add_array(i, i, 2))              # int (*)[2]
    s = b.add_struct("s", 4)
    anon = b.add_union(None, 4)
    arena = b.add_ptr(b.add_type_attr("address_space(1)", 0))
    tagged = b.add_ptr(b.add_type_tag("user", i))
    fn_proto = b.add_func_proto(arena)
    b.add_func_param("a", pc)
    b.add_func_param("cb", pfp)
    f = b.add_func("kf", 1, fn_proto)
    assert c_decl(b, pc, "p") == "const char *p"
    assert c_decl(b, cp, "p") == "int *const p"
    assert c_decl(b, arr, "a") == "int *a[4]"
    assert c_decl(b, pfp, "f") == "int (*f)(int, ...)"
    assert c_decl(b, parr, "x") == "int (*x)[2]"
    assert c_decl(b, s) == "struct s" and c_decl(b, anon, "u") == "union {...} u"
    assert c_decl(b, 0) == "void"
    assert c_decl(b, arena, "p") == "__attribute__((address_space(1))) void *p"
    assert c_decl(b, tagged, "p") == '__attribute__((btf_type_tag("user"))) int *p'
    assert func_decl(b, f) == ("__attribute__((address_space(1))) void *kf(const char *a, "
                               "int (*cb)(int, ...))")
    with pytest.raises(BTFError):
        func_decl(b, i)


# ---- kfuncs ---------------------------------------------------------------------------------


def test_host_sysfs_kfuncs() -> None:
    """The host's 6.18 BTF: every bpf_kfunc-tagged FUNC, legacy _impl kfuncs, no flags."""
    if not SYSFS_VMLINUX.exists():
        pytest.skip("no /sys/kernel/btf/vmlinux")
    btf = Btf.from_bytes(SYSFS_VMLINUX.read_bytes())
    kfuncs = find_kfuncs(btf)
    names = {k.name for k in kfuncs}
    assert names == _tagged_funcs(btf, "bpf_kfunc")
    assert all(k.flags is None for k in kfuncs)
    print(f"host: {len(kfuncs)} kfuncs")
    by = {k.name: k for k in kfuncs}
    if "bpf_wq_set_callback_impl" in by:  # the legacy kernel declaration (DESIGN.md)
        k = by["bpf_wq_set_callback_impl"]
        assert "bpf_wq_set_callback" not in by
        assert len(btf[btf[k.btf_id].type].params) == 4
        assert k.proto.endswith("unsigned int flags, void *aux__prog)")
        assert k.impl is None and "bpf_kfunc" in k.tags
    arena = [k for k in kfuncs if k.name.startswith("bpf_arena_alloc_pages")]
    if arena:
        assert arena[0].arena == ["return", "addr__ign"]


def test_built_vmlinux_kfuncs_agree_with_c_tool(built_vmlinux: Path) -> None:
    """The C tool tagged exactly the set kfuncs: flags, tags and arena attributes agree."""
    sets = read_set8s(built_vmlinux)
    btf = Btf.from_bytes(btf_bytes(built_vmlinux))
    kfuncs = find_kfuncs(btf, sets)
    by = {k.name: k for k in kfuncs}
    set_members = {btf.name(e.btf_id) for s in sets if s.is_kfuncs for e in s.entries if e.btf_id}
    assert set(by) == set_members == _tagged_funcs(btf, "bpf_kfunc")
    fastcall = _tagged_funcs(btf, "bpf_fastcall")
    for k in kfuncs:
        assert k.flags is not None and k.sets, k.name
        assert (k.name in fastcall) == bool(k.flags & KF_FASTCALL), k.name
        proto = btf[btf[k.btf_id].type]
        # resolve_btfids tags the flagged positions and params named *__arena(_nullable)
        want = {"return"} if k.flags & KF_ARENA_RET else set()
        for idx, p in enumerate(proto.params):
            pname = btf.str(p.name_off)
            bit = (KF_ARENA_ARG1, KF_ARENA_ARG2)[idx] if idx < 2 else 0
            if k.flags & bit or pname.endswith(("__arena", "__arena__nullable")):
                want.add(pname)
        assert set(k.arena) == want, k.name
        if k.flags & KF_IMPLICIT_ARGS:
            assert k.impl is not None and k.impl_id is not None, k.name
            impl_proto = btf[btf[k.impl_id].type]
            assert len(impl_proto.params) > len(proto.params)
            assert "bpf_kfunc" not in k.impl_tags or k.name + "_impl" in by
    wq = by["bpf_wq_set_callback"]
    assert wq.flag_names == ["KF_IMPLICIT_ARGS"]
    assert wq.proto == ("int bpf_wq_set_callback(struct bpf_wq *wq, int (*callback_fn)"
                        "(void *, int *, void *), unsigned int flags)")
    assert wq.impl == ("int bpf_wq_set_callback_impl(struct bpf_wq *wq, int (*callback_fn)"
                       "(void *, int *, void *), unsigned int flags, struct bpf_prog_aux *aux)")
    print(f"built vmlinux: {len(kfuncs)} kfuncs in {sum(s.is_kfuncs for s in sets)} sets, "
          f"{sum(k.impl is not None for k in kfuncs)} with _impl")


def test_set8_symbols_match_readelf(built_vmlinux: Path) -> None:
    if shutil.which("readelf") is None:
        pytest.skip("no readelf")
    out = subprocess.run(["readelf", "-sW", str(built_vmlinux)], capture_output=True,
                         text=True, check=True).stdout
    want = []
    for m in re.finditer(r"^\s*\d+:\s+([0-9a-f]+)\s+(\d+)\s+\S+\s+\S+\s+\S+\s+\S+\s+"
                         r"__BTF_ID__set8__(\S+)$", out, re.M):
        want.append((int(m.group(1), 16), m.group(3), (int(m.group(2)) - 8) // 8))
    got = read_set8s(built_vmlinux)
    assert [(s.name, len(s.entries)) for s in got] == [(n, c) for _a, n, c in sorted(want)]


def test_unresolved_elf_uses_func_symbols(built_vmlinux: Path, x86_build_dir: Path) -> None:
    """.tmp_vmlinux1 (before resolve_btfids): ids are 0, names come from the symbols."""
    tmp1 = x86_build_dir / ".tmp_vmlinux1"
    raw_sets = {s.name: s for s in read_set8s(tmp1)}
    final = read_set8s(built_vmlinux)
    btf = Btf.from_bytes(btf_bytes(built_vmlinux))
    for s in final:
        r = raw_sets[s.name]
        assert r.flags == s.flags
        assert all(e.btf_id == 0 for e in r.entries)
        assert sorted((e.name, e.flags) for e in r.entries) == sorted(
            (btf.name(e.btf_id), e.flags) for e in s.entries), s.name
    # and with the final BTF, kfunc discovery through names gives the same answer
    assert ([k.name for k in find_kfuncs(btf, list(raw_sets.values()))]
            == [k.name for k in find_kfuncs(btf, final)])


def test_flag_table_matches_tree(x86_build: BuildArtifacts) -> None:
    header = x86_build.source_tree / "include/linux/btf.h"
    for m in re.finditer(r"#define (KF_\w+)\s+\(1 << (\d+)\)", header.read_text()):
        assert KF_FLAGS[1 << int(m.group(2))] == m.group(1)
    assert BTF_SET8_KFUNCS == 1


def test_cli_kfuncs(built_vmlinux: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["btf", "kfuncs", str(built_vmlinux), "bpf_wq_set_callback", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [k["name"] for k in data] == ["bpf_wq_set_callback"]
    assert data[0]["flag_names"] == ["KF_IMPLICIT_ARGS"] and data[0]["sets"]
    assert main(["btf", "kfuncs", str(built_vmlinux), "bpf_arena_*"]) == 0
    text = capsys.readouterr().out
    assert "KF_ARENA_RET" in text and "arena:  return, addr__ign (address_space(1))" in text
    assert text.rstrip().endswith("kfunc(s)")


def test_cli_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x9f\xeb\x01\x00" + b"\xff" * 40)
    assert main(["btf", "kfuncs", str(junk)]) == 2
    assert main(["btf", "diff", str(junk), str(junk)]) == 2
    assert main(["btf", "diff", str(tmp_path / "missing"), str(junk)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("harness: error:") for line in err)


# ---- diff -------------------------------------------------------------------------------------


def _unique_plain_func(btf: Btf, kfunc_names: set[str]) -> int:
    counts: dict[str, int] = {}
    for _tid, t in btf.items():
        if isinstance(t, Func):
            counts[btf.name(t)] = counts.get(btf.name(t), 0) + 1
    tagged = {t.type for _i, t in btf.items() if isinstance(t, DeclTag)}
    for tid, t in btf.items():
        name = btf.name(t)
        if (isinstance(t, Func) and counts[name] == 1 and name not in kfunc_names
                and tid not in tagged and not name.endswith("_impl")):
            return tid
    raise AssertionError("no plain function")


def test_diff_finds_exactly_the_edits(vmlinux_73_raw: bytes, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    raw = vmlinux_73_raw
    a = Btf.from_bytes(raw)
    b = a.copy()
    kf = {k.name: k for k in find_kfuncs(b)}
    start_name = "bpf_wq_start" if "bpf_wq_start" in kf else sorted(kf)[0]
    init_name = "bpf_wq_init" if "bpf_wq_init" in kf else sorted(kf)[1]
    # 1. a new struct
    s = b.add_struct("harness_added", 4)
    b.add_field("x", b.find("int", Kind.INT), 0)
    # 2. a member renamed in an existing named struct
    wq = b.find("bpf_wq", Kind.STRUCT)
    t = b[wq].copy()
    m0 = t.members[0]
    t.members[0] = m0._replace(name_off=b.add_str("harness_renamed"))
    b[wq] = t
    # 3. a plain function renamed: one removed, one added
    plain = _unique_plain_func(b, set(kf))
    plain_name = b.name(plain)
    f = b[plain].copy()
    f.name_off = b.add_str("harness_" + plain_name)
    b[plain] = f
    # 4. a kfunc prototype with one more parameter
    start = kf[start_name].btf_id
    proto = b[b[start].type].copy()
    assert isinstance(proto, FuncProto)
    proto.params.append(Param(b.add_str("harness_extra"), b.find("int", Kind.INT)))
    new_fn = b[start].copy()
    new_fn.type = b.add(proto)
    b[start] = new_fn
    # 5. a kfunc loses its bpf_kfunc tag
    init = kf[init_name].btf_id
    tag_id = next(tid for tid, t in b.items() if isinstance(t, DeclTag) and t.type == init
                  and b.name(t) == "bpf_kfunc")
    tag = b[tag_id].copy()
    tag.name_off = b.add_str("harness_not_kfunc")
    b[tag_id] = tag
    assert s > 0

    pa, pb = tmp_path / "a.btf", tmp_path / "b.btf"
    pa.write_bytes(raw)
    pb.write_bytes(b.to_bytes())
    assert main(["btf", "diff", str(pa), str(pb), "--json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert d["equal"] is False
    types = d["types"]
    assert {(x["kind"], x["name"]) for x in types["added"]} == {
        ("struct", "harness_added"), ("func", "harness_" + plain_name)}
    assert {(x["kind"], x["name"]) for x in types["removed"]} == {("func", plain_name)}
    assert {(x["kind"], x["name"]) for x in types["changed"]} == {
        ("struct", "bpf_wq"), ("func", start_name), ("func", init_name)}
    kfd = d["kfuncs"]
    assert [k["name"] for k in kfd["removed"]] == [init_name]
    assert kfd["added"] == []
    assert [(c["name"], list(c["fields"])) for c in kfd["changed"]] == [(start_name, ["proto"])]
    assert "harness_extra" in kfd["changed"][0]["fields"]["proto"]["new"]
    # the human form names the same things
    assert main(["btf", "diff", str(pa), str(pb)]) == 1
    text = capsys.readouterr().out
    assert f"~ kfunc {start_name}" in text and "+ struct harness_added" in text
    assert "harness_renamed" in text


def test_diff_ignores_ids_and_order(vmlinux_73_raw: bytes, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    raw = vmlinux_73_raw
    a = Btf.from_bytes(raw)
    b = Btf.from_bytes(raw)
    order = list(b.ids())
    random.Random(5).shuffle(order)
    reorder(b, order)
    assert b.to_bytes() != raw
    assert diff_btf(a, b).equal
    pa, pb = tmp_path / "a.btf", tmp_path / "b.btf"
    pa.write_bytes(raw)
    pb.write_bytes(b.to_bytes())
    assert main(["btf", "diff", str(pa), str(pb)]) == 0
    assert capsys.readouterr().out.strip() == "equal"
