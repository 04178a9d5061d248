"""BTF deduplication with libbpf's `btf__dedup` semantics, byte for byte.

    from harness.btf.dedup import dedup, dedup_ids
    dedup(btf)                 # in place, like btf__dedup(btf, NULL)
    old_to_new = dedup_ids(btf)  # the same, returning old id -> new id

The output (``btf.to_bytes()``) equals what libbpf's ``btf__dedup`` followed by
``btf__raw_data`` gives for the same input. That is a stronger promise than
"equivalent types": it needs the same canonical representative for every
type, the same string order, and the same candidate order wherever two
canonical types could both match. So the algorithm below follows
``tools/lib/bpf/btf.c`` phase by phase, and the ordering details of libbpf's
data structures that decide ties are reproduced on purpose (see
`_CandidateTable`). The phases, in libbpf's order:

1. prep (split BTF only): every base type is canonical and becomes a candidate;
2. strings: keep only referenced strings, deduplicated, in first-use order;
   own strings that the base also has point to the base;
3. primitive types (INT, FLOAT, FWD, ENUM/ENUM64 incl. enum forward declarations);
4. STRUCT/UNION and TYPEDEF, by type-graph equivalence with a hypothetical
   map (cycles, FWD <-> STRUCT/UNION resolution across compilation units);
5. remaining unambiguous FWDs, by name;
6. reference types (PTR, CONST, VOLATILE, RESTRICT, TYPE_TAG, FUNC, ARRAY,
   FUNC_PROTO, DECL_TAG), bottom-up, now that what they point to is final;
7. compaction of canonical own types and remapping of every type id.

VAR and DATASEC are never deduplicated. In split BTF only own types change;
base types are canonical by definition ("base wins"), though a base FWD (or
enum forward declaration) may resolve to an own full definition.

Known differences from libbpf, none of them on valid input: libbpf fails when a
graph comparison meets a VAR, DATASEC or DECL_TAG on both sides (a struct
member of such a kind); comparisons that a cheap necessary condition proves
unequal are skipped here, so such a pair deeper in one of them goes unnoticed.
libbpf loops forever on a reference cycle without a struct in
btf_dedup_identical_types(); we give up after a million hops. libbpf skips
the string phase on a BTF object that it created empty and filled with
``btf__add_*`` (its strings are unique by construction, but keep insertion
order); objects parsed from bytes, which is what the harness deduplicates,
always get it, except when their own string section is empty (split) or just
the empty string (base), where libbpf skips it too and so do we. On error
(a reference-type loop, a kind that cannot occur where libbpf finds it) a
BTFError is raised and ``btf`` is left unchanged.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import accumulate, chain
from operator import itemgetter
from typing import Any

from harness.btf import remap
from harness.btf.btf import Btf, RawTypes
from harness.btf.codec import gc_paused
from harness.btf.errors import BTFError
from harness.btf.kinds import INFO_VLEN_MASK, Kind
from harness.btf.types import (
    VOID,
    Array,
    BtfType,
    DeclTag,
    FuncProto,
    Fwd,
    Int,
    _Composite,
    _EnumBase,
)

# map[] markers, as libbpf's BTF_UNPROCESSED_ID / BTF_IN_PROGRESS_ID
_UNPROCESSED = -1
_IN_PROGRESS = -2

# plain ints: comparing IntEnum members on the hot paths costs noticeably more
_INT = int(Kind.INT)
_PTR = int(Kind.PTR)
_ARRAY = int(Kind.ARRAY)
_STRUCT = int(Kind.STRUCT)
_UNION = int(Kind.UNION)
_ENUM = int(Kind.ENUM)
_FWD = int(Kind.FWD)
_TYPEDEF = int(Kind.TYPEDEF)
_VOLATILE = int(Kind.VOLATILE)
_CONST = int(Kind.CONST)
_RESTRICT = int(Kind.RESTRICT)
_FUNC = int(Kind.FUNC)
_FUNC_PROTO = int(Kind.FUNC_PROTO)
_VAR = int(Kind.VAR)
_DATASEC = int(Kind.DATASEC)
_FLOAT = int(Kind.FLOAT)
_DECL_TAG = int(Kind.DECL_TAG)
_TYPE_TAG = int(Kind.TYPE_TAG)
_ENUM64 = int(Kind.ENUM64)

_ANY_ENUM = frozenset({_ENUM, _ENUM64})
_COMPOSITE = frozenset({_STRUCT, _UNION})
# kinds whose only reference is `type` and which libbpf hashes by name/info/type
_REF_COMMON = frozenset({_PTR, _CONST, _VOLATILE, _RESTRICT, _FUNC, _TYPE_TAG})
# kinds btf_dedup_is_equiv() and btf_dedup_identical_types() follow through `type`
_EQUIV_REF = _REF_COMMON | {_TYPEDEF}

# libbpf keeps recursing through reference chains without a bound in
# btf_dedup_identical_types(); a cycle made only of those kinds would hang it.
# We stop after this many hops instead (valid BTF never gets near it).
_MAX_REF_HOPS = 1 << 20
# shape() of a type it cannot summarise, and ref_shapes() when any shape is missing
_NO_SHAPE = -1
_UNKNOWN: tuple[int, ...] = (-1,)
# HARNESS_DEDUP_TIMES=1 prints each phase's wall time to stderr (what to profile first)
_TIMES = bool(os.environ.get("HARNESS_DEDUP_TIMES"))


def dedup(btf: Btf) -> None:
    """Deduplicate `btf`'s strings and own types in place, exactly as btf__dedup().

    Raises BTFError where libbpf's btf__dedup() fails; `btf` is then unchanged.
    """
    dedup_ids(btf)


def dedup_ids(btf: Btf) -> list[int]:
    """dedup(btf) and return the id mapping: ``new_id = result[old_id]``.

    The list covers every id valid before the call (0, the base's ids and the
    own ids). Own types that were duplicates map to the id of the surviving
    type (which may be a base type in split BTF); base ids map to themselves
    unless a base forward declaration was resolved to an own definition.
    """
    with gc_paused():  # many short-lived tuples, no cycles: see codec.gc_paused
        return _Dedup(btf).run()


class _CandidateTable:
    """libbpf's ``dedup_table``: signature -> canonical candidates, in libbpf's order.

    libbpf keys a hashmap by a signature hash and walks a bucket chain, taking
    the first candidate that matches. Which one comes first is observable
    whenever two canonical types would both match (it picks the canonical
    representative), so the order is reproduced here: a new entry goes to the
    chain's head, and each time the map grows (before an insert when it is
    empty or (size + 1) * 4 / 3 > capacity; capacity doubles, minimum 4) the
    rehash walks every chain head-first and re-inserts at the new heads,
    reversing the relative order of entries with the same key.

    Keys here are the exact fields libbpf hashes rather than the hash value:
    entries libbpf compares and rejects after a hash collision can never be
    picked, and the relative order of the rest is the same either way.
    Reversals are applied lazily per key: a chain remembers the grow count
    ("epoch") it was last brought up to date with.
    """

    __slots__ = ("_chains", "_size", "_cap", "_epoch")

    def __init__(self) -> None:
        # key -> [epoch, id, id, ...] with the chain's head LAST (cheap append)
        self._chains: dict[Hashable, list[int]] = {}
        self._size = 0
        self._cap = 0
        self._epoch = 0

    def candidates(self, key: Hashable) -> list[int]:
        """Candidate ids for `key`, in the order libbpf visits them."""
        chain = self._chains.get(key)
        if chain is None:
            return []
        if len(chain) == 2:
            return [chain[1]]
        self._catch_up(chain)
        return chain[:0:-1]

    def first(self, key: Hashable) -> int | None:
        """The first candidate libbpf would visit for `key`, or None."""
        chain = self._chains.get(key)
        if chain is None:
            return None
        if len(chain) > 2:
            self._catch_up(chain)
        return chain[-1]

    def add(self, key: Hashable, type_id: int) -> None:
        """hashmap__append(): grow if needed, then insert at the chain's head."""
        if self._cap == 0 or (self._size + 1) * 4 // 3 > self._cap:
            self._cap = self._cap * 2 if self._cap else 4
            self._epoch += 1
        self._size += 1
        chain = self._chains.get(key)
        if chain is None:
            self._chains[key] = [self._epoch, type_id]
            return
        self._catch_up(chain)
        chain.append(type_id)

    def add_many(self, entries: Iterable[tuple[Hashable, int]]) -> None:
        """add() for each (key, id), in order (the same steps, inlined for speed)."""
        chains, size, cap, epoch = self._chains, self._size, self._cap, self._epoch
        for key, type_id in entries:
            if cap == 0 or (size + 1) * 4 // 3 > cap:
                cap = cap * 2 if cap else 4
                epoch += 1
            size += 1
            chain = chains.get(key)
            if chain is None:
                chains[key] = [epoch, type_id]
                continue
            if (epoch - chain[0]) & 1:
                chain[1:] = chain[:0:-1]
            chain[0] = epoch
            chain.append(type_id)
        self._size, self._cap, self._epoch = size, cap, epoch

    def _catch_up(self, chain: list[int]) -> None:
        if (self._epoch - chain[0]) & 1:
            chain[1:] = chain[:0:-1]
        chain[0] = self._epoch


@contextmanager
def _deep_recursion(limit: int) -> Iterator[None]:
    """Allow graph walks as deep as libbpf's C recursion goes.

    Python >= 3.11 keeps Python-to-Python calls off the C stack, so only the
    interpreter's counter limits them; the recursive walks here therefore call
    themselves directly or from comprehensions, never through C callbacks such
    as map() or a generator consumed by a builtin, which would use the C stack.
    """
    old = sys.getrecursionlimit()
    if limit > old:
        sys.setrecursionlimit(limit)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def _fwd_target(t: Fwd) -> int:
    """The kind a FWD declares (btf_fwd_kind): UNION with kind_flag, else STRUCT."""
    return _UNION if t.is_union else _STRUCT


def _enum_compat(t1: _EnumBase, t2: _EnumBase) -> bool:
    """btf_compat_enum(): equal, or same name when either is a forward declaration
    (vlen 0; then size and ENUM vs ENUM64 are ignored). Both must be enums."""
    if t1.values and t2.values:
        return t1 == t2
    return t1.name_off == t2.name_off


def _enum_body(t: _EnumBase) -> tuple[object, ...]:
    """What btf_equal_enum() compares besides the name: kind, size, signedness, values."""
    return (t.kind, t.size, t.signed, *t.values)


def _compat_array(t1: Array, t2: Array) -> bool:
    """btf_compat_array(): name, info, size (always 0) and element count."""
    return t1.name_off == t2.name_off and t1.nelems == t2.nelems


# ---- signatures: what libbpf's btf_hash_*() functions cover ------------------------
# A key is a tuple of exactly the fields the corresponding hash mixes in; the
# `info` word stands for kind, kind_flag and vlen.

def _key_ref(t: BtfType) -> tuple[int, int, int]:
    """btf_hash_common() for PTR, CONST, VOLATILE, RESTRICT, FUNC, TYPE_TAG:
    name, info and the referenced id (canonical by the time own types are looked up)."""
    return (t.name_off, t.info, t.type)  # type: ignore[attr-defined]


def _key_fwd(t: BtfType) -> tuple[int, int, int]:
    """btf_hash_common() for FWD: name, info (struct or union), size word 0."""
    return (t.name_off, t.info, 0)


def _key_float(t: BtfType) -> tuple[int, int, int]:
    """btf_hash_common() for FLOAT: name, info, size."""
    return (t.name_off, t.info, t.size)  # type: ignore[attr-defined]


def _key_int(t: Int) -> tuple[int, ...]:
    """btf_hash_int_decl_tag() for INT: common plus the encoding word."""
    return (t.name_off, t.info, t.size, t.data)


def _key_decl_tag(t: DeclTag) -> tuple[int, ...]:
    """btf_hash_int_decl_tag() for DECL_TAG: common plus component_idx."""
    return (t.name_off, t.info, t.type, t.component_idx)


def _key_enum(t: _EnumBase) -> tuple[str, int]:
    """btf_hash_enum(): the name only, so forward declarations meet full enums."""
    return ("enum", t.name_off)


def _key_typedef(t: BtfType) -> tuple[int, int]:
    """btf_hash_typedef(): name and info (the target may not be canonical yet)."""
    return (t.name_off, t.info)


_NAME_AND_OFFSET = itemgetter(0, 2)  # a btf_member's name_off and offset


def _key_struct(t: _Composite) -> tuple[object, ...]:
    """btf_hash_struct(): common plus member names and offsets, no member types."""
    # itemgetter(0, 2) through map: no Python frame per member (slicing a NamedTuple
    # is slower still)
    return (t.name_off, t.info, t.size, *map(_NAME_AND_OFFSET, t.members))


def _key_array(t: Array) -> tuple[int, ...]:
    """btf_hash_array(): common plus element type, index type and count."""
    return (t.name_off, t.info, 0, t.type, t.index_type, t.nelems)


def _key_fnproto(t: FuncProto) -> tuple[object, ...]:
    """btf_hash_fnproto(): common (return type) plus parameter names and types."""
    return (t.name_off, t.info, t.type, *t.params)


def _record_keys(w: list[int], starts: Sequence[int], kinds: Sequence[int],
                 decoded: dict[int, BtfType]) -> Iterator[tuple[Hashable, int]]:
    """(signature, id) of each record of a base as read, in id order, VAR and DATASEC
    left out: what _KEY_FNS gives for the decoded types, read off the record's words
    (btf_type: name_off, info, size/type; then the kind's data), so that a module's
    dedup need not decode its vmlinux base. A type in `decoded` (by index) was handed
    out and may have been edited: its key comes from the object."""
    vlen_mask = INFO_VLEN_MASK
    for idx, kind in enumerate(kinds):
        p = starts[idx]
        if idx in decoded:
            if kind not in (_VAR, _DATASEC):
                t = decoded[idx]
                yield _KEY_FNS[t.kind_id](t), idx + 1
            continue
        if kind in _REF_COMMON or kind == _FLOAT:
            key: Hashable = (w[p], w[p + 1], w[p + 2])
        elif kind in _COMPOSITE:
            e = p + 3 + 3 * (w[p + 1] & vlen_mask)
            key = (w[p], w[p + 1], w[p + 2], *zip(w[p + 3:e:3], w[p + 5:e:3], strict=True))
        elif kind == _FUNC_PROTO:
            e = p + 3 + 2 * (w[p + 1] & vlen_mask)
            key = (w[p], w[p + 1], w[p + 2], *zip(w[p + 3:e:2], w[p + 4:e:2], strict=True))
        elif kind == _TYPEDEF:
            key = (w[p], w[p + 1])
        elif kind == _ARRAY:
            key = (w[p], w[p + 1], 0, w[p + 3], w[p + 4], w[p + 5])
        elif kind == _INT:
            key = (w[p], w[p + 1], w[p + 2], w[p + 3])
        elif kind in _ANY_ENUM:
            key = ("enum", w[p])
        elif kind == _FWD:
            key = (w[p], w[p + 1], 0)
        elif kind == _DECL_TAG:
            c = w[p + 3]
            key = (w[p], w[p + 1], w[p + 2], c - (1 << 32) if c & 0x80000000 else c)
        elif kind in (_VAR, _DATASEC):
            continue
        else:
            raise BTFError(f"dedup: no signature for kind {kind}", type_id=idx + 1)
        yield key, idx + 1


class _BaseOnDemand(list):
    """Dedup's flat id-indexed type list for split BTF on a base still as read: void,
    the base's slots (None until first indexed, then that type decoded alone: a
    module's dedup compares a few of its vmlinux base's types), the own types. Only
    indexing by id is supported; nothing here iterates the list."""

    __slots__ = ("_base", "words", "_starts")

    def __init__(self, base: Btf, raw: RawTypes, decoded: dict[int, BtfType],
                 own: list[BtfType]):
        super().__init__([VOID])
        self.extend([None] * raw.count)
        self.extend(own)
        for idx, t in decoded.items():  # handed out before, maybe edited: use the objects
            list.__setitem__(self, idx + 1, t)
        self._base = base
        self.words = raw.words()
        self._starts = raw.starts

    def name_off(self, tid: int) -> int:
        """types[tid].name_off, without decoding a base type for it."""
        t = list.__getitem__(self, tid)
        return t.name_off if t is not None else self.words[self._starts[tid - 1]]

    def __getitem__(self, tid):  # noqa: ANN001, ANN204 - list's own signature
        t = list.__getitem__(self, tid)
        if t is None:
            t = self._base[tid]
            list.__setitem__(self, tid, t)
        return t


# kind -> signature function, as btf_dedup_prep()'s switch picks the hash.
# The reference phase builds the same tuples with canonical ids substituted.
_KEY_FNS: dict[int, Callable[[Any], Hashable]] = {
    _INT: _key_int, _PTR: _key_ref, _ARRAY: _key_array, _STRUCT: _key_struct,
    _UNION: _key_struct, _ENUM: _key_enum, _FWD: _key_fwd, _TYPEDEF: _key_typedef,
    _VOLATILE: _key_ref, _CONST: _key_ref, _RESTRICT: _key_ref, _FUNC: _key_ref,
    _FUNC_PROTO: _key_fnproto, _FLOAT: _key_float, _DECL_TAG: _key_decl_tag,
    _TYPE_TAG: _key_ref, _ENUM64: _key_enum,
}


class _Dedup:
    """The state of one btf__dedup() run (libbpf's struct btf_dedup).

    Types are addressed by id in one flat list (`types`: void, base types, own
    types), so base and own ids work alike as in libbpf. Nothing the caller
    holds changes before the last point of failure: the string phase copies
    the types it rewrites, the reference phase keeps canonical ids in its
    signatures instead of writing them into types, and `run` commits at the end.
    """

    def __init__(self, btf: Btf):
        self.btf = btf
        self.start_id = btf.start_id
        self.own: list[BtfType] = list(btf.types)
        base = btf.base
        # a base still as read (a module's vmlinux): its types are decoded on first use
        self.base_as_read = (base.records_as_read()
                             if base is not None and base.base is None else None)
        if self.base_as_read is not None:
            raw, singles = self.base_as_read
            if raw.count + 1 != btf.start_id:
                raise BTFError("dedup: base type count does not match the split start id")
            self.types: list[BtfType] = _BaseOnDemand(base, raw, singles, self.own)  # type: ignore[arg-type]
            self.kinds: list[int] = [0, *raw.kinds, *(t.kind_id for t in self.own)]
            self.infos: list[int] = [0, *raw.infos, *(t.info for t in self.own)]
            for idx, t in singles.items():  # looked up before: an edit may have changed them
                self.kinds[1 + idx], self.infos[1 + idx] = t.kind_id, t.info
        else:
            base_types: list[BtfType] = []
            chain_of_bases = []
            b = base
            while b is not None:
                chain_of_bases.append(b.types)
                b = b.base
            for types in reversed(chain_of_bases):
                base_types += types
            if len(base_types) + 1 != btf.start_id:
                raise BTFError("dedup: base type count does not match the split start id")
            self.types = [VOID, *base_types, *self.own]
            self.kinds = [t.kind_id for t in self.types]
            self.infos = [t.info for t in self.types]
        n = len(self.types)
        # map[id]: the canonical (or equivalent) type id, or a marker
        self.map: list[int] = [_UNPROCESSED] * n
        self.map[0] = 0
        for tid in range(self.start_id, n):
            if self.kinds[tid] in (_VAR, _DATASEC):
                self.map[tid] = tid
        self.table = _CandidateTable()
        # hypothetical canon -> cand map of one graph comparison; insertion order
        # is libbpf's hypot_list order, which btf_dedup_merge_hypot_map() walks
        self.hypot: dict[int, int] = {}
        self.hypot_adjust_canon = False
        self.new_strings: bytes | None = None
        # old -> new string offset, when applied only to the surviving types
        self.str_remap: dict[int, int] | None = None
        # struct-phase prefilter state (see shape())
        self.shapes: list[int | None] = [None] * n
        self.shape_ids: dict[tuple[object, ...], int] = {}
        self.sig_cache: dict[int, tuple[int, ...]] = {}
        self.enum_bodies: dict[int, tuple[object, ...]] = {}  # first_equal_enum's
        self.shallow_cache: dict[int, Hashable] = {}

    # ---- driver ------------------------------------------------------------------

    def run(self) -> list[int]:
        """All phases in btf__dedup()'s order; returns old id -> new id."""
        with _deep_recursion(len(self.types) * 2 + 10_000):
            for phase in (self.prep_base, self.dedup_strings, self.dedup_prim_types,
                          self.dedup_struct_types, self.resolve_fwds, self.dedup_ref_types):
                self._timed(phase)
        kept, compact = self._timed(self.compact_types)
        _unshare(kept)
        final, changes = self._timed(lambda: self.remap_types(kept, compact))
        # commit: only now does the caller's object change
        remap.apply(changes)
        if self.new_strings is not None:
            self.btf.set_strings(self.new_strings)
        self.btf.types[:] = kept
        return final

    def _timed(self, fn):  # noqa: ANN001, ANN202 - profiling aid, see _TIMES
        if not _TIMES:
            return fn()
        t0 = time.perf_counter()
        out = fn()
        name = "remap_types" if fn.__name__ == "<lambda>" else fn.__name__
        print(f"dedup {name}: {time.perf_counter() - t0:.3f}s",
              file=sys.stderr)
        return out

    # ---- helpers shared by the phases ------------------------------------------------

    def resolve(self, tid: int) -> int:
        """resolve_type_id(): follow map[] to the end of its chain."""
        m = self.map
        nxt = m[tid]
        while nxt >= 0 and nxt != tid:
            tid = nxt
            nxt = m[tid]
        return tid

    # ---- phase 0: prep ---------------------------------------------------------------

    def prep_base(self) -> None:
        """btf_dedup_prep(): base types are self-canonical and become candidates.

        Split BTF is deduplicated against an immutable base, so every base type
        (except VAR/DATASEC, never deduplicated) is entered in id order, with the
        same signatures own types will be looked up by.
        """
        first = self.start_id
        if first == 1:
            return
        kinds, types = self.kinds, self.types
        self.map[1:first] = range(1, first)
        fns = _KEY_FNS
        if self.base_as_read is not None:
            raw, singles = self.base_as_read
            self.table.add_many(_record_keys(self.types.words, raw.starts, raw.kinds, singles))  # type: ignore[attr-defined]
            return
        self.table.add_many(
            (fns[kinds[tid]](types[tid]), tid)
            for tid in range(1, first)
            if kinds[tid] not in (_VAR, _DATASEC)
        )

    # ---- phase 1: strings ------------------------------------------------------------

    def dedup_strings(self) -> None:
        """btf_dedup_strings(): a fresh string set filled in first-use order.

        Every string reference of every own type, in libbpf's field-iterator
        order, is looked up: the empty string (offset 0) and base offsets stay;
        a string the base also holds points to the base's copy; anything else
        is added to a new set (the empty string first for non-split BTF).
        Unreferenced strings disappear. Skipped, as libbpf does, when the own
        section is empty (split) or only the empty string (base).

        The type phases only ever compare string offsets for equality. When no
        two referenced offsets hold the same string and no own string moves
        into the base (BTF that went through libbpf before: pahole's output,
        sysfs, our own edits), old offsets compare exactly as new ones do, so
        the rewrite waits until the types that survive are known (`run`).
        Otherwise every own type is rewritten now, as copies.
        """
        btf = self.btf
        strings = btf.strings
        if len(strings) == (0 if btf.base is not None else 1):
            return
        start = strings.start_off
        data = bytearray()
        index: dict[bytes, int] = {}
        if btf.base is None:
            data += b"\0"
            index[b""] = 0
        base_find = _base_string_finder(btf.base)
        at_offset = _string_starts(strings.to_bytes(), start)
        get_bytes = strings.get_bytes
        # every referenced offset, in first-use order
        new_off = dict.fromkeys(chain.from_iterable(t.str_offs() for t in self.own))
        moved = crossed = False
        for off in new_off:
            if off == 0 or off < start:
                new_off[off] = off
                continue
            s = at_offset.get(off)
            if s is None:  # points into the middle of a string
                s = get_bytes(off)
            new = base_find(s)
            if new is None:
                new = index.get(s)
                if new is None:
                    new = start + len(data)
                    index[s] = new
                    data += s
                    data.append(0)
            else:
                crossed = True
            new_off[off] = new
            moved = moved or new != off
        self.new_strings = bytes(data)
        if not moved:
            return
        if not crossed and len(set(new_off.values())) == len(new_off):
            self.str_remap = new_off
            return
        moved_to = new_off.__getitem__
        types, own, first = self.types, self.own, self.start_id
        for i, t in enumerate(own):
            t = t.copy()
            t.remap_str_offs(moved_to)
            own[i] = types[first + i] = t

    # ---- phase 2: primitive types ------------------------------------------------------

    def dedup_prim_types(self) -> None:
        """btf_dedup_prim_types(): INT, FLOAT, FWD, ENUM/ENUM64 in id order.

        These reference no other type, so equality of their own fields decides.
        Enums are keyed by name alone: an enum forward declaration (vlen 0)
        takes the first full enum of that name found, and a full enum meeting
        canonical forward declarations makes them point to itself (even a base
        one) while carrying on looking for an equal full enum.
        """
        kinds, types, m, table = self.kinds, self.types, self.map, self.table
        for tid in range(self.start_id, len(types)):
            kind = kinds[tid]
            t = types[tid]
            if kind in _ANY_ENUM:
                key: Hashable = _key_enum(t)  # type: ignore[arg-type]
                cands = table.candidates(key)
                new_id = tid
                if not t.values:  # type: ignore[attr-defined]
                    # a forward declaration is equal or compatible to any of them
                    if cands:
                        new_id = cands[0]
                else:
                    # btf_equal_enum() first, then btf_compat_enum(), per candidate:
                    # a full enum equals only an identical one and is compatible
                    # only with forward declarations, which then resolve to it
                    new_id = self.first_equal_enum(tid, cands)
            elif kind in (_INT, _FWD, _FLOAT):
                key = _KEY_FNS[kind](t)
                found = table.first(key)
                new_id = tid if found is None else found
            else:
                continue
            m[tid] = new_id
            if new_id == tid:
                table.add(key, tid)

    def first_equal_enum(self, tid: int, cands: list[int]) -> int:
        """btf_equal_enum() first, then btf_compat_enum(), per candidate in order: the
        first identical full enum, else tid; forward declarations met before it resolve
        to tid. The scan runs in C over cached bodies (list.index): all anonymous enums
        share one key (vmlinux: ~940 of them, 442k pairs)."""
        types = self.types
        body = _enum_body(types[tid])  # type: ignore[arg-type]
        row = _cached_row(cands, self.enum_bodies,  # () for a forward declaration
                          lambda c: _enum_body(types[c]) if types[c].values else ())  # type: ignore[attr-defined,arg-type]
        found = _index(row, body, 0)
        k = 0
        while True:  # the forward declarations before it
            k = _index(row, (), k)
            if k >= found:
                break
            self.map[cands[k]] = tid
            k += 1
        return cands[found] if found < len(cands) else tid

    # ---- phase 3: structs, unions, typedefs ---------------------------------------------

    def dedup_struct_types(self) -> None:
        """btf_dedup_struct_types(): STRUCT/UNION/TYPEDEF by type-graph equivalence.

        Candidates share the shallow signature (name, size, member names and
        offsets; typedefs: name). The first whose type graph is equivalent
        (is_equiv) becomes the canonical id; a successful comparison also
        records FWD resolutions and struct correspondences it proved
        (merge_hypot_map). A candidate whose equivalence would require a base
        FWD to change (split BTF) is not taken: the base is immutable.
        """
        kinds, types, m, table = self.kinds, self.types, self.map, self.table
        for tid in range(self.start_id, len(types)):
            if m[tid] >= 0:  # mapped already (by an earlier graph comparison)
                continue
            kind = kinds[tid]
            if kind in _COMPOSITE:
                key: Hashable = _key_struct(types[tid])  # type: ignore[arg-type]
            elif kind == _TYPEDEF:
                key = _key_typedef(types[tid])
            else:
                continue
            cands = table.candidates(key)
            new_id = self.first_equivalent(tid, cands) if cands else tid
            m[tid] = new_id
            if new_id == tid:
                table.add(key, tid)

    def first_equivalent(self, tid: int, cands: list[int]) -> int:
        """The first of `cands` (libbpf's order) whose type graph is equivalent to tid's,
        else tid.

        A cheap necessary condition comes first (see ref_shapes): only candidates whose
        shapes equal tid's, or that have none, are compared; skipping a comparison that
        would fail changes nothing, as failures leave no trace. The scan for the next
        such candidate runs in C (list.index), since one key can have thousands of
        candidates (vmlinux: 1,600 anonymous two-member unions, 1.28M pairs).
        """
        sig = self.ref_shapes(tid)
        sigs = _cached_row(cands, self.sig_cache, self.ref_shapes)
        i = 0
        while i < len(cands):
            if sig is _UNKNOWN:
                j = i
            else:
                j = min(_index(sigs, sig, i), _index(sigs, _UNKNOWN, i))
                if j == len(cands):
                    break
            cand_id = cands[j]
            i = j + 1
            self.hypot.clear()
            self.hypot_adjust_canon = False
            if not self.is_equiv(tid, cand_id):
                continue
            self.merge_hypot_map()
            if self.hypot_adjust_canon:  # would need a base FWD resolved: not equal
                continue
            return cand_id
        return tid

    def ref_shapes(self, tid: int) -> tuple[int, ...]:
        """Shapes of what a STRUCT/UNION's members (a TYPEDEF: its target) refer to.

        Equal tuples are necessary for is_equiv() to succeed on two types with
        the same shallow signature, so unequal ones let us skip the DFS (libbpf
        walks it; a failed walk leaves no state behind). `_UNKNOWN` when a
        shape cannot be given, and the comparison must run.
        """
        sig = self.sig_cache.get(tid)
        if sig is None:
            t = self.types[tid]
            refs = [m.type for m in t.members] if self.kinds[tid] in _COMPOSITE else [t.type]  # type: ignore[attr-defined]
            shapes = tuple([self.shape(r) for r in refs])  # Python frames only, see _deep_recursion
            sig = _UNKNOWN if _NO_SHAPE in shapes else shapes
            self.sig_cache[tid] = sig
        return sig

    def shape(self, tid: int) -> int:
        """An interned summary of type `tid` that is_equiv() preserves.

        If is_equiv(a, b) holds, shape(a) == shape(b). That needs the shape to
        hold no more than every successful path checks, including the map[]
        shortcuts (all made between types of equal shape) and the
        identical_types() fallback (which compares ARRAYs shallowly):

        - STRUCT/UNION and FWD: name and struct-or-union (FWDs match bodies);
        - ENUM/ENUM64: name (enum forward declarations match either kind);
        - INT, FLOAT: all fields; ARRAY: name and element count only;
        - PTR, TYPEDEF, CONST, VOLATILE, RESTRICT, TYPE_TAG, FUNC: name, info
          and the target's shape; FUNC_PROTO: name, info, parameter names and
          the shapes of return and parameter types;
        - VAR, DATASEC, DECL_TAG (where libbpf fails) and reference loops: no
          shape (`_NO_SHAPE`), so comparisons involving them always run.
        """
        s = self.shapes[tid]
        if s is not None:
            return s
        self.shapes[tid] = _NO_SHAPE  # a reference loop reads this
        t = self.types[tid]
        kind = self.kinds[tid]
        desc: tuple[object, ...] | None
        if kind in _COMPOSITE:
            desc = ("c", t.name_off, kind)
        elif kind == _FWD:
            desc = ("c", t.name_off, _fwd_target(t))  # type: ignore[arg-type]
        elif kind in _EQUIV_REF:
            target = self.shape(t.type)  # type: ignore[attr-defined]
            desc = None if target == _NO_SHAPE else (t.name_off, t.info, target)
        elif kind in _ANY_ENUM:
            desc = ("e", t.name_off)
        elif kind == _INT:
            desc = _key_int(t)  # type: ignore[arg-type]
        elif kind == _FLOAT:
            desc = ("fl", t.name_off, t.size)  # type: ignore[attr-defined]
        elif kind == _ARRAY:
            desc = ("a", t.name_off, t.nelems)  # type: ignore[attr-defined]
        elif kind == _FUNC_PROTO:
            parts = [self.shape(t.type), *[self.shape(p[1]) for p in t.params]]  # type: ignore[attr-defined]
            desc = None if _NO_SHAPE in parts else (
                "f", t.name_off, t.info, *(p.name_off for p in t.params), *parts)  # type: ignore[attr-defined]
        elif kind == 0:
            desc = ("v",)
        else:
            desc = None
        if desc is None:
            return _NO_SHAPE
        s = self.shape_ids.setdefault(desc, len(self.shape_ids))
        self.shapes[tid] = s
        return s

    def is_equiv(self, cand_id: int, canon_id: int) -> bool:
        """btf_dedup_is_equiv(): are the graphs from cand_id and canon_id equivalent?

        A side-by-side DFS. Each canonical-side id is hypothetically mapped to
        the candidate-side id met with it; meeting it again with the same
        candidate closes a cycle (equivalent), with a different one is a
        contradiction unless the two candidates are structurally identical (the
        compiler sometimes emits duplicate types within one CU). A FWD matches
        a STRUCT/UNION of the same name and kind; only the canonical side's
        FWDs are followed to what they already resolved to. Sets
        `hypot_adjust_canon` when the match needs a base FWD resolved.

        This is the hot loop of the whole dedup (millions of calls on split
        BTF over a foreign base), hence the local names, the inlined map[]
        walks and the comparison of cached signatures instead of fields.
        """
        m, types, kinds, infos = self.map, self.types, self.kinds, self.infos
        hypot, shallow, start_id = self.hypot, self.shallow_key, self.start_id
        identical = self.identical_types

        def equiv(cand_id: int, canon_id: int) -> bool:
            # resolve_type_id() of both sides
            a = cand_id
            nxt = m[a]
            while nxt >= 0 and nxt != a:
                a = nxt
                nxt = m[a]
            c = canon_id
            nxt = m[c]
            while nxt >= 0 and nxt != c:
                c = nxt
                nxt = m[c]
            if a == c:
                return True
            # resolve_fwd_id(): a canonical-side FWD stands for its resolution
            if kinds[canon_id] == _FWD and kinds[c] != _FWD:
                canon_id = c
            seen = hypot.get(canon_id)
            if seen is not None:
                return seen == cand_id or identical(seen, cand_id, 16)
            hypot[canon_id] = cand_id

            cand = types[cand_id]
            canon = types[canon_id]
            if cand.name_off != canon.name_off:
                return False
            cand_kind = kinds[cand_id]
            canon_kind = kinds[canon_id]
            if cand_kind != canon_kind:
                if cand_kind == _FWD:
                    return _fwd_target(cand) == canon_kind  # type: ignore[arg-type]
                if canon_kind == _FWD:
                    fwd_kind = _fwd_target(canon)  # type: ignore[arg-type]
                    if fwd_kind == cand_kind and canon_id < start_id:
                        self.hypot_adjust_canon = True  # a base FWD would need resolving
                    return fwd_kind == cand_kind
                return False

            if cand_kind in _EQUIV_REF:
                return infos[cand_id] == infos[canon_id] and equiv(
                    cand.type, canon.type)  # type: ignore[attr-defined]
            if cand_kind in _COMPOSITE:
                if shallow(cand_id) != shallow(canon_id):
                    return False
                # an explicit loop: all(<genexpr>) costs a frame per member
                for cm, nm in zip(cand.members, canon.members, strict=True):  # noqa: SIM110
                    if not equiv(cm[1], nm[1]):
                        return False
                return True
            if cand_kind == _FUNC_PROTO:
                if shallow(cand_id) != shallow(canon_id):
                    return False
                if not equiv(cand.type, canon.type):  # type: ignore[attr-defined]
                    return False
                for cp, np in zip(cand.params, canon.params, strict=True):  # noqa: SIM110
                    if not equiv(cp[1], np[1]):
                        return False
                return True
            if cand_kind in (_INT, _FWD, _FLOAT):
                return cand == canon
            if cand_kind in _ANY_ENUM:
                return _enum_compat(cand, canon)  # type: ignore[arg-type]
            if cand_kind == _ARRAY:
                return (
                    _compat_array(cand, canon)  # type: ignore[arg-type]
                    and equiv(cand.index_type, canon.index_type)  # type: ignore[attr-defined]
                    and equiv(cand.type, canon.type)  # type: ignore[attr-defined]
                )
            raise BTFError(
                f"dedup: unexpected {Kind(cand_kind).name} in a type graph "
                f"(types [{cand_id}] and [{canon_id}])", type_id=cand_id)

        try:
            return equiv(cand_id, canon_id)
        finally:
            # a recursive closure is a reference cycle (through its own cell) that holds
            # self and the whole BTF: break it, or only the cyclic GC frees them
            equiv = None  # type: ignore[assignment]  # noqa: F841

    def shallow_key(self, tid: int) -> Hashable:
        """What btf_shallow_equal_struct() / btf_compat_fnproto() compare, cached:
        everything but the referenced type ids."""
        key = self.shallow_cache.get(tid)
        if key is None:
            t = self.types[tid]
            if self.kinds[tid] == _FUNC_PROTO:
                key = (t.name_off, self.infos[tid], *[p[0] for p in t.params])  # type: ignore[attr-defined]
            else:
                key = _key_struct(t)  # type: ignore[arg-type]
            self.shallow_cache[tid] = key
        return key

    def identical_types(self, id1: int, id2: int, depth: int) -> bool:
        """btf_dedup_identical_types(): structural identity up to `depth` levels.

        The fallback is_equiv uses when the hypothetical map contradicts itself.
        Like libbpf, ARRAYs count as identical when their shallow fields match:
        libbpf compares the first array's element and index types with
        themselves (a2 = btf_array(t1)), and we must agree with it.
        """
        types, kinds = self.types, self.kinds
        hops = 0
        while True:
            if depth <= 0:
                return False
            k1 = kinds[id1]
            if k1 != kinds[id2]:
                return False
            t1 = types[id1]
            t2 = types[id2]
            if k1 in _EQUIV_REF:
                if t1.info != t2.info or t1.name_off != t2.name_off:
                    return False
                id1 = t1.type  # type: ignore[attr-defined]
                id2 = t2.type  # type: ignore[attr-defined]
                hops += 1
                if hops > _MAX_REF_HOPS:
                    return False
                continue
            break
        if k1 == 0:  # void
            return True
        if k1 in (_INT, _FWD, _FLOAT):
            return t1 == t2
        if k1 in _ANY_ENUM:
            return _enum_compat(t1, t2)  # type: ignore[arg-type]
        if k1 == _ARRAY:
            return _compat_array(t1, t2)  # type: ignore[arg-type]
        if k1 in _COMPOSITE:
            if self.shallow_key(id1) != self.shallow_key(id2):
                return False
            for m1, m2 in zip(t1.members, t2.members, strict=True):  # type: ignore[attr-defined]
                if m1.type != m2.type and not self.identical_types(m1.type, m2.type, depth - 1):
                    return False
            return True
        if k1 == _FUNC_PROTO:
            if self.shallow_key(id1) != self.shallow_key(id2):
                return False
            if t1.type != t2.type and not self.identical_types(  # type: ignore[attr-defined]
                t1.type, t2.type, depth - 1  # type: ignore[attr-defined]
            ):
                return False
            for p1, p2 in zip(t1.params, t2.params, strict=True):  # type: ignore[attr-defined]
                if p1.type != p2.type and not self.identical_types(p1.type, p2.type, depth - 1):
                    return False
            return True
        return False

    def merge_hypot_map(self) -> None:
        """btf_dedup_merge_hypot_map(): keep what a successful comparison proved.

        In hypothetical-map order: a canonical-side FWD now points to the
        candidate's STRUCT/UNION (even in the base: split FWDs resolve through
        it); unless base FWDs had to change, a candidate-side FWD points to the
        canonical type, and a not-yet-mapped candidate STRUCT/UNION is mapped to
        its already-canonical counterpart (a shortcut libbpf takes for speed,
        which decides ids, so we take it too).
        """
        m, kinds, resolve = self.map, self.kinds, self.resolve
        for canon_id, targ_id in self.hypot.items():
            t_id = resolve(targ_id)
            c_id = resolve(canon_id)
            t_kind = kinds[t_id]
            c_kind = kinds[c_id]
            if t_kind != _FWD and c_kind == _FWD:
                m[c_id] = t_id
            if self.hypot_adjust_canon:
                continue
            if t_kind == _FWD and c_kind != _FWD:
                m[t_id] = c_id
            if t_kind in _COMPOSITE and c_kind != _FWD and m[c_id] >= 0 and m[t_id] < 0:
                m[t_id] = c_id

    # ---- phase 4: leftover FWDs ------------------------------------------------------

    def resolve_fwds(self) -> None:
        """btf_dedup_resolve_fwds(): a FWD nothing resolved yet takes the one
        canonical STRUCT/UNION (base or own) of its name and kind, if the name
        is unique among canonical structs and unions."""
        kinds, types, m = self.kinds, self.types, self.map
        names: dict[int, int] = {}
        name_off = types.name_off if isinstance(types, _BaseOnDemand) else None
        for tid in range(1, len(types)):
            if kinds[tid] in _COMPOSITE and m[tid] == tid:
                name = types[tid].name_off if name_off is None else name_off(tid)
                names[name] = 0 if name in names else tid  # 0: ambiguous
        for tid in range(self.start_id, len(types)):
            if kinds[tid] != _FWD or m[tid] != tid:
                continue
            t = types[tid]
            cand_id = names.get(t.name_off, 0)
            if cand_id and kinds[cand_id] == _fwd_target(t):  # type: ignore[arg-type]
                m[tid] = cand_id

    # ---- phase 5: reference types ------------------------------------------------------

    def dedup_ref_types(self) -> None:
        """btf_dedup_ref_types(): everything left, bottom-up, in id order.

        btf_dedup_ref_type(): a type's references are deduplicated first, so
        its signature can be taken over canonical ids; from then on plain
        equality decides, and the first candidate with that signature wins.
        libbpf writes the canonical ids into the type; we only put them in the
        signature, as the final remapping reaches the same ids through map[].
        """
        m, types, kinds, table = self.map, self.types, self.kinds, self.table
        infos = self.infos
        resolve = self.resolve
        chains = table._chains

        def ref(tid: int) -> int:
            mapped = m[tid]
            if mapped >= 0:
                return tid if mapped == tid else resolve(tid)
            if mapped == _IN_PROGRESS:
                raise BTFError("dedup: reference types form a loop", type_id=tid)
            m[tid] = _IN_PROGRESS
            t = types[tid]
            kind = kinds[tid]
            key: Hashable
            if kind in _REF_COMMON:
                key = (t.name_off, infos[tid], ref(t.type))  # type: ignore[attr-defined]
            elif kind == _FUNC_PROTO:
                # return type first, then parameters in order, as libbpf recurses
                ret = ref(t.type)  # type: ignore[attr-defined]
                key = (t.name_off, infos[tid], ret,
                       *[(p.name_off, ref(p.type)) for p in t.params])  # type: ignore[attr-defined]
            elif kind == _ARRAY:
                elem = ref(t.type)  # type: ignore[attr-defined]
                key = (t.name_off, infos[tid], 0, elem, ref(t.index_type), t.nelems)  # type: ignore[attr-defined]
            elif kind == _DECL_TAG:
                key = (t.name_off, infos[tid], ref(t.type), t.component_idx)  # type: ignore[attr-defined]
            else:
                raise BTFError(f"dedup: unexpected {Kind(kind).name} among reference types",
                               type_id=tid)
            chain = chains.get(key)
            if chain is None:
                new_id = tid
            elif len(chain) == 2:
                new_id = chain[1]
            else:
                new_id = table.first(key)  # type: ignore[assignment]
            m[tid] = new_id
            if new_id == tid:
                table.add(key, tid)
            return new_id

        try:
            for tid in range(self.start_id, len(types)):
                if m[tid] < 0:
                    ref(tid)
        finally:
            ref = None  # type: ignore[assignment]  # noqa: F841 - breaks the cycle, as in is_equiv

    # ---- phases 6 and 7: compaction and remapping ---------------------------------------

    def compact_types(self) -> tuple[list[BtfType], list[int]]:
        """btf_dedup_compact_types(): keep own canonical types in id order.

        Returns them and the compaction map (canonical id -> new id; base ids
        unchanged; -1 for own types that were dropped).
        """
        m = self.map
        compact = list(range(self.start_id)) + [-1] * len(self.own)
        kept: list[BtfType] = []
        next_id = self.start_id
        for tid in range(self.start_id, len(self.types)):
            if m[tid] == tid:
                compact[tid] = next_id
                kept.append(self.types[tid])
                next_id += 1
        return kept, compact

    def remap_types(self, kept: list[BtfType],
                    compact: list[int]) -> tuple[list[int], remap.Plan]:
        """btf_dedup_remap_types(): every type id field -> compact[resolve(id)].

        Returns that mapping for all old ids (what dedup_ids() hands out) and the
        kept types' new field values, with the string offsets of a late string rewrite
        (dedup_strings) in the same pass; run() stores them only after the last point
        of failure, so a failure cannot leave a half-deduplicated `btf` behind.
        """
        resolve = self.resolve
        final = [compact[resolve(tid)] for tid in range(len(self.types))]
        if final and min(final) < 0:
            bad = final.index(min(final))
            raise BTFError("dedup: type has no canonical representative", type_id=bad)
        ids = None if final == list(range(len(final))) else final
        return final, remap.plan(kept, ids=ids, strs=self.str_remap)


def _cached_row(ids: list[int], cache: dict[int, Any], compute: Callable[[int], Any]) -> list[Any]:
    """[cache[i] for i in ids], computing (and caching) the missing ones; the lookups run
    in C, only the misses in Python."""
    row = list(map(cache.get, ids))
    k = _index(row, None, 0)
    while k < len(row):
        row[k] = cache[ids[k]] = compute(ids[k])
        k = _index(row, None, k + 1)
    return row


def _index(items: list[Any], value: object, start: int) -> int:
    """items.index(value, start), or len(items) when it is not there."""
    try:
        return items.index(value, start)
    except ValueError:
        return len(items)


def _string_starts(data: bytes, start: int) -> dict[int, bytes]:
    """Logical offset -> string for every entry of a string section."""
    parts = data.split(b"\0")[:-1]
    offs = accumulate((len(p) + 1 for p in parts), initial=start)
    return dict(zip(offs, parts, strict=False))


def _unshare(types: list[BtfType]) -> None:
    """Copy any type object that occurs more than once (Btf.add() accepts the same
    object twice), since the kept types are rewritten in place."""
    if len({id(t) for t in types}) == len(types):
        return
    seen: set[int] = set()
    for i, t in enumerate(types):
        if id(t) in seen:
            types[i] = t = t.copy()
        seen.add(id(t))


def _base_string_finder(base: Btf | None):  # noqa: ANN202 - a small closure
    """btf__find_str() on the base chain, for byte strings: offset or None."""
    if base is None:
        return lambda s: None
    tables = []
    b: Btf | None = base
    while b is not None:
        tables.append(b.strings)
        b = b.base
    tables.reverse()  # the innermost base first, as btf__find_str recurses
    finds = [tab.find for tab in tables]

    def find(s: bytes) -> int | None:
        for f in finds:
            off = f(s)
            if off is not None:
                return off
        return None

    return find
