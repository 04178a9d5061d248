"""Getting BTF bytes from where they live: raw files, ELF sections, /sys/kernel/btf."""

from __future__ import annotations

import io
import os
from pathlib import Path

from harness.btf.btf import Btf
from harness.btf.errors import BTFError

SYSFS_BTF = Path("/sys/kernel/btf")
SYSFS_VMLINUX = SYSFS_BTF / "vmlinux"
ELF_MAGIC = b"\x7fELF"


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise BTFError(f"cannot read {path}: {exc.strerror or exc}") from exc


def elf_section(data: bytes, name: str = ".BTF", path: str | os.PathLike[str] = "") -> bytes:
    """Contents of ELF section `name` (pyelftools for the layout only)."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(io.BytesIO(data))
        sec = elf.get_section_by_name(name)
        if sec is None:
            raise BTFError(f"{path or 'ELF file'}: no {name} section")
        if sec["sh_type"] == "SHT_NOBITS":
            raise BTFError(f"{path or 'ELF file'}: {name} has no data")
        return sec.data()
    except BTFError:
        raise
    except (ELFError, Exception) as exc:  # pyelftools raises assorted errors on bad input
        raise BTFError(f"{path or 'ELF file'}: bad ELF file: {exc}") from exc


def btf_bytes(path: str | os.PathLike[str], section: str = ".BTF") -> bytes:
    """Raw BTF of a file: the file itself, or its `section` if it is an ELF object."""
    data = read_bytes(path)
    if data[:4] == ELF_MAGIC:
        return elf_section(data, section, path)
    return data


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
) -> Btf:
    """Load BTF from a raw file, an ELF's `section`, or /sys/kernel/btf/*.

    `base` (a Btf or a path to load) makes the result split BTF; modules in
    /sys/kernel/btf get vmlinux as their base automatically.
    """
    if base is None:
        dflt = default_base(path)
        if dflt is not None:
            base = dflt
    if base is not None and not isinstance(base, Btf):
        base = load(base, validate=validate)
    try:
        return Btf.from_bytes(btf_bytes(path, section), base, validate=validate)
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
