"""What a compiled BPF object holds that the host needs before loading it.

The programs (libbpf's notion: every non-static function in an executable
section other than ``.text``, ordered by section index then offset, as
``bpf_object__elf_collect`` sorts them), their section names, the undefined
symbols (kfunc externs), and each function's decl tags (the expectations).
ELF layout comes from harness.elf; BTF comes from our own ``harness.btf``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from harness.elf import (
    SHF_EXECINSTR,
    SHN_UNDEF,
    SHT_PROGBITS,
    STB_GLOBAL,
    STB_LOCAL,
    STB_WEAK,
    STT_FUNC,
    ElfError,
    ElfFile,
)
from harness.errors import UsageError


class ObjectError(UsageError):
    """The file is not a BPF ELF object we can read (missing, not ELF, no BTF)."""


@dataclass(frozen=True)
class ProgramInfo:
    """One program libbpf would create from the object."""

    name: str
    section: str  # SEC() name, e.g. "tc", "?tc", "struct_ops/hid_device_event"
    section_index: int
    offset: int  # byte offset inside the section
    size: int
    static: bool  # libbpf refuses static programs outside .text ("is static and not supported")


@dataclass
class ObjectInfo:
    """Programs, externs and per-function decl tags of one object."""

    path: Path
    sha256: str
    machine: int  # e_machine (EM_BPF is 247)
    programs: list[ProgramInfo]
    externs: list[str]  # undefined global/weak symbols: kfuncs and ksyms
    func_tags: dict[str, list[str]] = field(default_factory=dict)  # FUNC name -> tags (BTF order)
    has_btf: bool = False

    def program(self, name: str) -> ProgramInfo:
        for prog in self.programs:
            if prog.name == name:
                return prog
        raise KeyError(name)


def read_object(path: str | Path) -> ObjectInfo:
    """Read programs (harness.elf) and function decl tags (harness.btf) of a BPF object."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ObjectError(f"cannot read BPF object {path}: {exc.strerror}") from None
    try:
        with ElfFile.from_bytes(data, str(path)) as elf:
            exec_sections = {
                sec.index: sec.name for sec in elf.sections
                if sec.type == SHT_PROGBITS and sec.size > 0 and sec.flags & SHF_EXECINSTR
                and sec.name != ".text"}
            btf_bytes = elf.section_bytes(".BTF")
            symtab = elf.first_section(".symtab")
            symbols = elf.symbols(symtab) if symtab is not None else []
            machine = elf.e_machine
    except ElfError as exc:
        raise ObjectError(str(exc)) from None
    programs: list[ProgramInfo] = []
    externs: list[str] = []
    for sym in symbols:
        name = sym.name.decode("utf-8", "surrogateescape")
        if sym.shndx == SHN_UNDEF:
            if sym.bind in (STB_GLOBAL, STB_WEAK) and name:
                externs.append(name)
            continue
        if sym.type != STT_FUNC or sym.shndx not in exec_sections:
            continue
        programs.append(ProgramInfo(
            name=name, section=exec_sections[sym.shndx], section_index=sym.shndx,
            offset=sym.value, size=sym.size, static=sym.bind == STB_LOCAL))
    programs.sort(key=lambda p: (p.section_index, p.offset))
    info = ObjectInfo(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        machine=machine,
        programs=programs,
        externs=sorted(set(externs)),
    )
    if btf_bytes is not None:
        info.func_tags = func_decl_tags(btf_bytes)
        info.has_btf = True
    return info


def func_decl_tags(btf_bytes: bytes) -> dict[str, list[str]]:
    """Map each FUNC name to the names of its whole-function decl tags, in BTF order.

    Mirrors test_loader's ``collect_decl_tags``: DECL_TAG types pointing at the
    FUNC with ``component_idx == -1``. When several FUNCs share a name the first
    one wins, as ``btf__find_by_name_kind`` returns the first. An object's BTF
    is not validated: unlinked objects legitimately hold zero-sized DATASECs.
    """
    from harness.btf import Btf, BTFError, DeclTag, Func  # noqa: PLC0415 - heavy, lazy

    try:
        btf = Btf.from_bytes(btf_bytes, validate=False)
    except BTFError as exc:
        raise ObjectError(f"unreadable .BTF: {exc}") from None
    first_func: dict[str, int] = {}
    for tid, t in btf.items():
        if isinstance(t, Func):
            first_func.setdefault(btf.name(t), tid)
    by_id: dict[int, list[str]] = {tid: [] for tid in first_func.values()}
    for _tid, t in btf.items():
        if (isinstance(t, DeclTag) and t.component_idx in (-1, 0xFFFFFFFF)
                and t.type in by_id):
            by_id[t.type].append(btf.name(t))
    return {name: by_id[tid] for name, tid in first_func.items()}
