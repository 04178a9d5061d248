"""parse -> write must give back the exact bytes, on real BTF from everywhere we can get it."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.btf import Btf, BTFError, DeclTag, Func, load
from harness.btf.kernel_rules import KERNEL_7_3
from harness.btf.load import btf_and_base_bytes, btf_bytes
from tests.btf.conftest import SYSFS, modules_of

SYSFS_MODULES = sorted(p for p in SYSFS.glob("*") if p.name != "vmlinux") if SYSFS.exists() else []


@pytest.fixture(scope="module")
def host_vmlinux() -> Btf:
    if not (SYSFS / "vmlinux").exists():
        pytest.skip("no /sys/kernel/btf/vmlinux")
    return load(SYSFS / "vmlinux")


def test_host_vmlinux_identical(host_vmlinux: Btf) -> None:
    raw = (SYSFS / "vmlinux").read_bytes()
    assert host_vmlinux.to_bytes() == raw
    assert len(host_vmlinux) > 1000


@pytest.mark.parametrize("path", SYSFS_MODULES, ids=lambda p: p.name)
def test_host_modules_identical(path: Path, host_vmlinux: Btf) -> None:
    b = load(path, base=host_vmlinux)
    assert b.start_id == host_vmlinux.type_count
    assert b.to_bytes() == path.read_bytes()


def test_clang_object_identical(clang_obj: Path) -> None:
    raw = btf_bytes(clang_obj)
    b = Btf.from_bytes(raw)
    assert b.to_bytes() == raw
    kinds = {t.kind.name for t in b.types}
    # clang 14 emits no ENUM64 (clang >= 15 does); vmlinux and the edit tests cover it
    for k in ("INT", "PTR", "ARRAY", "STRUCT", "UNION", "ENUM", "FWD", "TYPEDEF",
              "VOLATILE", "CONST", "RESTRICT", "FUNC", "FUNC_PROTO", "VAR", "DATASEC",
              "FLOAT", "DECL_TAG", "TYPE_TAG"):
        assert k in kinds, k


def test_big_endian_identical(clang_obj: Path) -> None:
    """Swap the blob to the other byte order by hand: parse and write must keep it."""
    raw = btf_bytes(clang_obj)
    b = Btf.from_bytes(raw)
    b.endian = "big"
    swapped = b.to_bytes()
    assert swapped[:2] == b"\xeb\x9f"
    back = Btf.from_bytes(swapped)
    assert back.endian == "big"
    assert back.to_bytes() == swapped
    back.endian = "little"
    assert back.to_bytes() == raw


def test_built_vmlinux_identical(vmlinux_73_raw: bytes) -> None:
    """The project's own 7.3 build (checked in): kfunc tags, _impl copies, arena attrs."""
    raw = vmlinux_73_raw
    assert Btf.from_bytes(raw).to_bytes() == raw


def test_built_modules_identical(x86_build_dir: Path) -> None:
    """Every module's split BTF; out-of-tree ones (bpf_testmod) on their .BTF.base."""
    build = x86_build_dir
    mods = modules_of(build)
    if not mods:
        pytest.skip("this build has no modules")
    vm = load(build / "vmlinux")
    for ko in mods:
        raw, dist_base = btf_and_base_bytes(ko)
        if dist_base is not None:
            b = load(ko)
            assert b.base is not None and b.base.to_bytes() == dist_base, ko
        else:
            b = load(ko, base=vm)
        assert b.start_id == b.base.type_count
        assert b.to_bytes() == raw, ko


def _small_btf() -> Btf:
    b = Btf()
    i = b.add_int("int", 4, 1)
    s = b.add_struct("pair", 8)
    b.add_field("a", i, 0)
    b.add_field("b", i, 32)
    ptr = b.add_ptr(s)
    proto = b.add_func_proto(i)
    b.add_func_param("p", ptr)
    b.add_func("sum", 1, proto)
    return b


@pytest.mark.parametrize("endian", ["little", "big"])
def test_strict_read_writes_what_it_read_and_what_was_changed(endian: str) -> None:
    """A BTF read under the kernel's rules decodes its records on first use: until then
    it writes them back as read (in either byte order), after an edit it writes the edit,
    and its copies are independent of it."""
    lenient = _small_btf()
    lenient.endian = endian
    raw = lenient.to_bytes()
    strict = Btf.from_bytes(raw, strict=KERNEL_7_3)
    assert (len(strict), strict.type_count, strict.endian) == (len(lenient), 6, endian)
    assert strict.to_bytes() == raw
    other = "big" if endian == "little" else "little"
    strict.endian = other
    lenient.endian = other
    assert strict.to_bytes() == lenient.to_bytes() != raw
    strict.endian = endian

    before_edit = strict.copy()
    assert strict.types == Btf.from_bytes(raw).types
    strict[2].size = 16
    edited = strict.to_bytes()
    assert edited != raw and Btf.from_bytes(edited)[2].size == 16
    assert before_edit.to_bytes() == raw
    assert before_edit.find_by_name("pair") == [2]
    assert Btf.from_bytes(raw, strict=KERNEL_7_3).copy()[2].size == 8


def test_strict_read_of_host_vmlinux_equals_lenient(host_vmlinux: Btf) -> None:
    raw = (SYSFS / "vmlinux").read_bytes()
    strict = Btf.from_bytes(raw, strict=KERNEL_7_3)
    assert strict.to_bytes() == raw
    assert strict.type_count == host_vmlinux.type_count
    assert strict.types == host_vmlinux.types


def test_strict_read_decodes_a_looked_up_record_alone() -> None:
    """A lookup by id on a BTF still as read decodes that record only (a module's run
    looks up a few of its base's types); the object it returns is the one the full
    decode keeps later, so an edit made through it is written and copied."""
    raw = _small_btf().to_bytes()
    decoded = Btf.from_bytes(raw)
    strict = Btf.from_bytes(raw, strict=KERNEL_7_3)
    looked_up = [strict[tid] for tid in strict.ids()]
    assert looked_up == decoded.types
    assert strict._types is None  # nothing decoded as a whole yet
    assert strict[2] is looked_up[1]
    for cls in {type(t) for t in decoded.types}:
        assert strict.ids_of(cls) == decoded.ids_of(cls)
    assert strict.to_bytes() == raw

    pair = strict[2]
    pair.size = 16
    assert strict.copy()[2].size == 16
    assert Btf.from_bytes(strict.to_bytes())[2].size == 16
    assert strict.types[1] is pair
    with pytest.raises(BTFError, match="out of range"):
        Btf.from_bytes(raw, strict=KERNEL_7_3)[strict.type_count]


def test_split_lookups_on_a_strict_base_of_host_vmlinux(host_vmlinux: Btf) -> None:
    """A split BTF on a base read under the kernel's rules sees the same base types, by
    id and by kind, as on a decoded base, without the base being decoded whole."""
    raw = (SYSFS / "vmlinux").read_bytes()
    base = Btf.from_bytes(raw, strict=KERNEL_7_3)
    module = Btf(host_vmlinux)
    ptr = module.add_ptr(host_vmlinux.type_count - 1)
    module.add_decl_tag("harness_test", module.add_typedef("harness_ptr_t", ptr), -1)
    split = Btf.from_bytes(module.to_bytes(), base)
    assert base._types is None
    for tid in (1, 2, base.type_count // 2, base.type_count - 1, ptr):
        assert split[tid] == module[tid]
    base_tags = [tid for tid, t in host_vmlinux.items() if type(t) is DeclTag]
    assert split.all_ids_of(DeclTag) == [*base_tags, ptr + 2]
    assert split.all_ids_of(Func) == host_vmlinux.ids_of(Func)
    assert base._types is None
