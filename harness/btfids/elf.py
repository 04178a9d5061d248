"""The ELF side of resolve_btfids: the C tool's wording over harness.elf, the kernel
version, and patching .BTF_ids in place.

Why this module: the reader itself is the project's one ELF module
(harness.elf); what belongs to the drop-in is how it fails (the C tool's
libelf messages, exit 255), which symbols it wants from one pass over the
symbol table, and the in-place section write of --patch_btfids and the 6.12
profile.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from harness.btfids.errors import BtfidsError
from harness.elf import BANNER_SYMBOL, ElfError, ElfFile, Section, Symbol
from harness.kfunc_abi import BTF_IDS_SECTION


def c_wording(exc: ElfError) -> str:
    """What the C resolve_btfids prints for the libelf step that failed."""
    if exc.step == "open":
        return f"FAILED cannot open {exc.path}: {exc.strerror}"
    if exc.step == "not-elf":
        # libelf accepts anything at elf_begin(); a non-ELF file first fails when
        # asked for its section-name string table index.
        return "FAILED cannot get shdr str ndx"
    if exc.step == "section-header":
        return f"FAILED get section({exc.index}) header"
    if exc.step == "section-name":
        return f"FAILED get section({exc.index}) name"
    if exc.step == "section-data":
        return f"FAILED to get section({exc.index}) data from {exc.section}"
    return f"FAILED {exc}"


@contextlib.contextmanager
def c_errors() -> Iterator[None]:
    """Turn an ElfError raised inside into the C tool's BtfidsError."""
    try:
        yield
    except ElfError as exc:
        raise BtfidsError(c_wording(exc)) from None


def open_elf(path: str | os.PathLike[str], *, writable_check: bool = True) -> ElfFile:
    """ElfFile(path), failing with the C tool's wording; opened O_RDWR first as the C tool
    does, so a read-only input fails the same way."""
    with c_errors():
        return ElfFile(path, writable_check=writable_check)


def symbols_and_banner(elf: ElfFile, symtab: Section,
                       shndx: int) -> tuple[list[Symbol], Symbol | None]:
    """The symbols in section `shndx` plus the `linux_banner` symbol, in one pass."""
    found = elf.symbols(symtab, shndx, also=BANNER_SYMBOL)
    banner = None
    for sym in found:
        if sym.name == BANNER_SYMBOL:
            banner = sym
    return [sym for sym in found if sym.shndx == shndx], banner


def patch_section(path: str | os.PathLike[str], blob_path: str | os.PathLike[str]) -> None:
    """--patch_btfids: copy a .BTF_ids blob into the ELF's first .BTF_ids section."""
    try:
        st = os.stat(blob_path)
    except OSError as exc:
        raise BtfidsError(f"FAILED to stat {blob_path}: {exc.strerror}") from None
    try:
        blob = Path(blob_path).read_bytes()
    except OSError as exc:
        raise BtfidsError(f"FAILED to open {blob_path}: {exc.strerror}") from None
    write_section(path, BTF_IDS_SECTION, blob, first=True, blob_name=str(blob_path),
                  blob_size=st.st_size)


def write_section(path: str | os.PathLike[str], name: str, data: bytes, *,
                  first: bool = False, blob_name: str = "data",
                  blob_size: int | None = None) -> None:
    """Overwrite section `name` of the ELF in place with `data` of its exact size.

    Every check (section present, sizes equal) happens before the single positioned
    write of the section bytes, so a failure leaves the ELF untouched; the bytes
    outside the section are never rewritten, as libelf's ELF_F_LAYOUT update leaves
    them. --patch_btfids (7.x) writes the first .BTF_ids, the 6.12 tool its last.
    """
    elf_path = str(path)
    try:
        fd = os.open(elf_path, os.O_RDWR)
    except OSError as exc:
        raise BtfidsError(f"FAILED to open {elf_path}: {exc.strerror}") from None
    os.close(fd)
    with open_elf(elf_path) as elf:
        sec = elf.first_section(name) if first else elf.last_section(name)
        if sec is None:
            raise BtfidsError(f"FAILED: section {name} not found in {elf_path}")
        offset = sec.offset
        size = len(elf.section_data(sec))
    given = len(data) if blob_size is None else blob_size
    if given != size:
        raise BtfidsError(
            f"FAILED: size mismatch - {name} section in {elf_path} is {size} bytes, "
            f"{blob_name} is {given} bytes")
    if len(data) != size:
        raise BtfidsError(f"FAILED to read {blob_name}")
    try:
        fd = os.open(elf_path, os.O_RDWR)
        try:
            if os.pwrite(fd, data, offset) != size:
                raise BtfidsError(f"FAILED to update ELF file {elf_path}")
        finally:
            os.close(fd)
    except OSError:
        raise BtfidsError(f"FAILED to update ELF file {elf_path}") from None
