"""BTF-to-BTF edits for kfuncs: decl tags, KF_IMPLICIT_ARGS prototypes, arena attributes.

Why these live apart from the profiles: the edits are the same building
blocks in every tree; what differs between 7.2 and 7.3 is which kfuncs get
which edits and in what order (profiles.py). Each edit appends types with
the library's libbpf-compatible `add_*` calls, in the C tool's order, so the
ids and string offsets come out as the C tool's do before dedup and sort.

KF_IMPLICIT_ARGS: the kfunc keeps its name and gets a new FUNC_PROTO made of
the parameters before the first implicit one (a pointer to struct
bpf_prog_aux or struct btf_struct_meta); a new FUNC `<name>_impl` takes the
original prototype and every decl tag except `bpf_kfunc`, unless such a
function exists already (a legacy kernel declaration).

Arena kfuncs (7.3): KF_ARENA_RET / KF_ARENA_ARG1 / KF_ARENA_ARG2, or a
parameter named `*__arena` / `*__arena__nullable`, get their pointer retyped
as pointer to `address_space(1)`-attributed target, on a new prototype
(the old one may be shared).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from harness.btf import Btf, BTFError, Func, FuncProto, Param, Ptr, Struct, kfunc_args
from harness.btf.types import Const, Restrict, TypeTag, Volatile
from harness.btfids.errors import BtfidsError
from harness.btfids.kfuncs import FuncIndex
from harness.kfunc_abi import (
    ARENA_ATTR,
    ARENA_SUFFIXES,
    DECL_TAG_FASTCALL,
    DECL_TAG_KFUNC,
    IMPL_SUFFIX,
    IMPLICIT_ARG_STRUCTS,
    KF_ARENA_ARG1,
    KF_ARENA_ARG2,
    KF_ARENA_RET,
    KF_FASTCALL,
    KF_IMPLICIT_ARGS,
    Kfunc,
)

KSYM_NAME_LEN = 512
_MODIFIERS = (Volatile, Const, Restrict, TypeTag)  # libbpf's btf_is_mod()

Debug = Callable[[str], None]


class DeclTags:
    """The decl tags resolve_btfids knows of, grouped by the type they tag.

    Holds ids in collection order (existing tags by id, then the ones the
    transformer adds), which is the order `_impl` functions receive copies in.
    """

    def __init__(self, btf: Btf, tag_ids: list[int]):
        self.by_target: dict[int, list[int]] = defaultdict(list)
        for tid in tag_ids:
            self.by_target[btf[tid].type].append(tid)

    def push(self, target: int, tag_id: int) -> None:
        self.by_target[target].append(tag_id)


def _skip_mods(btf: Btf, type_id: int):  # noqa: ANN202 - a BtfType
    t = btf[type_id]
    while isinstance(t, _MODIFIERS):
        t = btf[t.type]
    return t


def is_implicit_arg(btf: Btf, param: Param) -> bool:
    """A pointer (through modifiers) to struct bpf_prog_aux or struct btf_struct_meta."""
    t = _skip_mods(btf, param.type)
    if type(t) is not Ptr:
        return False
    t = _skip_mods(btf, t.type)
    return type(t) is Struct and btf.name(t) in IMPLICIT_ARG_STRUCTS


def _has_tag(btf: Btf, tags: DeclTags, target: int, name: str) -> bool:
    for tid in tags.by_target.get(target, ()):
        t = btf[tid]
        if not t.attr and t.component_idx == -1 and btf.name(t) == name:
            return True
    return False


def add_kfunc_tags(btf: Btf, kfunc: Kfunc, tags: DeclTags) -> None:
    """`bpf_kfunc` on every kfunc, `bpf_fastcall` on KF_FASTCALL ones (7.3).

    A tag the function already carries is not added again: the C tool adds it
    and btf__dedup folds the copy into the existing one, so the output is the
    same, and on our own output nothing changes at all.
    """
    names = [DECL_TAG_KFUNC]
    if kfunc.flags & KF_FASTCALL:
        names.append(DECL_TAG_FASTCALL)
    for name in names:
        if _has_tag(btf, tags, kfunc.btf_id, name):
            continue
        try:
            tid = btf.add_decl_tag(name, kfunc.btf_id, -1)
        except BTFError as exc:
            raise BtfidsError(f"ERROR: resolve_btfids: failed to add '{name}' decl tag for "
                              f"BTF id {kfunc.btf_id}: {exc}") from None
        tags.push(kfunc.btf_id, tid)


def rewrite_implicit_args(btf: Btf, kfunc: Kfunc, tags: DeclTags, funcs: FuncIndex,
                          debug: Debug | None = None, *, skip_done: bool = False) -> None:
    """process_kfunc_with_implicit_args(): `_impl` twin plus the shortened prototype.

    `skip_done`: when the `_impl` twin exists and the prototype has no implicit
    argument left, the kfunc was rewritten already (our own output) and nothing
    is added. The C tool appends an identical prototype on every run (7.3's
    dedup folds it into the existing one, so its output is the same; 7.2 keeps
    the duplicate).
    """
    func = btf[kfunc.btf_id]
    if type(func) is not Func:
        raise BtfidsError(f"ERROR: resolve_btfids: btf id {kfunc.btf_id} is not a function")
    proto_id = func.type
    proto = btf[proto_id]
    if type(proto) is not FuncProto:
        raise BtfidsError(f"ERROR: resolve_btfids: btf id {proto_id} is not a function prototype")
    impl_name = kfunc.name + IMPL_SUFFIX
    if len(impl_name.encode("utf-8", "surrogateescape")) >= KSYM_NAME_LEN:
        raise BtfidsError(f"ERROR: function name is too long: {impl_name}")
    if funcs.find(impl_name) > 0:
        if skip_done and not any(is_implicit_arg(btf, p) for p in proto.params):
            return
        if debug:
            debug(f"resolve_btfids: function {impl_name} already exists in BTF")
    else:
        try:
            impl_id = btf.add_func(impl_name, func.linkage, proto_id)
        except BTFError:
            raise BtfidsError(
                f"ERROR: resolve_btfids: failed to add func {impl_name} to BTF") from None
        funcs.added(impl_name, impl_id)
        for tag_id in list(tags.by_target.get(kfunc.btf_id, ())):
            tag = btf[tag_id]
            tag_name = btf.name(tag)
            if tag_name == DECL_TAG_KFUNC:
                continue
            try:
                if tag.attr:
                    btf.add_decl_attr(tag_name, impl_id, tag.component_idx)
                else:
                    btf.add_decl_tag(tag_name, impl_id, tag.component_idx)
            except BTFError:
                raise BtfidsError(f"ERROR: resolve_btfids: failed to add decl tag {tag_name} "
                                  f"for {impl_name}") from None
    try:
        new_proto = btf.add_func_proto(proto.type)
        for p in list(proto.params):
            if is_implicit_arg(btf, p):
                break
            btf.add_func_param(btf.str(p.name_off) if p.name_off else None, p.type)
    except BTFError as exc:
        raise BtfidsError(f"ERROR: resolve_btfids: failed to add func proto for {kfunc.name}: "
                          f"{exc}") from None
    func.type = new_proto
    if debug:
        debug(f"resolve_btfids: updated BTF for kfunc with implicit args {kfunc.name}")


def _is_arena_arg(btf: Btf, kfunc: Kfunc, param: Param, idx: int) -> bool:
    name = btf.str(param.name_off) if param.name_off else ""
    if name.endswith(ARENA_SUFFIXES):
        return True
    if idx == 0:
        return bool(kfunc.flags & KF_ARENA_ARG1)
    if idx == 1:
        return bool(kfunc.flags & KF_ARENA_ARG2)
    return False


def _arena_ptr(btf: Btf, ptr_id: int, kfunc: Kfunc) -> int:
    ptr = btf[ptr_id]
    if type(ptr) is not Ptr:
        raise BtfidsError(
            f"ERROR: resolve_btfids: kfunc {kfunc.name}: arena type is not a pointer")
    try:
        attr = btf.add_type_attr(ARENA_ATTR, ptr.type)
        return btf.add_ptr(attr)
    except BTFError as exc:
        raise BtfidsError(f"ERROR: resolve_btfids: kfunc {kfunc.name}: failed to add a type "
                          f"attr to BTF: {exc}") from None


def _already_arena(btf: Btf, ptr_id: int) -> bool:
    """A pointer whose target is already an `address_space(1)` attribute (our own output)."""
    ptr = btf[ptr_id]
    if type(ptr) is not Ptr:
        return False
    tag = btf[ptr.type]
    return type(tag) is TypeTag and bool(tag.attr) and btf.name(tag) == ARENA_ATTR


def tag_arena(btf: Btf, kfunc: Kfunc, debug: Debug | None = None) -> None:
    """process_kfunc_with_arena_attrs(): a new prototype with arena pointers attributed.

    One deliberate difference from the C tool: a pointer that already points
    at an `address_space(1)` attribute is left alone, so running on our own
    output changes nothing (the C tool wraps it a second time). pahole output
    for 7.3 never carries the attribute, so kbuild's results are unaffected.
    """
    func = btf[kfunc.btf_id]
    proto_id = func.type
    proto = btf[proto_id]
    params = list(proto.params)
    arena_params = [i for i, p in enumerate(params)
                    if _is_arena_arg(btf, kfunc, p, i) and not _already_arena(btf, p.type)]
    tag_ret = bool(kfunc.flags & KF_ARENA_RET) and not _already_arena(btf, proto.type)
    if not tag_ret and not arena_params:
        return
    ret = proto.type
    if tag_ret:
        ret = _arena_ptr(btf, ret, kfunc)
    try:
        new_id = btf.add_func_proto(ret)
        for p in params:
            btf.add_func_param(btf.str(p.name_off) if p.name_off else None, p.type)
    except BTFError as exc:
        raise BtfidsError(f"ERROR: resolve_btfids: kfunc {kfunc.name}: failed to add a func "
                          f"proto to BTF: {exc}") from None
    new_proto = btf[new_id]
    for i in arena_params:
        p = new_proto.params[i]
        new_proto.params[i] = Param(p.name_off, _arena_ptr(btf, p.type, kfunc))
    if debug:
        debug(f"added arena-tagged proto for kfunc {kfunc.name}: {new_id}")
    func.type = new_id


def add_arg_tags(btf: Btf, kfunc: Kfunc, tags: DeclTags,
                 table: dict[str, dict[str, list[str]]] | None = None) -> int:
    """Per-argument flags as decl tags on the kfunc's (BPF-visible) FUNC: opt-in, not
    upstream's (harness.btf.kfunc_args, docs/per-arg-flags.md). A tag already there is
    not added again. Returns how many were added."""
    added = 0
    for fact in kfunc_args.derive(btf, kfunc.btf_id, kfunc.flags,
                                  (table or {}).get(kfunc.name)):
        component = fact.index  # RETURN is -1, the FUNC itself
        if any(btf[t].component_idx == component and not btf[t].attr
               and btf.name(btf[t]) == fact.tag for t in tags.by_target.get(kfunc.btf_id, ())):
            continue
        try:
            tid = btf.add_decl_tag(fact.tag, kfunc.btf_id, component)
        except BTFError as exc:
            raise BtfidsError(f"FAILED to add '{fact.tag}' decl tag for kfunc {kfunc.name}: "
                              f"{exc}") from None
        tags.push(kfunc.btf_id, tid)
        added += 1
    return added


def btf2btf_73(btf: Btf, kfuncs: list[Kfunc], tags: DeclTags, funcs: FuncIndex,
               debug: Debug | None = None) -> None:
    """7.3's btf2btf(): tags, then implicit args, then arena attributes, kfunc by kfunc."""
    for kfunc in kfuncs:
        add_kfunc_tags(btf, kfunc, tags)
        if kfunc.flags & KF_IMPLICIT_ARGS:
            rewrite_implicit_args(btf, kfunc, tags, funcs, debug, skip_done=True)
        tag_arena(btf, kfunc, debug)


def btf2btf_72(btf: Btf, kfuncs: list[Kfunc], tags: DeclTags, funcs: FuncIndex,
               debug: Debug | None = None) -> None:
    """7.2's btf2btf(): only the KF_IMPLICIT_ARGS rewrite, on pahole-tagged kfuncs."""
    for kfunc in kfuncs:
        if kfunc.flags & KF_IMPLICIT_ARGS:
            rewrite_implicit_args(btf, kfunc, tags, funcs, debug, skip_done=True)


__all__ = [
    "DeclTags", "add_arg_tags", "add_kfunc_tags", "btf2btf_72", "btf2btf_73", "is_implicit_arg",
    "rewrite_implicit_args", "tag_arena",
]
