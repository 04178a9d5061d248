"""Validation of BTF: lenient (what any tool's output needs to be read) or strict (what
the kernel would load).

Lenient (`check`) runs on parsed objects: string offsets in range, referenced ids
existing, sizes and vlen-dependent values a kind allows, names where a kind requires or
forbids one. It skips what needs type resolution (member sizes, DATASEC placement,
cycles), which clang's BPF objects do not pass before libbpf fixes them up, and never
refuses what the kernel accepts: every rule here is one of btf.c's.

Strict (`check_kernel`) is harness.btf.kernel_rules: the kernel's own checker, on the
raw bytes, with its reason for a reject.

One checker per class returns an error message or None; the byte offset of a
bad record is only computed when there is an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from harness.btf.codec import gc_paused
from harness.btf.errors import BTFError
from harness.btf.kernel_rules import KERNEL_7_3, LOAD, KernelView, Rules
from harness.btf.kernel_rules import check as kernel_check
from harness.btf.kinds import INT_BOOL, INT_CHAR, INT_SIGNED
from harness.btf.types import (
    Array,
    BtfType,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    Ptr,
    Restrict,
    Struct,
    Typedef,
    TypeTag,
    Union,
    Var,
    Volatile,
    _Composite,
)

if TYPE_CHECKING:  # the container is only an annotation here; it imports this module
    from harness.btf.btf import Btf

_INT_ENCODINGS = frozenset({0, INT_SIGNED, INT_CHAR, INT_BOOL})


class _Ctx:
    """What every checker needs: id and string bounds of the object being checked."""

    __slots__ = ("btf", "count", "lo", "hi", "base")

    def __init__(self, btf: Btf):
        self.btf = btf
        self.count = btf.type_count
        self.lo = btf.strings.start_off
        self.hi = btf.strings.end_off
        self.base = btf.base

    def bad_str(self, off: int) -> bool:
        if self.lo <= off < self.hi:
            return False
        return not (off < self.lo and self.base is not None and self.base.has_str_off(off))


Checker = Callable[[BtfType, _Ctx], str | None]


def check(btf: Btf) -> None:
    """Raise BTFError for the first problem found, naming the type id and its byte offset."""
    with gc_paused():
        ctx = _Ctx(btf)
        checkers = _CHECKERS
        for idx, t in enumerate(btf.types):
            checker = checkers.get(type(t))
            msg = checker(t, ctx) if checker is not None else f"not a BTF type: {t!r}"
            if msg is not None:
                offset = btf.hdr_len + sum(x.record_size() for x in btf.types[:idx])
                raise BTFError(msg, type_id=btf.start_id + idx, offset=offset)


def check_kernel(data: bytes, base: Btf | None = None, *, rules: Rules = KERNEL_7_3,
                 how: str = LOAD) -> KernelView:
    """Strict: raise KernelReject (a BTFError) when the kernel would refuse raw BTF `data`.

    A split BTF is judged on `base` as the kernel holds it: worked out from the base's
    bytes once per (rules, how, size) and kept on the base object.
    """
    base_view = None
    if base is not None:
        key = base.view_key(rules, how)
        base_view = base.kernel_views.get(key)
        if base_view is None:
            base_view = check_kernel(base.to_bytes(), base.base, rules=rules, how=how)
            base.kernel_views[key] = base_view
    return kernel_check(data, base_view, rules=rules, how=how)


def _name(t: BtfType, ctx: _Ctx, required: bool | None) -> str | None:
    """Name offset in range; required=True needs a name, False forbids one."""
    off = t.name_off
    if off:
        if required is False:
            return f"{t.kind.name} must not have a name"
        if ctx.bad_str(off):
            return f"invalid name offset {off}"
    elif required:
        return f"{t.kind.name} must have a name"
    return None


def _ref(ref: int, ctx: _Ctx, t: BtfType) -> str | None:
    if ref >= ctx.count:
        return f"{t.kind.name} references type id {ref} >= type count {ctx.count}"
    return None


def _ref_checker(name_rule: bool | None) -> Checker:
    def check_ref(t: BtfType, ctx: _Ctx) -> str | None:
        return _name(t, ctx, name_rule) or _ref(t.type, ctx, t)  # type: ignore[attr-defined]

    return check_ref


def _check_func(t: Func, ctx: _Ctx) -> str | None:
    err = _name(t, ctx, True) or _ref(t.type, ctx, t)
    if err:
        return err
    if t.linkage > 2:
        return f"FUNC linkage {t.linkage} unknown"
    if t.type == 0 or not isinstance(ctx.btf[t.type], FuncProto):
        return f"FUNC refers to type {t.type}, not a FUNC_PROTO"
    return None


def _check_proto(t: FuncProto, ctx: _Ctx) -> str | None:
    err = _name(t, ctx, False) or _ref(t.type, ctx, t)
    if err:
        return err
    last = len(t.params) - 1
    count = ctx.count
    for i, (name_off, ref) in enumerate(t.params):
        if name_off and ctx.bad_str(name_off):
            return f"param {i}: invalid name offset {name_off}"
        if ref >= count:
            return f"param {i}: type id {ref} >= type count {count}"
        if ref == 0 and i != last:
            return f"param {i}: void type before the last parameter"
    return None


def _check_composite(t: _Composite, ctx: _Ctx) -> str | None:
    err = _name(t, ctx, None)
    if err:
        return err
    limit = t.size * 8
    is_union = isinstance(t, Union)
    count = ctx.count
    bitfields = t.bitfield_flag
    for i, (name_off, ref, offset) in enumerate(t.members):
        if name_off and ctx.bad_str(name_off):
            return f"member {i}: invalid name offset {name_off}"
        if ref >= count:
            return f"member {i}: type id {ref} >= type count {count}"
        bit_off = offset & 0xFFFFFF if bitfields else offset
        if is_union and bit_off:
            return f"member {i}: union member at bit offset {bit_off}"
        if bit_off > limit:
            return f"member {i}: bit offset {bit_off} beyond size {t.size}"
    return None


def _check_enum(t: Enum | Enum64, ctx: _Ctx) -> str | None:
    err = _name(t, ctx, None)
    if err:
        return err
    if t.size not in (1, 2, 4, 8):
        return f"{t.kind.name} size {t.size} not 1, 2, 4 or 8"
    for i, v in enumerate(t.values):
        if not v.name_off or ctx.bad_str(v.name_off):
            return f"value {i}: invalid name offset {v.name_off}"
    return None


def _check_int(t: Int, ctx: _Ctx) -> str | None:
    err = _name(t, ctx, None)  # btf_int_check_meta neither requires nor forbids one
    if err:
        return err
    if t.bits + t.bit_offset > 128 or t.bits + t.bit_offset > t.size * 8:
        return f"INT bits {t.bit_offset}+{t.bits} do not fit {t.size} bytes (or 128 bits)"
    if t.encoding not in _INT_ENCODINGS:
        return f"INT encoding {t.encoding:#x} unsupported"
    return None


def _check_array(t: Array, ctx: _Ctx) -> str | None:
    return _name(t, ctx, False) or _ref(t.type, ctx, t) or _ref(t.index_type, ctx, t)


def _check_fwd(t: Fwd, ctx: _Ctx) -> str | None:
    return _name(t, ctx, True)


def _check_var(t: Var, ctx: _Ctx) -> str | None:
    err = _name(t, ctx, True) or _ref(t.type, ctx, t)
    if err:
        return err
    if t.linkage > 2:
        return f"VAR linkage {t.linkage} unknown"
    return None


def _check_datasec(t: Datasec, ctx: _Ctx) -> str | None:
    err = _name(t, ctx, True)
    if err:
        return err
    for i, v in enumerate(t.vars):
        if v.type == 0 or v.type >= ctx.count:
            return f"var {i}: bad type id {v.type}"
    return None


def _check_float(t: Float, ctx: _Ctx) -> str | None:
    err = _name(t, ctx, None)  # btf_float_check_meta does not look at the name
    if err:
        return err
    if t.size not in (2, 4, 8, 12, 16):
        return f"FLOAT size {t.size} not 2, 4, 8, 12 or 16"
    return None


def _check_decl_tag(t: DeclTag, ctx: _Ctx) -> str | None:
    err = _name(t, ctx, True) or _ref(t.type, ctx, t)
    if err:
        return err
    if t.component_idx < -1:
        return f"DECL_TAG component_idx {t.component_idx} < -1"
    if t.type == 0:
        return "DECL_TAG on void"
    if t.component_idx == -1:
        return None
    btf = ctx.btf
    target = btf[t.type]
    if isinstance(target, _Composite):
        vlen = len(target.members)
    elif isinstance(target, Func):
        proto = btf[target.type] if btf.has_id(target.type) else None
        vlen = len(proto.params) if isinstance(proto, FuncProto) else 0
    else:
        return f"DECL_TAG component_idx {t.component_idx} on a {target.kind.name}"
    if t.component_idx >= vlen:
        return f"DECL_TAG component_idx {t.component_idx} >= vlen {vlen}"
    return None


_CHECKERS: dict[type, Checker] = {  # type: ignore[dict-item]
    Func: _check_func, FuncProto: _check_proto, Struct: _check_composite,
    Union: _check_composite, Enum: _check_enum, Enum64: _check_enum, Int: _check_int,
    Array: _check_array, Fwd: _check_fwd, Var: _check_var, Datasec: _check_datasec,
    Float: _check_float, DeclTag: _check_decl_tag,
    Ptr: _ref_checker(False), Volatile: _ref_checker(False), Const: _ref_checker(False),
    Restrict: _ref_checker(False), Typedef: _ref_checker(True), TypeTag: _ref_checker(True),
}
