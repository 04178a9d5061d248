"""Kfuncs of a BTF blob or kernel ELF: prototypes as C, `_impl`, flags, tags, arena attributes.

Why: a kfunc's BTF is what the verifier and libbpf check a BPF program's
extern declaration against, and what the transformer rewrites (KF_IMPLICIT_ARGS
drops parameters and adds `<name>_impl`; KF_ARENA_* add `address_space(1)`;
bpf_kfunc/bpf_fastcall decl tags). Humans reading a failed load, and bisect
predicates, need exactly that view, for both raw BTF (/sys/kernel/btf/vmlinux)
and a built ELF, whose `.BTF_ids` section also carries each kfunc's flags.

Kfuncs are the FUNCs tagged `bpf_kfunc` plus, for an ELF, the members of every
BTF_SET8 set flagged BTF_SET8_KFUNCS, read by harness.kfunc_abi (the layout
and flags resolve_btfids uses too). A resolved ELF (vmlinux, a built .ko)
holds BTF ids in the pairs; an unresolved one (zeros) is matched by the names
of the `__BTF_ID__func__` symbols at the pairs' addresses.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.btf import kfunc_args
from harness.btf.btf import Btf
from harness.btf.errors import BTFError
from harness.btf.kernel_rules import Rules
from harness.btf.kinds import Kind
from harness.btf.load import btf_and_base_bytes, load
from harness.btf.types import BtfType, DeclTag, Func, FuncProto, TypeTag
from harness.kfunc_abi import (
    ARENA_ATTR,
    DECL_TAG_KFUNC,
    IMPL_SUFFIX,
    KF_IMPLICIT_ARGS,
    Set8,
    SetsError,
    flag_names,
)
from harness.kfunc_abi import read_set8s as _read_set8s

# ---- C declarations ---------------------------------------------------------------------


def c_decl(btf: Btf, type_id: int, declarator: str = "") -> str:
    """`type_id` declared as `declarator` in C ("int *p", "void (*cb)(int)").

    Type tags print as attributes in front of what they qualify:
    ``__attribute__((address_space(1)))`` for an attribute tag (kind_flag=1),
    ``__attribute__((btf_type_tag("x")))`` otherwise, which C compilers accept.
    """
    inner = declarator
    prefix = ""
    seen = 0
    while True:
        seen += 1
        if seen > 4096:
            raise BTFError(f"type [{type_id}]: reference loop")
        t = btf[type_id]
        kind = t.kind
        if kind == Kind.PTR:
            target = btf[t.type]
            inner = f"(*{inner})" if target.kind in (Kind.ARRAY, Kind.FUNC_PROTO) else f"*{inner}"
            type_id = t.type
        elif kind in (Kind.CONST, Kind.VOLATILE, Kind.RESTRICT):
            q = kind.name.lower()
            if btf[t.type].kind == Kind.PTR:
                inner = f"{q} {inner}" if inner else q
            else:
                prefix += f"{q} "
            type_id = t.type
        elif kind == Kind.TYPE_TAG:
            prefix += f"{_type_tag_text(btf, t)} "
            type_id = t.type
        elif kind == Kind.ARRAY:
            inner = f"{inner}[{t.nelems}]"
            type_id = t.type
        elif kind == Kind.FUNC_PROTO:
            inner = f"{inner}({_params(btf, t, named=False)})"
            type_id = t.type
        else:
            base = _base_name(btf, t)
            return f"{prefix}{base} {inner}".rstrip() if inner else f"{prefix}{base}"


def func_decl(btf: Btf, func_id: int) -> str:
    """A FUNC's prototype as a C declaration, parameter names included."""
    f, proto = btf.func_proto(func_id)
    return c_decl(btf, proto.type, f"{btf.name(f)}({_params(btf, proto, named=True)})")


def _params(btf: Btf, proto: FuncProto, named: bool) -> str:
    if not proto.params:
        return "void"
    parts = []
    for p in proto.params:
        if p.type == 0:
            parts.append("...")
        else:
            parts.append(c_decl(btf, p.type, btf.str(p.name_off) if named and p.name_off else ""))
    return ", ".join(parts)


def _type_tag_text(btf: Btf, t: TypeTag) -> str:
    value = btf.name(t)
    return f"__attribute__(({value}))" if t.attr else f'__attribute__((btf_type_tag("{value}")))'


def _base_name(btf: Btf, t: BtfType) -> str:
    kind = t.kind
    name = btf.name(t)
    if kind == Kind.UNKN:
        return "void"
    if kind in (Kind.STRUCT, Kind.UNION):
        word = kind.name.lower()
        return f"{word} {name}" if name else f"{word} {{...}}"
    if kind == Kind.FWD:
        return f"{'union' if t.is_union else 'struct'} {name}"
    if kind in (Kind.ENUM, Kind.ENUM64):
        return f"enum {name}" if name else "enum {...}"
    return name or f"<anon {kind.name}>"


# ---- kfunc discovery ----------------------------------------------------------------------


@dataclass
class KfuncInfo:
    """One kfunc as a human and a bisect predicate want to see it: harness.kfunc_abi's
    Kfunc facts (name, id, flags: None when no .BTF_ids was read) plus prototypes,
    `_impl`, sets, tags and arena positions."""

    name: str
    btf_id: int
    proto: str                       # BPF-visible prototype
    impl: str | None = None          # kernel prototype, from <name>_impl
    impl_id: int | None = None
    flags: int | None = None         # None: no .BTF_ids to read them from
    flag_names: list[str] = field(default_factory=list)
    sets: list[str] = field(default_factory=list)
    set_flags: dict[str, int] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)       # decl tags on the FUNC
    arg_tags: list[str] = field(default_factory=list)   # "<param>: <tag>"
    impl_tags: list[str] = field(default_factory=list)
    arena: list[str] = field(default_factory=list)      # "return" / param names
    # per-argument flags from any source (harness.btf.kfunc_args): "p: release (KF_RELEASE)"
    arg_flags: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def load_for_kfuncs(path: str | os.PathLike[str], base: str | os.PathLike[str] | None = None,
                    *, strict: Rules | None = None) -> Btf:
    """BTF of `path` as harness.btf.load reads it (a module ELF with a distilled
    .BTF.base section is split on it; /sys/kernel/btf modules on vmlinux)."""
    return load(path, base=base, strict=strict)


def is_elf(path: str | os.PathLike[str]) -> bool:
    from harness.elf import is_elf as elf_magic

    try:
        return elf_magic(path)
    except OSError as exc:
        raise BTFError(f"cannot read {path}: {exc.strerror or exc}") from exc


def read_set8s(path: str | os.PathLike[str]) -> list[Set8]:
    """harness.kfunc_abi.read_set8s, failing with BTFError as the rest of this module does."""
    try:
        return _read_set8s(path)
    except SetsError as exc:
        raise BTFError(str(exc)) from exc


def find_kfuncs(btf: Btf, sets: list[Set8] | None = None, *,
                arg_flags: bool = True) -> list[KfuncInfo]:
    """Every kfunc of `btf` (own and base types), sorted by name.

    `sets` (from read_set8s) adds flags and set names, and kfuncs that carry no
    bpf_kfunc tag (BTF from a tree whose pahole or resolve_btfids added none).
    `arg_flags=False` leaves KfuncInfo.arg_flags empty: deriving them doubles the
    cost, and only the kfunc listing shows them.
    """
    funcs_by_name: dict[str, int] = {}
    tags_by_target: dict[int, list[DeclTag]] = {}
    for tid, t in btf.all_items():
        if isinstance(t, Func):
            funcs_by_name.setdefault(btf.name(t), tid)
        elif isinstance(t, DeclTag):
            tags_by_target.setdefault(t.type, []).append(t)

    kfunc_ids: dict[int, KfuncInfo] = {}

    def get(tid: int) -> KfuncInfo:
        k = kfunc_ids.get(tid)
        if k is None:
            k = kfunc_ids[tid] = _describe(btf, tid, funcs_by_name, tags_by_target)
        return k

    for target, tags in tags_by_target.items():
        if any(not tg.attr and tg.component_idx == -1 and btf.name(tg) == DECL_TAG_KFUNC
               for tg in tags) and isinstance(btf[target], Func):
            get(target)
    for s in sets or []:
        if not s.is_kfuncs:
            continue
        for entry in s.entries:
            tid = entry.btf_id
            if (not tid or not btf.has_id(tid) or not isinstance(btf[tid], Func)) and entry.name:
                tid = funcs_by_name.get(entry.name, 0)
            if not tid or not isinstance(btf[tid], Func):
                continue
            k = get(tid)
            k.flags = (k.flags or 0) | entry.flags
            if s.name not in k.set_flags:
                k.sets.append(s.name)
            k.set_flags[s.name] = entry.flags
    for k in kfunc_ids.values():
        if k.flags is not None:
            k.flag_names = flag_names(k.flags)
        if arg_flags:
            k.arg_flags = _arg_flags(btf, k, tags_by_target.get(k.btf_id, []))
    return sorted(kfunc_ids.values(), key=lambda k: (k.name.encode(), k.btf_id))


def _describe(btf: Btf, tid: int, funcs_by_name: dict[str, int],
              tags_by_target: dict[int, list[DeclTag]]) -> KfuncInfo:
    f = btf[tid]
    name = btf.name(f)
    k = KfuncInfo(name=name, btf_id=tid, proto=func_decl(btf, tid))
    k.tags, k.arg_tags = decl_tags_of(btf, tid, tags_by_target)
    impl_id = funcs_by_name.get(name + IMPL_SUFFIX)
    if impl_id is not None and impl_id != tid:
        k.impl_id = impl_id
        k.impl = func_decl(btf, impl_id)
        tags, arg_tags = decl_tags_of(btf, impl_id, tags_by_target)
        k.impl_tags = tags + arg_tags
    k.arena = arena_positions(btf, btf[f.type])
    return k


def _arg_flags(btf: Btf, k: KfuncInfo, tags: list[DeclTag]) -> list[str]:
    """Each argument's flags, with where each came from, in argument order."""
    facts = sorted(set(kfunc_args.derive(btf, k.btf_id, k.flags))
                   | set(kfunc_args.tagged(btf, k.btf_id, tags)))
    proto = btf[btf[k.btf_id].type]
    by_index: dict[int, dict[str, list[str]]] = {}
    for fact in facts:
        by_index.setdefault(fact.index, {}).setdefault(fact.flag, []).append(fact.source)
    out = []
    for index, sources in sorted(by_index.items(), key=lambda item: (item[0] < 0, item[0])):
        flags = [f"{flag} ({', '.join(where)})" for flag, where in sources.items()]
        if index == kfunc_args.RETURN:
            name = "return"
        else:
            param = proto.params[index]
            name = btf.str(param.name_off) if param.name_off else f"arg{index}"
        out.append(f"{name}: {', '.join(flags)}")
    return out


def decl_tags_of(btf: Btf, tid: int, tags_by_target: dict[int, list[DeclTag]]
                 ) -> tuple[list[str], list[str]]:
    """A FUNC's decl tags as text: its own, and its parameters' as `name: tag`."""
    func_tags, arg_tags = [], []
    proto = btf[btf[tid].type]
    for tg in tags_by_target.get(tid, []):
        text = btf.name(tg) if not tg.attr else f"__attribute__(({btf.name(tg)}))"
        if tg.component_idx == -1:
            func_tags.append(text)
        else:
            idx = tg.component_idx
            pname = (btf.str(proto.params[idx].name_off) or f"arg{idx}"
                     if isinstance(proto, FuncProto) and idx < len(proto.params) else f"arg{idx}")
            arg_tags.append(f"{pname}: {text}")
    return func_tags, arg_tags


def arena_positions(btf: Btf, proto: BtfType) -> list[str]:
    """Where the prototype has pointers to address_space(1) (KF_ARENA_* in BTF)."""
    if not isinstance(proto, FuncProto):
        return []
    out = []
    if _is_arena_ptr(btf, proto.type):
        out.append("return")
    for i, p in enumerate(proto.params):
        if p.type and _is_arena_ptr(btf, p.type):
            out.append(btf.str(p.name_off) if p.name_off else f"arg{i}")
    return out


def _is_arena_ptr(btf: Btf, tid: int) -> bool:
    t = btf[tid]
    if t.kind != Kind.PTR:
        return False
    t = btf[t.type]
    while t.kind in (Kind.TYPE_TAG, Kind.CONST, Kind.VOLATILE, Kind.RESTRICT):
        if isinstance(t, TypeTag) and t.attr and btf.name(t) == ARENA_ATTR:
            return True
        t = btf[t.type]
    return False


def kfuncs_of(path: str | os.PathLike[str], base: str | os.PathLike[str] | None = None,
              *, arg_flags: bool = True) -> list[KfuncInfo]:
    """Kfuncs of a raw BTF file, /sys/kernel/btf/* or an ELF (with its .BTF_ids flags)."""
    btf = load_for_kfuncs(path, base)
    sets = read_set8s(path) if is_elf(path) else None
    return find_kfuncs(btf, sets, arg_flags=arg_flags)


def implicit_arg_kfuncs(path: str | os.PathLike[str],
                        vmlinux: str | os.PathLike[str] | None = None) -> frozenset[str]:
    """The KF_IMPLICIT_ARGS kfuncs of a kernel or module, with their `_impl` twins' names.

    From an ELF (vmlinux, a .ko) the flags of its .BTF_ids sets say it; raw BTF
    (/sys/kernel/btf/*) has no flags, so there a kfunc with an `_impl` twin is one.
    A module ELF's BTF is split on `vmlinux`, unless it carries a distilled .BTF.base
    (pahole >= 1.26) to be read on instead.
    """
    base = None
    if vmlinux is not None and Path(path) != Path(vmlinux) and is_elf(path):
        base = None if btf_and_base_bytes(path)[1] is not None else vmlinux
    names: set[str] = set()
    for k in kfuncs_of(path, base, arg_flags=False):
        implicit = (k.flags & KF_IMPLICIT_ARGS) if k.flags is not None else k.impl is not None
        if implicit:
            names.update((k.name, k.name + IMPL_SUFFIX))
    return frozenset(names)


def format_kfunc(k: KfuncInfo) -> str:
    """A few lines per kfunc for `harness btf kfuncs`."""
    if k.flags is None:
        flags = "flags ?"
    else:
        flags = "flags " + ("|".join(k.flag_names) if k.flag_names else "0")
    head = [f"{k.name} [{k.btf_id}]", flags]
    if k.sets:
        head.append("sets " + ",".join(k.sets))
    if len(set(k.set_flags.values())) > 1:
        head.append("INCONSISTENT " + " ".join(f"{s}={v:#x}" for s, v in k.set_flags.items()))
    lines = ["  ".join(head), f"    bpf:    {k.proto};"]
    if k.impl is not None:
        lines.append(f"    kernel: {k.impl};  [{k.impl_id}]")
    if k.tags:
        lines.append(f"    tags:   {', '.join(k.tags)}")
    if k.arg_tags:
        lines.append(f"    args:   {', '.join(k.arg_tags)}")
    if k.impl_tags:
        lines.append(f"    impl tags: {', '.join(k.impl_tags)}")
    if k.arena:
        lines.append(f"    arena:  {', '.join(k.arena)} ({ARENA_ATTR})")
    for line in k.arg_flags:
        lines.append(f"    flags:  {line}")
    return "\n".join(lines)
