"""Cheap semantic checks the kernel's BTF verifier would also fail.

The codec already rejects structural damage. This pass checks what needs the
whole object: string offsets in range, referenced ids existing, sizes and
vlen-dependent values a kind allows, names where a kind requires or forbids
one. It deliberately skips checks that need type resolution (member sizes,
DATASEC placement, cycles), which clang's BPF objects do not pass before
libbpf fixes them up anyway.
"""

from __future__ import annotations

from harness.btf.btf import Btf
from harness.btf.errors import BTFError
from harness.btf.kinds import INT_BOOL, INT_CHAR, INT_SIGNED, Kind
from harness.btf.types import (
    Datasec,
    DeclTag,
    Func,
    FuncProto,
    Int,
    Struct,
    Union,
    Var,
    _Composite,
    _EnumBase,
)

_INT_ENCODINGS = frozenset({0, INT_SIGNED, INT_CHAR, INT_BOOL})
_UNNAMED = frozenset({Kind.PTR, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.ARRAY,
                      Kind.FUNC_PROTO})
_NAMED = frozenset({Kind.TYPEDEF, Kind.FWD, Kind.FUNC, Kind.VAR, Kind.DATASEC, Kind.FLOAT,
                    Kind.DECL_TAG, Kind.TYPE_TAG, Kind.INT})


def check(btf: Btf) -> None:
    """Raise BTFError for the first problem found, naming the type id and its byte offset."""
    count = btf.type_count
    has_str = btf.has_str_off
    str_lo = btf.strings.start_off
    str_hi = btf.strings.end_off
    off = btf.hdr_len
    tid = btf.start_id
    for t in btf.types:
        try:
            name_off = t.name_off
            if not str_lo <= name_off < str_hi and not has_str(name_off):
                raise BTFError(f"invalid name offset {name_off}")
            for ref in t.type_ids():
                if ref >= count:
                    raise BTFError(f"{t.kind.name} references type id {ref} >= type count {count}")
            kind = t.kind
            if kind in _UNNAMED and name_off:
                raise BTFError(f"{kind.name} must not have a name")
            if kind in _NAMED and not name_off:
                raise BTFError(f"{kind.name} must have a name")
            _check_kind(btf, t, tid, has_str, str_lo, str_hi)
        except BTFError as exc:
            if exc.type_id is not None:
                raise
            raise BTFError(str(exc), type_id=tid, offset=off) from None
        off += t.record_size()
        tid += 1


def _check_kind(btf: Btf, t, tid: int, has_str, str_lo: int, str_hi: int) -> None:  # noqa: ANN001
    kind = t.kind
    if kind == Kind.FUNC:
        assert isinstance(t, Func)
        if t.linkage > 2:
            raise BTFError(f"FUNC linkage {t.linkage} unknown")
        if t.type == 0 or btf[t.type].kind != Kind.FUNC_PROTO:
            raise BTFError(f"FUNC refers to type {t.type}, not a FUNC_PROTO")
    elif kind == Kind.FUNC_PROTO:
        assert isinstance(t, FuncProto)
        last = len(t.params) - 1
        for i, p in enumerate(t.params):
            if p.name_off and not (str_lo <= p.name_off < str_hi or has_str(p.name_off)):
                raise BTFError(f"param {i}: invalid name offset {p.name_off}")
            if p.type == 0 and i != last:
                raise BTFError(f"param {i}: void type before the last parameter")
    elif isinstance(t, _Composite):
        limit = t.size * 8
        is_union = isinstance(t, Union)
        for i, m in enumerate(t.members):
            if m.name_off and not (str_lo <= m.name_off < str_hi or has_str(m.name_off)):
                raise BTFError(f"member {i}: invalid name offset {m.name_off}")
            bit_off = t.member_bit_offset(m)
            if is_union and bit_off:
                raise BTFError(f"member {i}: union member at bit offset {bit_off}")
            if bit_off > limit:
                raise BTFError(f"member {i}: bit offset {bit_off} beyond size {t.size}")
        if not isinstance(t, Struct | Union):  # pragma: no cover - only two composites
            raise BTFError("bad composite")
    elif isinstance(t, _EnumBase):
        if t.size not in (1, 2, 4, 8):
            raise BTFError(f"{kind.name} size {t.size} not 1, 2, 4 or 8")
        for i, v in enumerate(t.values):
            if not v.name_off or not (str_lo <= v.name_off < str_hi or has_str(v.name_off)):
                raise BTFError(f"value {i}: invalid name offset {v.name_off}")
    elif kind == Kind.INT:
        assert isinstance(t, Int)
        if t.size not in (1, 2, 4, 8, 16):
            raise BTFError(f"INT size {t.size} not 1, 2, 4, 8 or 16")
        if t.bits > 128 or t.bits + t.bit_offset > t.size * 8:
            raise BTFError(f"INT bits {t.bit_offset}+{t.bits} do not fit {t.size} bytes")
        if t.encoding not in _INT_ENCODINGS:
            raise BTFError(f"INT encoding {t.encoding:#x} unsupported")
    elif kind == Kind.VAR:
        assert isinstance(t, Var)
        if t.linkage > 2:
            raise BTFError(f"VAR linkage {t.linkage} unknown")
    elif kind == Kind.DATASEC:
        assert isinstance(t, Datasec)
        for i, v in enumerate(t.vars):
            if v.type == 0:
                raise BTFError(f"var {i}: refers to void")
    elif kind == Kind.FLOAT:
        if t.size not in (2, 4, 8, 12, 16):
            raise BTFError(f"FLOAT size {t.size} not 2, 4, 8, 12 or 16")
    elif kind == Kind.DECL_TAG:
        assert isinstance(t, DeclTag)
        _check_decl_tag(btf, t)


def _check_decl_tag(btf: Btf, t: DeclTag) -> None:
    if t.component_idx < -1:
        raise BTFError(f"DECL_TAG component_idx {t.component_idx} < -1")
    if t.type == 0:
        raise BTFError("DECL_TAG on void")
    if t.component_idx == -1:
        return
    target = btf[t.type]
    if isinstance(target, _Composite):
        vlen = len(target.members)
    elif isinstance(target, Func):
        proto = btf[target.type] if btf.has_id(target.type) else None
        vlen = len(proto.params) if isinstance(proto, FuncProto) else 0
    else:
        raise BTFError(f"DECL_TAG component_idx {t.component_idx} on a {target.kind.name}")
    if t.component_idx >= vlen:
        raise BTFError(f"DECL_TAG component_idx {t.component_idx} >= vlen {vlen}")
