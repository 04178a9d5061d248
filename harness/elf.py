"""The project's one ELF reader: section layout, section bytes, the symbol table.

Why one module: resolve_btfids, the BTF loaders, the kfunc inspector and the
BPF object reader all need a little of the ELF (a section's bytes, the symbols
in one section), and each once had its own reader. This one sits below every
package (it imports nothing from the harness but the error base), handles both
byte orders and both ELF classes, and is fast where it must be: vmlinux has
~260k symbols and pyelftools' iter_symbols() takes seconds on them, so
pyelftools reads the layout (header and section headers, with its SHN_XINDEX
handling) and the symbol table is one struct.iter_unpack over a memory map.

Failures raise ElfError: one line naming the file, plus `step` (which read
failed, in libelf's terms) so the resolve_btfids drop-in can print the C
tool's own wording for it.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
from dataclasses import dataclass

from harness.errors import UsageError

ELF_MAGIC = b"\x7fELF"
ET_REL = 1
EM_BPF = 247  # e_machine of a BPF object (clang -target bpf)
SHT_PROGBITS = 1
SHT_SYMTAB = 2
SHT_NOBITS = 8
SHF_EXECINSTR = 0x4
SHN_UNDEF = 0
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
STT_FUNC = 2

# e_ident[EI_CLASS] -> (is64, header layout after e_ident, section header size, symbol layout)
# Elf{32,64}_Ehdr from e_type: type, machine, version, entry, phoff, shoff, flags,
# ehsize, phentsize, phnum, shentsize, shnum, shstrndx.
_EHDR = {1: "HHIIIIIHHHHHH", 2: "HHIQQQIHHHHHH"}
_SHENTSIZE = {1: 40, 2: 64}
# Elf32_Sym: name, value, size, info, other, shndx; Elf64_Sym: name, info, other, shndx,
# value, size. Each is read into (name, value, size, info, shndx) by _SYM_FIELDS.
_SYM = {1: "IIIBBH", 2: "IBBHQQ"}
_SYM_FIELDS = {1: (0, 1, 2, 3, 5), 2: (0, 4, 5, 1, 3)}


class ElfError(UsageError):
    """A file that cannot be read as the ELF a caller needs.

    `step` names the read that failed ("open", "not-elf", "header",
    "section-header", "section-name", "section-data", "symbols"), `index` the
    section concerned, `strerror` the OS error for "open".
    """

    def __init__(self, path: str, message: str, *, step: str, index: int = 0,
                 section: str = "", strerror: str = ""):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.step = step
        self.index = index
        self.section = section
        self.strerror = strerror


@dataclass(frozen=True, slots=True)
class Section:
    """One section header."""

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
    """One symbol: name, value (address, or offset in a relocatable object), size, section."""

    name: bytes
    value: int
    size: int
    shndx: int = 0
    info: int = 0

    @property
    def bind(self) -> int:
        return self.info >> 4

    @property
    def type(self) -> int:
        return self.info & 0xF


def is_elf(path: str | os.PathLike[str]) -> bool:
    """Whether the file starts with the ELF magic (reads four bytes; OSError if unreadable)."""
    with open(path, "rb") as f:
        return f.read(4) == ELF_MAGIC


class ElfFile:
    """An ELF file opened for reading, mapped into memory (or held as bytes).

    `endian` is "little" or "big" (the file's), `is64` its class; section data
    is a view of the map, so a 130 MB vmlinux costs no copy.
    """

    def __init__(self, path: str | os.PathLike[str], *, writable_check: bool = False):
        """Open and map `path`.

        `writable_check` opens it read-write first, as resolve_btfids does (O_RDWR),
        so a read-only input fails the way it does with the C tool.
        """
        self.path = str(path)
        try:
            fd = os.open(self.path, os.O_RDWR if writable_check else os.O_RDONLY)
        except OSError as exc:
            raise ElfError(self.path, f"cannot open: {exc.strerror}", step="open",
                           strerror=exc.strerror or str(exc)) from None
        try:
            size = os.fstat(fd).st_size
            self._map: mmap.mmap | bytes = (
                mmap.mmap(fd, size, access=mmap.ACCESS_READ) if size else b"")
        finally:
            os.close(fd)
        self.data = memoryview(self._map)
        self._parse_layout()

    @classmethod
    def from_bytes(cls, data: bytes, label: str = "ELF data") -> ElfFile:
        """An ELF held in memory; `label` names it in errors."""
        self = cls.__new__(cls)
        self.path = label
        self._map = data
        self.data = memoryview(data)
        self._parse_layout()
        return self

    def close(self) -> None:
        """Release the map; if views of it are still alive (a traceback may hold
        some), leave it to the garbage collector."""
        try:
            self.data.release()
            if isinstance(self._map, mmap.mmap):
                self._map.close()
        except BufferError:
            pass

    def __enter__(self) -> ElfFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, message: str, step: str, **kw: object) -> ElfError:
        return ElfError(self.path, message, step=step, **kw)  # type: ignore[arg-type]

    # ---- layout -----------------------------------------------------------------------

    def _parse_layout(self) -> None:
        data = self.data
        if len(data) < 16 or bytes(data[:4]) != ELF_MAGIC or data[4] not in (1, 2) \
                or data[5] not in (1, 2):
            raise self._error("not an ELF file", "not-elf")
        elf_class = data[4]
        self.is64 = elf_class == 2
        self.endian = "little" if data[5] == 1 else "big"
        self.order = "<" if self.endian == "little" else ">"
        try:
            (self.e_type, self.e_machine, _, _, _, shoff, _, _, _, _, shentsize, shnum,
             _shstrndx) = struct.unpack_from(self.order + _EHDR[elf_class], data, 16)
        except struct.error:
            raise self._error("truncated ELF header", "header") from None
        self._sym_format = self.order + _SYM[elf_class]
        self._sym_fields = _SYM_FIELDS[elf_class]
        self.sym_entsize = struct.calcsize(self._sym_format)
        want = _SHENTSIZE[elf_class]
        if shnum == 0 and shoff == 0:
            self.sections: list[Section] = []
        elif shentsize != want or shoff + shentsize > len(data):
            raise self._error("section header table missing or truncated", "not-elf")
        else:
            self.sections = self._read_sections(shoff, shentsize)

    def _read_sections(self, shoff: int, shentsize: int) -> list[Section]:
        """Section headers through pyelftools (it resolves SHN_XINDEX counts and names)."""
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile

        try:
            elf = ELFFile(_MapStream(self.data))
            shstr_idx = elf.get_shstrndx()
            count = elf.num_sections()
            if shoff + count * shentsize > len(self.data):
                raise self._error(f"section header {count - 1} past the end of the file",
                                  "section-header", index=count - 1)
            shstr = elf.get_section(shstr_idx).header
            names = self._bounded(shstr["sh_offset"], shstr["sh_size"], shstr_idx, ".shstrtab")
            out = []
            for idx in range(count):
                h = elf.get_section(idx).header
                name_off = h["sh_name"]
                end = names.find(b"\0", name_off) if not idx or name_off < len(names) else -1
                if end < 0:
                    raise self._error(f"section {idx} has no name", "section-name", index=idx)
                sec = Section(
                    idx, names[name_off:end].decode("utf-8", "surrogateescape"),
                    _sh_type(h["sh_type"]), h["sh_flags"], h["sh_addr"], h["sh_offset"],
                    h["sh_size"], h["sh_link"], h["sh_entsize"],
                )
                if idx and sec.type != SHT_NOBITS and sec.offset + sec.size > len(self.data):
                    raise self._error(f"section {idx} ({sec.name}) runs past the end of the file",
                                      "section-data", index=idx, section=sec.name)
                out.append(sec)
            return out
        except ElfError:
            raise
        except (ELFError, struct.error, ValueError, KeyError, IndexError) as exc:
            raise self._error(f"bad ELF layout: {exc}", "header") from None

    def _bounded(self, offset: int, size: int, idx: int, name: str) -> bytes:
        if offset + size > len(self.data):
            raise self._error(f"section {idx} ({name}) runs past the end of the file",
                              "section-data", index=idx, section=name)
        return bytes(self.data[offset:offset + size])

    # ---- sections ---------------------------------------------------------------------

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
        """The first section called `name` (what libbpf and pyelftools find by name)."""
        for sec in self.sections:
            if sec.name == name:
                return sec
        return None

    def section_bytes(self, name: str) -> bytes | None:
        """A copy of the first section called `name`, None if there is none.

        A NOBITS section of that name is an error: it has no bytes to give.
        """
        sec = self.first_section(name)
        if sec is None:
            return None
        if sec.type == SHT_NOBITS:
            raise self._error(f"{name} has no data", "section-data", index=sec.index,
                              section=name)
        return bytes(self.section_data(sec))

    def symtab(self) -> Section | None:
        """The last SHT_SYMTAB section, as resolve_btfids' elf_collect picks it."""
        found = None
        for sec in self.sections[1:]:
            if sec.type == SHT_SYMTAB:
                found = sec
        return found

    # ---- symbols ----------------------------------------------------------------------

    def _symbol_rows(self, symtab: Section) -> tuple[memoryview, memoryview]:
        """(raw symbol entries, string table bytes) of `symtab`."""
        entsize = self.sym_entsize
        if symtab.entsize and symtab.entsize != entsize:
            raise self._error(f"symbol table entry size {symtab.entsize}, expected {entsize}",
                              "symbols", index=symtab.index, section=symtab.name)
        link = symtab.link
        strs = (self.section_data(self.sections[link]) if 0 < link < len(self.sections)
                else memoryview(b""))
        n = symtab.size // entsize
        return self.section_data(symtab)[:n * entsize], strs

    def symbols(self, symtab: Section, shndx: int | None = None,
                also: bytes | None = None) -> list[Symbol]:
        """Symbols of `symtab` in table order: all of them, or those whose st_shndx is
        `shndx` plus any named `also`.

        Filtering happens before any name is read (a few hundred symbols kept out of a
        quarter million on vmlinux). A name offset past the string table gives b""
        (elf_strptr() fails on it).
        """
        raw, strs = self._symbol_rows(symtab)
        i_name, i_value, i_size, i_info, i_shndx = self._sym_fields
        rows = struct.iter_unpack(self._sym_format, raw)
        if shndx is not None:
            also_off = -1
            if also is not None:
                pos = bytes(strs).find(b"\0" + also + b"\0")
                also_off = pos + 1 if pos >= 0 else -1
            rows = [r for r in rows if r[i_shndx] == shndx or r[i_name] == also_off]
        picked = [(r[i_name], r[i_value], r[i_size], r[i_info], r[i_shndx]) for r in rows]
        sbytes = bytes(strs) if picked else b""
        out = []
        for name_off, value, size, info, sym_shndx in picked:
            if name_off >= len(sbytes):
                name = b""
            else:
                end = sbytes.find(b"\0", name_off)
                name = sbytes[name_off:end if end >= 0 else len(sbytes)]
            out.append(Symbol(name, value, size, sym_shndx, info))
        return out

    def read_at_symbol(self, sym: Symbol, size: int) -> bytes | None:
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


def read_sections(path: str | os.PathLike[str], names: tuple[str, ...]) -> dict[str, bytes]:
    """The bytes of those sections among `names` that `path` has (first of each name)."""
    with ElfFile(path) as elf:
        found = {}
        for name in names:
            data = elf.section_bytes(name)
            if data is not None:
                found[name] = data
        return found


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
    """pyelftools names the section types it knows; turn the ones we test back into numbers."""
    if isinstance(value, int):
        return value
    return {"SHT_PROGBITS": SHT_PROGBITS, "SHT_SYMTAB": SHT_SYMTAB,
            "SHT_NOBITS": SHT_NOBITS}.get(str(value), -1)


BANNER_SYMBOL = b"linux_banner"  # "Linux version X.Y.Z ..." in every vmlinux
_VERSION_RE = re.compile(rb"(\d+)\.(\d+)")


def kernel_version(elf: ElfFile, banner: Symbol | None) -> tuple[int, int] | None:
    """(major, minor) from linux_banner (vmlinux) or .modinfo's vermagic (modules)."""
    if banner is not None:
        text = elf.read_at_symbol(banner, max(banner.size, 64))
        if text and text.startswith(b"Linux version "):
            m = _VERSION_RE.match(text, len(b"Linux version "))
            if m:
                return int(m.group(1)), int(m.group(2))
    modinfo = elf.last_section(".modinfo")
    if modinfo is not None:
        blob = bytes(elf.section_data(modinfo))
        pos = blob.find(b"vermagic=")
        if pos >= 0:
            m = _VERSION_RE.match(blob, pos + len(b"vermagic="))
            if m:
                return int(m.group(1)), int(m.group(2))
    return None


def kernel_version_of(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """The kernel version an ELF (vmlinux, a module) says it is, None when it says none."""
    with ElfFile(path) as elf:
        symtab = elf.symtab()
        found = elf.symbols(symtab, -1, also=BANNER_SYMBOL) if symtab is not None else []
        banner = next((s for s in found if s.name == BANNER_SYMBOL), None)
        return kernel_version(elf, banner)
