"""harness.kfunc_abi: flag names, the BTF_ID symbol parser, and the set8 reader on
objects binutils assembles (both byte orders), the same inputs resolve_btfids reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import kfunc_abi as abi
from tests.helpers import synth


def test_flag_table_is_the_kernels() -> None:
    assert len(abi.KF_FLAGS) == 19
    assert abi.KF_FLAGS[1 << 16] == "KF_IMPLICIT_ARGS"
    assert abi.flag_names(abi.KF_ACQUIRE | abi.KF_RET_NULL | (1 << 30)) == [
        "KF_ACQUIRE", "KF_RET_NULL", "0x40000000"]
    assert abi.flag_names(0) == []


@pytest.mark.parametrize(("rest", "name"), [
    (b"__bpf_wq_set_callback__123", b"bpf_wq_set_callback"),
    (b"__foo___12", b"foo_"),        # the last "_" with a "_" before it ends the name
    (b"__foo__1_2", None),           # get_id() fails: no "__" before the last "_"
    (b"__", None),
    (b"", None),
])
def test_btf_id_name_parses_as_get_id(rest: bytes, name: bytes | None) -> None:
    assert abi.btf_id_name(rest) == name


def test_set_layout_offsets() -> None:
    assert abi.pair_offset(0) == abi.SET8_PAIRS == 8
    assert abi.pair_offset(3) == 8 + 3 * abi.SET8_PAIR_SIZE
    assert abi.set8_count(8 + 6 * 8) == 6 and abi.set_count(4 + 4 * 4) == 4


@pytest.mark.parametrize(("arch", "endian"), [("x86_64", "little"), ("arm64", "big")])
def test_read_set8s_on_an_assembled_object(tmp_path: Path, arch: str, endian: str) -> None:
    if not synth.have_assembler(arch, endian):
        pytest.skip(f"no assembler for {arch} {endian}")
    obj = synth.assemble(synth.default_asm(), tmp_path / "obj.o", arch, endian)
    sets = {s.name: s for s in abi.read_set8s(obj)}
    assert list(sets) == ["kfuncs_a", "kfuncs_b", "not_kfuncs"]
    a = sets["kfuncs_a"]
    assert a.is_kfuncs and not sets["not_kfuncs"].is_kfuncs
    assert [(e.name, e.flags, e.btf_id) for e in a.entries][:2] == [
        ("bpf_wq_set_callback", abi.KF_IMPLICIT_ARGS, 0),
        ("bpf_obj_new", abi.KF_IMPLICIT_ARGS | abi.KF_ACQUIRE, 0)]



def test_a_set_past_the_section_is_one_error(tmp_path: Path) -> None:
    if not synth.have_assembler("x86_64", "little"):
        pytest.skip("no assembler")
    obj = synth.assemble(synth.default_asm(set8_size=4096), tmp_path / "obj.o")
    with pytest.raises(abi.SetsError, match=r"set8 kfuncs_a: symbol of size 4096"):
        abi.read_set8s(obj)


def test_not_an_elf(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"\0" * 64)
    with pytest.raises(abi.SetsError, match="not an ELF file"):
        abi.read_set8s(junk)
