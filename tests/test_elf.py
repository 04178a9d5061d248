"""harness.elf against pyelftools, on objects binutils assembles in both classes and byte orders.

pyelftools is the independent reader here: our fast symbol walk must give the
same symbols (name, value, size, section, info) and our section list the same
headers, on every layout the assemblers on this machine can produce.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from harness.elf import SHT_SYMTAB, ElfError, ElfFile, is_elf
from tests.helpers import synth

LAYOUTS = [("x86_64", "little"), ("i386", "little"), ("arm64", "little"), ("arm64", "big")]

ASM = """\
.section .text.one,"ax"
.globl fn_one
.type fn_one, @function
fn_one:
.long 1, 2, 3
.size fn_one, 12
local_fn:
.long 4
.size local_fn, 4
.section .rodata
.globl table
table:
.long 5, 6
.size table, 8
.weak weak_ref
.globl undefined_ref
.section .data
.long undefined_ref
.section .bss
.zero 16
"""


def _pyelftools_symbols(path: Path) -> list[tuple[bytes, int, int, int, int]]:
    with path.open("rb") as fh:
        elf = ELFFile(fh)
        symtab = elf.get_section_by_name(".symtab")
        out = []
        for sym in symtab.iter_symbols():
            shndx = sym["st_shndx"]
            shndx = {"SHN_UNDEF": 0, "SHN_ABS": 0xFFF1, "SHN_COMMON": 0xFFF2}.get(shndx, shndx)
            info = sym.entry["st_info"]
            bind = {"STB_LOCAL": 0, "STB_GLOBAL": 1, "STB_WEAK": 2}[info["bind"]]
            kind = {"STT_NOTYPE": 0, "STT_OBJECT": 1, "STT_FUNC": 2, "STT_SECTION": 3,
                    "STT_FILE": 4}[info["type"]]
            out.append((sym.name.encode(), sym["st_value"], sym["st_size"], shndx,
                        bind << 4 | kind))
        return out


@pytest.fixture(params=LAYOUTS, ids=lambda p: f"{p[0]}-{p[1]}")
def obj(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    arch, endian = request.param
    if not synth.have_assembler(arch, endian):
        pytest.skip(f"no assembler for {arch} {endian}")
    return synth.assemble(ASM.replace("@function", "%function") if arch == "arm64" else ASM,
                          tmp_path / "obj.o", arch, endian)


def test_sections_equal_pyelftools(obj: Path) -> None:
    with obj.open("rb") as fh:
        theirs = [(s.name, s["sh_offset"], s["sh_size"], s["sh_addr"], s["sh_link"])
                  for s in ELFFile(fh).iter_sections()]
    with ElfFile(obj) as elf:
        ours = [(s.name, s.offset, s.size, s.addr, s.link) for s in elf.sections]
        assert ours == theirs
        assert elf.section_bytes(".rodata") == b"".join(
            v.to_bytes(4, elf.endian) for v in (5, 6))
        assert elf.section_bytes(".nope") is None
        with pytest.raises(ElfError, match=r"\.bss has no data"):
            elf.section_bytes(".bss")


def test_symbols_equal_pyelftools(obj: Path) -> None:
    with ElfFile(obj) as elf:
        symtab = elf.symtab()
        assert symtab is not None and symtab.type == SHT_SYMTAB
        ours = [(s.name, s.value, s.size, s.shndx, s.info) for s in elf.symbols(symtab)]
        assert ours == _pyelftools_symbols(obj)
        text = elf.first_section(".text.one")
        assert text is not None
        in_text = elf.symbols(symtab, text.index)
        assert {s.name for s in in_text} >= {b"fn_one", b"local_fn"}
        assert all(s.shndx == text.index for s in in_text)
        with_table = elf.symbols(symtab, text.index, also=b"table")
        assert [s.name for s in with_table if s.shndx != text.index] == [b"table"]
        table = next(s for s in with_table if s.name == b"table")
        assert elf.read_at_symbol(table, 8) == elf.section_bytes(".rodata")


def test_from_bytes_equals_file(obj: Path) -> None:
    with ElfFile(obj) as a, ElfFile.from_bytes(obj.read_bytes(), "mem") as b:
        assert a.sections == b.sections
        assert (a.is64, a.endian, a.e_machine) == (b.is64, b.endian, b.e_machine)


def test_not_an_elf_names_the_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.o"
    junk.write_bytes(b"hello world\n" * 10)
    with pytest.raises(ElfError) as info:
        ElfFile(junk)
    assert str(info.value) == f"{junk}: not an ELF file" and info.value.step == "not-elf"


@pytest.mark.parametrize("keep", [20, 64, 200, -40])
def test_truncated_is_one_error(obj: Path, tmp_path: Path, keep: int) -> None:
    cut = tmp_path / "cut.o"
    cut.write_bytes(obj.read_bytes()[:keep])
    with pytest.raises(ElfError) as info, ElfFile(cut) as elf:
        symtab = elf.symtab()
        if symtab is not None:
            elf.symbols(symtab)
        raise AssertionError("a cut ELF was read without complaint")
    assert str(info.value).startswith(f"{cut}: ") and "\n" not in str(info.value)


def test_missing_file_is_an_open_error(tmp_path: Path) -> None:
    with pytest.raises(ElfError) as info:
        ElfFile(tmp_path / "missing")
    assert info.value.step == "open" and "No such file" in str(info.value)


def test_is_elf_reads_four_bytes(tmp_path: Path) -> None:
    """A FIFO whose writer sent only the magic and stays open: reading more would block."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    release = threading.Event()

    def writer() -> None:
        with open(fifo, "wb") as f:
            f.write(b"\x7fELF")
            f.flush()
            release.wait(10)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        assert is_elf(fifo)
    finally:
        release.set()
        thread.join(10)
