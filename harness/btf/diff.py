"""Semantic difference of two BTFs: named types added, removed or changed, and kfuncs.

Why: type ids, string offsets and type order change with every build (dedup,
sort), so a byte or id comparison says nothing. A bisect predicate ("did
bpf_wq_set_callback lose its _impl?") and a human reviewing a pahole upgrade
need what changed in C terms. So every named type is described without ids —
members, parameters and referenced types by name, anonymous nested types
expanded inline, decl tags attached to what they tag — and the descriptions
are compared per (kind, name). Kfuncs get their own comparison: prototype,
`_impl` prototype, flags (when both sides are ELF with .BTF_ids), decl tags
and arena attributes.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

from harness.btf.btf import Btf
from harness.btf.kernel_rules import Rules
from harness.btf.kfuncs import (
    KfuncInfo,
    c_decl,
    find_kfuncs,
    func_decl,
    is_elf,
    load_for_kfuncs,
    read_set8s,
)
from harness.btf.kinds import Kind
from harness.btf.types import (
    BtfType,
    Datasec,
    DeclTag,
    Float,
    Func,
    Fwd,
    Int,
    Struct,
    Typedef,
    Union,
    Var,
)

# kinds compared by name (DECL_TAG/TYPE_TAG names are values, not identities)
NAMED_KINDS = frozenset({
    Kind.INT, Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.FWD, Kind.TYPEDEF,
    Kind.FUNC, Kind.VAR, Kind.DATASEC, Kind.FLOAT,
})
KFUNC_FIELDS = ("proto", "impl", "flag_names", "tags", "arg_tags", "impl_tags", "arena")
_UNORDERED = frozenset({"tags", "arg_tags", "impl_tags"})
_MAX_INLINE_DEPTH = 8


@dataclass
class TypeChange:
    kind: str
    name: str
    old: list[str]
    new: list[str]


@dataclass
class KfuncChange:
    name: str
    fields: dict[str, tuple[object, object]]


@dataclass
class BtfDiff:
    added: list[tuple[str, str, list[str]]] = field(default_factory=list)
    removed: list[tuple[str, str, list[str]]] = field(default_factory=list)
    changed: list[TypeChange] = field(default_factory=list)
    kfuncs_added: list[KfuncInfo] = field(default_factory=list)
    kfuncs_removed: list[KfuncInfo] = field(default_factory=list)
    kfuncs_changed: list[KfuncChange] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not (self.added or self.removed or self.changed or self.kfuncs_added
                    or self.kfuncs_removed or self.kfuncs_changed)

    def to_json(self) -> dict[str, object]:
        def typ(kind: str, name: str, decl: list[str]) -> dict[str, object]:
            return {"kind": kind, "name": name, "decl": decl}

        return {
            "equal": self.equal,
            "types": {
                "added": [typ(*a) for a in self.added],
                "removed": [typ(*r) for r in self.removed],
                "changed": [{"kind": c.kind, "name": c.name, "old": c.old, "new": c.new}
                            for c in self.changed],
            },
            "kfuncs": {
                "added": [k.to_json() for k in self.kfuncs_added],
                "removed": [k.to_json() for k in self.kfuncs_removed],
                "changed": [{"name": c.name,
                             "fields": {f: {"old": o, "new": n} for f, (o, n) in c.fields.items()}}
                            for c in self.kfuncs_changed],
            },
        }

    def format(self) -> str:
        """Human-readable: one line per type or kfunc, details indented."""
        out: list[str] = []
        for kind, name, decl in self.removed:
            out.append(f"- {kind} {name}")
            out.extend(f"    {line}" for line in decl[:1])
        for kind, name, decl in self.added:
            out.append(f"+ {kind} {name}")
            out.extend(f"    {line}" for line in decl[:1])
        for c in self.changed:
            out.append(f"~ {c.kind} {c.name}")
            out.extend(_line_diff(c.old, c.new))
        for k in self.kfuncs_removed:
            out.append(f"- kfunc {k.name}: {k.proto}")
        for k in self.kfuncs_added:
            out.append(f"+ kfunc {k.name}: {k.proto}")
        for kc in self.kfuncs_changed:
            out.append(f"~ kfunc {kc.name}")
            for fname, (old, new) in kc.fields.items():
                out.append(f"    {fname}: - {_show(old)}")
                out.append(f"    {fname}: + {_show(new)}")
        n_types = len(self.added) + len(self.removed) + len(self.changed)
        n_kf = len(self.kfuncs_added) + len(self.kfuncs_removed) + len(self.kfuncs_changed)
        out.append("equal" if self.equal else
                   f"{n_types} type difference(s) (+{len(self.added)} -{len(self.removed)} "
                   f"~{len(self.changed)}), {n_kf} kfunc difference(s)")
        return "\n".join(out)


def _show(v: object) -> str:
    if isinstance(v, list):
        return ", ".join(map(str, v)) or "(none)"
    return "(none)" if v is None else str(v)


def _line_diff(old: list[str], new: list[str]) -> list[str]:
    """Lines of old/new descriptions that differ (descriptions are a few lines each)."""
    import difflib

    out = []
    for line in difflib.unified_diff(old, new, lineterm="", n=0):
        if line.startswith(("---", "+++", "@@")):
            continue
        out.append(f"    {line[0]} {line[1:].strip()}")
    return out


# ---- describing types without ids ---------------------------------------------------------


class _Describer:
    """Id-free text for types of one Btf; decl tags are looked up by target."""

    def __init__(self, btf: Btf):
        self.btf = btf
        self.tags: dict[int, list[DeclTag]] = {}
        for _tid, t in btf.all_items():
            if isinstance(t, DeclTag):
                self.tags.setdefault(t.type, []).append(t)

    def tag_lines(self, tid: int, component_names: list[str] | None = None) -> list[str]:
        out = []
        for tg in self.tags.get(tid, []):
            what = self.btf.name(tg)
            if tg.attr:
                what = f"__attribute__(({what}))"
            if tg.component_idx == -1:
                out.append(f"  tag {what}")
            else:
                idx = tg.component_idx
                comp = (component_names[idx] if component_names and idx < len(component_names)
                        else f"#{idx}")
                out.append(f"  tag {what} on {comp}")
        return sorted(out)

    def type_ref(self, tid: int, declarator: str = "", depth: int = 0) -> str:
        """c_decl, but anonymous structs/unions/enums spelled out (they have no name to
        compare by, so a change inside them must show in their user's description)."""
        btf = self.btf
        t = btf[tid]
        chain = tid
        seen = set()
        while t.kind in (Kind.PTR, Kind.CONST, Kind.VOLATILE, Kind.RESTRICT, Kind.TYPE_TAG,
                         Kind.ARRAY):
            if chain in seen:  # lenient reading lets a loop through: show it, go on
                return f"<reference loop through [{chain}]> {declarator}".rstrip()
            seen.add(chain)
            chain = t.type
            t = btf[chain]
        text = c_decl(btf, tid, declarator)
        if not t.name_off and t.kind in (Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64):
            body = ("{...}" if depth >= _MAX_INLINE_DEPTH
                    else "{ " + " ".join(self.body(chain, t, depth + 1)) + " }")
            text = text.replace("{...}", body, 1)
        return text

    def body(self, tid: int, t: BtfType, depth: int = 0) -> list[str]:
        btf = self.btf
        if isinstance(t, Struct | Union):
            out = []
            for m in t.members:
                bits = t.member_bitfield_size(m)
                name = btf.str(m.name_off) if m.name_off else ""
                suffix = f" @{t.member_bit_offset(m)}" + (f":{bits}" if bits else "")
                out.append(f"{self.type_ref(m.type, name, depth)};{suffix}")
            return out
        if t.kind in (Kind.ENUM, Kind.ENUM64):
            return [f"{btf.str(v.name_off)} = {t.value_of(v)}," for v in t.values]
        return []

    def describe(self, tid: int) -> list[str]:
        btf = self.btf
        t = btf[tid]
        name = btf.name(t)
        kind = t.kind
        if isinstance(t, Int):
            lines = [f"int {name} size {t.size} encoding {t.encoding:#x} bits {t.bits} "
                     f"offset {t.bit_offset}"]
        elif isinstance(t, Float):
            lines = [f"float {name} size {t.size}"]
        elif isinstance(t, Fwd):
            lines = [f"{'union' if t.is_union else 'struct'} {name}; (forward)"]
        elif isinstance(t, Struct | Union):
            lines = [f"{kind.name.lower()} {name} size {t.size}"]
            lines += [f"  {m}" for m in self.body(tid, t)]
            comps = [btf.str(m.name_off) if m.name_off else f"#{i}"
                     for i, m in enumerate(t.members)]
            return lines + self.tag_lines(tid, comps)
        elif kind in (Kind.ENUM, Kind.ENUM64):
            sign = "signed" if t.signed else "unsigned"
            lines = [f"{kind.name.lower()} {name} size {t.size} {sign}"]
            lines += [f"  {v}" for v in self.body(tid, t)]
        elif isinstance(t, Typedef):
            lines = [f"typedef {self.type_ref(t.type, name)}"]
        elif isinstance(t, Func):
            linkage = ("static", "global", "extern")[t.linkage] if t.linkage < 3 else t.linkage
            lines = [f"{linkage} {func_decl(btf, tid)}"]
            proto = btf[t.type]
            comps = [btf.str(p.name_off) for p in getattr(proto, "params", [])]
            return lines + self.tag_lines(tid, comps)
        elif isinstance(t, Var):
            lines = [f"var linkage {t.linkage} {self.type_ref(t.type, name)}"]
        elif isinstance(t, Datasec):
            lines = [f"datasec {name} size {t.size}"]
            lines += [f"  {btf.name(v.type)} @{v.offset} size {v.size}" for v in t.vars]
        else:
            lines = [f"{kind.name} {name}"]
        return lines + self.tag_lines(tid)


def _index(btf: Btf) -> dict[tuple[str, str], list[list[str]]]:
    d = _Describer(btf)
    out: dict[tuple[str, str], list[list[str]]] = {}
    for tid, t in btf.items():
        if t.kind in NAMED_KINDS and t.name_off:
            out.setdefault((t.kind.name.lower(), btf.name(t)), []).append(d.describe(tid))
    return out


def diff_btf(a: Btf, b: Btf, kfuncs_a: list[KfuncInfo] | None = None,
             kfuncs_b: list[KfuncInfo] | None = None) -> BtfDiff:
    """Differences from `a` to `b` (own types of each; base types are not compared).

    Same-named types of one kind are compared as multisets of descriptions, so
    reordering or renumbering is no difference. KfuncInfo lists default to
    find_kfuncs() of each side (no flags); pass lists with flags to compare them.
    """
    ia, ib = _index(a), _index(b)
    res = BtfDiff()
    for key in sorted(ia.keys() | ib.keys(), key=lambda k: (k[1].encode(), k[0])):
        old, new = ia.get(key), ib.get(key)
        if old is None:
            res.added.append((*key, [line for desc in new for line in desc]))
        elif new is None:
            res.removed.append((*key, [line for desc in old for line in desc]))
        elif Counter(map(tuple, old)) != Counter(map(tuple, new)):
            res.changed.append(TypeChange(*key, [ln for dsc in sorted(old) for ln in dsc],
                                          [ln for dsc in sorted(new) for ln in dsc]))
    ka = {k.name: k for k in (kfuncs_a if kfuncs_a is not None
                              else find_kfuncs(a, arg_flags=False))}
    kb = {k.name: k for k in (kfuncs_b if kfuncs_b is not None
                              else find_kfuncs(b, arg_flags=False))}
    for name in sorted(ka.keys() | kb.keys(), key=str.encode):
        if name not in kb:
            res.kfuncs_removed.append(ka[name])
        elif name not in ka:
            res.kfuncs_added.append(kb[name])
        else:
            fields: dict[str, tuple[object, object]] = {}
            for f in KFUNC_FIELDS:
                old_v, new_v = getattr(ka[name], f), getattr(kb[name], f)
                if f == "flag_names" and (ka[name].flags is None or kb[name].flags is None):
                    continue  # one side has no .BTF_ids: flags unknown, not different
                if f in _UNORDERED and sorted(old_v) == sorted(new_v):
                    continue  # tag lists follow type order, which is not semantic
                if old_v != new_v:
                    fields[f] = (old_v, new_v)
            if fields:
                res.kfuncs_changed.append(KfuncChange(name, fields))
    return res


def load_side(path: str | os.PathLike[str], base: str | os.PathLike[str] | None = None,
              *, strict: Rules | None = None) -> tuple[Btf, list[KfuncInfo]]:
    """One side of a diff: its BTF (`strict`: refused as that kernel would) and its
    kfuncs, with flags from the ELF's sets."""
    btf = load_for_kfuncs(path, base, strict=strict)
    sets = read_set8s(path) if is_elf(path) else None
    return btf, find_kfuncs(btf, sets, arg_flags=False)


def diff_files(path_a: str | os.PathLike[str], path_b: str | os.PathLike[str],
               base_a: str | os.PathLike[str] | None = None,
               base_b: str | os.PathLike[str] | None = None) -> BtfDiff:
    """diff_btf of two files (raw BTF, ELF, /sys/kernel/btf/*), kfunc flags from ELF sets."""
    (a, ka), (b, kb) = load_side(path_a, base_a), load_side(path_b, base_b)
    return diff_btf(a, b, ka, kb)
