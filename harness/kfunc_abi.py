"""The kernel's kfunc ABI, declared once: KF_* flags, tag names, the .BTF_ids set layouts.

Why one module: the transformer (btfids), the inspector (btf.kfuncs), the
runner and the matrix all read the same facts from include/linux/btf.h and
include/linux/btf_ids.h; each once had its own copy of the flag words, tag
names and set reader. This sits beside harness.elf, below every package, and
imports nothing above them.

The `.BTF_ids` section (btf_ids.h) holds zero-filled words with symbols
pointing at them, filled in by resolve_btfids:

- `__BTF_ID__{func,struct,union,typedef}__<name>__<n>`: one u32, the BTF id of `<name>`;
- `__BTF_ID__set__<set>`:  struct btf_id_set  { u32 cnt; u32 ids[cnt]; };
- `__BTF_ID__set8__<set>`: struct btf_id_set8 { u32 cnt; u32 flags;
  struct { u32 id; u32 flags; } pairs[cnt]; } -- the pairs' flags are KF_* words.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from harness.elf import ElfError, ElfFile
from harness.errors import UsageError

# ---- tags and names ------------------------------------------------------------------------

DECL_TAG_KFUNC = "bpf_kfunc"        # on every kfunc's FUNC (pahole >= 1.26, or resolve_btfids 7.3)
DECL_TAG_FASTCALL = "bpf_fastcall"  # on KF_FASTCALL kfuncs
ARENA_ATTR = "address_space(1)"     # type attribute of arena pointers (KF_ARENA_*, __arena)
ARENA_SUFFIXES = ("__arena", "__arena__nullable")  # parameter names marking arena pointers
IMPLICIT_ARG_STRUCTS = frozenset({"bpf_prog_aux", "btf_struct_meta"})  # main.c is_kf_implicit_arg
IMPL_SUFFIX = "_impl"               # the kernel-side twin of a KF_IMPLICIT_ARGS kfunc

# ---- KF_* flags (include/linux/btf.h) --------------------------------------------------------

KF_ACQUIRE = 1 << 0
KF_RELEASE = 1 << 1
KF_RET_NULL = 1 << 2
KF_KPTR_GET = 1 << 3       # gone in 7.x; still in older kernels' .BTF_ids
KF_TRUSTED_ARGS = 1 << 4   # likewise
KF_SLEEPABLE = 1 << 5
KF_DESTRUCTIVE = 1 << 6
KF_RCU = 1 << 7
KF_ITER_NEW = 1 << 8
KF_ITER_NEXT = 1 << 9
KF_ITER_DESTROY = 1 << 10
KF_RCU_PROTECTED = 1 << 11
KF_FASTCALL = 1 << 12
KF_ARENA_RET = 1 << 13
KF_ARENA_ARG1 = 1 << 14
KF_ARENA_ARG2 = 1 << 15
KF_IMPLICIT_ARGS = 1 << 16
KF_SPINLOCK_SAFE = 1 << 17
KF_PERFMON = 1 << 18

KF_FLAGS: dict[int, str] = {
    value: name for name, value in globals().items()
    if name.startswith("KF_") and isinstance(value, int)
}
# The only flags resolve_btfids' BTF edits read; a difference elsewhere changes no byte.
BTF_EDIT_FLAGS = KF_FASTCALL | KF_ARENA_RET | KF_ARENA_ARG1 | KF_ARENA_ARG2 | KF_IMPLICIT_ARGS


def flag_names(flags: int) -> list[str]:
    """KF_* names of the bits set in `flags`, lowest first; unknown bits as hex."""
    out = [name for bit, name in sorted(KF_FLAGS.items()) if flags & bit]
    rest = flags & ~sum(KF_FLAGS)
    if rest:
        out.append(f"{rest:#x}")
    return out


@dataclass(slots=True)
class Kfunc:
    """A kfunc: its name, the id of its BTF FUNC and its KF_* flag word."""

    name: str
    btf_id: int
    flags: int


# ---- .BTF_ids layout (include/linux/btf_ids.h) -----------------------------------------------

BTF_IDS_SECTION = ".BTF_ids"
BTF_ID_PREFIX = b"__BTF_ID__"
SET_PREFIX = b"__BTF_ID__set__"
SET8_PREFIX = b"__BTF_ID__set8__"
FUNC_PREFIX = b"__BTF_ID__func__"
BTF_SET8_KFUNCS = 1 << 0   # btf_id_set8.flags: the set lists kfuncs

WORD = 4                   # every field is a u32
SET_IDS = 4                # offsetof(struct btf_id_set, ids)
SET8_FLAGS = 4             # offsetof(struct btf_id_set8, flags)
SET8_PAIRS = 8             # offsetof(struct btf_id_set8, pairs)
SET8_PAIR_SIZE = 8         # sizeof(pairs[0]): u32 id, u32 flags
PAIR_FLAGS = 4             # offsetof(pairs[0], flags)


def set8_count(symbol_size: int) -> int:
    """cnt of a set8 from its symbol's size (BTF_SET8_END sizes the symbol over the pairs)."""
    return symbol_size // SET8_PAIR_SIZE - 1


def set_count(symbol_size: int) -> int:
    """cnt of a set from its symbol's size."""
    return symbol_size // WORD - 1


def pair_offset(index: int) -> int:
    """Offset of pairs[index] from the start of its set8."""
    return SET8_PAIRS + SET8_PAIR_SIZE * index


def btf_id_name(rest: bytes) -> bytes | None:
    """`<name>` from what follows the kind in `__BTF_ID__<kind>__<name>__<n>`, as
    resolve_btfids' get_id() parses it; None where the C tool fails."""
    if len(rest) <= 2:
        return None
    buf = rest[2:]
    p = buf.rfind(b"_") - 1
    if p < 0 or buf[p] != ord("_"):
        return None
    return buf[:p]


class SetsError(UsageError):
    """An ELF whose .BTF_ids sets cannot be read."""


@dataclass
class SetEntry:
    """One pair of a set8: the BTF id (0 if unresolved), its flags, and the name of the
    `__BTF_ID__func__` symbol at the pair's address.

    The name names the pair only in an unresolved object: resolve_btfids sorts each
    set by id after filling it in, and the symbols keep their old addresses. In a
    built ELF the id says which function a pair is.
    """

    btf_id: int
    flags: int
    name: str | None


@dataclass
class Set8:
    """A `__BTF_ID__set8__<name>` set: its flags word and pairs."""

    name: str
    flags: int
    entries: list[SetEntry] = field(default_factory=list)

    @property
    def is_kfuncs(self) -> bool:
        return bool(self.flags & BTF_SET8_KFUNCS)


def read_set8s(path: str | os.PathLike[str]) -> list[Set8]:
    """Every set8 of an ELF's .BTF_ids, in address order; [] without .BTF_ids.

    Pair names come from the `__BTF_ID__func__` symbols at the pairs' addresses,
    so an unresolved object (ids still zero) is read as well as a built vmlinux.
    Raises SetsError for a file that is not ELF or a set that does not fit.
    """
    try:
        with ElfFile(path) as elf:
            ids_sec = elf.last_section(BTF_IDS_SECTION)
            symtab = elf.symtab()
            if ids_sec is None or symtab is None:
                return []
            data = bytes(elf.section_data(ids_sec))
            syms = [(sym.value, sym.size, sym.name)
                    for sym in elf.symbols(symtab, ids_sec.index)
                    if sym.name.startswith(BTF_ID_PREFIX)]
            order = elf.order
    except ElfError as exc:
        raise SetsError(str(exc)) from None
    return decode_set8s(data, ids_sec.addr, syms, order, str(path))


def decode_set8s(data: bytes, base_addr: int, syms: list[tuple[int, int, bytes]],
                 order: str, where: str) -> list[Set8]:
    """The set8s in `.BTF_ids` bytes `data` at `base_addr`, from (value, size, name) symbols."""
    funcs: dict[int, str] = {}
    for value, _size, name in syms:
        if name.startswith(FUNC_PREFIX):
            parsed = btf_id_name(name[len(FUNC_PREFIX) - 2:])
            if parsed is not None:
                funcs[value] = parsed.decode("utf-8", "surrogateescape")
    word = struct.Struct(order + "II")
    sets = []
    for value, size, name in sorted(syms):
        if not name.startswith(SET8_PREFIX):
            continue
        set_name = name[len(SET8_PREFIX):].decode("utf-8", "surrogateescape")
        off = value - base_addr
        if size < SET8_PAIRS or (size - SET8_PAIRS) % SET8_PAIR_SIZE or off < 0 \
                or off + size > len(data):
            raise SetsError(f"{where}: set8 {set_name}: symbol of size {size} at offset "
                            f"{off} does not fit .BTF_ids ({len(data)} bytes)")
        _cnt, flags = word.unpack_from(data, off)
        entries = []
        for k in range(set8_count(size)):
            btf_id, eflags = word.unpack_from(data, off + pair_offset(k))
            entries.append(SetEntry(btf_id, eflags, funcs.get(value + pair_offset(k))))
        sets.append(Set8(set_name, flags, entries))
    return sets
