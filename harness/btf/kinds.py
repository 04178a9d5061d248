"""BTF constants and record shapes from include/uapi/linux/btf.h, declared once.

The codec's strides and info words, `BtfType.record_size`, the header and the
default layout table are all derived from the declarations here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

MAGIC = 0xEB9F
VERSION = 1

# struct btf_header, field by field (7.3: with layout_off/layout_len).
HEADER_FIELDS: tuple[tuple[str, str], ...] = (
    ("magic", "H"), ("version", "B"), ("flags", "B"), ("hdr_len", "I"),
    ("type_off", "I"), ("type_len", "I"), ("str_off", "I"), ("str_len", "I"),
    ("layout_off", "I"), ("layout_len", "I"),
)
HEADER_FORMAT = "".join(code for _name, code in HEADER_FIELDS)
# the header up to str_len: the 24-byte header pahole < 1.31 writes
HEADER_FORMAT_V1 = HEADER_FORMAT[:[name for name, _ in HEADER_FIELDS].index("str_len") + 1]
HEADER_LEN = struct.calcsize("<" + HEADER_FORMAT)
HEADER_LEN_V1 = struct.calcsize("<" + HEADER_FORMAT_V1)
HEADER_OFFSETS: dict[str, int] = {
    name: struct.calcsize("<" + HEADER_FORMAT[:i]) for i, (name, _) in enumerate(HEADER_FIELDS)
}
# struct btf_layout: info_sz, elem_sz, flags (one per kind in the layout section)
LAYOUT_FORMAT = "BBH"

MAX_TYPE = 0x000FFFFF
MAX_NAME_OFFSET = 0x00FFFFFF
MAX_VLEN = 0x00FFFFFF
# libbpf's own limits (BTF_MAX_NR_TYPES, BTF_MAX_STR_OFFSET)
LIBBPF_MAX_NR_TYPES = 0x7FFFFFFF
LIBBPF_MAX_STR_OFFSET = 0x7FFFFFFF


class Kind(IntEnum):
    """BTF_KIND_* values (bits 24-30 of btf_type.info)."""

    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


NR_KINDS = 20
KIND_MAX = Kind.ENUM64

# struct btf_type: name_off, info, size-or-type; every kind's record starts with it
TYPE_WORDS = 3
WORD = 4  # every field of a type record is a u32
# btf_type.info: bits 0-23 vlen, 24-30 kind, 31 kind_flag (BTF_INFO_VLEN/KIND/KFLAG)
INFO_VLEN_MASK = 0x00FFFFFF
INFO_KIND_SHIFT = 24
INFO_KIND_MASK = 0x7F
INFO_KFLAG_SHIFT = 31


def info_word(kind: int, vlen: int = 0, kflag: int = 0) -> int:
    """btf_type.info for a kind, vlen and kind_flag."""
    return (kflag << INFO_KFLAG_SHIFT) | (kind << INFO_KIND_SHIFT) | vlen


@dataclass(frozen=True, slots=True)
class Shape:
    """What follows struct btf_type in a kind's record, and which info bits it uses."""

    extra: int = 0       # u32 words of the one struct after btf_type (btf_array: 3)
    entry: int = 0       # u32 words of each of vlen entries (btf_member: 3)
    vlen: bool = False   # info.vlen means something (an entry count; FUNC: linkage)
    kflag: bool = False  # info.kind_flag means something


_PLAIN = Shape()
SHAPES: dict[Kind, Shape] = {
    Kind.UNKN: _PLAIN,
    Kind.INT: Shape(extra=1),                                 # u32 encoding/offset/bits
    Kind.PTR: _PLAIN,
    Kind.ARRAY: Shape(extra=3),                               # struct btf_array
    Kind.STRUCT: Shape(entry=3, vlen=True, kflag=True),       # struct btf_member
    Kind.UNION: Shape(entry=3, vlen=True, kflag=True),
    Kind.ENUM: Shape(entry=2, vlen=True, kflag=True),         # struct btf_enum
    Kind.FWD: Shape(kflag=True),
    Kind.TYPEDEF: _PLAIN,
    Kind.VOLATILE: _PLAIN,
    Kind.CONST: _PLAIN,
    Kind.RESTRICT: _PLAIN,
    Kind.FUNC: Shape(vlen=True),                              # vlen is the linkage
    Kind.FUNC_PROTO: Shape(entry=2, vlen=True),               # struct btf_param
    Kind.VAR: Shape(extra=1),                                 # struct btf_var
    Kind.DATASEC: Shape(entry=3, vlen=True),                  # struct btf_var_secinfo
    Kind.FLOAT: _PLAIN,
    Kind.DECL_TAG: Shape(extra=1, kflag=True),                # struct btf_decl_tag
    Kind.TYPE_TAG: Shape(kflag=True),
    Kind.ENUM64: Shape(entry=3, vlen=True, kflag=True),       # struct btf_enum64
}
# per kind value: u32 words before the entries, and u32 words per entry
FIXED_WORDS: tuple[int, ...] = tuple(TYPE_WORDS + SHAPES[k].extra for k in Kind)
ENTRY_WORDS: tuple[int, ...] = tuple(SHAPES[k].entry for k in Kind)


def record_words(kind: int, entries: int = 0) -> int:
    """u32 words of a record of `kind` with `entries` vlen entries."""
    return FIXED_WORDS[kind] + ENTRY_WORDS[kind] * entries

# Names as bpftool prints them (btf_kind_str[] in tools/bpf/bpftool/btf.c).
KIND_NAMES: dict[int, str] = {k.value: ("UNKNOWN" if k is Kind.UNKN else k.name) for k in Kind}

# BTF_INT_ENCODING bits
INT_SIGNED = 1 << 0
INT_CHAR = 1 << 1
INT_BOOL = 1 << 2
INT_ENCODING_MASK = INT_SIGNED | INT_CHAR | INT_BOOL
# bits of the INT data word the kernel accepts (BTF_INT_MASK): encoding nibble, offset,
# bits 8-15 (no field, ignored) and the bit count
INT_DATA_MASK = 0x0FFFFFFF


class FuncLinkage(IntEnum):
    """enum btf_func_linkage: stored in a FUNC's vlen."""

    STATIC = 0
    GLOBAL = 1
    EXTERN = 2


class VarLinkage(IntEnum):
    """enum btf_var_linkage: stored in struct btf_var."""

    STATIC = 0
    GLOBAL_ALLOCATED = 1
    GLOBAL_EXTERN = 2


class FwdKind(IntEnum):
    """enum btf_fwd_kind, as btf__add_fwd takes it."""

    STRUCT = 0
    UNION = 1
    ENUM = 2


# The kind layout table libbpf writes with add_layout (info_sz, elem_sz, flags): bytes
# after struct btf_type, and bytes per vlen entry, for each kind.
DEFAULT_LAYOUT: tuple[tuple[int, int, int], ...] = tuple(
    (WORD * SHAPES[k].extra, WORD * SHAPES[k].entry, 0) for k in Kind)
