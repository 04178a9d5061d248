"""Sort by name and btf__permute: byte-identical to libbpf and to the C resolve_btfids.

Oracles: libbpf's btf__permute() through ctypes for arbitrary permutations, and
the tree's own C resolve_btfids (7.3 built with the kernel, 7.2 built from the
7.2 tree into the oracle cache) for the sort order. The C tool runs on a
dummy ELF without .BTF_ids, so its only transformations are dedup (7.3) and
sort: we apply libbpf's dedup (7.3) and our sort, and compare the bytes.
"""

from __future__ import annotations

import ctypes
import random
import subprocess
from pathlib import Path

import pytest

from harness.btf import Btf, BTFError, Kind
from harness.btf.sort import name_order, permute, reorder, sort_by_name
from tests.helpers import libbpf_oracle

PAHOLE_FLAGS = ["--btf_features=encode_force,var,float,enum64,decl_tag,type_tag,"
                "optimized_func,consistent_func,layout", "--lang_exclude=rust"]
SYSFS_VMLINUX = Path("/sys/kernel/btf/vmlinux")

_U32P = ctypes.POINTER(ctypes.c_uint32)


def _declare(lib: libbpf_oracle.Libbpf) -> None:
    lib.declare("btf__permute", ctypes.c_int,
                [ctypes.c_void_p, _U32P, ctypes.c_uint32, ctypes.c_void_p])


def libbpf_permute(lib: libbpf_oracle.Libbpf, raw: bytes, id_map: list[int],
                   base: libbpf_oracle.OracleBtf | None = None) -> bytes | int:
    """btf__permute on a fresh parse of `raw`: the new bytes, or the error code."""
    _declare(lib)
    o = lib.new(raw, base)
    arr = (ctypes.c_uint32 * len(id_map))(*id_map)
    err = lib.so.btf__permute(o.ptr, arr, len(id_map), None)
    return err if err else o.raw_data()


def dummy_elf(d: Path) -> Path:
    """An ELF with no .BTF_ids: resolve_btfids then only transforms --btf and writes .BTF."""
    src = d / "empty.c"
    src.write_text("int harness_dummy;\n")
    obj = d / "empty.o"
    subprocess.run(["cc", "-c", str(src), "-o", str(obj)], check=True, capture_output=True)
    return obj


def run_c_tool(tool: Path, btf_in: Path, elf: Path, *extra: str) -> tuple[bytes, bytes | None]:
    for suffix in (".BTF", ".BTF.base", ".BTF_ids"):
        Path(f"{elf}{suffix}").unlink(missing_ok=True)
    proc = subprocess.run([str(tool), *extra, "--btf", str(btf_in), str(elf)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    base = Path(f"{elf}.BTF.base")
    return Path(f"{elf}.BTF").read_bytes(), base.read_bytes() if base.exists() else None


# ---- inputs -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def vmlinux_raws(vmlinux_73_raw: bytes) -> list[tuple[str, bytes]]:
    """Real vmlinux BTF blobs: the project's 7.3 x86_64 kernel's (checked in) and the host's."""
    out = [("built-x86", vmlinux_73_raw)]
    if SYSFS_VMLINUX.exists():
        out.append(("host", SYSFS_VMLINUX.read_bytes()))
    return out


@pytest.fixture(scope="session")
def pahole_vmlinux(tmp_path_factory: pytest.TempPathFactory, pahole_132: Path,
                   x86_build_dir: Path) -> Path:
    """pahole 1.32's BTF for .tmp_vmlinux1: what resolve_btfids gets as --btf in a build."""
    from harness.cache import locked

    out = tmp_path_factory.mktemp("pahole") / "vmlinux.BTF.1"
    with locked(x86_build_dir):  # no relink (another worker's pahole swap) meanwhile
        subprocess.run([str(pahole_132), "-J", *PAHOLE_FLAGS, f"--btf_encode_detached={out}",
                        str(x86_build_dir / ".tmp_vmlinux1")], check=True, capture_output=True)
    return out


# ---- btf__permute -------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
def test_random_permutation_matches_libbpf(
    oracle: libbpf_oracle.Libbpf, vmlinux_raws: list[tuple[str, bytes]], seed: int
) -> None:
    for label, raw in vmlinux_raws:
        b = Btf.from_bytes(raw)
        n = len(b.types)
        own = list(range(1, n + 1))
        random.Random(seed).shuffle(own)
        id_map = [0, *own]
        full = permute(b, id_map)
        assert full == id_map
        assert b.to_bytes() == libbpf_permute(oracle, raw, id_map), label


def test_split_permutation_matches_libbpf(
    oracle: libbpf_oracle.Libbpf, vmlinux_raws: list[tuple[str, bytes]]
) -> None:
    label, raw = vmlinux_raws[0]
    vm = Btf.from_bytes(raw)
    split = _small_split(vm)
    sraw = split.to_bytes()
    n = len(split.types)
    start = split.start_id
    own = [start + i for i in range(n)]
    random.Random(7).shuffle(own)
    got = Btf.from_bytes(sraw, vm)
    full = permute(got, own)
    assert full[:start] == list(range(start))
    assert full[start:] == own
    assert got.to_bytes() == libbpf_permute(oracle, sraw, own, oracle.new(raw)), label


def test_reorder_is_permute_by_new_order(vmlinux_raws: list[tuple[str, bytes]]) -> None:
    raw = vmlinux_raws[0][1]
    a, b = Btf.from_bytes(raw), Btf.from_bytes(raw)
    order = list(range(1, len(a.types) + 1))
    random.Random(3).shuffle(order)
    full = reorder(a, order)
    id_map = [0] * (len(order) + 1)
    for k, old in enumerate(order):
        id_map[old] = k + 1
    assert full == id_map
    permute(b, id_map)
    assert a.to_bytes() == b.to_bytes()


def test_bad_maps_rejected_like_libbpf(oracle: libbpf_oracle.Libbpf) -> None:
    b = Btf()
    i = b.add_int("int", 4, 1)
    b.add_ptr(i)
    b.add_typedef("t", i)
    raw = b.to_bytes()
    for bad in ([0, 1, 2], [1, 0, 2, 3], [0, 1, 1, 2], [0, 1, 2, 4], [0, 0, 1, 2]):
        before = Btf.from_bytes(raw)
        with pytest.raises(BTFError):
            permute(before, bad)
        assert before.to_bytes() == raw  # unchanged on error
        assert isinstance(libbpf_permute(oracle, raw, bad), int)
    with pytest.raises(BTFError):
        reorder(Btf.from_bytes(raw), [1, 1, 2])


def test_dangling_reference_rejected_and_untouched() -> None:
    b = Btf()
    i = b.add_int("int", 4, 1)
    b.add_ptr(9)  # forward reference that never gets defined
    before = b.to_bytes()
    with pytest.raises(BTFError, match="refers to id 9"):
        permute(b, [0, 2, 1])
    assert b.to_bytes() == before
    assert b[i].kind == Kind.INT


# ---- sort by name ---------------------------------------------------------------------


def test_sort_order_rules() -> None:
    """strcmp order on bytes, anonymous first, ties in id order, ids remapped."""
    b = Btf()
    i = b.add_int("int", 4, 1)          # 1
    b.add_ptr(i)                         # 2 anonymous
    b.add_struct("b", 4)                 # 3
    b.add_field("x", i, 0)
    b.add_typedef("B", 3)                # 4 uppercase sorts before lowercase
    b.add_typedef("_u", 4)               # 5 '_' (0x5f) between 'B' and 'b'
    b.add_fwd("b", 0)                    # 6 same name as 3: after it
    b.add_ptr(6)                         # 7 anonymous, after 2
    b.add_typedef("\u00e9t\u00e9", i)    # 8 UTF-8 bytes 0xc3.. sort last
    full = sort_by_name(b)
    names = [b.name(t) for t in b.types]
    assert names == ["", "", "B", "_u", "b", "b", "int", "\u00e9t\u00e9"]
    assert full == [0, 7, 1, 5, 3, 4, 6, 2, 8]
    assert b[5].kind == Kind.STRUCT and b[5].members[0].type == 7  # int moved to 7
    assert b[6].kind == Kind.FWD and b[2].type == 6  # pointer followed its target
    assert b[3].type == 5 and b[4].type == 3  # B -> struct b, _u -> B


def test_sort_split_keeps_base_refs(oracle: libbpf_oracle.Libbpf,
                                    vmlinux_raws: list[tuple[str, bytes]]) -> None:
    raw = vmlinux_raws[0][1]
    vm = Btf.from_bytes(raw)
    split = _small_split(vm)
    sraw = split.to_bytes()
    full = sort_by_name(split)
    own = full[split.start_id:]
    assert split.to_bytes() == libbpf_permute(oracle, sraw, own, oracle.new(raw))
    names = [split.name(t).encode() for t in split.types]
    assert names == sorted(names)


def test_sort_is_idempotent_on_c_output(vmlinux_raws: list[tuple[str, bytes]]) -> None:
    """The C tool's output is sorted already: sorting again moves nothing."""
    for label, raw in vmlinux_raws:
        b = Btf.from_bytes(raw)
        if label == "host":  # the host's 6.18 BTF was not sorted by resolve_btfids
            continue
        full = sort_by_name(b)
        assert full == list(range(b.type_count))
        assert b.to_bytes() == raw


def test_sort_matches_c_resolve_btfids_73(
    oracle: libbpf_oracle.Libbpf, pahole_vmlinux: Path, c_btfids_73: Path, tmp_path: Path
) -> None:
    c_btf, _ = run_c_tool(c_btfids_73, pahole_vmlinux, dummy_elf(tmp_path))
    o = oracle.new(pahole_vmlinux.read_bytes())
    o.call("btf__dedup", None)  # 7.3 dedups before sorting: same libbpf, same input
    b = Btf.from_bytes(o.raw_data())
    sort_by_name(b, "7.3")
    assert b.to_bytes() == c_btf


def test_sort_matches_c_resolve_btfids_72(pahole_vmlinux: Path, c72: Path,
                                          tmp_path: Path) -> None:
    """7.2's sort (no dedup) equals 7.3's comparator; checked against the 7.2 C tool."""
    c_btf, _ = run_c_tool(c72, pahole_vmlinux, dummy_elf(tmp_path))
    b = Btf.from_bytes(pahole_vmlinux.read_bytes())
    sort_by_name(b, "7.2")
    assert b.to_bytes() == c_btf


def test_unknown_profile() -> None:
    with pytest.raises(BTFError, match="profile"):
        name_order(Btf(), "6.12")


def _small_split(vm: Btf) -> Btf:
    """Split BTF on `vm` referring to base types, own types and base strings, unsorted."""
    s = Btf(vm)
    int_id = vm.find("int", Kind.INT)
    task = vm.find("task_struct", Kind.STRUCT)
    st = s.add_struct("zeta_mod", 16)
    s.add_field("t", st + 2, 0)
    s.add_field("n", int_id, 64)
    s.add_typedef("alpha_t", st)
    s.add_ptr(task)
    s.add_ptr(st)
    s.add_struct("task_struct", 0)  # a same-named type in the split
    fp = s.add_func_proto(int_id)
    s.add_func_param("p", st + 3)
    s.add_func("beta_fn", 1, fp)
    s.add_decl_tag("bpf_kfunc", fp + 1, -1)
    return s


def test_pure_python_dedup_then_sort_matches_c_73(pahole_vmlinux: Path, c_btfids_73: Path,
                                                  tmp_path: Path) -> None:
    """No libbpf at all: harness.btf.dedup then our sort equals the 7.3 C tool's .BTF."""
    dedup = pytest.importorskip("harness.btf.dedup")
    c_btf, _ = run_c_tool(c_btfids_73, pahole_vmlinux, dummy_elf(tmp_path))
    b = Btf.from_bytes(pahole_vmlinux.read_bytes())
    dedup.dedup(b)
    sort_by_name(b, "7.3")
    assert b.to_bytes() == c_btf
