"""Per-argument kfunc flags: what the verifier reads about each argument, from any source.

Why: a kfunc's KF_* flags are one word per kfunc, and what they say about *an argument*
(KF_RELEASE releases argument 0, KF_RCU lets every struct-pointer argument be an RCU
pointer, KF_ARENA_ARG1/2 make argument 0/1 an arena pointer) is a verifier convention,
as are the parameter-name suffixes (`__sz`, `__k`, `__nullable`, `__arena`, ...) that
btf_param_match_suffix() reads ("In the future, this can be ported to use BTF tagging",
kernel/bpf/btf.c). This module derives the per-argument facts from all three sources
(flags, suffixes, a sidecar table for what neither says) and names the BTF encoding the
transformer can emit for them (docs/per-arg-flags.md):

    DECL_TAG "bpf_kfunc_arg:<flag>"  on the kfunc's FUNC, component_idx = argument index
    DECL_TAG "bpf_kfunc_ret:<flag>"  on the kfunc's FUNC, component_idx = -1

Both are plain decl tags (kind_flag 0) that the kernel's BTF checker accepts today
(btf_decl_tag_check_meta/resolve: a non-empty value, an index below the prototype's
vlen) and that today's verifier ignores.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.btf.btf import Btf
from harness.btf.errors import BTFError
from harness.btf.kinds import Kind
from harness.btf.types import DeclTag
from harness.kfunc_abi import (
    KF_ACQUIRE,
    KF_ARENA_ARG1,
    KF_ARENA_ARG2,
    KF_ARENA_RET,
    KF_RCU,
    KF_RELEASE,
    KF_RET_NULL,
)

ARG_TAG = "bpf_kfunc_arg:"  # + flag; component_idx = the argument's index
RET_TAG = "bpf_kfunc_ret:"  # + flag; component_idx = -1 (the return value)
RETURN = -1  # the index of the return value in ArgFlag

# (flag, suffix, scalar only): the verifier's is_kfunc_arg_*() suffix tests, in
# kernel/bpf/verifier.c order. btf_param_match_suffix() is "name ends with and is longer
# than": `__arena__nullable` is a `__nullable` too, and a bare `__arena` is nullable as
# well (is_kfunc_arg_nullable).
SUFFIXES: tuple[tuple[str, str, bool], ...] = (
    ("iter", "__iter", False),
    ("sz", "__sz", True),
    ("szk", "__szk", True),
    ("k", "__k", False),
    ("ign", "__ign", False),
    ("map", "__map", False),
    ("const_map", "__const_map", False),
    ("alloc", "__alloc", False),
    ("uninit", "__uninit", False),
    ("refcounted_kptr", "__refcounted_kptr", False),
    ("nullable", "__nullable", False),
    ("nullable", "__arena", False),
    ("nonown_allowed", "__nonown_allowed", False),
    ("str", "__str", False),
    ("irq_flag", "__irq_flag", False),
    ("arena", "__arena__nullable", False),
    ("arena", "__arena", False),
)
FLAG_ARGS = ("acquire", "release", "rcu", "arena")  # what KF_* flags say about arguments
RET_FLAGS = ("acquire", "nullable", "arena")  # what KF_* flags say about the return value
KNOWN = frozenset({f for f, _, _ in SUFFIXES} | set(FLAG_ARGS) | set(RET_FLAGS))


class ArgTableError(BTFError):
    """A kfunc-args.toml that cannot be read or names what no kfunc has."""


@dataclass(frozen=True, order=True)
class ArgFlag:
    """One fact about one argument (index >= 0) or the return value (RETURN)."""

    index: int
    flag: str
    source: str  # "KF_RELEASE", "suffix __sz", "kfunc-args.toml", "BTF tag"

    @property
    def tag(self) -> str:
        return (RET_TAG if self.index == RETURN else ARG_TAG) + self.flag


# what the kernel's btf_type_skip_modifiers() passes through, and libbpf's btf_is_mod()
VERIFIER_MODS = (Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG)
LIBBPF_MODS = (Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG)


def skip_modifiers(btf: Btf, tid: int, mods: tuple[Kind, ...] = VERIFIER_MODS) -> int:
    """The id `tid` names once `mods` are passed through (0, void, stays 0)."""
    for _ in range(4096):
        if tid == 0 or btf[tid].kind not in mods:
            return tid
        tid = btf[tid].type
    raise BTFError(f"type [{tid}]: modifier loop")


def _is_scalar(btf: Btf, tid: int) -> bool:
    tid = skip_modifiers(btf, tid)
    return tid != 0 and btf[tid].kind in (Kind.INT, Kind.ENUM, Kind.ENUM64)


def _pointee(btf: Btf, tid: int) -> int | None:
    """The type id a pointer points at (through modifiers); None for a non-pointer."""
    tid = skip_modifiers(btf, tid)
    if tid == 0 or btf[tid].kind != Kind.PTR:
        return None
    return skip_modifiers(btf, btf[tid].type)


def _struct_ptr(btf: Btf, tid: int) -> bool:
    target = _pointee(btf, tid)
    return bool(target) and btf[target].kind == Kind.STRUCT


def suffix_flags(name: str, scalar: bool) -> list[tuple[str, str]]:
    """(flag, suffix) for every suffix test the parameter name `name` passes."""
    return [(flag, suffix) for flag, suffix, scalar_only in SUFFIXES
            if len(name) > len(suffix) and name.endswith(suffix) and (scalar or not scalar_only)]


def derive(btf: Btf, func_id: int, flags: int | None,
           table: Mapping[str | int, Iterable[str]] | None = None) -> list[ArgFlag]:
    """Every per-argument fact of FUNC `func_id`'s prototype: from its KF_* `flags`
    (None: not known, as for raw BTF), its parameter names and its `table` entry."""
    func, proto = btf.func_proto(func_id)
    params = proto.params
    out: set[ArgFlag] = set()
    for i, p in enumerate(params):
        for flag, suffix in suffix_flags(btf.str(p.name_off) if p.name_off else "",
                                         _is_scalar(btf, p.type)):
            out.add(ArgFlag(i, flag, f"suffix {suffix}"))
    if flags:
        ret = _pointee(btf, proto.type)
        if flags & KF_RELEASE and params:  # verifier: meta->release_regno = BPF_REG_1
            out.add(ArgFlag(0, "release", "KF_RELEASE"))
        if flags & KF_ACQUIRE:
            out.add(ArgFlag(RETURN, "acquire", "KF_ACQUIRE"))
            # the object it takes a reference to: an argument of the returned type
            if params and ret and _pointee(btf, params[0].type) == ret:
                out.add(ArgFlag(0, "acquire", "KF_ACQUIRE"))
        if flags & KF_RET_NULL:
            out.add(ArgFlag(RETURN, "nullable", "KF_RET_NULL"))
        if flags & KF_ARENA_RET:
            out.add(ArgFlag(RETURN, "arena", "KF_ARENA_RET"))
        if flags & KF_RCU:  # the verifier lets RCU pointers through for PTR_TO_BTF_ID args
            out.update(ArgFlag(i, "rcu", "KF_RCU") for i, p in enumerate(params)
                       if _struct_ptr(btf, p.type))
        for bit, index in ((KF_ARENA_ARG1, 0), (KF_ARENA_ARG2, 1)):
            if flags & bit and index < len(params):
                out.add(ArgFlag(index, "arena", "KF_ARENA_ARG1" if index == 0 else
                                "KF_ARENA_ARG2"))
    for key, names in (table or {}).items():
        index = _table_index(btf, params, key, btf.name(func))
        for flag in names:
            if flag not in KNOWN:
                raise ArgTableError(f"{btf.name(func)}.{key}: unknown flag {flag!r} "
                                    f"(known: {', '.join(sorted(KNOWN))})")
            out.add(ArgFlag(index, flag, "kfunc-args.toml"))
    return sorted(out)


def _table_index(btf: Btf, params: list, key: str | int, kfunc: str) -> int:
    """A table key: a parameter name, its index, or "return"."""
    if key == "return":
        return RETURN
    if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
        index = int(key)
        if index >= len(params):
            raise ArgTableError(f"{kfunc}: argument {index} of {len(params)}")
        return index
    for i, p in enumerate(params):
        if p.name_off and btf.str(p.name_off) == key:
            return i
    raise ArgTableError(f"{kfunc}: no parameter named {key!r}")


def tagged(btf: Btf, func_id: int, tags: Iterable[DeclTag]) -> list[ArgFlag]:
    """The per-argument facts the BTF itself carries as bpf_kfunc_arg:/ret: decl tags."""
    out = []
    for tag in tags:
        name = btf.name(tag)
        if tag.attr or tag.type != func_id:
            continue
        if name.startswith(ARG_TAG) and tag.component_idx >= 0:
            out.append(ArgFlag(tag.component_idx, name[len(ARG_TAG):], "BTF tag"))
        elif name.startswith(RET_TAG) and tag.component_idx == -1:
            out.append(ArgFlag(RETURN, name[len(RET_TAG):], "BTF tag"))
    return sorted(out)


def load_table(path: str | Path) -> dict[str, dict[str, list[str]]]:
    """kfunc-args.toml: `[kfunc]` tables of `param-name|index|"return" = [flags]`."""
    import tomllib  # noqa: PLC0415 - only --arg-table reads TOML; every btfids run imports this

    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ArgTableError(f"{path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ArgTableError(f"{path}: not TOML: {exc}") from None
    table: dict[str, dict[str, list[str]]] = {}
    for kfunc, entry in data.items():
        if not isinstance(entry, dict) or not all(
                isinstance(v, list) and all(isinstance(f, str) for f in v)
                for v in entry.values()):
            raise ArgTableError(f"{path}: [{kfunc}] must map parameters to lists of flags")
        table[kfunc] = {str(k): list(v) for k, v in entry.items()}
    return table
