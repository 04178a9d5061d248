"""distill_base: byte-identical to libbpf's btf__distill_base and to resolve_btfids --distill_base.

Split BTF comes from real objects: pahole 1.32 run with --btf_base vmlinux on
the built kernel's object files (what Kbuild does for a module), bpf_testmod.ko
when a build produced it, and every module under /sys/kernel/btf. libbpf (from
the same tree, through ctypes) is the oracle; the C resolve_btfids --distill_base
is checked end to end (dedup by libbpf, distill and sort by us).
"""

from __future__ import annotations

import ctypes
import glob
import os
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from harness.btf import Btf, BTFError, Kind
from harness.btf.distill import distill_base
from harness.btf.load import btf_bytes
from harness.btf.sort import sort_by_name
from harness.cache import cache_root
from harness.kbuild.artifacts import BuildArtifacts
from tests.btf.test_sort import dummy_elf, run_c_tool
from tests.helpers import libbpf_oracle

SYSFS = Path("/sys/kernel/btf")
CACHE = cache_root()
MODULE_FLAGS = ["--btf_features=encode_force,var,float,enum64,decl_tag,type_tag,"
                "optimized_func,consistent_func,layout", "--lang_exclude=rust"]
# A spread of subsystems; HARNESS_DISTILL_ALL=1 takes every object under kernel/bpf, net, fs.
OBJECTS = [
    "kernel/bpf/helpers.o", "kernel/bpf/verifier.o", "kernel/bpf/btf.o", "kernel/bpf/arena.o",
    "kernel/bpf/syscall.o", "kernel/bpf/hashtab.o", "kernel/bpf/cpumask.o",
    "kernel/bpf/bpf_struct_ops.o", "kernel/sched/core.o", "kernel/trace/bpf_trace.o",
    "fs/namei.o", "mm/slub.o", "net/core/filter.o", "drivers/hid/bpf/hid_bpf_dispatch.o",
]


def libbpf_distill(lib: libbpf_oracle.Libbpf, raw: bytes,
                   base: libbpf_oracle.OracleBtf) -> tuple[bytes, bytes] | int:
    """(new base bytes, new split bytes) from btf__distill_base, or its error code."""
    p = ctypes.c_void_p
    lib.declare("btf__distill_base", ctypes.c_int, [p, ctypes.POINTER(p), ctypes.POINTER(p)])
    o = lib.new(raw, base)
    nb, ns = p(), p()
    err = lib.so.btf__distill_base(o.ptr, ctypes.byref(nb), ctypes.byref(ns))
    if err:
        return err
    ob = libbpf_oracle.OracleBtf(lib, nb.value, [])
    osplit = libbpf_oracle.OracleBtf(lib, ns.value, [ob])
    return ob.raw_data(), osplit.raw_data()


def find_testmods() -> list[Path]:
    env = os.environ.get("HARNESS_BPF_TESTMOD")
    if env:
        return [Path(env)]
    pats = [CACHE / "artifacts/*/bpf_testmod.ko", CACHE / "builds/*/harness-tools/test_kmods/*.ko"]
    return sorted({Path(p) for pat in pats for p in glob.glob(str(pat))})


def _base_for(ko: Path) -> Path | None:
    """The vmlinux a module was built against (its build or artifact directory)."""
    for up in ko.parents:
        if (up / "vmlinux").exists():
            return up / "vmlinux"
    return None


# ---- inputs ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def built_vmlinux(built_vmlinux: Path) -> tuple[Path, bytes]:
    return built_vmlinux, btf_bytes(built_vmlinux)


def _pahole_split(pahole: Path, obj: Path, base_elf: Path, out: Path) -> bytes | None:
    proc = subprocess.run([str(pahole), "-J", *MODULE_FLAGS, "--btf_base", str(base_elf),
                           f"--btf_encode_detached={out}", str(obj)], capture_output=True)
    if proc.returncode or not out.exists() or out.stat().st_size == 0:
        return None
    return out.read_bytes()


@pytest.fixture(scope="session")
def split_blobs(built_vmlinux: tuple[Path, bytes], pahole_132: Path, x86_build_dir: Path,
                tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, bytes]]:
    """Split BTF of real kernel objects on the built vmlinux, as pahole encodes modules."""
    build = x86_build_dir
    d = tmp_path_factory.mktemp("split")
    if os.environ.get("HARNESS_DISTILL_ALL"):
        objs = sorted(p for sub in ("kernel/bpf", "net", "fs")
                      for p in (build / sub).rglob("*.o") if not p.name.startswith("."))
    else:
        objs = [build / o for o in OBJECTS if (build / o).exists()]
    out = []
    for i, obj in enumerate(objs):
        raw = _pahole_split(pahole_132, obj, built_vmlinux[0], d / f"{i}.btf")
        if raw is not None:
            out.append((str(obj.relative_to(build)), raw))
    if not out:
        pytest.skip("no object produced split BTF")
    return out


# ---- against libbpf -------------------------------------------------------------------


def test_objects_match_libbpf(oracle: libbpf_oracle.Libbpf, built_vmlinux: tuple[Path, bytes],
                              split_blobs: list[tuple[str, bytes]]) -> None:
    vm = Btf.from_bytes(built_vmlinux[1])
    ovm = oracle.new(built_vmlinux[1])
    identical = []
    for label, raw in split_blobs:
        want = libbpf_distill(oracle, raw, ovm)
        assert not isinstance(want, int), f"{label}: libbpf failed {want}"
        split = Btf.from_bytes(raw, vm)
        new_base, new_split = distill_base(split)
        assert split.to_bytes() == raw  # input left alone
        assert new_split.base is new_base
        assert (new_base.to_bytes(), new_split.to_bytes()) == want, label
        identical.append(label)
    print(f"distill: {len(identical)}/{len(split_blobs)} identical to libbpf")


def test_sysfs_modules_match_libbpf(oracle: libbpf_oracle.Libbpf) -> None:
    mods = sorted(p for p in SYSFS.glob("*") if p.name != "vmlinux") if SYSFS.exists() else []
    if not mods:
        pytest.skip("no module BTF under /sys/kernel/btf on this host")
    vraw = (SYSFS / "vmlinux").read_bytes()
    vm, ovm = Btf.from_bytes(vraw), oracle.new(vraw)
    for mod in mods:
        raw = mod.read_bytes()
        want = libbpf_distill(oracle, raw, ovm)
        if isinstance(want, int):
            with pytest.raises(BTFError):
                distill_base(Btf.from_bytes(raw, vm))
            continue
        nb, ns = distill_base(Btf.from_bytes(raw, vm))
        assert (nb.to_bytes(), ns.to_bytes()) == want, mod.name


def test_bpf_testmod_matches_libbpf(oracle: libbpf_oracle.Libbpf, x86_build: BuildArtifacts,
                                    pahole_132: Path, tmp_path: Path) -> None:
    """bpf_testmod re-encoded from its DWARF on its vmlinux: the out-of-tree module case."""
    mods = [(ko, _base_for(ko)) for ko in find_testmods()]
    mods = [(ko, base) for ko, base in mods if base is not None]
    if not mods:
        pytest.fail(f"no bpf_testmod.ko next to a vmlinux (the suite's: {x86_build.bpf_testmod})",
                    pytrace=False)
    for ko, base_elf in mods:
        raw = _pahole_split(pahole_132, ko, base_elf, tmp_path / "testmod.btf")
        assert raw is not None, ko
        vraw = btf_bytes(base_elf)
        want = libbpf_distill(oracle, raw, oracle.new(vraw))
        assert not isinstance(want, int)
        nb, ns = distill_base(Btf.from_bytes(raw, Btf.from_bytes(vraw)))
        assert (nb.to_bytes(), ns.to_bytes()) == want, ko


def find_built_modules() -> list[tuple[Path, Path, str]]:
    """(module, vmlinux, base section or '') for every .ko a cached build published."""
    out = []
    for art in sorted(CACHE.glob("artifacts/*")):
        vml = art / "vmlinux"
        if not vml.exists():
            continue
        out += [(ko, vml, "") for ko in sorted((art / "modules").glob("*.ko"))]
        testmod = art / "bpf_testmod.ko"
        if testmod.exists():  # distilled (pahole >= 1.26), else split on its vmlinux
            out.append((testmod, vml, ".BTF.base" if _has_section(testmod, ".BTF.base")
                        else ""))
    return out


def _has_section(elf: Path, name: str) -> bool:
    with open(elf, "rb") as handle:
        return ELFFile(handle).get_section_by_name(name) is not None


def test_built_modules_as_written_match_libbpf(oracle: libbpf_oracle.Libbpf,
                                               x86_build: BuildArtifacts) -> None:
    """Each published module's own .BTF (already through the C tool) distilled again:
    in-tree modules on their vmlinux, bpf_testmod on its own distilled .BTF.base."""
    mods = find_built_modules()
    if not mods:
        pytest.skip("no cached build with modules")
    identical = 0
    for ko, vml, base_section in mods:
        braw = btf_bytes(ko, base_section) if base_section else btf_bytes(vml)
        raw = btf_bytes(ko)
        want = libbpf_distill(oracle, raw, oracle.new(braw))
        assert not isinstance(want, int), ko
        nb, ns = distill_base(Btf.from_bytes(raw, Btf.from_bytes(braw)))
        assert (nb.to_bytes(), ns.to_bytes()) == want, ko
        identical += 1
    print(f"built modules: {identical}/{len(mods)} identical to libbpf")


def test_resolve_btfids_distill_base_end_to_end(
    oracle: libbpf_oracle.Libbpf, built_vmlinux: tuple[Path, bytes],
    split_blobs: list[tuple[str, bytes]], c_btfids_73: Path, tmp_path: Path,
) -> None:
    """C resolve_btfids --btf_base vmlinux --distill_base: dedup, distill, sort.

    We take libbpf's dedup and do distill + sort ourselves: .BTF and .BTF.base
    must come out byte-identical.
    """
    elf = dummy_elf(tmp_path)
    vm = Btf.from_bytes(built_vmlinux[1])
    ovm = oracle.new(built_vmlinux[1])
    for label, raw in split_blobs[:6]:
        btf_in = tmp_path / "in.btf"
        btf_in.write_bytes(raw)
        c_btf, c_base = run_c_tool(c_btfids_73, btf_in, elf,
                                   "--btf_base", str(built_vmlinux[0]), "--distill_base")
        o = oracle.new(raw, ovm)
        o.call("btf__dedup", None)
        nb, ns = distill_base(Btf.from_bytes(o.raw_data(), vm))
        sort_by_name(ns)
        assert ns.to_bytes() == c_btf, label
        assert nb.to_bytes() == c_base, label


# ---- hand-written cases -----------------------------------------------------------------


def _base() -> Btf:
    b = Btf()
    i = b.add_int("int", 4, 1)                   # 1
    b.add_float("double", 8)                     # 2
    s = b.add_struct("named", 16)                # 3: members must not be followed
    b.add_field("a", i, 0)
    b.add_field("p", 5, 64)
    b.add_ptr(3)                                 # 4
    b.add_ptr(2)                                 # 5 (only reachable through 3)
    anon = b.add_union(None, 8)                  # 6: anonymous, goes to split in full
    b.add_field("d", 2, 0)
    b.add_field("q", 4, 0)
    b.add_enum64("e64", 8)                       # 7: named enum64 -> ENUM size 8
    b.add_enum64_value("BIG", 1 << 40)
    b.add_enum(None, 4)                          # 8: anonymous enum, in full
    b.add_enum_value("NEG", -1)
    b.add_typedef("named_t", s)                  # 9
    b.add_array(i, 9, 3)                         # 10
    b.add_fwd("opaque", 1)                       # 11
    b.add_const(11)                              # 12
    fp = b.add_func_proto(i)                     # 13
    b.add_func_param("x", 12)
    b.add_func("base_fn", 1, fp)                 # 14
    b.add_type_attr("address_space(1)", 1)       # 15
    b.add_int("unused", 8, 0)                    # 16: never referenced
    assert anon == 6
    return b


def test_hand_written_matches_libbpf(oracle: libbpf_oracle.Libbpf) -> None:
    base = _base()
    braw = base.to_bytes()
    s = Btf(base)
    top = s.add_struct("mod_s", 64)              # 17
    s.add_field("u", 6, 0)
    s.add_field("e", 7, 64)
    s.add_field("anon_e", 8, 128)
    s.add_field("arr", 10, 192)
    s.add_field("self", top + 1, 320)
    s.add_ptr(top)                               # 18
    s.add_ptr(13)                                # 19
    s.add_ptr(15)                                # 20
    fp = s.add_func_proto(0)                     # 21
    s.add_func_param("ctx", top + 1)
    s.add_func("mod_fn", 1, fp)                  # 22
    s.add_decl_tag("bpf_kfunc", fp + 1, -1)
    raw = s.to_bytes()
    nb, ns = distill_base(Btf.from_bytes(raw, Btf.from_bytes(braw)))
    assert (nb.to_bytes(), ns.to_bytes()) == libbpf_distill(oracle, raw, oracle.new(braw))
    # base: int, double, named (no members), e64 as ENUM, opaque fwd; struct 'named' stops
    # the walk, so pointer 5 is not pulled in
    kinds = [(t.kind, nb.name(t)) for t in nb.types]
    assert kinds == [(Kind.INT, "int"), (Kind.FLOAT, "double"), (Kind.STRUCT, "named"),
                     (Kind.ENUM, "e64"), (Kind.FWD, "opaque")]
    assert nb[3].members == [] and nb[3].size == 16 and nb[4].size == 8
    split_names = [ns.name(t) for t in ns.types]
    assert "named_t" in split_names and "unused" not in split_names
    assert len([t for t in ns.types if t.kind == Kind.UNION]) == 1


def test_func_reference_rejected_like_libbpf(oracle: libbpf_oracle.Libbpf) -> None:
    base = _base()
    braw = base.to_bytes()
    s = Btf(base)
    s.add_decl_tag("tag_on_base_func", 14, -1)
    raw = s.to_bytes()
    assert isinstance(libbpf_distill(oracle, raw, oracle.new(braw)), int)
    with pytest.raises(BTFError, match="unexpected reference to base type \\[14\\]"):
        distill_base(Btf.from_bytes(raw, Btf.from_bytes(braw)))


def test_needs_split_btf() -> None:
    with pytest.raises(BTFError, match="not split"):
        distill_base(_base())


def test_distilled_split_relocates_names(built_vmlinux: tuple[Path, bytes],
                                         split_blobs: list[tuple[str, bytes]]) -> None:
    """Every base reference of the new split names a type the old base had (what relocation
    needs): same name, kind family and size."""
    vm = Btf.from_bytes(built_vmlinux[1])
    raw = split_blobs[0][1]
    split = Btf.from_bytes(raw, vm)
    nb, ns = distill_base(split)
    for t in nb.types:
        old = vm.find_by_name(nb.name(t))
        assert old, nb.name(t)
        if t.kind in (Kind.STRUCT, Kind.UNION):
            assert any(vm[o].kind == t.kind and vm[o].size == t.size for o in old)
    assert len(ns.types) >= len(split.types)


def test_pure_python_module_pipeline_matches_c(
    built_vmlinux: tuple[Path, bytes], split_blobs: list[tuple[str, bytes]], c_btfids_73: Path,
    tmp_path: Path,
) -> None:
    """No libbpf: harness.btf.dedup, distill_base, sort_by_name == C resolve_btfids
    --btf_base vmlinux --distill_base, for .BTF and .BTF.base."""
    dedup = pytest.importorskip("harness.btf.dedup")
    elf = dummy_elf(tmp_path)
    vm = Btf.from_bytes(built_vmlinux[1])
    for label, raw in split_blobs[:6]:
        btf_in = tmp_path / "in.btf"
        btf_in.write_bytes(raw)
        c_btf, c_base = run_c_tool(c_btfids_73, btf_in, elf,
                                   "--btf_base", str(built_vmlinux[0]), "--distill_base")
        split = Btf.from_bytes(raw, vm)
        dedup.dedup(split)
        nb, ns = distill_base(split)
        sort_by_name(ns)
        assert (ns.to_bytes(), nb.to_bytes()) == (c_btf, c_base), label
