"""`bpftool btf dump file X format raw`, line for line (tools/bpf/bpftool/btf.c dump_btf_type)."""

from __future__ import annotations

from collections.abc import Iterator

from harness.btf.btf import Btf
from harness.btf.errors import BTFError
from harness.btf.kinds import INT_BOOL, INT_CHAR, INT_SIGNED, KIND_NAMES, Kind
from harness.btf.types import (
    Array,
    BtfType,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    Var,
    _Composite,
)

_INT_ENC = {0: "(none)", INT_SIGNED: "SIGNED", INT_CHAR: "CHAR", INT_BOOL: "BOOL"}
_LINKAGE = {0: "static", 1: "global", 2: "extern"}
_REF_KINDS = (Kind.PTR, Kind.CONST, Kind.VOLATILE, Kind.RESTRICT, Kind.TYPEDEF, Kind.TYPE_TAG)


def _s(btf: Btf, off: int) -> str:
    if not off:
        return "(anon)"
    try:
        return btf.str(off)
    except BTFError:
        return "(invalid)"


def _s32(v: int) -> int:
    return v - (1 << 32) if v & 0x80000000 else v


def _s64(v: int) -> int:
    return v - (1 << 64) if v & (1 << 63) else v


def format_type(btf: Btf, tid: int, t: BtfType) -> str:
    """One type as bpftool prints it (members on tab-indented continuation lines)."""
    out = [f"[{tid}] {KIND_NAMES.get(t.kind, 'UNKNOWN')} '{_s(btf, t.name_off)}'"]
    k = t.kind
    if isinstance(t, Int):
        enc = _INT_ENC.get(t.encoding, "UNKN")
        out.append(f" size={t.size} bits_offset={t.bit_offset} nr_bits={t.bits} encoding={enc}")
    elif k in _REF_KINDS:
        out.append(f" type_id={t.type}")  # type: ignore[attr-defined]
    elif isinstance(t, Array):
        out.append(f" type_id={t.type} index_type_id={t.index_type} nr_elems={t.nelems}")
    elif isinstance(t, _Composite):
        out.append(f" size={t.size} vlen={len(t.members)}")
        for m in t.members:
            out.append(f"\n\t'{_s(btf, m.name_off)}' type_id={m.type} "
                       f"bits_offset={t.member_bit_offset(m)}")
            bsz = t.member_bitfield_size(m)
            if bsz:
                out.append(f" bitfield_size={bsz}")
    elif isinstance(t, Enum):
        out.append(f" encoding={'SIGNED' if t.signed else 'UNSIGNED'} size={t.size} "
                   f"vlen={len(t.values)}")
        for v in t.values:
            val = _s32(v.val) if t.signed else v.val
            out.append(f"\n\t'{_s(btf, v.name_off)}' val={val}")
    elif isinstance(t, Enum64):
        out.append(f" encoding={'SIGNED' if t.signed else 'UNSIGNED'} size={t.size} "
                   f"vlen={len(t.values)}")
        for v in t.values:
            val = f"{_s64(v.val)}LL" if t.signed else f"{v.val}ULL"
            out.append(f"\n\t'{_s(btf, v.name_off)}' val={val}")
    elif isinstance(t, Fwd):
        out.append(f" fwd_kind={'union' if t.is_union else 'struct'}")
    elif isinstance(t, Func):
        out.append(f" type_id={t.type} linkage={_LINKAGE.get(t.linkage, '(unknown)')}")
    elif isinstance(t, FuncProto):
        out.append(f" ret_type_id={t.type} vlen={len(t.params)}")
        for p in t.params:
            out.append(f"\n\t'{_s(btf, p.name_off)}' type_id={p.type}")
    elif isinstance(t, Var):
        out.append(f" type_id={t.type}, linkage={_LINKAGE.get(t.linkage, '(unknown)')}")
    elif isinstance(t, Datasec):
        out.append(f" size={t.size} vlen={len(t.vars)}")
        count = btf.type_count
        for v in t.vars:
            out.append(f"\n\ttype_id={v.type} offset={v.offset} size={v.size}")
            if v.type < count:
                vt = btf[v.type]
                out.append(f" ({KIND_NAMES.get(vt.kind, 'UNKNOWN')} '{_s(btf, vt.name_off)}')")
    elif isinstance(t, Float):
        out.append(f" size={t.size}")
    elif isinstance(t, DeclTag):
        out.append(f" type_id={t.type} component_idx={t.component_idx}")
    return "".join(out)


def dump_lines(btf: Btf) -> Iterator[str]:
    """bpftool's raw dump of the object's own types (split BTF: from start_id)."""
    for tid, t in btf.items():
        yield format_type(btf, tid, t)


def dump(btf: Btf) -> bytes:
    """The whole dump as bytes (strings go out as stored, like bpftool's printf)."""
    text = "".join(line + "\n" for line in dump_lines(btf))
    return text.encode("utf-8", "surrogateescape")
