"""BTF constants from include/uapi/linux/btf.h, declared once."""

from __future__ import annotations

from enum import IntEnum

MAGIC = 0xEB9F
VERSION = 1
# struct btf_header up to str_len (the 24-byte header pahole < 1.31 writes)
HEADER_LEN_V1 = 24
# struct btf_header with layout_off/layout_len (7.3's sizeof(struct btf_header))
HEADER_LEN = 32

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

# Names as bpftool prints them (btf_kind_str[] in tools/bpf/bpftool/btf.c).
KIND_NAMES: dict[int, str] = {k.value: ("UNKNOWN" if k is Kind.UNKN else k.name) for k in Kind}

# BTF_INT_ENCODING bits
INT_SIGNED = 1 << 0
INT_CHAR = 1 << 1
INT_BOOL = 1 << 2
INT_ENCODING_MASK = INT_SIGNED | INT_CHAR | INT_BOOL
# bits of the INT data word the kernel accepts (BTF_INT_MASK)
INT_DATA_MASK = 0x0FFF00FF


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


# Default kind layout table libbpf writes with add_layout (info_sz, elem_sz, flags):
# bytes after struct btf_type, and bytes per vlen element, for each kind.
DEFAULT_LAYOUT: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),  # UNKN
    (4, 0, 0),  # INT
    (0, 0, 0),  # PTR
    (12, 0, 0),  # ARRAY
    (0, 12, 0),  # STRUCT
    (0, 12, 0),  # UNION
    (0, 8, 0),  # ENUM
    (0, 0, 0),  # FWD
    (0, 0, 0),  # TYPEDEF
    (0, 0, 0),  # VOLATILE
    (0, 0, 0),  # CONST
    (0, 0, 0),  # RESTRICT
    (0, 0, 0),  # FUNC
    (0, 8, 0),  # FUNC_PROTO
    (4, 0, 0),  # VAR
    (0, 12, 0),  # DATASEC
    (0, 0, 0),  # FLOAT
    (4, 0, 0),  # DECL_TAG
    (0, 0, 0),  # TYPE_TAG
    (0, 12, 0),  # ENUM64
)
