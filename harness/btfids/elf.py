"""The ELF side of resolve_btfids: section layout, the symbol table, .BTF_ids bytes.

Why this module: resolve_btfids needs little from the ELF (the `.BTF_ids`
section, the symbols pointing into it, a kernel version string) but needs it
fast: vmlinux has ~260k symbols, and pyelftools' iter_symbols() takes seconds
on them. So pyelftools reads the layout (header and section headers, with its
SHN_XINDEX handling), and the symbol table is read with one struct.iter_unpack
over a memory map of the file.

Both byte orders and both ELF classes are handled; nothing here assumes the
host's byte order.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from harness.btfids.errors import BtfidsError

BTF_IDS_SECTION = ".BTF_ids"
SHT_SYMTAB = 2
SHT_NOBITS = 8
ET_REL = 1
ELF_MAGIC = b"\x7fELF"
_BANNER_SYMBOL = b"linux_banner"
_VERSION_RE = re.compile(rb"(\d+)\.(\d+)")


@dataclass(frozen=True, slots=True)
class Section:
    """One section header, with the fields resolve_btfids looks at."""

    index: int
    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    entsize: int


@dataclass(frozen=True, slots=True)
class Symbol:
    """A symbol that lives in one section: name, value (address) and size."""

    name: bytes
    value: int
    size: int
    shndx: int = 0


class ElfObject:
    """An ELF file opened for reading, mapped into memory.

    `endian` is "little" or "big" (the target's), `is64` the class. Section data
    is read from the map, so a 130 MB vmlinux costs no copy.
    """

    def __init__(self, path: str | os.PathLike[str], *, writable_check: bool = True):
        """Open and map `path`; raise BtfidsError with the C tool's wording on failure.

        `writable_check` opens the file read-write first, as resolve_btfids does
        (O_RDWR), so a read-only input fails the same way it does with the C tool.
        """
        self.path = str(path)
        flags = os.O_RDWR if writable_check else os.O_RDONLY
        try:
            fd = os.open(self.path, flags)
        except OSError as exc:
            raise BtfidsError(f"FAILED cannot open {self.path}: {exc.strerror}") from None
        try:
            size = os.fstat(fd).st_size
            self._map: mmap.mmap | bytes = (
                mmap.mmap(fd, size, access=mmap.ACCESS_READ) if size else b""
            )
        finally:
            os.close(fd)
        self.data = memoryview(self._map)
        self._parse_layout()

    def close(self) -> None:
        """Release the memory map; if views of it are still alive (an exception's
        traceback may hold some), leave it to the garbage collector."""
        try:
            self.data.release()
            if isinstance(self._map, mmap.mmap):
                self._map.close()
        except BufferError:
            pass

    def __enter__(self) -> ElfObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- layout -----------------------------------------------------------------

    def _parse_layout(self) -> None:
        data = self.data
        # libelf accepts anything at elf_begin(); a non-ELF file first fails when
        # asked for its section-name string table index.
        if len(data) < 16 or bytes(data[:4]) != ELF_MAGIC or data[4] not in (1, 2) \
                or data[5] not in (1, 2):
            raise BtfidsError("FAILED cannot get shdr str ndx")
        self.is64 = data[4] == 2
        self.endian = "little" if data[5] == 1 else "big"
        e = "<" if self.endian == "little" else ">"
        self._e = e
        try:
            if self.is64:
                (self.e_type, self.e_machine, _, _, _, shoff, _, _, _, _, shentsize, shnum,
                 shstrndx) = struct.unpack_from(e + "HHIQQQIHHHHHH", data, 16)
            else:
                (self.e_type, self.e_machine, _, _, _, shoff, _, _, _, _, shentsize, shnum,
                 shstrndx) = struct.unpack_from(e + "HHIIIIIHHHHHH", data, 16)
        except struct.error:
            raise BtfidsError(f"FAILED cannot get ELF header: {self.path} is truncated") from None
        self.sections = self._read_sections(shoff, shentsize, shnum, shstrndx)

    def _read_sections(self, shoff: int, shentsize: int, shnum: int,
                       shstrndx: int) -> list[Section]:
        """Section headers through pyelftools (it resolves SHN_XINDEX counts and names)."""
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile

        want = 64 if self.is64 else 40
        if shnum == 0 and shoff == 0:
            return []
        if shentsize != want or shoff + shentsize > len(self.data):
            raise BtfidsError("FAILED cannot get shdr str ndx")
        try:
            elf = ELFFile(_MapStream(self.data))
            shstr_idx = elf.get_shstrndx()
            count = elf.num_sections()
            if shoff + count * shentsize > len(self.data):
                raise BtfidsError(f"FAILED get section({count - 1}) header")
            shstr = elf.get_section(shstr_idx).header
            names = self._bounded(shstr["sh_offset"], shstr["sh_size"], shstr_idx, ".shstrtab")
            out = []
            for idx in range(count):
                h = elf.get_section(idx).header
                name_off = h["sh_name"]
                if idx and name_off >= len(names):
                    raise BtfidsError(f"FAILED get section({idx}) name")
                end = names.find(b"\0", name_off)
                if end < 0:
                    raise BtfidsError(f"FAILED get section({idx}) name")
                sec = Section(
                    idx, names[name_off:end].decode("utf-8", "surrogateescape"),
                    _sh_type(h["sh_type"]), h["sh_flags"], h["sh_addr"], h["sh_offset"],
                    h["sh_size"], h["sh_link"], h["sh_entsize"],
                )
                if idx and sec.type != SHT_NOBITS and sec.offset + sec.size > len(self.data):
                    raise BtfidsError(
                        f"FAILED to get section({idx}) data from {sec.name}")
                out.append(sec)
            return out
        except BtfidsError:
            raise
        except (ELFError, struct.error, ValueError, KeyError, IndexError) as exc:
            raise BtfidsError(f"FAILED cannot read ELF {self.path}: {exc}") from None

    def _bounded(self, offset: int, size: int, idx: int, name: str) -> bytes:
        if offset + size > len(self.data):
            raise BtfidsError(f"FAILED to get section({idx}) data from {name}")
        return bytes(self.data[offset:offset + size])

    def section_data(self, sec: Section) -> memoryview:
        """The bytes of `sec` (empty for SHT_NOBITS)."""
        if sec.type == SHT_NOBITS:
            return self.data[0:0]
        return self.data[sec.offset:sec.offset + sec.size]

    def last_section(self, name: str) -> Section | None:
        """The last section called `name` (resolve_btfids' elf_collect keeps the last)."""
        found = None
        for sec in self.sections:
            if sec.name == name:
                found = sec
        return found

    def first_section(self, name: str) -> Section | None:
        """The first section called `name` (what --patch_btfids patches)."""
        for sec in self.sections:
            if sec.name == name:
                return sec
        return None

    def symtab(self) -> Section | None:
        """The last SHT_SYMTAB section, as elf_collect picks it."""
        found = None
        for sec in self.sections[1:]:
            if sec.type == SHT_SYMTAB:
                found = sec
        return found

    # ---- symbols ------------------------------------------------------------------

    def symbols_in_section(self, symtab: Section, shndx: int) -> list[Symbol]:
        """Symbols whose st_shndx is `shndx`, in symbol table order.

        One struct.iter_unpack pass; names are resolved only for the symbols
        kept (a few hundred out of a quarter million on vmlinux).
        """
        return self._scan(symtab, shndx, None)[0]

    def _scan(self, symtab: Section, shndx: int,
              extra_name: bytes | None) -> tuple[list[Symbol], Symbol | None]:
        strtab = self.sections[symtab.link] if 0 < symtab.link < len(self.sections) else None
        strs = self.section_data(strtab) if strtab is not None else memoryview(b"")
        entsize = 24 if self.is64 else 16
        if symtab.entsize and symtab.entsize != entsize:
            raise BtfidsError(f"FAILED: symbol table entry size {symtab.entsize}, "
                              f"expected {entsize}")
        n = symtab.size // entsize
        raw = self.section_data(symtab)[:n * entsize]
        e = self._e
        extra_off = -1
        if extra_name is not None:
            sbytes = bytes(strs)
            pos = sbytes.find(b"\0" + extra_name + b"\0")
            extra_off = pos + 1 if pos >= 0 else -1
        if self.is64:
            # st_name, st_info, st_other, st_shndx, st_value, st_size
            rows = [(r[0], r[4], r[5], r[3]) for r in struct.iter_unpack(e + "IBBHQQ", raw)
                    if r[3] == shndx or r[0] == extra_off]
        else:
            # st_name, st_value, st_size, st_info, st_other, st_shndx
            rows = [(r[0], r[1], r[2], r[5]) for r in struct.iter_unpack(e + "IIIBBH", raw)
                    if r[5] == shndx or r[0] == extra_off]
        sbytes = bytes(strs) if rows else b""
        out: list[Symbol] = []
        extra: Symbol | None = None
        for name_off, value, size, sym_shndx in rows:
            if name_off == extra_off and sym_shndx != shndx:
                extra = Symbol(extra_name or b"", value, size, sym_shndx)
                continue
            if name_off >= len(sbytes):
                name = b""  # elf_strptr() fails: the symbol is not a BTF ID one
            else:
                end = sbytes.find(b"\0", name_off)
                name = sbytes[name_off:end if end >= 0 else len(sbytes)]
            if name_off == extra_off:
                extra = Symbol(name, value, size, sym_shndx)
            out.append(Symbol(name, value, size, sym_shndx))
        return out, extra

    def symbols_and_banner(self, symtab: Section,
                           shndx: int) -> tuple[list[Symbol], Symbol | None]:
        """symbols_in_section() plus the `linux_banner` symbol, in the same pass."""
        return self._scan(symtab, shndx, _BANNER_SYMBOL)

    # ---- kernel version ---------------------------------------------------------------

    def read_symbol(self, sym: Symbol, size: int) -> bytes | None:
        """Up to `size` bytes at a symbol: st_value is an address in executables and
        an offset into its section (st_shndx) in relocatable objects."""
        if not 0 < sym.shndx < len(self.sections):
            return None
        sec = self.sections[sym.shndx]
        if sec.type == SHT_NOBITS:
            return None
        rel = sym.value if self.e_type == ET_REL else sym.value - sec.addr
        if not 0 <= rel < sec.size:
            return None
        start = sec.offset + rel
        return bytes(self.data[start:min(start + size, sec.offset + sec.size)])

    def kernel_version(self, banner: Symbol | None) -> tuple[int, int] | None:
        """(major, minor) from linux_banner (vmlinux) or .modinfo's vermagic (modules)."""
        if banner is not None:
            text = self.read_symbol(banner, max(banner.size, 64))
            if text and text.startswith(b"Linux version "):
                m = _VERSION_RE.match(text, len(b"Linux version "))
                if m:
                    return int(m.group(1)), int(m.group(2))
        modinfo = self.last_section(".modinfo")
        if modinfo is not None:
            blob = bytes(self.section_data(modinfo))
            pos = blob.find(b"vermagic=")
            if pos >= 0:
                m = _VERSION_RE.match(blob, pos + len(b"vermagic="))
                if m:
                    return int(m.group(1)), int(m.group(2))
        return None


class _MapStream:
    """A minimal read-only stream over a memoryview, for pyelftools (no copy of the file)."""

    def __init__(self, view: memoryview):
        self._view = view
        self._pos = 0

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 0:
            self._pos = pos
        elif whence == 1:
            self._pos += pos
        else:
            self._pos = len(self._view) + pos
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, n: int = -1) -> bytes:
        end = len(self._view) if n < 0 else self._pos + n
        chunk = bytes(self._view[self._pos:end])
        self._pos += len(chunk)
        return chunk


def _sh_type(value: object) -> int:
    """pyelftools gives known section types as names; turn the ones we test back into numbers."""
    if isinstance(value, int):
        return value
    return {"SHT_SYMTAB": SHT_SYMTAB, "SHT_NOBITS": SHT_NOBITS}.get(str(value), -1)


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
    with ElfObject(elf_path) as elf:
        sec = elf.first_section(name) if first else elf.last_section(name)
        if sec is None:
            raise BtfidsError(f"FAILED: section {name} not found in {elf_path}")
        offset = sec.offset
        size = 0 if sec.type == SHT_NOBITS else sec.size
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
