"""Rewrite the id and string-offset fields of many types at once, grouped by class.

`t.remap_type_ids(fn)` / `t.remap_str_offs(fn)` cost a method call, a closure call
per field and, for a struct, one member list per call: on a 150k-type vmlinux that is
the bulk of sort's permute and dedup's commit, which every resolve_btfids run does.
Here each class gets one comprehension per field, subscripting the mappings directly,
and a struct's members are rebuilt once for both kinds of field.

plan() computes every new value before anything changes, so a bad id or offset
(IndexError / KeyError from the mapping) leaves the types as they were; apply() then
stores them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from harness.btf.types import (
    Array,
    BtfType,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    EnumValue,
    Func,
    FuncProto,
    Member,
    Param,
    Ptr,
    Restrict,
    Struct,
    Typedef,
    TypeTag,
    Union,
    Var,
    VarSecinfo,
    Volatile,
)

# Kinds whose one type-id field is `type`.
_ONE_REF = frozenset({Ptr, Typedef, Volatile, Const, Restrict, TypeTag, Func, Var, DeclTag})
_new = tuple.__new__  # a NamedTuple without its __new__'s argument handling

Plan = list[tuple[list[BtfType], str, list[object]]]


def _by_class(types: Sequence[BtfType]) -> dict[type, list[BtfType]]:
    groups: dict[type, list[BtfType]] = {}
    for t in types:
        cls = type(t)
        group = groups.get(cls)
        if group is None:
            group = groups[cls] = []
        group.append(t)
    return groups


def plan(types: Sequence[BtfType], ids: Sequence[int] | None = None,
         strs: Mapping[int, int] | None = None) -> Plan:
    """(types, field, new values) for every field `ids` (old id -> new, by index) or
    `strs` (old offset -> new) changes; None leaves that kind of field alone."""
    out: Plan = []
    for cls, ts in _by_class(types).items():
        if strs is not None:
            out.append((ts, "name_off", [strs[t.name_off] for t in ts]))
        if cls in _ONE_REF:
            if ids is not None:
                out.append((ts, "type", [ids[t.type] for t in ts]))
        elif cls is Struct or cls is Union:
            # one comprehension per combination of maps (here and for params): an
            # identity map in place of a missing one would cost a call per entry
            if ids is not None and strs is not None:
                rows = [[_new(Member, (strs[n], ids[ty], o)) for n, ty, o in t.members]
                        for t in ts]
            elif ids is not None:
                rows = [[_new(Member, (n, ids[ty], o)) for n, ty, o in t.members] for t in ts]
            elif strs is not None:
                rows = [[_new(Member, (strs[n], ty, o)) for n, ty, o in t.members] for t in ts]
            else:
                continue
            out.append((ts, "members", rows))
        elif cls is FuncProto:
            if ids is not None:
                out.append((ts, "type", [ids[t.type] for t in ts]))
            if ids is not None and strs is not None:
                rows = [[_new(Param, (strs[n], ids[ty])) for n, ty in t.params] for t in ts]
            elif ids is not None:
                rows = [[_new(Param, (n, ids[ty])) for n, ty in t.params] for t in ts]
            elif strs is not None:
                rows = [[_new(Param, (strs[n], ty)) for n, ty in t.params] for t in ts]
            else:
                continue
            out.append((ts, "params", rows))
        elif cls is Array:
            if ids is not None:
                out.append((ts, "type", [ids[t.type] for t in ts]))
                out.append((ts, "index_type", [ids[t.index_type] for t in ts]))
        elif cls is Datasec:
            if ids is not None:
                out.append((ts, "vars", [
                    [_new(VarSecinfo, (ids[ty], o, sz)) for ty, o, sz in t.vars] for t in ts]))
        elif (cls is Enum or cls is Enum64) and strs is not None:
            out.append((ts, "values", [
                [_new(EnumValue, (strs[n], v)) for n, v in t.values] for t in ts]))
    return out


def apply(changes: Plan) -> None:
    """Store what plan() computed."""
    for ts, attr, values in changes:
        # one plain loop per field: setattr() with a name costs ~2x a direct store
        if attr == "type":
            for t, v in zip(ts, values, strict=True):
                t.type = v
        elif attr == "members":
            for t, v in zip(ts, values, strict=True):
                t.members = v
        elif attr == "name_off":
            for t, v in zip(ts, values, strict=True):
                t.name_off = v
        elif attr == "params":
            for t, v in zip(ts, values, strict=True):
                t.params = v
        else:
            for t, v in zip(ts, values, strict=True):
                setattr(t, attr, v)
