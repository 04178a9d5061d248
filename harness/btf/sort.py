"""Reorder BTF types with full id remapping, and resolve_btfids' sort by name.

Why this exists: 7.2 and 7.3 resolve_btfids sort every BTF they write by type
name (so the kernel can binary-search names), through libbpf's btf__permute().
The Python transformer must produce the same bytes, so both steps are modelled
exactly:

- ``permute(btf, id_map)`` is btf__permute(): ``id_map`` maps old ids to new ids
  with libbpf's indexing (base BTF: ``id_map[old_id]`` over 0..type_count-1 with
  ``id_map[0] == 0``; split BTF: ``id_map[old_id - start_id]`` over own types).
  Types are moved, every type-id field of every own type is rewritten, base and
  void references are left alone; the string section is not touched.
- ``sort_by_name(btf)`` is resolve_btfids' sort_btf_by_name(): own types ordered
  by ``strcmp`` of their names (anonymous first), ties kept in id order.

Both change ``btf`` in place, as the C code does, and return the full old->new
mapping (a list indexed by old id over 0..type_count-1, identity below
start_id) so a caller can rewrite ids held elsewhere (.BTF_ids, kfunc sets).
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter

from harness.btf.btf import Btf
from harness.btf.codec import gc_paused
from harness.btf.errors import BTFError
from harness.btf.remap import apply, plan

_NAME_OFF = attrgetter("name_off")

# Profiles whose sort was checked against the tree's C resolve_btfids; the 7.2
# and 7.3 comparators are the same (see tests/btf/test_sort.py).
SORT_PROFILES = ("7.2", "7.3")


def permute(btf: Btf, id_map: Sequence[int]) -> list[int]:
    """Reorder own types so old id ``i`` becomes ``id_map[...]``: libbpf's btf__permute().

    Raises BTFError (leaving ``btf`` unchanged) for a wrong-sized map, a target
    outside the own id range, two types sent to one id, moving void, or a type
    referring past the last id. Returns the full old->new id list.
    """
    start = btf.start_id
    count = btf.type_count
    n = len(btf.types)
    if btf.base is None:
        if len(id_map) != count:
            raise BTFError(f"permute: id map has {len(id_map)} entries, expected {count}")
        if id_map[0] != 0:
            raise BTFError("permute: void (id 0) cannot be moved")
        own_map = id_map[1:]
    else:
        if len(id_map) != n:
            raise BTFError(f"permute: id map has {len(id_map)} entries, expected {n}")
        own_map = id_map
    full = list(range(start))
    full.extend(own_map)
    order: list[int] = [-1] * n  # new index -> old index
    for old_idx, new_id in enumerate(own_map):
        new_idx = new_id - start
        if not 0 <= new_idx < n:
            raise BTFError(f"permute: type {old_idx + start} mapped to id {new_id}, "
                           f"outside {start}..{count - 1}")
        if order[new_idx] >= 0:
            raise BTFError(f"permute: types {order[new_idx] + start} and {old_idx + start} "
                           f"both mapped to id {new_id}")
        order[new_idx] = old_idx
    # the cyclic GC would walk every loaded type each time the remap allocates
    # its ~100k lists and tuples (measured: remap 1.4 s with it, 0.3 s without)
    with gc_paused():
        _apply(btf, order, full)
    return full


def reorder(btf: Btf, new_order: Sequence[int]) -> list[int]:
    """Put own types in the order given by their old ids; returns the old->new id list.

    The convenient form of permute(): ``new_order[k]`` is the old id of the type
    that gets id ``start_id + k``.
    """
    start = btf.start_id
    n = len(btf.types)
    if len(new_order) != n:
        raise BTFError(f"reorder: {len(new_order)} ids given for {n} own types")
    own_map = [-1] * n
    for k, old_id in enumerate(new_order):
        idx = old_id - start
        if not 0 <= idx < n or own_map[idx] >= 0:
            raise BTFError(f"reorder: id {old_id} is not an own type or appears twice")
        own_map[idx] = start + k
    return permute(btf, own_map if btf.base is not None else [0, *own_map])


def name_order(btf: Btf, profile: str = "7.3") -> list[int]:
    """Own type ids in resolve_btfids' sort order (cmp_type_names in main.c).

    strcmp on the raw name bytes (Python compares bytes the same way, as
    unsigned chars), anonymous types ("" sorts first), equal names in
    ascending id order (the comparator's tie-break; Python's sort is stable).
    """
    if profile not in SORT_PROFILES:
        raise BTFError(f"unknown sort profile {profile!r}: choose {', '.join(SORT_PROFILES)}")
    name_offs = list(map(_NAME_OFF, btf.types))
    names = _names(btf, set(name_offs))
    keys = list(map(names.__getitem__, name_offs))
    start = btf.start_id
    return [start + i for i in sorted(range(len(keys)), key=keys.__getitem__)]


def _names(btf: Btf, offsets: set[int]) -> dict[int, bytes]:
    """Name bytes for each string offset (one slice per distinct offset, not per type)."""
    strings = btf.strings
    local = strings.start_off
    data = strings.to_bytes()
    find = data.find
    out: dict[int, bytes] = {0: b""}
    for off in offsets:
        if not off:
            continue
        rel = off - local
        if 0 <= rel < len(data):
            end = find(b"\0", rel)
            if end < 0:
                raise BTFError(f"string at offset {off} is not NUL-terminated")
            out[off] = data[rel:end]
        else:  # a split BTF type named with a base string, or a bad offset
            out[off] = btf.str(off).encode("utf-8", "surrogateescape")
    return out


def sort_by_name(btf: Btf, profile: str = "7.3") -> list[int]:
    """Sort own types by name as resolve_btfids does before writing .BTF.

    In place; returns the old->new id list (indexed by old id, 0..type_count-1).
    """
    with gc_paused():
        order = name_order(btf, profile)
        start = btf.start_id
        full = list(range(start))
        full.extend([0] * len(order))
        for k, old_id in enumerate(order):
            full[old_id] = start + k
        _apply(btf, [i - start for i in order], full)
    return full


def _apply(btf: Btf, order: list[int], full: list[int]) -> None:
    """Move types into `order` (new index -> old index) and remap ids through `full`.

    All new field values are computed before any type is changed, so a
    reference past the last id (IndexError on `full`, which btf__permute
    reports as EINVAL) leaves `btf` untouched (remap.plan, then remap.apply).
    """
    old = btf.types
    new = [old[i] for i in order]
    try:
        changes = plan(new, ids=full)
    except IndexError:
        count = btf.type_count
        for tid, t in btf.items():
            bad = [ref for ref in t.type_ids() if ref >= count]
            if bad:
                raise BTFError(f"permute: type {tid} refers to id {bad[0]}, past the last "
                               f"id {count - 1}") from None
        raise
    apply(changes)
    btf.types = new
