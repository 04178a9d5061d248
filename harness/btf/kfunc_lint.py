"""Lint kfuncs: do each kfunc's KF_* flags fit its BTF prototype and decl tags?

Why: a flag that contradicts the prototype is not caught when the kernel is
built; it surfaces as a verifier rejection (or a silently ignored flag) the
first time a BPF program calls the kfunc, far from the BTF_ID_FLAGS line that
caused it. The facts are all in BTF plus the `.BTF_ids` sets, so they can be
checked on a built vmlinux or module, as `harness btf kfuncs FILE --lint`.

Every rule is held to what the 7.3 tree does (kernel/bpf/verifier.c, btf.c,
tools/bpf/resolve_btfids/main.c), so a correct kernel gives no finding:

- acquire-returns-pointer: KF_ACQUIRE returns a pointer to a struct or union
  (through typedefs and modifiers). verifier.c check_kfunc_call: "acquire kernel
  function does not return PTR_TO_BTF_ID", except vmlinux's bpf_obj_new,
  bpf_percpu_obj_new and bpf_refcount_acquire (and their `_impl`), which return void *.
- ret-null-returns-pointer: KF_RET_NULL returns a pointer. check_kfunc_call reads
  is_kfunc_ret_null() only on its pointer-return branch; elsewhere the flag does
  nothing. Except vmlinux's bpf_res_spin_lock(_irqsave): int-returning and flagged
  KF_RET_NULL upstream, their failure is modelled by func id instead
  (check_kfunc_call pushes a "failed lock acquisition" state with R0 in [-MAX_ERRNO, -1]).
- release-takes-pointer: KF_RELEASE takes a pointer as parameter 0.
  bpf_fetch_kfunc_arg_meta sets release_regno = BPF_REG_1 (the first argument,
  always), and check_kfunc_args wants a referenced pointer there; any pointer
  kind will do (bpf_obj_drop releases `void *p__alloc`), but not an `__ign` one.
- implicit-args: KF_IMPLICIT_ARGS has a FUNC `<name>_impl` (fetch_kfunc_meta:
  "cannot find function <name>_impl in BTF"); the BPF-visible prototype is the
  `_impl`'s first N parameters and return type (main.c
  process_kfunc_with_implicit_args; is_kfunc_arg_implicit counts positions, and
  the arena attributes main.c adds afterwards are ignored); the first dropped
  parameter is where main.c cut (is_kf_implicit_arg: pointer to struct
  bpf_prog_aux or btf_struct_meta) or a legacy `__ign` one; and the verifier can
  supply every dropped parameter: only `struct bpf_prog_aux *`, once, in a
  register (check_kfunc_args arg_prog; bpf_fixup_kfunc_call), except for the
  kfuncs bpf_fixup_kfunc_call feeds a btf_struct_meta and node offset itself.
  Without `_impl` and with the implicit parameter still in the prototype, the
  BTF has not been through resolve_btfids yet, and the finding says so.
- arena-on-pointers: KF_ARENA_RET's return, KF_ARENA_ARG1/2's parameter 0/1
  (which must exist) and parameters named `*__arena` / `*__arena__nullable` are
  PTRs themselves: main.c arena_tag_ptr() does not look through typedefs or
  modifiers and fails the build ("arena type is not a pointer"); a missing
  parameter is silently left untagged (add_arena_tagged_proto).
- fastcall-tag: KF_FASTCALL if and only if a `bpf_fastcall` decl tag (main.c
  btf2btf adds it for the flag, and only then). Skipped when no kfunc carries the tag.
- inconsistent-sets: one kfunc, the same flags in every set: main.c push_kfunc
  fails ("inconsistent flags across BTF ID sets"), and btf.c
  btf_kfunc_check_flag refuses an inconsistent KF_IMPLICIT_ARGS.
- impl-tag: the `_impl` main.c makes carries every decl tag of its kfunc except
  `bpf_kfunc` (main.c copies them, bpf_fastcall and parameter tags included, and
  skips bpf_kfunc), and the kfunc itself keeps `bpf_kfunc` (where the BTF has
  such tags at all). A legacy `_impl` declared in the source (itself a kfunc in
  a set, e.g. bpf_obj_new_impl) is left alone by main.c and so is not checked.

Without flags (raw BTF such as /sys/kernel/btf/vmlinux has no `.BTF_ids`) the
flag rules are reported as skipped; the `__arena` names still run, and
implicit-args and impl-tag take a kfunc whose `_impl` twin is no kfunc itself
as KF_IMPLICIT_ARGS (as harness.btf.kfuncs.implicit_arg_kfuncs does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from harness.btf.btf import Btf
from harness.btf.kfunc_args import (
    ARG_TAG,
    LIBBPF_MODS,
    RET_TAG,
    VERIFIER_MODS,
    skip_modifiers,
)
from harness.btf.kfuncs import KfuncInfo, c_decl
from harness.btf.kinds import Kind
from harness.btf.types import BtfType, DeclTag, FuncProto, Param
from harness.kfunc_abi import (
    ARENA_ATTR,
    ARENA_SUFFIXES,
    DECL_TAG_FASTCALL,
    DECL_TAG_KFUNC,
    IMPL_SUFFIX,
    IMPLICIT_ARG_STRUCTS,
    KF_ACQUIRE,
    KF_ARENA_ARG1,
    KF_ARENA_ARG2,
    KF_ARENA_RET,
    KF_FASTCALL,
    KF_IMPLICIT_ARGS,
    KF_RELEASE,
    KF_RET_NULL,
    flag_names,
)

RULES: dict[str, str] = {
    "acquire-returns-pointer": "KF_ACQUIRE returns a pointer to a struct or union",
    "ret-null-returns-pointer": "KF_RET_NULL returns a pointer",
    "release-takes-pointer": "KF_RELEASE takes a pointer as parameter 0 (R1)",
    "implicit-args": "KF_IMPLICIT_ARGS: <name>_impl exists and matches the BPF prototype",
    "arena-on-pointers": "arena flags and __arena parameter names are on pointers",
    "fastcall-tag": "KF_FASTCALL and the bpf_fastcall decl tag agree",
    "inconsistent-sets": "a kfunc has the same flags in every set",
    "impl-tag": "the _impl resolve_btfids makes has the kfunc's decl tags but bpf_kfunc",
}

CONSISTENT_SETS_SINCE = (7, 3)  # main.c push_kfunc's "inconsistent flags" check
# check_kfunc_call accepts these vmlinux KF_ACQUIRE kfuncs returning void * (by func id).
VOID_ACQUIRE_KFUNCS = frozenset({
    "bpf_obj_new", "bpf_obj_new_impl", "bpf_percpu_obj_new", "bpf_percpu_obj_new_impl",
    "bpf_refcount_acquire", "bpf_refcount_acquire_impl",
})
# bpf_fixup_kfunc_call loads a btf_struct_meta (and a node offset) into these kfuncs'
# dropped arguments itself; any other implicit argument must be the prog->aux it loads.
META_FIXUP_KFUNCS = frozenset({
    "bpf_obj_new", "bpf_percpu_obj_new", "bpf_obj_drop", "bpf_percpu_obj_drop",
    "bpf_refcount_acquire", "bpf_list_push_front", "bpf_list_push_back", "bpf_list_add",
    "bpf_rbtree_add",
})
# check_kfunc_call models these vmlinux kfuncs' failure by func id (int return, KF_RET_NULL).
FAILING_SCALAR_KFUNCS = frozenset({"bpf_res_spin_lock", "bpf_res_spin_lock_irqsave"})
PROG_AUX = "bpf_prog_aux"
IGNORE_SUFFIX = "__ign"            # verifier.c is_kfunc_arg_ignore
MAX_REG_ARGS = 5                   # MAX_BPF_FUNC_REG_ARGS: R1-R5
_ARENA_TEXT = f"__attribute__(({ARENA_ATTR})) "
NO_FLAGS = ("no KF_* flags: the input has no .BTF_ids BTF_SET8_KFUNCS sets "
            "(raw BTF such as /sys/kernel/btf/vmlinux carries none)")


@dataclass(frozen=True)
class Finding:
    """One broken rule: which kfunc, which rule, what is wrong, where the fact came from."""

    kfunc: str
    rule: str
    message: str
    source: str

    def to_json(self) -> dict[str, object]:
        return {"kfunc": self.kfunc, "rule": self.rule, "message": self.message,
                "source": self.source, "skipped": False}

    def format(self) -> str:
        return f"{self.kfunc}: [{self.rule}] {self.message} (from {self.source})"


@dataclass(frozen=True)
class Skipped:
    """A rule (or part of one) that could not run on this input, and why."""

    rule: str
    reason: str

    def to_json(self) -> dict[str, object]:
        return {"kfunc": None, "rule": self.rule, "message": self.reason, "source": None,
                "skipped": True}

    def format(self) -> str:
        return f"skipped [{self.rule}] {self.reason}"


@dataclass
class LintReport:
    """Findings plus the rules that were skipped; `kfuncs` is how many were checked."""

    findings: list[Finding] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    kfuncs: int = 0

    def to_json(self) -> list[dict[str, object]]:
        """One list: the findings, then one object per skipped rule (`"skipped": true`)."""
        return [f.to_json() for f in self.findings] + [s.to_json() for s in self.skipped]

    def format(self) -> str:
        lines = [f.format() for f in self.findings] + [s.format() for s in self.skipped]
        lines.append(f"{len(self.findings)} finding(s) in {self.kfuncs} kfunc(s)")
        return "\n".join(lines)


# ---- BTF helpers --------------------------------------------------------------------------


def _skip(btf: Btf, tid: int, mods: tuple[Kind, ...] = VERIFIER_MODS) -> BtfType:
    """btf_type_skip_modifiers() (typedefs too) or, with LIBBPF_MODS, btf_is_mod()."""
    return btf[skip_modifiers(btf, tid, mods)]


def _is_ptr(btf: Btf, tid: int) -> bool:
    return _skip(btf, tid).kind == Kind.PTR


def _ptr_to_struct(btf: Btf, tid: int, mods: tuple[Kind, ...] = VERIFIER_MODS,
                   kinds: tuple[Kind, ...] = (Kind.STRUCT,)) -> str | None:
    """Name of the struct `tid` points to (through `mods`), else None."""
    t = _skip(btf, tid, mods)
    if t.kind != Kind.PTR:
        return None
    target = _skip(btf, t.type, mods)
    return btf.name(target) if target.kind in kinds else None


def _is_implicit_arg(btf: Btf, p: Param) -> bool:
    """main.c is_kf_implicit_arg(): pointer to struct bpf_prog_aux or btf_struct_meta."""
    return _ptr_to_struct(btf, p.type, LIBBPF_MODS) in IMPLICIT_ARG_STRUCTS


def _pname(btf: Btf, p: Param, idx: int) -> str:
    return btf.str(p.name_off) if p.name_off else f"arg{idx}"


def _decl(btf: Btf, tid: int) -> str:
    return c_decl(btf, tid) if tid else "void"


def _plain(btf: Btf, tid: int, declarator: str = "") -> str:
    """A type as C without the address_space(1) attribute main.c adds to arena pointers."""
    text = c_decl(btf, tid, declarator) if tid else f"void {declarator}".rstrip()
    return text.replace(_ARENA_TEXT, "")


def _proto(btf: Btf, func_id: int) -> FuncProto | None:
    proto = btf[btf[func_id].type]
    return proto if isinstance(proto, FuncProto) else None


def _sets_text(sets: list[str]) -> str:
    if not sets:
        return "no set"
    return f"set{'s' if len(sets) > 1 else ''} {', '.join(sets)} (.BTF_ids)"


def _flag_source(k: KfuncInfo, bit: int) -> str:
    return _sets_text([s for s, f in k.set_flags.items() if f & bit] or k.sets)


# ---- the lint -------------------------------------------------------------------------------

TagKey = tuple[str, int, int]   # (name, component_idx, attr)


@dataclass
class _Ctx:
    """What the rules share: decl tags by target and kfuncs by name (a `_impl` may be one)."""

    btf: Btf
    by_name: dict[str, KfuncInfo]
    tags: dict[int, set[TagKey]]
    has_flags: bool
    has_sets: bool

    def flags(self, k: KfuncInfo) -> int:
        return k.flags or 0

    def vmlinux(self, k: KfuncInfo) -> bool:
        """A base BTF's kfunc: special_kfunc_list holds vmlinux ids only (not a module's)."""
        return self.btf.base is None or k.btf_id < self.btf.start_id

    def implicit(self, k: KfuncInfo) -> bool:
        """KF_IMPLICIT_ARGS; without flags, a kfunc whose _impl twin is no kfunc itself."""
        if self.has_flags:
            return bool(self.flags(k) & KF_IMPLICIT_ARGS)
        return k.impl_id is not None and not self.legacy_impl(k)

    def legacy_impl(self, k: KfuncInfo) -> bool:
        """The `_impl` is a kfunc of its own (declared in the source, in a set)."""
        twin = self.by_name.get(k.name + IMPL_SUFFIX)
        if twin is None or twin.btf_id != k.impl_id:
            return False
        return twin.flags is not None if self.has_sets else True

    def implicit_source(self, k: KfuncInfo) -> str:
        if self.has_flags:
            return _flag_source(k, KF_IMPLICIT_ARGS)
        return f"FUNC {k.name}{IMPL_SUFFIX} (no flags: taken as KF_IMPLICIT_ARGS)"

    def verifier_proto(self, k: KfuncInfo) -> FuncProto | None:
        """The prototype the verifier checks calls against: the _impl's for KF_IMPLICIT_ARGS."""
        if self.implicit(k) and k.impl_id is not None:
            return _proto(self.btf, k.impl_id)
        return _proto(self.btf, k.btf_id)


def lint_kfuncs(btf: Btf, kfuncs: list[KfuncInfo],
                keep: Callable[[str], bool] | None = None,
                kernel: tuple[int, int] | None = None) -> LintReport:
    """Check the kfuncs of `kfuncs` (find_kfuncs on `btf`) whose name `keep` accepts (all
    without it); the others still count as kfuncs, e.g. for telling a legacy `_impl`.
    `kernel` is the tree's version where known (rules that came with a release)."""
    tags: dict[int, set[TagKey]] = {}
    for _tid, t in btf.all_items():
        if isinstance(t, DeclTag):
            tags.setdefault(t.type, set()).add((btf.name(t), t.component_idx, t.attr))
    ctx = _Ctx(btf, {k.name: k for k in kfuncs}, tags,
               has_flags=any(k.flags is not None for k in kfuncs),
               has_sets=any(k.sets for k in kfuncs))
    checked = [k for k in kfuncs if keep is None or keep(k.name)]
    report = LintReport(kfuncs=len(checked))
    fastcall_emitted = any(DECL_TAG_FASTCALL in k.tags for k in kfuncs)
    kfunc_tags_emitted = any(DECL_TAG_KFUNC in k.tags for k in kfuncs)

    checks: list[Callable[[_Ctx, KfuncInfo], Iterator[Finding]]] = [_arena_names]
    if ctx.has_flags:
        checks += [_acquire, _ret_null, _release, _arena_flags]
        if fastcall_emitted:
            checks.append(_fastcall)
        else:
            report.skipped.append(Skipped("fastcall-tag", "no kfunc carries a bpf_fastcall "
                                          "decl tag: this BTF's producer did not emit it"))
    else:
        report.skipped += [Skipped(rule, NO_FLAGS) for rule in (
            "acquire-returns-pointer", "ret-null-returns-pointer", "release-takes-pointer",
            "fastcall-tag", "inconsistent-sets")]
        report.skipped += [
            Skipped("arena-on-pointers", f"KF_ARENA_RET/ARG1/ARG2 part: {NO_FLAGS}; the "
                    f"__arena parameter names were checked"),
            Skipped("implicit-args", f"partly: {NO_FLAGS}; only kfuncs with an _impl twin "
                    "that is no kfunc itself were checked, a KF_IMPLICIT_ARGS kfunc without "
                    "its _impl cannot be told apart"),
        ]
    checks.append(_implicit_args)
    if ctx.has_sets and kernel is not None and kernel < CONSISTENT_SETS_SINCE:
        report.skipped.append(Skipped("inconsistent-sets", (
            f"a {kernel[0]}.{kernel[1]} tree: before 7.3 each hook reads the flags of its "
            "own set (btf_kfunc_id_set_contains), and resolve_btfids allows them to differ")))
    elif ctx.has_sets:
        checks.append(_inconsistent_sets)
    checks.append(lambda c, k: _impl_tags(c, k, kfunc_tags_emitted))
    for k in checked:
        for check in checks:
            report.findings.extend(check(ctx, k))
    return report


# ---- rules ------------------------------------------------------------------------------------


def _acquire(ctx: _Ctx, k: KfuncInfo) -> Iterator[Finding]:
    """verifier.c check_kfunc_call: KF_ACQUIRE needs btf_type_is_struct_ptr(return)."""
    if not ctx.flags(k) & KF_ACQUIRE:
        return
    proto = ctx.verifier_proto(k)
    if proto is None:
        return
    if _ptr_to_struct(ctx.btf, proto.type, kinds=(Kind.STRUCT, Kind.UNION)) is not None:
        return
    if ctx.vmlinux(k) and k.name in VOID_ACQUIRE_KFUNCS and _is_ptr(ctx.btf, proto.type):
        return
    yield Finding(k.name, "acquire-returns-pointer",
                  f"KF_ACQUIRE but returns {_decl(ctx.btf, proto.type)}, not a pointer to a "
                  "struct: the verifier refuses every call (\"acquire kernel function does "
                  "not return PTR_TO_BTF_ID\")", _flag_source(k, KF_ACQUIRE))


def _ret_null(ctx: _Ctx, k: KfuncInfo) -> Iterator[Finding]:
    """verifier.c check_kfunc_call: is_kfunc_ret_null() is read on pointer returns only."""
    if not ctx.flags(k) & KF_RET_NULL:
        return
    proto = ctx.verifier_proto(k)
    if proto is None or _is_ptr(ctx.btf, proto.type):
        return
    if ctx.vmlinux(k) and k.name in FAILING_SCALAR_KFUNCS:
        return
    yield Finding(k.name, "ret-null-returns-pointer",
                  f"KF_RET_NULL but returns {_decl(ctx.btf, proto.type)}, not a pointer: "
                  "the verifier ignores the flag", _flag_source(k, KF_RET_NULL))


def _release(ctx: _Ctx, k: KfuncInfo) -> Iterator[Finding]:
    """verifier.c bpf_fetch_kfunc_arg_meta: release_regno = BPF_REG_1, i.e. parameter 0."""
    if not ctx.flags(k) & KF_RELEASE:
        return
    own, proto = _proto(ctx.btf, k.btf_id), ctx.verifier_proto(k)
    if own is None or proto is None:
        return
    source = _flag_source(k, KF_RELEASE)
    if not own.params or not proto.params:
        yield Finding(k.name, "release-takes-pointer", "KF_RELEASE but takes no argument: "
                      "the verifier releases R1 (parameter 0)", source)
        return
    p = proto.params[0]
    name = _pname(ctx.btf, p, 0)
    if not p.type or not _is_ptr(ctx.btf, p.type):
        yield Finding(k.name, "release-takes-pointer",
                      f"KF_RELEASE but parameter 0 `{name}` is {_decl(ctx.btf, p.type)}, not "
                      "a pointer: the verifier releases R1 and wants a referenced pointer "
                      "there", source)
    elif name.endswith(IGNORE_SUFFIX):
        yield Finding(k.name, "release-takes-pointer",
                      f"KF_RELEASE but parameter 0 `{name}` is ignored by the verifier "
                      f"({IGNORE_SUFFIX}), so R1 is released unchecked", source)


def _arena_flags(ctx: _Ctx, k: KfuncInfo) -> Iterator[Finding]:
    """main.c add_arena_tagged_proto/arena_tag_ptr: flagged positions must be PTRs."""
    flags = ctx.flags(k)
    proto = _proto(ctx.btf, k.btf_id)
    if proto is None or not flags & (KF_ARENA_RET | KF_ARENA_ARG1 | KF_ARENA_ARG2):
        return
    if flags & KF_ARENA_RET and ctx.btf[proto.type].kind != Kind.PTR:
        yield Finding(k.name, "arena-on-pointers",
                      f"KF_ARENA_RET but returns {_decl(ctx.btf, proto.type)}, not a pointer "
                      "(resolve_btfids: \"arena type is not a pointer\")",
                      _flag_source(k, KF_ARENA_RET))
    for idx, bit in ((0, KF_ARENA_ARG1), (1, KF_ARENA_ARG2)):
        if not flags & bit:
            continue
        flag = flag_names(bit)[0]
        if idx >= len(proto.params) or not proto.params[idx].type:
            yield Finding(k.name, "arena-on-pointers",
                          f"{flag} but there is no parameter {idx}: resolve_btfids tags "
                          "nothing", _flag_source(k, bit))
            continue
        p = proto.params[idx]
        if ctx.btf[p.type].kind != Kind.PTR:
            yield Finding(k.name, "arena-on-pointers",
                          f"{flag} but parameter {idx} `{_pname(ctx.btf, p, idx)}` is "
                          f"{_decl(ctx.btf, p.type)}, not a pointer (resolve_btfids: "
                          "\"arena type is not a pointer\")", _flag_source(k, bit))


def _arena_names(ctx: _Ctx, k: KfuncInfo) -> Iterator[Finding]:
    """main.c is_arena_param/arena_tag_ptr: `*__arena(__nullable)` parameters are PTRs."""
    proto = _proto(ctx.btf, k.btf_id)
    if proto is None:
        return
    for idx, p in enumerate(proto.params):
        name = _pname(ctx.btf, p, idx)
        if p.type and name.endswith(ARENA_SUFFIXES) and ctx.btf[p.type].kind != Kind.PTR:
            yield Finding(k.name, "arena-on-pointers",
                          f"parameter {idx} `{name}` is {_decl(ctx.btf, p.type)}, not a "
                          "pointer (resolve_btfids: \"arena type is not a pointer\")",
                          f"parameter name {name}")


def _fastcall(ctx: _Ctx, k: KfuncInfo) -> Iterator[Finding]:
    """main.c btf2btf: bpf_fastcall decl tag exactly for KF_FASTCALL kfuncs."""
    if k.flags is None:
        return
    flag = bool(k.flags & KF_FASTCALL)
    tag = DECL_TAG_FASTCALL in k.tags
    if flag and not tag:
        yield Finding(k.name, "fastcall-tag", "KF_FASTCALL but no bpf_fastcall decl tag: "
                      "declarations made from BTF (bpftool's vmlinux.h) lack __bpf_fastcall",
                      _flag_source(k, KF_FASTCALL))
    elif tag and not flag:
        yield Finding(k.name, "fastcall-tag", "bpf_fastcall decl tag but no KF_FASTCALL: "
                      "programs compiled for the convention get no bpf_fastcall treatment "
                      "from the verifier", f"decl tag {DECL_TAG_FASTCALL}")


def _inconsistent_sets(ctx: _Ctx, k: KfuncInfo) -> Iterator[Finding]:
    """main.c push_kfunc: "kfunc %s has inconsistent flags across BTF ID sets"."""
    if len(set(k.set_flags.values())) < 2:
        return
    per_set = ", ".join(f"{s}={'|'.join(flag_names(f)) or '0'}" for s, f in k.set_flags.items())
    yield Finding(k.name, "inconsistent-sets",
                  f"flags differ across sets ({per_set}): resolve_btfids fails the build",
                  _sets_text(list(k.set_flags)))


def _implicit_args(ctx: _Ctx, k: KfuncInfo) -> Iterator[Finding]:
    """verifier.c fetch_kfunc_meta/is_kfunc_arg_implicit/check_kfunc_args; main.c
    process_kfunc_with_implicit_args."""
    if not ctx.implicit(k):
        return
    btf = ctx.btf
    source = ctx.implicit_source(k)
    own = _proto(btf, k.btf_id)
    if own is None:
        return
    impl_name = k.name + IMPL_SUFFIX

    def finding(message: str) -> Finding:
        return Finding(k.name, "implicit-args", message, source)

    if k.impl_id is None:
        left = [(i, p) for i, p in enumerate(own.params) if _is_implicit_arg(btf, p)]
        if left:
            i, p = left[0]
            yield finding(f"no FUNC {impl_name} and parameter {i} `{_pname(btf, p, i)}` "
                          f"({_decl(btf, p.type)}) is still in the prototype: this BTF has "
                          "not been through resolve_btfids yet")
        else:
            yield finding(f"no FUNC {impl_name} in BTF: the verifier refuses every call "
                          f"(\"cannot find function {impl_name} in BTF\")")
        return
    impl = _proto(btf, k.impl_id)
    if impl is None:
        return
    n = len(own.params)
    if len(impl.params) <= n:
        yield finding(f"{impl_name} has {len(impl.params)} parameter(s), the BPF-visible "
                      f"prototype {n}: no implicit argument is left for the verifier to pass")
    for i, (a, b) in enumerate(zip(own.params, impl.params, strict=False)):
        pa, pb = _pname(btf, a, i), _pname(btf, b, i)
        if (pa, _plain(btf, a.type)) != (pb, _plain(btf, b.type)):
            yield finding(f"parameter {i} is `{_plain(btf, a.type, pa)}` but "
                          f"`{_plain(btf, b.type, pb)}` in {impl_name} (the verifier checks "
                          "calls against the _impl prototype)")
    if _plain(btf, own.type) != _plain(btf, impl.type):
        yield finding(f"returns {_decl(btf, own.type)} but {impl_name} returns "
                      f"{_decl(btf, impl.type)}")
    dropped = list(enumerate(impl.params))[n:]
    if not dropped:
        return
    i, first = dropped[0]
    fname = _pname(btf, first, i)
    if not (_is_implicit_arg(btf, first) or fname.endswith(IGNORE_SUFFIX)):
        yield finding(f"{impl_name} parameter {i} `{fname}` ({_decl(btf, first.type)}) starts "
                      "the implicit arguments but is no pointer to struct bpf_prog_aux or "
                      "btf_struct_meta (where resolve_btfids cuts the prototype)")
    if k.name in META_FIXUP_KFUNCS:
        return
    aux = [(j, p) for j, p in dropped if _ptr_to_struct(btf, p.type) == PROG_AUX]
    for j, p in dropped:
        if (j, p) not in aux:
            yield finding(f"{impl_name} parameter {j} `{_pname(btf, p, j)}` "
                          f"({_decl(btf, p.type)}) is implicit, but the verifier passes "
                          "only prog->aux (struct bpf_prog_aux *) to implicit arguments")
    if len(aux) > 1:
        yield finding(f"{impl_name} has {len(aux)} struct bpf_prog_aux * parameters: the "
                      "verifier supports one")
    for j, p in aux:
        if j >= MAX_REG_ARGS:
            yield finding(f"{impl_name} parameter {j} `{_pname(btf, p, j)}` (prog->aux) is a "
                          "stack argument: the verifier wants it in R1-R5")


def _impl_tags(ctx: _Ctx, k: KfuncInfo, kfunc_tags_emitted: bool) -> Iterator[Finding]:
    """main.c process_kfunc_with_implicit_args: "Copy all decl tags except bpf_kfunc"."""
    if not ctx.implicit(k) or k.impl_id is None or ctx.legacy_impl(k):
        return
    impl_name = k.name + IMPL_SUFFIX
    if kfunc_tags_emitted and DECL_TAG_KFUNC not in k.tags:
        yield Finding(k.name, "impl-tag", f"no bpf_kfunc decl tag on the kfunc itself "
                      f"(resolve_btfids tags the kfunc, not {impl_name})",
                      f"decl tags of {k.name}")
    kfunc_tag: TagKey = (DECL_TAG_KFUNC, -1, 0)
    # the opt-in per-argument tags (kfunc_args) go on the kfunc after main.c's copy
    want = {t for t in ctx.tags.get(k.btf_id, set())
            if not t[0].startswith((ARG_TAG, RET_TAG))} - {kfunc_tag}
    have = ctx.tags.get(k.impl_id, set())
    if kfunc_tag in have:
        yield Finding(k.name, "impl-tag", f"{impl_name} carries bpf_kfunc: resolve_btfids "
                      "copies every decl tag but that one to the _impl it makes",
                      f"decl tag {DECL_TAG_KFUNC} on {impl_name}")
    missing, extra = want - have, have - want - {kfunc_tag}
    if missing or extra:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(_tag_text(t) for t in sorted(missing)))
        if extra:
            parts.append("extra " + ", ".join(_tag_text(t) for t in sorted(extra)))
        yield Finding(k.name, "impl-tag", f"{impl_name} decl tags differ from {k.name}'s "
                      f"({'; '.join(parts)}): resolve_btfids copies all but bpf_kfunc",
                      f"decl tags of {k.name} and {impl_name}")


def _tag_text(t: TagKey) -> str:
    name, idx, attr = t
    text = f"__attribute__(({name}))" if attr else name
    return text if idx == -1 else f"{text} (param {idx})"
