"""Getting BTF bytes from where they live: raw files, ELF sections, /sys/kernel/btf."""

from __future__ import annotations

import os
from pathlib import Path

from harness.btf.btf import Btf
from harness.btf.errors import BTFError
from harness.btf.kernel_rules import Rules
from harness.elf import ElfError, ElfFile, is_elf, read_sections

SYSFS_BTF = Path("/sys/kernel/btf")
SYSFS_VMLINUX = SYSFS_BTF / "vmlinux"


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise BTFError(f"cannot read {path}: {exc.strerror or exc}") from exc


def elf_sections(
    data: bytes | str | os.PathLike[str], names: tuple[str, ...]
) -> dict[str, bytes]:
    """Contents of those ELF sections among `names` that exist (the first of each name).

    `data` is a path (the file is mapped: a 130 MB vmlinux is not read whole) or
    the file's bytes.
    """
    try:
        if isinstance(data, bytes):
            with ElfFile.from_bytes(data) as elf:
                return {n: b for n in names if (b := elf.section_bytes(n)) is not None}
        return read_sections(data, names)
    except ElfError as exc:
        raise BTFError(str(exc)) from exc


def btf_and_base_bytes(
    path: str | os.PathLike[str], section: str = ".BTF"
) -> tuple[bytes, bytes | None]:
    """Raw BTF of a file plus, for an ELF, its distilled base (`.BTF.base`) if any.

    Out-of-tree modules carry `.BTF.base` (resolve_btfids --distill_base): their
    .BTF is split on that small base, not on vmlinux.
    """
    try:
        elf = is_elf(path)
    except OSError as exc:
        raise BTFError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not elf:
        return read_bytes(path), None
    want = (section, ".BTF.base") if section == ".BTF" else (section,)
    found = elf_sections(path, want)
    if section not in found:
        raise BTFError(f"{path}: no {section} section")
    return found[section], found.get(".BTF.base")


def btf_bytes(path: str | os.PathLike[str], section: str = ".BTF") -> bytes:
    """Raw BTF of a file: the file itself, or its `section` if it is an ELF object."""
    try:
        elf = is_elf(path)
    except OSError as exc:
        raise BTFError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not elf:
        return read_bytes(path)
    found = elf_sections(path, (section,))
    if section not in found:
        raise BTFError(f"{path}: no {section} section")
    return found[section]


def default_base(path: str | os.PathLike[str]) -> Path | None:
    """/sys/kernel/btf/<module> is split on /sys/kernel/btf/vmlinux; others need --base."""
    p = Path(path)
    if p.parent == SYSFS_BTF and p.name != "vmlinux":
        return SYSFS_VMLINUX
    return None


def load(
    path: str | os.PathLike[str],
    base: Btf | str | os.PathLike[str] | None = None,
    *,
    section: str = ".BTF",
    validate: bool = True,
    strict: Rules | None = None,
) -> Btf:
    """Load BTF from a raw file, an ELF's `section`, or /sys/kernel/btf/*.

    `base` (a Btf or a path to load) makes the result split BTF; modules in
    /sys/kernel/btf get vmlinux as their base automatically. An ELF with a
    `.BTF.base` section (a module built with a distilled base) is split on
    that section, as libbpf's btf__parse_elf does; relocating it onto another
    base (btf__relocate) is not supported, so `base` must then be omitted.
    """
    data, dist_base = btf_and_base_bytes(path, section)
    if dist_base is not None:
        if base is not None:
            raise BTFError(
                f"{path} has a distilled .BTF.base; relocation onto another base is not "
                "supported: omit the base to read it on its own .BTF.base")
        try:
            base = Btf.from_bytes(dist_base, validate=validate, strict=strict)
        except BTFError as exc:
            raise BTFError(f"{path}: .BTF.base: {exc}") from exc
    if base is None:
        dflt = default_base(path)
        if dflt is not None:
            base = dflt
    if base is not None and not isinstance(base, Btf):
        base = load(base, validate=validate, strict=strict)
    try:
        return Btf.from_bytes(data, base, validate=validate, strict=strict)
    except BTFError as exc:
        raise BTFError(f"{path}: {exc}") from exc


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write via a temporary file in the same directory and rename, so no half file remains."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BTFError(f"cannot write {path}: {exc.strerror or exc}") from exc
