"""The .BTF_ids section: which BTF ids the kernel wants, and writing them in.

Why its own module: this is the part of resolve_btfids every kernel since 5.10
relies on, independent of the kfunc transformations. The kernel's `BTF_ID`,
`BTF_SET_START/END` and `BTF_SET8_START/END` macros leave zero-filled words in
`.BTF_ids` with symbols pointing at them; their names and layouts are declared
in harness.kfunc_abi.

The C tool's observable order is reproduced on purpose, because it decides
which of several conflicting facts wins and the order of warnings: names live
in red-black trees that iterate in *descending* strcmp order, the set contents
are sorted with glibc's qsort (a stable merge sort here) on signed ids, and a
symbol name maps to at most 100 addresses (ADDR_CNT).

Byte order: the section is kept in *host* order while being worked on and
converted back on output, exactly as the C tool bswaps it on load and dump, so
a big-endian target on a little-endian host (or the reverse) gives the same
bytes, unaligned accesses included.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from harness.btfids.errors import BtfidsError
from harness.elf import Symbol
from harness.kfunc_abi import (
    BTF_ID_PREFIX,
    PAIR_FLAGS,
    SET8_PAIR_SIZE,
    SET8_PAIRS,
    SET_IDS,
    WORD,
    btf_id_name,
    set8_count,
    set_count,
)

ADDR_CNT = 100  # addresses one name may have (struct btf_id.addr[ADDR_CNT])
KSYM_NAME_LEN = 512

Warn = Callable[[str], None]


class IdKind(Enum):
    """What a collected name stands for (enum btf_id_kind)."""

    SYM = 1
    SET = 2
    SET8 = 3


@dataclass(slots=True)
class BtfId:
    """One collected name: its addresses and, once resolved, its BTF id (sets: count)."""

    name: str
    kind: IdKind
    addrs: list[int] = field(default_factory=list)
    value: int = 0  # struct btf_id's union { int id; int cnt; }


# symbol-kind prefix after "__BTF_ID__" -> table it goes to, checked in the C order
_SYM_KINDS = (("struct", "structs"), ("union", "unions"), ("typedef", "typedefs"),
              ("func", "funcs"))


def _cstr_key(name: str) -> bytes:
    """strcmp order of a name (the tree's order) as Python bytes comparison."""
    return name.encode("utf-8", "surrogateescape")


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


@dataclass
class BtfIdTables:
    """Everything symbols_collect() gathers: names per kind, sets, and addresses.

    `counts` mirrors nr_funcs/nr_structs/...: the number of *symbols* of each
    kind, which symbols_resolve() uses as its "still to find" budget.
    """

    structs: dict[str, BtfId] = field(default_factory=dict)
    unions: dict[str, BtfId] = field(default_factory=dict)
    typedefs: dict[str, BtfId] = field(default_factory=dict)
    funcs: dict[str, BtfId] = field(default_factory=dict)
    sets: dict[str, BtfId] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("structs", "unions", "typedefs", "funcs"), 0))
    # (address, name) sorted by address (stable), for find_name_by_addr()
    addr_syms: list[tuple[int, str]] = field(default_factory=list)

    def table(self, key: str) -> dict[str, BtfId]:
        return getattr(self, key)

    @staticmethod
    def ordered(table: dict[str, BtfId]) -> list[BtfId]:
        """Entries in the C tool's rb-tree iteration order (descending strcmp)."""
        return [table[k] for k in sorted(table, key=_cstr_key, reverse=True)]

    def find_name_by_addr(self, addr: int) -> str | None:
        """glibc bsearch() over the address-sorted symbols (same pick among equal addresses)."""
        syms = self.addr_syms
        lo, hi = 0, len(syms)
        while lo < hi:
            mid = (lo + hi) // 2
            a = syms[mid][0]
            if addr < a:
                hi = mid
            elif addr > a:
                lo = mid + 1
            else:
                return syms[mid][1]
        return None


def _parse_sym_name(rest: bytes, prefix: bytes) -> str:
    """get_id(): `__<name>__<n>` after the kind -> `<name>`, or BtfidsError."""
    name = btf_id_name(rest) if len(rest) - 2 < KSYM_NAME_LEN else None
    if name is None:
        raise BtfidsError(f"FAILED to parse symbol name: {_show(prefix)}")
    return name.decode("utf-8", "surrogateescape")


def _show(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def collect(symbols: list[Symbol], verbose: int = 0, debug: Warn | None = None) -> BtfIdTables:
    """symbols_collect(): sort the `.BTF_ids` symbols into names, sets and addresses.

    `symbols` are those whose st_shndx is the `.BTF_ids` section, in symbol
    table order. Raises BtfidsError on a name the C tool cannot parse, an
    unknown kind, a repeated set name, or a name with more than ADDR_CNT
    addresses.
    """
    tables = BtfIdTables()
    addr_syms: list[tuple[int, str]] = []
    for sym in symbols:
        name = sym.name
        if not name.startswith(BTF_ID_PREFIX):
            continue
        prefix = name[len(BTF_ID_PREFIX):]
        entry: BtfId | None = None
        for kind, key in _SYM_KINDS:
            if prefix.startswith(kind.encode()):
                tables.counts[key] += 1
                ident = _parse_sym_name(prefix[len(kind):], prefix)
                table = tables.table(key)
                entry = table.get(ident)
                if entry is None:
                    if debug and verbose >= 1:
                        debug(f"adding symbol {ident}")
                    entry = table[ident] = BtfId(ident, IdKind.SYM)
                break
        else:
            if prefix.startswith(b"set8"):
                entry = _add_set(tables, prefix, IdKind.SET8, len(b"set8__"))
                entry.value = _s32(set8_count(sym.size))
            elif prefix.startswith(b"set"):
                entry = _add_set(tables, prefix, IdKind.SET, len(b"set__"))
                entry.value = _s32(set_count(sym.size))
            else:
                raise BtfidsError(f"FAILED unsupported prefix {_show(prefix)}")
        if len(entry.addrs) >= ADDR_CNT:
            raise BtfidsError(
                f"FAILED symbol {entry.name} crossed the number of allowed lists")
        entry.addrs.append(sym.value)
        addr_syms.append((sym.value, entry.name))
    addr_syms.sort(key=lambda a: a[0])  # stable, like glibc's merge-sort qsort
    tables.addr_syms = addr_syms
    return tables


def _add_set(tables: BtfIdTables, prefix: bytes, kind: IdKind, prefixlen: int) -> BtfId:
    if prefixlen >= len(prefix):
        raise BtfidsError(f"FAILED to parse set name: {_show(prefix)}")
    ident = _show(prefix[prefixlen:])
    if ident in tables.sets:
        # the C tool fails here silently (btf_id__add_unique() returns NULL)
        raise BtfidsError(f"FAILED: set {ident} is defined more than once")
    entry = tables.sets[ident] = BtfId(ident, kind)
    return entry


class IdSection:
    """The `.BTF_ids` bytes in host order, with the accessors the patcher needs.

    `addr` is the section's sh_addr: symbol values minus `addr` are offsets.
    """

    def __init__(self, data: bytes | memoryview, addr: int, target_endian: str):
        self.addr = addr
        self.target_endian = target_endian
        self.buf = bytearray(data)
        self._swap()

    def _swap(self) -> None:
        """bswap_32 every whole word when the target's order is not the host's."""
        if self.target_endian == sys.byteorder:
            return
        n = len(self.buf) // 4 * 4
        words = array("I")
        words.frombytes(bytes(self.buf[:n]))
        words.byteswap()
        self.buf[:n] = words.tobytes()

    def __len__(self) -> int:
        return len(self.buf)

    def offset_of(self, addr: int) -> int:
        """`addr - sh_addr` as the C code's unsigned long (wraps below the section)."""
        return (addr - self.addr) & 0xFFFFFFFFFFFFFFFF

    def u32(self, off: int) -> int:
        """Host-order u32 at byte offset `off` (BtfidsError past the end)."""
        if off < 0 or off + 4 > len(self.buf):
            raise BtfidsError(f"FAILED: .BTF_ids read at offset {off} past its {len(self.buf)} "
                              "bytes")
        return struct.unpack_from("=I", self.buf, off)[0]

    def put_word(self, word_idx: int, value: int) -> None:
        struct.pack_into("=I", self.buf, word_idx * 4, value & 0xFFFFFFFF)

    def to_target(self) -> bytes:
        """The section bytes in the target's byte order (what lands in <elf>.BTF_ids)."""
        self._swap()
        try:
            return bytes(self.buf)
        finally:
            self._swap()


def resolve(tables: BtfIdTables, type_names: Callable[[], object],
            warn: Warn) -> int:
    """symbols_resolve(): give every collected name the id of its BTF type.

    `type_names()` yields (type_id, table_key, name) for every FUNC, STRUCT,
    UNION and TYPEDEF in id order (base types included) — see
    `iter_named_types`. Returns the number of warnings ("multiple IDs").
    """
    remaining = dict(tables.counts)
    warnings = 0
    for type_id, key, name in type_names():  # type: ignore[attr-defined]
        if not remaining[key]:
            continue
        entry = tables.table(key).get(name)
        if entry is None:
            continue
        if entry.value:
            warn(f"WARN: multiple IDs found for '{name}': {entry.value}, {type_id} - "
                 f"using {entry.value}")
            warnings += 1
        else:
            entry.value = type_id
            remaining[key] -= 1
    return warnings


def patch(tables: BtfIdTables, section: IdSection, warn: Warn,
          debug: Warn | None = None) -> int:
    """symbols_patch(): write ids and set counts, then sort every set's contents.

    Returns the number of "unresolved symbol" warnings. Raises BtfidsError for
    an address outside the section or a set whose contents would run past it
    (where the C tool reads and writes out of bounds).
    """
    warnings = 0
    for key in ("structs", "unions", "typedefs", "funcs", "sets"):
        for entry in BtfIdTables.ordered(tables.table(key)):
            if not entry.value and entry.kind is IdKind.SYM:
                warn(f"WARN: resolve_btfids: unresolved symbol {entry.name}")
                warnings += 1
            for addr in entry.addrs:
                idx = section.offset_of(addr)
                if debug:
                    debug(f"patching addr {idx:5d}: ID {entry.value:7d} [{entry.name}]")
                if idx >= len(section):
                    raise BtfidsError(
                        f"FAILED patching index {idx} out of bounds {len(section)}")
                section.put_word(idx // 4, entry.value)
    for entry in BtfIdTables.ordered(tables.sets):
        if len(entry.addrs) != 1:
            raise BtfidsError(f"FAILED malformed data for set '{entry.name}'")
        off = section.offset_of(entry.addrs[0])
        cnt = section.u32(off)
        _sort_set(section, entry, off, cnt)
        if debug:
            debug(f"sorting  addr {off:5d}: cnt {_s32(cnt):6d} [{entry.name}]")
    return warnings


def _sort_set(section: IdSection, entry: BtfId, off: int, cnt: int) -> None:
    """qsort() a set's ids (or set8's id/flags pairs) by signed id, stably."""
    if entry.kind is IdKind.SET:
        start, stride = off + SET_IDS, WORD
    else:
        start, stride = off + SET8_PAIRS, SET8_PAIR_SIZE
    end = start + cnt * stride
    if end > len(section):
        kind = "set8" if entry.kind is IdKind.SET8 else "set"
        raise BtfidsError(
            f"FAILED {kind} '{entry.name}' claims {_s32(cnt)} entries (from its symbol size), "
            f"running past the end of .BTF_ids ({len(section)} bytes)")
    if cnt < 2:
        return
    buf = section.buf
    items = [bytes(buf[p:p + stride]) for p in range(start, end, stride)]
    items.sort(key=lambda b: struct.unpack_from("=i", b)[0])
    buf[start:end] = b"".join(items)


def set8_flags_for(tables: BtfIdTables, section: IdSection, func: BtfId) -> int:
    """7.2's find_kfunc_flags(): the flags word after the first of `func`'s addresses
    that falls inside a set8 (sets in tree order); 0 when none does."""
    for entry in BtfIdTables.ordered(tables.sets):
        if entry.kind is not IdKind.SET8 or len(entry.addrs) != 1:
            continue
        lower = entry.addrs[0]
        upper = lower + (entry.value & 0xFFFFFFFF) * SET8_PAIR_SIZE
        for addr in func.addrs:
            if lower < addr <= upper:
                return section.u32(section.offset_of(addr) // WORD * WORD + PAIR_FLAGS)
    return 0


__all__ = [
    "ADDR_CNT", "BtfId", "BtfIdTables", "IdKind", "IdSection",
    "collect", "patch", "resolve", "set8_flags_for",
]
