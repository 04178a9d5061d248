"""Distilled base BTF: libbpf's btf__distill_base(), byte for byte.

Why: an out-of-tree module is built against one vmlinux and loaded on
another. resolve_btfids --distill_base therefore writes, next to the module's
split BTF, a small `.BTF.base` describing only what the module refers to in
vmlinux (base types, and named structs/unions/enums without members), so the
kernel can relocate the module's BTF onto whatever vmlinux it meets. The
transformer must write the same two blobs as the C tool, so this follows
tools/lib/bpf/btf.c step by step:

1. Mark every base type the split BTF refers to, and, transitively, what those
   refer to, except through *named* structs/unions (the distilled copy has no
   members). Only INT, FLOAT, FWD, ARRAY, STRUCT, UNION, TYPEDEF, ENUM, ENUM64,
   PTR, CONST, RESTRICT, VOLATILE, FUNC_PROTO and TYPE_TAG may be referenced.
2. New base, in old base id order: named INT/FLOAT/FWD copied; named
   STRUCT/UNION as a member-less type of the same size; named ENUM/ENUM64 as
   an empty ENUM of the same size.
3. New split: every split type copied in order, then the marked base types
   that did not go to the new base (anonymous structs/unions/enums in full,
   arrays, typedefs, pointers, modifiers, func protos, type tags), in old base
   id order.
4. Every type id rewritten: marked base ids to their new ids, split ids moved
   down by (old base type count - new base type count).
"""

from __future__ import annotations

from harness.btf.btf import Btf
from harness.btf.errors import BTFError
from harness.btf.kinds import Kind
from harness.btf.types import BtfType, Enum, Struct, Union

# kinds a split type may reference in its base (btf_add_distilled_type_ids)
_REFERABLE = frozenset({
    Kind.INT, Kind.FLOAT, Kind.FWD, Kind.ARRAY, Kind.STRUCT, Kind.UNION, Kind.TYPEDEF,
    Kind.ENUM, Kind.ENUM64, Kind.PTR, Kind.CONST, Kind.RESTRICT, Kind.VOLATILE,
    Kind.FUNC_PROTO, Kind.TYPE_TAG,
})
_TO_BASE_AS_IS = frozenset({Kind.INT, Kind.FLOAT, Kind.FWD})
_COMPOSITE = frozenset({Kind.STRUCT, Kind.UNION})
_ENUMS = frozenset({Kind.ENUM, Kind.ENUM64})


def distill_base(split: Btf) -> tuple[Btf, Btf]:
    """(new_base, new_split) for split BTF `split`, as btf__distill_base() makes them.

    `split` is not modified. new_split has new_base as its base. Both have
    `split`'s byte order and libbpf's default header (32 bytes, no layout
    section), as btf__new_empty() gives. Raises BTFError if `split` has no
    base or refers to a base type of a kind that cannot be distilled
    (FUNC, VAR, DATASEC, DECL_TAG).
    """
    old_base = split.base
    if old_base is None:
        raise BTFError("distill_base: BTF is not split BTF (it has no base)")
    split_start = split.start_id
    marked = _mark_base_refs(split, split_start)

    new_base = Btf(endian=split.endian)
    id_map: dict[int, int] = {}
    for old_id in marked:
        t = old_base[old_id]
        kind = t.kind
        if kind in _TO_BASE_AS_IS:
            new_id = new_base.add_type(old_base, t)
        elif kind in _COMPOSITE:
            if not t.name_off:
                continue
            cls = Struct if kind == Kind.STRUCT else Union
            new_id = new_base.add(cls(new_base.add_str(old_base.name(t)), t.size, []))
        elif kind in _ENUMS:
            if not t.name_off:
                continue
            if t.size <= 0 or t.size & (t.size - 1) or t.size > 8:
                raise BTFError(f"distill_base: enum [{old_id}] has size {t.size}, "
                               "not a power of 2 up to 8")
            # an ENUM64 becomes an ENUM of size 8: relocation matches either
            new_id = new_base.add(Enum(new_base.add_str(old_base.name(t)), t.size, []))
        else:
            continue
        id_map[old_id] = new_id

    new_split = Btf(new_base)
    for t in split.types:
        new_split.add_type(split, t)
    for old_id in marked:
        t = old_base[old_id]
        kind = t.kind
        if kind in _TO_BASE_AS_IS or (kind in _COMPOSITE or kind in _ENUMS) and t.name_off:
            continue
        id_map[old_id] = new_split.add_type(old_base, t)

    diff = split_start - new_base.type_count
    get = id_map.get

    def remap(old: int) -> int:
        new = get(old)
        if new is not None:
            return new
        return old - diff if old >= split_start else old

    new_split.remap_type_ids(remap)
    return new_base, new_split


def _mark_base_refs(split: Btf, split_start: int) -> list[int]:
    """Base ids the split BTF needs, ascending (pass 1 of btf__distill_base)."""
    base = split.base
    assert base is not None
    seen: set[int] = set()

    def visit(t: BtfType, stack: list[int]) -> None:
        for ref in t.type_ids():
            if not ref or ref >= split_start or ref in seen:
                continue
            bt = base[ref]
            if bt.kind not in _REFERABLE:
                raise BTFError(f"distill_base: unexpected reference to base type [{ref}] "
                               f"of kind {bt.kind.name}")
            seen.add(ref)
            # a named struct/union is distilled without members: stop there
            if bt.kind in _COMPOSITE and bt.name_off:
                continue
            stack.append(ref)

    stack: list[int] = []
    for t in split.types:
        visit(t, stack)
        while stack:
            visit(base[stack.pop()], stack)
    return sorted(seen)
