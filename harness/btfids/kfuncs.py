"""Finding the kfuncs: from pahole's `bpf_kfunc` decl tags (7.2) or from BTF_SET8_KFUNCS sets (7.3).

Why two ways: until 7.2 pahole tagged kfuncs (`--btf_features=decl_tag_kfuncs`,
pahole >= 1.26) and resolve_btfids only looked the tagged functions up in the
sets for their flags; from 7.3 resolve_btfids finds the kfuncs in the sets
itself and emits the tags. An old pahole on a 7.2 tree therefore gives no
kfuncs at all, silently: the regression this harness exists to catch. The
`discover` path lets the transformer find the kfuncs from the sets on any
tree, and tolerate flag differences that cannot change BTF (a kfunc listed in
two sets with different KF_SLEEPABLE bits, as 7.2's HID-BPF does), which the
7.3 C tool rejects.

Flag words and set layouts are harness.kfunc_abi's.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.btf import Btf, DeclTag, Func
from harness.btfids.errors import BtfidsError
from harness.btfids.ids import BtfIdTables, IdKind, IdSection, set8_flags_for
from harness.kfunc_abi import (
    BTF_EDIT_FLAGS,
    BTF_SET8_KFUNCS,
    DECL_TAG_KFUNC,
    PAIR_FLAGS,
    SET8_FLAGS,
    Kfunc,
    pair_offset,
)

Warn = Callable[[str], None]


class FuncIndex:
    """First FUNC id per name, as libbpf's btf__find_by_name_kind(_own) returns it.

    Kept up to date as FUNCs are added, because resolve_btfids looks `_impl`
    names up after earlier kfuncs have added theirs. libbpf's binary search on
    sorted BTF returns the same first match as its linear scan, so one dict
    serves both.
    """

    def __init__(self, btf: Btf, *, own_only: bool):
        self.btf = btf
        self.names: dict[str, int] = {}
        items = btf.items() if own_only else btf.all_items()
        name = btf.name
        setdefault = self.names.setdefault
        for tid, t in items:
            if type(t) is Func:
                setdefault(name(t), tid)

    def find(self, name: str) -> int:
        """The id, or -1 (libbpf's -ENOENT)."""
        return self.names.get(name, -1)

    def added(self, name: str, tid: int) -> None:
        self.names.setdefault(name, tid)


def decl_tag_ids(btf: Btf) -> list[int]:
    """Ids of every DECL_TAG, base first (collect_decl_tags walks 1..type_cnt)."""
    return btf.all_ids_of(DeclTag)


def has_kfunc_tags(btf: Btf) -> bool:
    """Whether pahole tagged any of this BTF's own functions `bpf_kfunc`."""
    off = btf.strings.find(DECL_TAG_KFUNC)
    if btf.base is not None:
        base_off = btf.base.find_str(DECL_TAG_KFUNC)
        offs = {o for o in (off, base_off) if o is not None}
    else:
        offs = {off} if off is not None else set()
    if not offs:
        return False
    return any(type(t) is DeclTag and t.name_off in offs for t in btf.types)


def from_sets(tables: BtfIdTables, section: IdSection | None, own_funcs: FuncIndex,
              warn: Warn, *, tolerant: bool = False,
              debug: Warn | None = None) -> list[Kfunc]:
    """7.3's collect_kfuncs(): every entry of every BTF_SET8_KFUNCS set, by BTF id.

    Sets are walked in the C tool's order (descending name), each kfunc kept
    once. Different flag words for one kfunc fail as in the C tool, unless
    `tolerant` and they differ only outside BTF_EDIT_FLAGS: then a warning names the
    kfunc and both words, and the first word is kept.
    """
    if section is None or not len(section):
        return []
    found: dict[int, Kfunc] = {}
    for entry in BtfIdTables.ordered(tables.sets):
        if entry.kind is not IdKind.SET8 or len(entry.addrs) != 1:
            continue
        set_addr = entry.addrs[0]
        off = section.offset_of(set_addr)
        if not section.u32(off + SET8_FLAGS) & BTF_SET8_KFUNCS:
            continue
        cnt = entry.value & 0xFFFFFFFF
        if off + pair_offset(cnt) > len(section):
            raise BtfidsError(
                f"FAILED set8 '{entry.name}' claims {entry.value} entries (from its symbol "
                f"size), running past the end of .BTF_ids ({len(section)} bytes)")
        for i in range(cnt):
            pair = pair_offset(i)
            name = tables.find_name_by_addr(set_addr + pair)
            if name is None:
                warn(f"WARN: resolve_btfids: no BTF ID symbol for {entry.name} entry {i}")
                continue
            func_id = own_funcs.find(name)
            if func_id < 0:
                warn(f"WARN: resolve_btfids: no BTF func for kfunc {name} in {entry.name}")
                continue
            if debug:
                debug(f"found kfunc {name} in {entry.name}")
            flags = section.u32(off + pair + PAIR_FLAGS)
            known = found.get(func_id)
            if known is None:
                found[func_id] = Kfunc(name, func_id, flags)
            elif known.flags != flags:
                if tolerant and not (known.flags ^ flags) & BTF_EDIT_FLAGS:
                    warn(f"WARN: resolve_btfids: kfunc {name} has inconsistent flags across "
                         f"BTF ID sets: {known.flags:#x} != {flags:#x}; they differ only in "
                         f"flags that do not change BTF, using {known.flags:#x}")
                    continue
                raise BtfidsError(
                    f"ERROR: resolve_btfids: kfunc {name} has inconsistent flags across BTF ID "
                    f"sets: {known.flags:#x} != {flags:#x}")
    return [found[k] for k in sorted(found)]


def from_decl_tags(btf: Btf, tags: list[int], tables: BtfIdTables,
                   section: IdSection | None) -> list[Kfunc]:
    """7.2's collect_kfuncs(): functions pahole tagged `bpf_kfunc`, in tag order.

    A function tagged twice is listed twice, as in the C tool. Flags come from
    the first set8 holding one of the function's BTF_ID addresses (0 if none).
    """
    out: list[Kfunc] = []
    for tid in tags:
        t = btf[tid]
        if t.attr or t.component_idx != -1:
            continue
        if btf.name(t) != DECL_TAG_KFUNC:
            continue
        func = btf[t.type]
        if type(func) is not Func:
            continue
        entry = tables.funcs.get(btf.name(func))
        if entry is None:
            continue
        flags = set8_flags_for(tables, section, entry) if section is not None else 0
        out.append(Kfunc(entry.name, t.type, flags))
    return out
