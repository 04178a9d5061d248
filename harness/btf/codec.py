"""Raw BTF bytes <-> header, type objects, layout and string bytes.

Marshalling is kept apart from the model (types.py) and the container
(btf.py). The type section is handled as a flat array of u32 words (every
BTF record field is a 32-bit word), swapped once when the blob's byte order
is not the host's; that keeps the hot loops in `array`/`struct` C code.

Structural problems (bad header, truncated record, unknown kind, bits a kind
cannot carry) raise BTFError naming the type id and byte offset. Semantic
checks (dangling ids, string offsets, sizes) live in validate.py.
"""

from __future__ import annotations

import gc
import struct
import sys
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from itertools import chain

from harness.btf.errors import BTFError
from harness.btf.kinds import (
    ENTRY_WORDS,
    FIXED_WORDS,
    HEADER_FORMAT,
    HEADER_FORMAT_V1,
    HEADER_LEN,
    HEADER_LEN_V1,
    HEADER_OFFSETS,
    INFO_KFLAG_SHIFT,
    INFO_KIND_MASK,
    INFO_KIND_SHIFT,
    INFO_VLEN_MASK,
    INT_DATA_MASK,
    LAYOUT_FORMAT,
    MAGIC,
    TYPE_WORDS,
    VERSION,
    Kind,
    info_word,
)
from harness.btf.types import (
    Array,
    BtfType,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    EnumValue,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
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

# the header up to hdr_len: what the kernel needs to read before it can say anything else
HEADER_MIN = HEADER_OFFSETS["hdr_len"] + 4

if array("I").itemsize != 4:  # pragma: no cover - every Linux ABI has 4-byte unsigned int
    raise ImportError("harness.btf needs array('I') to be 32 bits")

LITTLE = "little"
BIG = "big"
_HOST = sys.byteorder
_FMT = {LITTLE: "<", BIG: ">"}


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building or walking many objects.

    Creating 100k+ type objects triggers repeated collections that walk the
    whole growing heap: measured 60% of decode time on vmlinux. BTF objects
    form no reference cycles, so nothing is lost by collecting later.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(slots=True)
class Header:
    """struct btf_header as read (fields past hdr_len read as 0)."""

    endian: str
    version: int
    flags: int
    hdr_len: int
    type_off: int
    type_len: int
    str_off: int
    str_len: int
    layout_off: int = 0
    layout_len: int = 0


def parse_header(data: bytes | memoryview) -> Header:
    """Read and check the header and section placement the way the kernel does.

    Sections must be types, then the optional layout, then strings, with no
    gap, overlap or trailing bytes (the kernel's btf_check_sec_info), so the
    writer's canonical layout reproduces any accepted blob.
    """
    size = len(data)
    if size < HEADER_MIN:
        raise BTFError(f"BTF header truncated: {size} bytes, need {HEADER_MIN}", offset=0)
    if data[0] == 0x9F and data[1] == 0xEB:
        endian = LITTLE
    elif data[0] == 0xEB and data[1] == 0x9F:
        endian = BIG
    else:
        raise BTFError(f"bad BTF magic {bytes(data[:2]).hex()} (want {MAGIC:#x})", offset=0)
    e = _FMT[endian]
    _, version, flags, hdr_len = struct.unpack_from(e + HEADER_FORMAT[:4], data, 0)
    at = HEADER_OFFSETS
    if hdr_len < HEADER_MIN:
        raise BTFError(f"header length {hdr_len} shorter than {HEADER_MIN}",
                       offset=at["hdr_len"])
    if hdr_len > size:
        raise BTFError(f"header length {hdr_len} exceeds data size {size}", offset=at["hdr_len"])
    if version != VERSION:
        raise BTFError(f"unsupported BTF version {version}", offset=at["version"])
    if flags:
        raise BTFError(f"unsupported BTF header flags {flags:#x}", offset=at["flags"])
    # a shorter header reads as zeros past hdr_len, as the kernel's partial copy does (only
    # an empty split BTF survives that)
    raw_hdr = bytes(data[:hdr_len]) + b"\0" * max(0, HEADER_LEN - hdr_len)
    if HEADER_LEN_V1 < hdr_len < HEADER_LEN and any(raw_hdr[HEADER_LEN_V1:hdr_len]):
        raise BTFError(f"partial layout fields in a {hdr_len}-byte header", offset=HEADER_LEN_V1)
    if hdr_len > HEADER_LEN and any(raw_hdr[HEADER_LEN:hdr_len]):
        raise BTFError("unknown non-zero data in the BTF header", offset=HEADER_LEN)
    fields = struct.unpack_from(e + HEADER_FORMAT, raw_hdr, 0)
    hdr = Header(endian, version, flags, hdr_len, *fields[4:])
    body = size - hdr_len
    if hdr.type_off != 0:
        raise BTFError(f"type section at {hdr.type_off}, expected 0 (gap after header)",
                       offset=at["type_off"])
    if hdr.type_len % 4:
        raise BTFError(f"type section length {hdr.type_len} not a multiple of 4",
                       offset=at["type_len"])
    pos = hdr.type_len
    if hdr.layout_len:
        if hdr.layout_off != pos:
            raise BTFError(
                f"layout section at {hdr.layout_off}, expected {pos} (right after types)",
                offset=at["layout_off"],
            )
        if hdr.layout_len % 4:
            raise BTFError(f"layout section length {hdr.layout_len} not a multiple of 4",
                           offset=at["layout_len"])
        pos += hdr.layout_len
    if hdr.str_off != pos:
        raise BTFError(f"string section at {hdr.str_off}, expected {pos}", offset=at["str_off"])
    end = pos + hdr.str_len
    if end != body:
        what = "truncated" if end > body else "has trailing bytes"
        raise BTFError(f"BTF data {what}: sections end at {end}, data has {body}", offset=0)
    return hdr


def decode_layout(raw: bytes | memoryview, endian: str) -> list[tuple[int, int, int]]:
    """The layout section as (info_sz, elem_sz, flags) triples."""
    return list(struct.iter_unpack(_FMT[endian] + LAYOUT_FORMAT, raw))


def encode_layout(layout: list[tuple[int, int, int]], endian: str) -> bytes:
    fmt = _FMT[endian] + LAYOUT_FORMAT
    return b"".join(struct.pack(fmt, *entry) for entry in layout)


def section_words(raw: bytes | memoryview, endian: str) -> list[int]:
    """A type section's u32 words in host order."""
    w = array("I")
    w.frombytes(raw)
    if endian != _HOST:
        w.byteswap()
    return w.tolist()


def swap_words(raw: bytes, endian: str, to_endian: str) -> bytes:
    """A type section (u32 words throughout, ENUM64 values as two of them) in `to_endian`."""
    if endian == to_endian:
        return raw
    w = array("I")
    w.frombytes(raw)
    w.byteswap()
    return w.tobytes()


_member = partial(tuple.__new__, Member)
_param = partial(tuple.__new__, Param)
_enumval = partial(tuple.__new__, EnumValue)
_secinfo = partial(tuple.__new__, VarSecinfo)

# plain int keys: hashing an IntEnum member runs Python code, a plain int does not
_SIMPLE_REF: dict[int, type[BtfType]] = {
    2: Ptr, 8: Typedef, 9: Volatile, 10: Const, 11: Restrict,
}


def decode_types(
    raw: bytes | memoryview, endian: str, start_id: int = 1, file_off: int = 0
) -> list[BtfType]:
    """Decode a whole type section. `file_off` is its byte offset, for messages."""
    with gc_paused():
        return _decode_types(raw, endian, start_id, file_off)


def _columns(seg: list[int], width: int) -> Iterator[tuple[int, ...]]:
    """Entries of `width` words each, as tuples (the words of one vlen entry)."""
    return zip(*[seg[k::width] for k in range(width)], strict=True)


def _decode_types(
    raw: bytes | memoryview, endian: str, start_id: int, file_off: int
) -> list[BtfType]:
    w = section_words(raw, endian)
    n = len(w)
    out: list[BtfType] = []
    append = out.append
    simple_ref = _SIMPLE_REF.get
    func, proto, member, param = Func, FuncProto, _member, _param
    fixed, entry = FIXED_WORDS, ENTRY_WORDS
    kind_shift, kind_mask, vlen_mask, kflag_shift = (
        INFO_KIND_SHIFT, INFO_KIND_MASK, INFO_VLEN_MASK, INFO_KFLAG_SHIFT)
    type_words = TYPE_WORDS
    i = 0
    while i < n:
        if i + type_words > n:
            tid = start_id + len(out)
            raise BTFError("truncated type record", type_id=tid, offset=file_off + 4 * i)
        name_off = w[i]
        info = w[i + 1]
        st = w[i + 2]
        kind = (info >> kind_shift) & kind_mask
        vlen = info & vlen_mask
        kflag = info >> kflag_shift
        p = i + type_words
        tid = -1  # only computed (start_id + len(out)) on the error paths below
        if kind == 12:  # FUNC
            if kflag:
                _junk(start_id + len(out), file_off + 4 * i, "FUNC with kind_flag set")
            append(func(name_off, st, vlen))
            i = p
            continue
        tid = start_id + len(out)
        ref = simple_ref(kind)
        if ref is not None:
            if vlen or kflag:
                _junk(tid, file_off + 4 * i, f"{Kind(kind).name} with vlen/kind_flag set")
            append(ref(name_off, st))
        elif kind == 13:  # FUNC_PROTO
            width = entry[kind]
            end = p + width * vlen
            if end > n:
                _trunc(tid, file_off + 4 * i, "FUNC_PROTO", vlen)
            if kflag:
                _junk(tid, file_off + 4 * i, "FUNC_PROTO with kind_flag set")
            append(proto(name_off, st, list(map(param, _columns(w[p:end], width)))))
            p = end
        elif kind == 4 or kind == 5:  # STRUCT, UNION
            width = entry[kind]
            end = p + width * vlen
            if end > n:
                _trunc(tid, file_off + 4 * i, Kind(kind).name, vlen)
            members = list(map(member, _columns(w[p:end], width)))
            append((Struct if kind == 4 else Union)(name_off, st, members, kflag))
            p = end
        elif kind == 1:  # INT
            end = i + fixed[kind]
            if end > n:
                _trunc(tid, file_off + 4 * i, "INT", 0)
            if vlen or kflag:
                _junk(tid, file_off + 4 * i, "INT with vlen/kind_flag set")
            data = w[p]
            if data & ~INT_DATA_MASK:
                _junk(tid, file_off + 4 * i, f"INT data {data:#x} has reserved bits set")
            append(Int(name_off, st, data >> 24, (data >> 16) & 0xFF, data & 0xFF,
                       (data >> 8) & 0xFF))
            p = end
        elif kind == 6:  # ENUM
            width = entry[kind]
            end = p + width * vlen
            if end > n:
                _trunc(tid, file_off + 4 * i, "ENUM", vlen)
            values = list(map(_enumval, _columns(w[p:end], width)))
            append(Enum(name_off, st, values, kflag))
            p = end
        elif kind == 19:  # ENUM64
            width = entry[kind]
            end = p + width * vlen
            if end > n:
                _trunc(tid, file_off + 4 * i, "ENUM64", vlen)
            values = [EnumValue(no, lo | (hi << 32))
                      for no, lo, hi in _columns(w[p:end], width)]
            append(Enum64(name_off, st, values, kflag))
            p = end
        elif kind == 3:  # ARRAY
            end = i + fixed[kind]
            if end > n:
                _trunc(tid, file_off + 4 * i, "ARRAY", 0)
            if vlen or kflag or st:
                _junk(tid, file_off + 4 * i, "ARRAY with vlen/kind_flag/size set")
            append(Array(name_off, w[p], w[p + 1], w[p + 2]))
            p = end
        elif kind == 7:  # FWD
            if vlen or st:
                _junk(tid, file_off + 4 * i, "FWD with vlen/type set")
            append(Fwd(name_off, kflag))
        elif kind == 14:  # VAR
            end = i + fixed[kind]
            if end > n:
                _trunc(tid, file_off + 4 * i, "VAR", 0)
            if vlen or kflag:
                _junk(tid, file_off + 4 * i, "VAR with vlen/kind_flag set")
            append(Var(name_off, st, w[p]))
            p = end
        elif kind == 15:  # DATASEC
            width = entry[kind]
            end = p + width * vlen
            if end > n:
                _trunc(tid, file_off + 4 * i, "DATASEC", vlen)
            if kflag:
                _junk(tid, file_off + 4 * i, "DATASEC with kind_flag set")
            secinfos = list(map(_secinfo, _columns(w[p:end], width)))
            append(Datasec(name_off, st, secinfos))
            p = end
        elif kind == 16:  # FLOAT
            if vlen or kflag:
                _junk(tid, file_off + 4 * i, "FLOAT with vlen/kind_flag set")
            append(Float(name_off, st))
        elif kind == 17:  # DECL_TAG
            end = i + fixed[kind]
            if end > n:
                _trunc(tid, file_off + 4 * i, "DECL_TAG", 0)
            if vlen:
                _junk(tid, file_off + 4 * i, "DECL_TAG with vlen set")
            idx = w[p]
            append(DeclTag(name_off, st, idx - (1 << 32) if idx & 0x80000000 else idx, kflag))
            p = end
        elif kind == 18:  # TYPE_TAG
            if vlen:
                _junk(tid, file_off + 4 * i, "TYPE_TAG with vlen set")
            append(TypeTag(name_off, st, kflag))
        else:
            raise BTFError(f"unknown BTF kind {kind}", type_id=tid, offset=file_off + 4 * i)
        i = p
    return out


def _trunc(tid: int, off: int, what: str, vlen: int) -> None:
    raise BTFError(f"{what} record with vlen {vlen} runs past the type section",
                   type_id=tid, offset=off)


def _junk(tid: int, off: int, what: str) -> None:
    raise BTFError(what, type_id=tid, offset=off)


# Info words of each kind with vlen 0 and no kind_flag (plain ints: hashing or looking up
# an IntEnum member runs Python code in the encoder's loop), and the kind_flag bit.
_KFLAG = 1 << INFO_KFLAG_SHIFT
_FUNC_INFO = info_word(Kind.FUNC)
_FUNC_PROTO_INFO = info_word(Kind.FUNC_PROTO)
_ENUM_INFO = info_word(Kind.ENUM)
_ENUM64_INFO = info_word(Kind.ENUM64)
_INT_INFO = info_word(Kind.INT)
_ARRAY_INFO = info_word(Kind.ARRAY)
_FWD_INFO = info_word(Kind.FWD)
_VAR_INFO = info_word(Kind.VAR)
_DATASEC_INFO = info_word(Kind.DATASEC)
_FLOAT_INFO = info_word(Kind.FLOAT)
_DECL_TAG_INFO = info_word(Kind.DECL_TAG)
_TYPE_TAG_INFO = info_word(Kind.TYPE_TAG)


def _enc_func(t: Func, out: list[int]) -> None:
    out += (t.name_off, _FUNC_INFO | t.linkage, t.type)


def _enc_proto(t: FuncProto, out: list[int]) -> None:
    out += (t.name_off, _FUNC_PROTO_INFO | len(t.params), t.type)
    out += chain.from_iterable(t.params)


def _ref_encoder(kind: int) -> Callable[[BtfType, list[int]], None]:
    info = info_word(kind)

    def enc(t: BtfType, out: list[int]) -> None:
        out += (t.name_off, info, t.type)  # type: ignore[attr-defined]

    return enc


def _composite_encoder(kind: int) -> Callable[[BtfType, list[int]], None]:
    info = info_word(kind)

    def enc(t: BtfType, out: list[int]) -> None:
        members = t.members  # type: ignore[attr-defined]
        kflag = _KFLAG if t.bitfield_flag else 0  # type: ignore[attr-defined]
        out += (t.name_off, kflag | info | len(members), t.size)  # type: ignore[attr-defined]
        out += chain.from_iterable(members)

    return enc


def _enc_enum(t: Enum, out: list[int]) -> None:
    kflag = _KFLAG if t.signed else 0
    out += (t.name_off, kflag | _ENUM_INFO | len(t.values), t.size)
    out += chain.from_iterable(t.values)


def _enc_enum64(t: Enum64, out: list[int]) -> None:
    kflag = _KFLAG if t.signed else 0
    out += (t.name_off, kflag | _ENUM64_INFO | len(t.values), t.size)
    for v in t.values:
        out += (v.name_off, v.val & 0xFFFFFFFF, v.val >> 32)


def _enc_int(t: Int, out: list[int]) -> None:
    out += (t.name_off, _INT_INFO, t.size, t.data)


def _enc_array(t: Array, out: list[int]) -> None:
    out += (t.name_off, _ARRAY_INFO, 0, t.type, t.index_type, t.nelems)


def _enc_fwd(t: Fwd, out: list[int]) -> None:
    out += (t.name_off, (_KFLAG if t.is_union else 0) | _FWD_INFO, 0)


def _enc_var(t: Var, out: list[int]) -> None:
    out += (t.name_off, _VAR_INFO, t.type, t.linkage)


def _enc_datasec(t: Datasec, out: list[int]) -> None:
    out += (t.name_off, _DATASEC_INFO | len(t.vars), t.size)
    out += chain.from_iterable(t.vars)


def _enc_float(t: Float, out: list[int]) -> None:
    out += (t.name_off, _FLOAT_INFO, t.size)


def _enc_decl_tag(t: DeclTag, out: list[int]) -> None:
    kflag = _KFLAG if t.attr else 0
    out += (t.name_off, kflag | _DECL_TAG_INFO, t.type, t.component_idx & 0xFFFFFFFF)


def _enc_type_tag(t: TypeTag, out: list[int]) -> None:
    out += (t.name_off, (_KFLAG if t.attr else 0) | _TYPE_TAG_INFO, t.type)


_ENCODERS: dict[type, Callable[[BtfType, list[int]], None]] = {  # type: ignore[dict-item]
    Func: _enc_func, FuncProto: _enc_proto, Struct: _composite_encoder(4),
    Union: _composite_encoder(5), Enum: _enc_enum, Enum64: _enc_enum64, Int: _enc_int,
    Array: _enc_array, Fwd: _enc_fwd, Var: _enc_var, Datasec: _enc_datasec,
    Float: _enc_float, DeclTag: _enc_decl_tag, TypeTag: _enc_type_tag,
    **{cls: _ref_encoder(k) for k, cls in _SIMPLE_REF.items()},
}


def _type_words(t: BtfType, out: list[int]) -> None:
    """Append the u32 words of one record (its class picks the layout)."""
    enc = _ENCODERS.get(type(t))
    if enc is None:
        raise BTFError(f"cannot encode {type(t).__name__}")
    enc(t, out)


def encode_types(types: list[BtfType], endian: str, start_id: int = 1) -> bytes:
    """Encode a type section; a field out of u32 range raises BTFError naming the type."""
    out: list[int] = []
    encoders = _ENCODERS
    try:
        with gc_paused():
            for t in types:
                encoders[type(t)](t, out)
    except KeyError as exc:
        raise BTFError(f"cannot encode a {exc.args[0].__name__} as a BTF type") from None
    except AttributeError as exc:
        raise BTFError(f"malformed type object: {exc}") from None
    try:
        w = array("I", out)
    except (OverflowError, TypeError):
        _locate_bad_field(types, start_id)
        raise
    if endian != _HOST:
        w.byteswap()
    return w.tobytes()


def _locate_bad_field(types: list[BtfType], start_id: int) -> None:
    for tid, t in enumerate(types, start_id):
        words: list[int] = []
        try:
            _type_words(t, words)
            array("I", words)
        except (OverflowError, TypeError) as exc:
            raise BTFError(f"field out of u32 range in {t!r}", type_id=tid) from exc
    raise BTFError("field out of u32 range")


def encode_header(hdr_len: int, endian: str, type_len: int, layout_len: int,
                  str_len: int, spare_layout_off: int = 0) -> bytes:
    """Header in the writer's canonical layout: types, then layout, then strings."""
    e = _FMT[endian]
    str_off = type_len + layout_len
    head = struct.pack(e + HEADER_FORMAT_V1, MAGIC, VERSION, 0, hdr_len, 0, type_len, str_off,
                       str_len)
    if hdr_len >= HEADER_LEN:
        layout_off = type_len if layout_len else spare_layout_off
        head += struct.pack(e + HEADER_FORMAT[len(HEADER_FORMAT_V1):], layout_off, layout_len)
        head += b"\0" * (hdr_len - HEADER_LEN)
    elif hdr_len > HEADER_LEN_V1:
        head += b"\0" * (hdr_len - HEADER_LEN_V1)
    return head
