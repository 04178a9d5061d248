"""The kernel's BTF checker, rule for rule: what bpf(BPF_BTF_LOAD) would reject, and why.

Why: "harness btf says it is fine" must mean the kernel would load it. The only faithful
statement of the kernel's rules is kernel/bpf/btf.c, so this is a reading of it in Python
(7.3: btf_parse -> btf_parse_hdr, btf_check_sec_info, btf_parse_str_sec,
btf_parse_layout_sec, btf_parse_type_sec = btf_check_all_metas + btf_check_all_types, then
btf_check_modifier_chain_length), run on the raw bytes so that no bit the kernel looks at
is lost to our own object model. Each rejection carries the kernel's own log message
("Invalid member bits_offset", "Loop detected", ...) so a user can match it with the
verifier log.

The resolve pass is the kernel's iterative depth-first walk with its 32-deep stack, visit
states, resolve modes and per-type resolved ids and sizes, ported as is: the verdict on
loops, depth and "Invalid resolve state" depends on exactly that order.

Not modelled: btf_parse_struct_metas and the special-field checks that follow it
(bpf_spin_lock, bpf_list_head... layouts in user BTF). Reads are in the blob's own byte
order unless `byte_order` says otherwise (the oracle passes the host's, as the host
kernel reads them).
"""

from __future__ import annotations

import re
import struct
import sys
from array import array
from collections.abc import Callable
from dataclasses import dataclass

from harness.btf.errors import BTFError
from harness.btf.kinds import (
    INT_DATA_MASK,
    KIND_NAMES,
    MAGIC,
    MAX_NAME_OFFSET,
    MAX_TYPE,
    VERSION,
    Kind,
)

BTF_MAX_SIZE = 16 * 1024 * 1024          # btf_parse: larger user BTF is -E2BIG
MAX_RESOLVE_DEPTH = 32
MAX_CHAIN = 32                           # btf_check_modifier_chain_length
HEADER_SIZE_V1 = 24                      # struct btf_header before the layout section
HEADER_SIZE_LAYOUT = 32                  # 7.3's struct btf_header
PTR_SIZE = 8                             # sizeof(void *) on the 64-bit kernels we target
U32 = 0xFFFFFFFF



def _kinds(*kinds: Kind) -> frozenset[int]:
    """Plain ints: set lookups with an int key stay in C (an IntEnum key would not)."""
    return frozenset(int(k) for k in kinds)


_K = Kind
# the kernel's btf_type_is_* groups
MODIFIERS = _kinds(_K.TYPEDEF, _K.VOLATILE, _K.CONST, _K.RESTRICT, _K.TYPE_TAG)
REF_KINDS = MODIFIERS | {int(_K.PTR)}
STRUCTS = _kinds(_K.STRUCT, _K.UNION)
HAS_SIZE = _kinds(_K.INT, _K.STRUCT, _K.UNION, _K.ENUM, _K.DATASEC, _K.FLOAT, _K.ENUM64)
NOSIZE = _kinds(_K.UNKN, _K.FWD, _K.FUNC, _K.FUNC_PROTO, _K.DECL_TAG)  # UNKN: void
SOURCE_ONLY = _kinds(_K.VAR, _K.DECL_TAG, _K.DATASEC)
NEEDS_RESOLVE = MODIFIERS | _kinds(_K.PTR, _K.STRUCT, _K.UNION, _K.ARRAY, _K.VAR, _K.FUNC,
                                   _K.DECL_TAG, _K.DATASEC)
DECL_TAG_TARGETS = _kinds(_K.FUNC, _K.STRUCT, _K.UNION, _K.VAR, _K.TYPEDEF)
# btf_type_id_size never fails on these (DATASEC has a size too but is a source only)
SIZED_ALWAYS = HAS_SIZE | {int(_K.PTR)}
# member kinds whose check_member is "byte aligned and fits": btf_struct/enum/ptr_check_member
SIZE_MEMBERS = _kinds(_K.STRUCT, _K.UNION, _K.ENUM, _K.ENUM64, _K.PTR)
ANON_REFS = _kinds(_K.PTR, _K.CONST, _K.VOLATILE, _K.RESTRICT)  # must have no name
(INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT,
 DECL_TAG, TYPE_TAG, ENUM64) = (int(k) for k in (
    _K.INT, _K.PTR, _K.ARRAY, _K.STRUCT, _K.UNION, _K.ENUM, _K.FWD, _K.TYPEDEF, _K.FUNC,
    _K.FUNC_PROTO, _K.VAR, _K.DATASEC, _K.FLOAT, _K.DECL_TAG, _K.TYPE_TAG, _K.ENUM64))
FLOAT_SIZES = frozenset({2, 4, 8, 12, 16})
# btf_type_int_is_regular: no bit offset, whole bytes, 1/2/4/8/16 of them
_REGULAR_INT_BITS = frozenset({8, 16, 32, 64, 128})


def _int_data_regular(data: int) -> bool:
    """btf_type_int_is_regular on an INT's data word."""
    return not (data >> 16) & 0xFF and data & 0xFF in _REGULAR_INT_BITS
INT_ENCODINGS = frozenset({0, 1, 2, 4})

# lib/ctype.c: isalpha/isalnum/isprint over Latin-1, as the kernel's _ctype table has them
_ALPHA = rb"A-Za-z\xc0-\xd6\xd8-\xf6\xf8-\xff"
_IDENTIFIER = re.compile(rb"[" + _ALPHA + rb"_.][" + _ALPHA + rb"0-9_.]{0,511}\x00")
_SECTION_NAME = re.compile(rb"[\x20-\x7e\xa0-\xff]{1,512}\x00")

# what a ptr or modifier resolves to as it is, and its btf_resolve_valid accepts: a type
# with a size of its own (btf_type_id_size), or void, a fwd, a func_proto
_ALONE_TARGETS = (HAS_SIZE - {DATASEC}) | {ARRAY, PTR, 0, FWD, FUNC_PROTO}

# resolve modes and visit states (enum resolve_mode, enum visit_state)
TBD, PTR_MODE, STRUCT_OR_ARRAY = 0, 1, 2
NOT_VISITED, VISITED, RESOLVED = 0, 1, 2
# env_type_is_resolve_sink's complement per mode: the kinds a resolve pushes when unresolved
_PUSHED_IN = {
    TBD: NEEDS_RESOLVE,
    PTR_MODE: MODIFIERS | {PTR},
    STRUCT_OR_ARRAY: MODIFIERS | STRUCTS | {ARRAY},
}



@dataclass(frozen=True)
class Rules:
    """Where kernels differ: which btf.c the blob is judged by."""

    name: str
    layout_section: bool    # 32-byte header with layout_off/layout_len (7.3)
    type_tag_order: bool    # btf_check_type_tags: type tags precede other modifiers (6.x)
    chain_limit: bool       # btf_check_modifier_chain_length (7.3)
    boot_resolves: bool     # vmlinux/module parsing runs btf_check_all_types too (6.x)


KERNEL_7_3 = Rules("7.3", layout_section=True, type_tag_order=False, chain_limit=True,
                   boot_resolves=False)
KERNEL_6_18 = Rules("6.18", layout_section=False, type_tag_order=True, chain_limit=False,
                    boot_resolves=True)
RULES = {r.name: r for r in (KERNEL_6_18, KERNEL_7_3)}


def rules_for(release: str) -> Rules:
    """The rules of a kernel release string ("6.18.44-fc", "7.3.4"): 7.3's from 7.3 on,
    6.18's below (read from 7.3's btf.c and checked against a running 6.18 kernel)."""
    m = re.match(r"(\d+)\.(\d+)", release)
    version = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    return KERNEL_7_3 if version >= (7, 3) else KERNEL_6_18


class KernelReject(BTFError):
    """The kernel would refuse this BTF; `reason` is its log message, `errno_name` its error."""

    def __init__(self, reason: str, *, type_id: int | None = None, offset: int | None = None,
                 detail: str = "", errno_name: str = "EINVAL"):
        text = f"{detail}: {reason}" if detail else reason
        super().__init__(f"{text} (the kernel's words; {errno_name})", type_id=type_id,
                         offset=offset)
        self.reason = reason
        self.errno_name = errno_name


@dataclass
class KernelView:
    """A BTF the rules accepted, as the kernel then holds it (a split BTF's base).

    Per-id tables cover every id from 0 (void) through the base's types to this BTF's
    own: kind, info word, size-or-type word, the record's word index in `words`, and the
    resolve pass's resolved id and size.
    """

    start_id: int
    start_str_off: int
    strings: bytes
    kind: list[int]
    info: list[int]
    sot: list[int]
    pos: list[int]
    words: array
    resolved_ids: list[int]
    resolved_sizes: list[int]
    base: KernelView | None = None

    @property
    def nr_types(self) -> int:
        """btf_nr_types(): one past the last id."""
        return len(self.kind)


LOAD = "load"  # bpf(BPF_BTF_LOAD) -> btf_parse: every check, the resolve pass included
BOOT = "boot"  # btf_parse_base / btf_parse_module: header, strings, metas, modifier chains


def check(blob: bytes, base: KernelView | None = None, *, rules: Rules = KERNEL_7_3,
          how: str = LOAD, byte_order: str | None = None) -> KernelView:
    """Apply the kernel's checks to `blob` (split BTF on `base` when given).

    `how`: LOAD for BTF a program loads, BOOT for what the kernel applies to its own
    vmlinux and module BTF (7.3 skips the resolve pass there). Raises KernelReject with
    the kernel's message; returns what a split BTF on this one needs. `byte_order` None
    reads the blob in its own order (as a kernel of that order would).
    """
    if how not in (LOAD, BOOT):
        raise ValueError(f"how={how!r}: {LOAD!r} or {BOOT!r}")
    return _Checker(blob, base, rules, byte_order, how == LOAD or rules.boot_resolves).run()


def _u32s(data: bytes, endian: str) -> array:
    w = array("I")
    w.frombytes(data[: len(data) // 4 * 4])
    if endian != sys.byteorder:
        w.byteswap()
    return w


def _is_pow2(n: int) -> bool:
    return n > 0 and not n & (n - 1)


def _roundup_bytes(bits: int) -> int:
    return (bits >> 3) + (1 if bits & 7 else 0)


class _Checker:
    """One run of the rules over one blob; attributes are the kernel's env and btf."""

    def __init__(self, blob: bytes, base: KernelView | None, rules: Rules,
                 byte_order: str | None, load: bool):
        self.blob = bytes(blob)
        self.load = load
        self.base = base
        self.rules = rules
        self.hsize = HEADER_SIZE_LAYOUT if rules.layout_section else HEADER_SIZE_V1
        if byte_order is None:
            byte_order = {b"\x9f\xeb": "little", b"\xeb\x9f": "big"}.get(
                self.blob[:2], sys.byteorder)
        self.endian = byte_order
        self.fmt = "<" if byte_order == "little" else ">"
        self.type_start = 0

    # ---- header, sections, strings --------------------------------------------------

    def run(self) -> KernelView:
        blob, base = self.blob, self.base
        size = len(blob)
        if self.load and base is None and size > BTF_MAX_SIZE:
            raise KernelReject(f"BTF of {size} bytes is over BTF_MAX_SIZE", errno_name="E2BIG")
        if size < 8:
            raise KernelReject("hdr_len not found")
        hdr_len = struct.unpack_from(self.fmt + "I", blob, 4)[0]
        if size < hdr_len:
            raise KernelReject("btf_header not found")
        if hdr_len > self.hsize and any(blob[self.hsize:hdr_len]):
            raise KernelReject("Unsupported btf_header", offset=self.hsize, errno_name="E2BIG")
        raw = blob[:min(hdr_len, self.hsize)].ljust(HEADER_SIZE_LAYOUT, b"\0")
        (magic, version, flags, hdr_len, type_off, type_len, str_off, str_len, layout_off,
         layout_len) = struct.unpack_from(self.fmt + "HBBIIIIIII", raw, 0)
        if magic != MAGIC:
            raise KernelReject("Invalid magic", offset=0)
        if version != VERSION:
            raise KernelReject("Unsupported version", offset=2, errno_name="ENOTSUPP")
        if flags:
            raise KernelReject("Unsupported flags", offset=3, errno_name="ENOTSUPP")
        if base is None and size == hdr_len:
            raise KernelReject("No data")
        with_layout = self.rules.layout_section and hdr_len >= self.hsize and layout_len
        secs = [(type_off, type_len), (str_off, str_len)]
        if with_layout:
            secs.append((layout_off, layout_len))
        _check_sec_info(secs, size - hdr_len)

        # btf_parse_str_sec
        start = hdr_len + str_off
        end = start + str_len
        # before the layout section (6.x) the strings had to be last; 7.3 only asks it
        # of a header too short to place a layout section
        if (not self.rules.layout_section or hdr_len < self.hsize) and end != size:
            raise KernelReject("String section is not at the end")
        strings = blob[start:end]
        if base is None or str_len:
            if not str_len or str_len - 1 > MAX_NAME_OFFSET or strings[-1]:
                raise KernelReject("Invalid string section", offset=start)
            if base is None and strings[0]:
                raise KernelReject("Invalid string section", offset=start)

        if with_layout and self.load:  # btf_parse_layout_sec
            if layout_off & 3:
                raise KernelReject("Unaligned layout_off")
            if layout_len < 4:
                raise KernelReject("Layout section is too small")
            if layout_len % 4:
                raise KernelReject("layout_len is not multiple of 4")

        # btf_parse_type_sec (boot-time parsing goes to btf_check_all_metas directly)
        if self.load and base is None and type_off & 3:  # module BTF: never asked
            raise KernelReject("Unaligned type_off")
        if self.load and base is None and not type_len:
            raise KernelReject("No type found")
        self.type_start = hdr_len + type_off
        section = blob[self.type_start:self.type_start + type_len]
        own_words = _u32s(section, self.endian)
        if base is None:
            self.view = KernelView(0, 0, strings, [0], [0], [0], [-1], own_words, [], [])
            self.word_base = 0
        else:
            self.view = KernelView(
                base.nr_types, base.start_str_off + len(base.strings), strings,
                list(base.kind), list(base.info), list(base.sot), list(base.pos),
                base.words + own_words, [], [], base)
            self.word_base = len(base.words)
        self._check_all_metas(type_len)
        if self.load:
            self._check_all_types()
        else:
            n = len(self.view.kind)
            self.view.resolved_ids = [0] * n
            self.view.resolved_sizes = [0] * n
        if self.rules.chain_limit or self.rules.type_tag_order:
            self._check_modifier_chains()
        return self.view

    def _str(self, off: int) -> tuple[bytes, int]:
        """btf_str_by_offset: the string section holding `off`, and `off` inside it."""
        v = self.view
        while off < v.start_str_off and v.base is not None:
            v = v.base
        return v.strings, off - v.start_str_off

    def _name_offset_valid(self, off: int) -> bool:
        if off > MAX_NAME_OFFSET:
            return False
        strings, local = self._str(off)
        return local < len(strings)

    def _identifier(self, off: int) -> bool:
        strings, local = self._str(off)
        return _IDENTIFIER.match(strings, local) is not None

    def _section_name(self, off: int) -> bool:
        strings, local = self._str(off)
        return _SECTION_NAME.match(strings, local) is not None

    def _empty_name(self, off: int) -> bool:
        strings, local = self._str(off)
        return not strings[local]

    # ---- errors -----------------------------------------------------------------------

    def _fail(self, tid: int, reason: str, detail: str = "",
              errno_name: str = "EINVAL") -> KernelReject:
        """The kernel's reject of type `tid`, located at its record when it is ours."""
        v = self.view
        kind = v.kind[tid] if tid < len(v.kind) else 0
        where = KIND_NAMES.get(kind, str(kind)) + (f" {detail}" if detail else "")
        offset = None
        if tid >= v.start_id and tid < len(v.pos) and v.pos[tid] >= 0:
            offset = self.type_start + 4 * (v.pos[tid] - self.word_base)
        return KernelReject(reason, type_id=tid, offset=offset, detail=where,
                            errno_name=errno_name)

    # ---- btf_check_all_metas ------------------------------------------------------

    def _check_all_metas(self, type_len: int) -> None:
        v = self.view
        w = v.words
        kinds, infos, sots, poss = v.kind, v.info, v.sot, v.pos
        tid = len(kinds)
        first = tid
        wb = self.word_base
        p = wb
        end = wb * 4 + type_len
        name_ok = self._name_offset_valid
        own_lo = v.start_str_off
        own_hi = own_lo + len(v.strings)
        meta = self._meta
        meta_struct = self._meta_struct
        strings = v.strings
        ident = _IDENTIFIER.match
        check_count = self.base is None
        # The usual records take a fast path that only proves them fine; anything it
        # cannot prove goes to _meta, the one place that words the kernel's rejects.
        while 4 * p < end:
            meta_left = end - 4 * p
            if meta_left < 12:
                raise KernelReject(f"meta_left:{meta_left} meta_needed:12", type_id=tid,
                                   offset=self.type_start + 4 * (p - wb))
            name_off = w[p]
            info = w[p + 1]
            kind = (info >> 24) & 0x7F
            if kind > ENUM64 or not kind:
                raise KernelReject(f"Invalid kind:{kind}", type_id=tid,
                                   offset=self.type_start + 4 * (p - wb))
            own_name = own_lo <= name_off < own_hi
            if not own_name and not name_ok(name_off):
                raise KernelReject(f"Invalid name_offset:{name_off}", type_id=tid,
                                   offset=self.type_start + 4 * (p - wb))
            if check_count and tid - first + 1 == MAX_TYPE:
                raise KernelReject("Exceeded max num of types", errno_name="E2BIG")
            sot = w[p + 2]
            kinds.append(kind)
            infos.append(info)
            sots.append(sot)
            poss.append(p)
            if kind in ANON_REFS:
                if not name_off and not info & 0x80FFFFFF and sot <= MAX_TYPE:
                    p += 3
                    tid += 1
                    continue
            elif kind == FUNC:
                if (own_name and name_off and info & 0x80FFFFFF <= 1
                        and ident(strings, name_off - own_lo) is not None):
                    p += 3
                    tid += 1
                    continue
            elif kind == FUNC_PROTO:
                vlen = info & 0xFFFFFF
                if not name_off and not info >> 31 and meta_left - 12 >= vlen * 8:
                    p += 3 + 2 * vlen
                    tid += 1
                    continue
            elif kind == TYPEDEF:
                if (own_name and name_off and not info & 0x80FFFFFF and sot <= MAX_TYPE
                        and ident(strings, name_off - own_lo) is not None):
                    p += 3
                    tid += 1
                    continue
            elif kind in STRUCTS:
                p += 3 + meta_struct(tid, p, kind, name_off, info >> 31, info & 0xFFFFFF,
                                     sot, meta_left - 12) // 4
                tid += 1
                continue
            p += 3 + meta(tid, p, kind, name_off, info, meta_left - 12) // 4
            tid += 1

    def _need(self, tid: int, meta_left: int, needed: int) -> None:
        """The record's fixed part fits in what is left of the type section."""
        if meta_left < needed:
            raise self._fail(tid, f"meta_left:{meta_left} meta_needed:{needed}")

    def _plain(self, tid: int, vlen: int, kflag: int) -> None:
        """A kind without entries or kind_flag has neither set (most check_metas)."""
        if vlen:
            raise self._fail(tid, "vlen != 0")
        if kflag:
            raise self._fail(tid, "Invalid btf_info kind_flag")

    def _meta(self, tid: int, p: int, kind: int, name_off: int, info: int,
              meta_left: int) -> int:
        """One kind's check_meta; returns the bytes it uses after struct btf_type."""
        w = self.view.words
        sot = w[p + 2]
        vlen = info & 0xFFFFFF
        kflag = info >> 31
        fail = self._fail
        if kind in REF_KINDS:
            if vlen:
                raise fail(tid, "vlen != 0")
            if kflag and kind != TYPE_TAG:
                raise fail(tid, "Invalid btf_info kind_flag")
            if sot > MAX_TYPE:
                raise fail(tid, "Invalid type_id")
            if kind == TYPEDEF:
                if not name_off or not self._identifier(name_off):
                    raise fail(tid, "Invalid name")
            elif kind == TYPE_TAG:
                if self._empty_name(name_off):
                    raise fail(tid, "Invalid name")
            elif name_off:
                raise fail(tid, "Invalid name")
            return 0
        if kind == FUNC:
            if not name_off or not self._identifier(name_off):
                raise fail(tid, "Invalid name")
            if vlen > 1:
                raise fail(tid, "Invalid func linkage")
            if kflag:
                raise fail(tid, "Invalid btf_info kind_flag")
            return 0
        if kind == FUNC_PROTO:
            if meta_left < vlen * 8:
                raise fail(tid, f"meta_left:{meta_left} meta_needed:{vlen * 8}")
            if name_off:
                raise fail(tid, "Invalid name")
            if kflag:
                raise fail(tid, "Invalid btf_info kind_flag")
            return vlen * 8
        if kind in STRUCTS:
            return self._meta_struct(tid, p, kind, name_off, kflag, vlen, sot, meta_left)
        if kind == INT:
            self._need(tid, meta_left, 4)
            self._plain(tid, vlen, kflag)
            data = w[p + 3]
            if data & ~INT_DATA_MASK & U32:
                raise fail(tid, f"Invalid int_data:{data:x}")
            nr_bits = (data & 0xFF) + ((data >> 16) & 0xFF)
            if nr_bits > 128:
                raise fail(tid, "nr_bits exceeds 128")
            if _roundup_bytes(nr_bits) > sot:
                raise fail(tid, "nr_bits exceeds type_size")
            if (data >> 24) & 0x0F not in INT_ENCODINGS:
                raise fail(tid, "Unsupported encoding", errno_name="ENOTSUPP")
            return 4
        if kind == ARRAY:
            self._need(tid, meta_left, 12)
            if name_off:
                raise fail(tid, "Invalid name")
            self._plain(tid, vlen, kflag)
            if sot:
                raise fail(tid, "size != 0")
            elem, index = w[p + 3], w[p + 4]
            if not elem or elem > MAX_TYPE:
                raise fail(tid, "Invalid elem")
            if not index or index > MAX_TYPE:
                raise fail(tid, "Invalid index")
            return 12
        if kind in (ENUM, ENUM64):
            width = 8 if kind == ENUM else 12
            if meta_left < vlen * width:
                raise fail(tid, f"meta_left:{meta_left} meta_needed:{vlen * width}")
            if sot > 8 or not _is_pow2(sot):
                raise fail(tid, "Unexpected size")
            if name_off and not self._identifier(name_off):
                raise fail(tid, "Invalid name")
            for i in range(vlen):
                e_name = w[p + 3 + (width // 4) * i]
                if not self._name_offset_valid(e_name):
                    raise fail(tid, f"Invalid name_offset:{e_name}", f"value {i}")
                if not e_name or not self._identifier(e_name):
                    raise fail(tid, "Invalid name", f"value {i}")
            return vlen * width
        if kind == FWD:
            if vlen:
                raise fail(tid, "vlen != 0")
            if sot:
                raise fail(tid, "type != 0")
            if not name_off or not self._identifier(name_off):
                raise fail(tid, "Invalid name")
            return 0
        if kind == VAR:
            self._need(tid, meta_left, 4)
            self._plain(tid, vlen, kflag)
            if not name_off or not self._identifier(name_off):
                raise fail(tid, "Invalid name")
            if not sot or sot > MAX_TYPE:
                raise fail(tid, "Invalid type_id")
            if w[p + 3] not in (0, 1):
                raise fail(tid, "Linkage not supported")
            return 4
        if kind == DATASEC:
            return self._meta_datasec(tid, p, name_off, kflag, vlen, sot, meta_left)
        if kind == FLOAT:
            self._plain(tid, vlen, kflag)
            if sot not in FLOAT_SIZES:
                raise fail(tid, "Invalid type_size")
            return 0
        # DECL_TAG (the caller has refused every other kind)
        if meta_left < 4:
            raise fail(tid, f"meta_left:{meta_left} meta_needed:4")
        if self._empty_name(name_off):
            raise fail(tid, "Invalid value")
        if vlen:
            raise fail(tid, "vlen != 0")
        idx = w[p + 3]
        if idx >= 0x80000000 and idx != U32:  # s32 component_idx < -1
            raise fail(tid, "Invalid component_idx")
        return 4

    def _meta_struct(self, tid: int, p: int, kind: int, name_off: int, kflag: int,
                     vlen: int, size: int, meta_left: int) -> int:
        fail = self._fail
        if meta_left < vlen * 12:
            raise fail(tid, f"meta_left:{meta_left} meta_needed:{vlen * 12}")
        if name_off and not self._identifier(name_off):
            raise fail(tid, "Invalid name")
        w = self.view.words
        union = kind == UNION
        v = self.view
        own_lo = v.start_str_off
        own_hi = own_lo + len(v.strings)
        strings = v.strings
        ident = _IDENTIFIER.match
        last = 0
        m = p + 3
        for i in range(vlen):
            m_name, m_type, m_off = w[m], w[m + 1], w[m + 2]
            m += 3
            if own_lo <= m_name < own_hi:  # the usual case, inline
                if m_name and ident(strings, m_name - own_lo) is None:
                    raise fail(tid, "Invalid name", f"member {i}")
            elif not self._name_offset_valid(m_name):
                raise fail(tid, f"Invalid member name_offset:{m_name}", f"member {i}")
            elif m_name and not self._identifier(m_name):
                raise fail(tid, "Invalid name", f"member {i}")
            if not m_type or m_type > MAX_TYPE:
                raise fail(tid, "Invalid type_id", f"member {i}")
            bit_off = m_off & 0xFFFFFF if kflag else m_off
            if union and bit_off:
                raise fail(tid, "Invalid member bits_offset", f"member {i}")
            if last > bit_off:
                raise fail(tid, "Invalid member bits_offset", f"member {i}")
            if (bit_off + 7) >> 3 > size:
                raise fail(tid, "Member bits_offset exceeds its struct size", f"member {i}")
            last = bit_off
        return vlen * 12

    def _meta_datasec(self, tid: int, p: int, name_off: int, kflag: int, vlen: int,
                      size: int, meta_left: int) -> int:
        fail = self._fail
        if meta_left < vlen * 12:
            raise fail(tid, f"meta_left:{meta_left} meta_needed:{vlen * 12}")
        if not size:
            raise fail(tid, "size == 0")
        if kflag:
            raise fail(tid, "Invalid btf_info kind_flag")
        if not name_off or not self._section_name(name_off):
            raise fail(tid, "Invalid name")
        w = self.view.words
        last_end = total = 0
        for i in range(vlen):
            e = p + 3 + 3 * i
            v_type, v_off, v_size = w[e], w[e + 1], w[e + 2]
            where = f"var {i}"
            if not v_type or v_type > MAX_TYPE:
                raise fail(tid, "Invalid type_id", where)
            if v_off < last_end or v_off >= size:
                raise fail(tid, "Invalid offset", where)
            if not v_size or v_size > size:
                raise fail(tid, "Invalid size", where)
            last_end = v_off + v_size
            if last_end > size:
                raise fail(tid, "Invalid offset+size", where)
            total += v_size
        if size < total:
            raise fail(tid, "Invalid btf_info size")
        return vlen * 12

    # ---- lookups as the kernel does them -------------------------------------------

    def _type_id_size(self, tid: int) -> tuple[int, int, int] | None:
        """btf_type_id_size: (kind, id, size) of the sized type `tid` stands for: the type
        itself, or for a modifier or var the type it resolved to."""
        kinds = self.view.kind
        if tid >= len(kinds):
            return None
        kind = kinds[tid]
        size = self._own_size(kind, tid)
        if size is not None:
            return kind, tid, size
        if kind not in MODIFIERS and kind != VAR:
            return None
        tid = self.view.resolved_ids[tid]
        kind = kinds[tid]
        size = self._own_size(kind, tid)
        return (kind, tid, size) if size is not None else None

    def _own_size(self, kind: int, tid: int) -> int | None:
        """The size a type has by itself (None: no size, or it must be followed)."""
        if kind in HAS_SIZE:
            return self.view.sot[tid]
        if kind == ARRAY:
            return self.view.resolved_sizes[tid]
        if kind == PTR:
            return PTR_SIZE
        return None

    def _kind(self, tid: int) -> int | None:
        kinds = self.view.kind
        return kinds[tid] if tid < len(kinds) else None

    def _word(self, tid: int, k: int) -> int:
        """Word k after struct btf_type of `tid` (0: INT data, ARRAY elem, ...)."""
        return self.view.words[self.view.pos[tid] + 3 + k]

    def _int_regular(self, tid: int) -> bool:
        return _int_data_regular(self._word(tid, 0))

    # ---- btf_check_all_types: the resolve walk -------------------------------------

    def _sink(self, kind: int) -> bool:
        return kind not in _PUSHED_IN[self.mode]

    def _push(self, tid: int) -> str | None:
        """env_stack_push: None, or "E2BIG"/"EEXIST" as the kernel returns them."""
        if len(self.stack) == MAX_RESOLVE_DEPTH:
            return "E2BIG"
        if tid < self.view.start_id or self.visit[tid] != NOT_VISITED:
            return "EEXIST"
        self.visit[tid] = VISITED
        self.stack.append([tid, 0])
        if self.mode == TBD:
            kind = self.view.kind[tid]
            if kind == PTR:
                self.mode = PTR_MODE
            elif kind in STRUCTS or kind == ARRAY:
                self.mode = STRUCT_OR_ARRAY
        return None

    def _pop_resolved(self, resolved_id: int, resolved_size: int) -> None:
        tid = self.stack.pop()[0]
        self.view.resolved_sizes[tid] = resolved_size & U32
        self.view.resolved_ids[tid] = resolved_id
        self.visit[tid] = RESOLVED

    def _check_all_types(self) -> None:
        v = self.view
        n = len(v.kind)
        start = v.start_id
        if self.base is None:
            v.resolved_ids = [0] * n
            v.resolved_sizes = [0] * n
        else:
            v.resolved_ids = self.base.resolved_ids + [0] * (n - start)
            v.resolved_sizes = self.base.resolved_sizes + [0] * (n - start)
        self.visit = visit = bytearray([RESOLVED]) * start + bytearray(n - start)
        self.stack: list[list[int]] = []
        self.mode = TBD
        # btf_func_proto_check's verdict on an argument already found good (a resolved,
        # sized type; a valid name or none) cannot change: later protos skip it
        self.good_args: set[int] = set()
        self.good_names: set[int] = {0}
        kinds = v.kind
        rids = v.resolved_ids
        sots = v.sot
        good_protos: set[int] = set()  # btf_func_check depends on the proto alone
        ref_alone = self._resolve_ref_alone
        for tid in range(max(start, 1), n):
            kind = kinds[tid]
            if kind == FUNC:
                if visit[tid] != RESOLVED:  # btf_resolve of a FUNC never pushes: no stack
                    proto = sots[tid]
                    if proto not in good_protos:
                        self._func_check(tid)
                        good_protos.add(proto)
                    rids[tid] = proto
                    visit[tid] = RESOLVED
            elif kind in NEEDS_RESOLVE:
                if visit[tid] != RESOLVED:
                    if kind in REF_KINDS and ref_alone(tid):
                        continue
                    self._resolve(tid)
            elif kind == FUNC_PROTO:
                self._func_proto_check(tid)

    def _resolve_ref_alone(self, tid: int) -> bool:
        """The usual PTR or modifier, whose target needs no push: resolve it as btf_resolve
        would (push, btf_modifier/ptr_resolve, pop, btf_resolve_valid) without the stack.
        False, with nothing changed, for anything else, which the full walk then takes,
        along with every reject and its wording."""
        v = self.view
        kinds, visit = v.kind, self.visit
        nxt = v.sot[tid]
        if nxt >= len(kinds):
            return False
        nk = kinds[nxt]
        ptr = kinds[tid] == PTR
        if visit[nxt] != RESOLVED and nk in _PUSHED_IN[PTR_MODE if ptr else TBD]:
            return False  # the walk would push it
        if nk in _ALONE_TARGETS:
            target = nxt
        elif nk in MODIFIERS:  # resolved, as a modifier is never a sink
            target = v.resolved_ids[nxt]
            if ptr and kinds[target] == PTR and visit[target] != RESOLVED:
                return False  # btf_ptr_resolve pushes that ptr
            if kinds[target] not in _ALONE_TARGETS:
                return False
        else:
            return False
        v.resolved_ids[tid] = target
        v.resolved_sizes[tid] = 0
        visit[tid] = RESOLVED
        return True

    def _resolve(self, tid: int) -> None:
        """btf_resolve: walk from `tid` until the stack empties, then sanity-check it."""
        self.mode = TBD
        self._push(tid)
        kinds = self.view.kind
        stack = self.stack
        while stack:
            top = stack[-1]
            err = _RESOLVE_OPS[kinds[top[0]]](self, top)
            if err == "E2BIG":
                raise self._fail(tid, f"Exceeded max resolving depth:{MAX_RESOLVE_DEPTH}",
                                 errno_name="E2BIG")
            if err == "EEXIST":
                raise self._fail(tid, "Loop detected", errno_name="EEXIST")
        if not self._resolve_valid(tid):
            raise self._fail(tid, "Invalid resolve state")

    def _resolve_valid(self, tid: int) -> bool:
        if self.visit[tid] != RESOLVED:
            return False
        v = self.view
        kind = v.kind[tid]
        rid, rsize = v.resolved_ids[tid], v.resolved_sizes[tid]
        if kind in STRUCTS or kind == DATASEC:
            return not rid and not rsize
        if kind in (DECL_TAG, FUNC):
            return bool(rid) and not rsize
        if kind in MODIFIERS or kind in (PTR, VAR):
            rkind = self._kind(rid)
            return (rkind is not None and rkind not in MODIFIERS and rkind != VAR
                    and rkind != DATASEC)
        if kind == ARRAY:
            elem = self._type_id_size(self._word(tid, 0))
            return (elem is not None and elem[0] not in MODIFIERS
                    and (self._word(tid, 2) * elem[2]) & U32 == rsize)
        return False

    def _must_push(self, next_id: int) -> bool:
        """The kernel's `!env_type_is_resolve_sink(next) && !env_type_is_resolved(next)`."""
        return not self._sink(self.view.kind[next_id]) and self.visit[next_id] != RESOLVED

    def _resolve_modifier(self, top: list[int]) -> str | None:
        """btf_modifier_resolve and btf_ptr_resolve (the ptr one also chases a modifier
        that resolved to a not yet resolved ptr)."""
        tid = top[0]
        v = self.view
        next_id = v.sot[tid]
        kind = self._kind(next_id)
        if kind is None or kind in SOURCE_ONLY:
            raise self._fail(tid, "Invalid type_id")
        if self._must_push(next_id):
            return self._push(next_id)
        if v.kind[tid] == PTR:
            pushed, err = self._chase_resolved_ptr(next_id)
            if pushed:
                return err
        sized = self._type_id_size(next_id)
        if sized is None:
            if self.visit[next_id] == RESOLVED:
                next_id = v.resolved_ids[next_id]
                kind = v.kind[next_id]
            if kind not in (0, FWD, FUNC_PROTO):
                raise self._fail(tid, "Invalid type_id")
        else:
            next_id = sized[1]
        self._pop_resolved(next_id, 0)
        return None

    def _chase_resolved_ptr(self, next_id: int) -> tuple[bool, str | None]:
        """var/ptr resolve: a modifier that resolved to a ptr not yet resolved is pushed."""
        v = self.view
        if v.kind[next_id] in MODIFIERS:
            rid = v.resolved_ids[next_id]
            if v.kind[rid] == PTR and not self._sink(PTR) and self.visit[rid] != RESOLVED:
                return True, self._push(rid)
        return False, None

    def _resolve_var(self, top: list[int]) -> str | None:
        tid = top[0]
        next_id = self.view.sot[tid]
        kind = self._kind(next_id)
        if kind is None or kind in SOURCE_ONLY:
            raise self._fail(tid, "Invalid type_id")
        if self._must_push(next_id):
            return self._push(next_id)
        pushed, err = self._chase_resolved_ptr(next_id)
        if pushed:
            return err
        sized = self._type_id_size(next_id)
        if sized is None:
            raise self._fail(tid, "Invalid type_id")
        self._pop_resolved(sized[1], 0)
        return None

    def _resolve_array(self, top: list[int]) -> str | None:
        tid = top[0]
        index_id = self._word(tid, 1)
        kind = self._kind(index_id)
        if kind is None or kind in NOSIZE or kind in SOURCE_ONLY:
            raise self._fail(tid, "Invalid index")
        if self._must_push(index_id):
            return self._push(index_id)
        sized = self._type_id_size(index_id)
        if sized is None or sized[0] != INT or not self._int_regular(sized[1]):
            raise self._fail(tid, "Invalid index")
        elem_id = self._word(tid, 0)
        kind = self._kind(elem_id)
        if kind is None or kind in NOSIZE or kind in SOURCE_ONLY:
            raise self._fail(tid, "Invalid elem")
        if self._must_push(elem_id):
            return self._push(elem_id)
        sized = self._type_id_size(elem_id)
        if sized is None:
            raise self._fail(tid, "Invalid elem")
        elem_kind, elem_id, elem_size = sized
        if elem_kind == INT and not self._int_regular(elem_id):
            raise self._fail(tid, "Invalid array of int")
        nelems = self._word(tid, 2)
        if nelems and elem_size > U32 // nelems:
            raise self._fail(tid, "Array size overflows U32_MAX")
        self._pop_resolved(elem_id, elem_size * nelems)
        return None

    def _resolve_struct(self, top: list[int]) -> str | None:
        tid, next_member = top
        v = self.view
        w, kinds, visit, pos = v.words, v.kind, self.visit, v.pos
        kflag = v.info[tid] >> 31
        base = v.pos[tid] + 3
        if next_member:
            m = base + 3 * (next_member - 1)
            self._check_member(tid, next_member - 1, w[m + 1], w[m + 2], kflag)
        n = len(kinds)
        sots = v.sot
        rids, rsizes = v.resolved_ids, v.resolved_sizes
        size = sots[tid]
        pushed = _PUSHED_IN[self.mode]
        for i in range(next_member, v.info[tid] & 0xFFFFFF):
            m = base + 3 * i
            m_type = w[m + 1]
            if m_type >= n:
                raise self._fail(tid, "Invalid member", f"member {i}")
            kind = kinds[m_type]
            if kind in NOSIZE or kind in SOURCE_ONLY:
                raise self._fail(tid, "Invalid member", f"member {i}")
            if kind in pushed and visit[m_type] != RESOLVED:
                top[1] = i + 1
                return self._push(m_type)
            m_off = w[m + 2]
            # the usual members' check_member (or check_kflag_member) inline, proving them
            # fine; the rest, and every failure for its wording, goes to _check_member
            if kind in MODIFIERS:  # resolved (a modifier is never a sink): its sized type
                m_type = rids[m_type]
                kind = kinds[m_type]
            if kind == INT:
                data = w[pos[m_type] + 3]
                nr_bits = data & 0xFF
                if kflag:  # btf_int_check_kflag_member: a regular int only
                    bit_off = m_off & 0xFFFFFF
                    if not _int_data_regular(data):
                        bit_off = -1
                    elif m_off >> 24:
                        if m_off >> 24 > nr_bits:
                            bit_off = -1
                        nr_bits = m_off >> 24
                    elif bit_off & 7:
                        bit_off = -1
                else:
                    bit_off = m_off + ((data >> 16) & 0xFF)
                nr_copy = nr_bits + (bit_off & 7)
                if (0 <= bit_off <= U32 and nr_copy <= 128 and size >= bit_off >> 3
                        and size - (bit_off >> 3) >= (nr_copy + 7) >> 3):
                    continue
            elif not m_off & 7 and (kind in SIZE_MEMBERS or kind == ARRAY) and not (
                    kflag and (m_off >> 24 or kind in (ENUM, ENUM64))):
                need = (PTR_SIZE if kind == PTR else rsizes[m_type] if kind == ARRAY
                        else sots[m_type])
                if (size - (m_off >> 3)) & U32 >= need:
                    continue
            self._check_member(tid, i, w[m + 1], m_off, kflag)
        self._pop_resolved(0, 0)
        return None

    def _check_member(self, tid: int, i: int, m_type: int, m_off: int, kflag: int) -> None:
        """The member type's check_member (or check_kflag_member in a kflag struct)."""
        v = self.view
        size = v.sot[tid]
        kind = v.kind[m_type]
        if kind in MODIFIERS:
            sized = self._type_id_size(m_type)
            if sized is None:
                raise self._fail(tid, "Invalid member", f"member {i}")
            kind, m_type = sized[0], sized[1]
        if kflag and m_off >> 24 and kind not in (INT, ENUM, ENUM64):
            # btf_generic_check_kflag_member
            raise self._fail(tid, "Invalid member bitfield_size", f"member {i}")
        if kind == INT:
            self._check_int_member(tid, i, m_type, m_off, kflag, size)
            return
        if (kind in (ENUM, ENUM64)) and kflag:
            bit_off, nr_bits = m_off & 0xFFFFFF, m_off >> 24
            if not nr_bits:
                if bit_off & 7:
                    raise self._fail(tid, "Member is not byte aligned", f"member {i}")
                nr_bits = 32
            elif nr_bits > 32:
                raise self._fail(tid, "Invalid member bitfield_size", f"member {i}")
            if size < _roundup_bytes(bit_off + nr_bits):
                raise self._fail(tid, "Member exceeds struct_size", f"member {i}")
            return
        if kind == FLOAT:
            if m_off // 8 + v.sot[m_type] > size:
                raise self._fail(tid, "Member exceeds struct_size", f"member {i}")
            return
        if m_off & 7:
            raise self._fail(tid, "Member is not byte aligned", f"member {i}")
        room = (size - (m_off >> 3)) & U32
        if kind == PTR:
            need = PTR_SIZE
        elif kind == ARRAY:
            need = v.resolved_sizes[m_type]
        else:  # struct, union, enum, enum64: member_type->size
            need = v.sot[m_type]
        if room < need:
            raise self._fail(tid, "Member exceeds struct_size", f"member {i}")

    def _check_int_member(self, tid: int, i: int, m_type: int, m_off: int, kflag: int,
                          size: int) -> None:
        """btf_int_check_member / btf_int_check_kflag_member."""
        data = self._word(m_type, 0)
        int_bits, int_off = data & 0xFF, (data >> 16) & 0xFF
        if kflag:
            if not self._int_regular(m_type):
                raise self._fail(tid, "Invalid member base type", f"member {i}")
            nr_bits, bit_off = m_off >> 24, m_off & 0xFFFFFF
            if not nr_bits:
                if bit_off & 7:
                    raise self._fail(tid, "Invalid member offset", f"member {i}")
                nr_bits = int_bits
            elif nr_bits > int_bits:
                raise self._fail(tid, "Invalid member bitfield_size", f"member {i}")
        else:
            if U32 - m_off < int_off:
                raise self._fail(tid, "bits_offset exceeds U32_MAX", f"member {i}")
            bit_off = m_off + int_off
            nr_bits = int_bits
        bytes_off = bit_off >> 3
        nr_copy = nr_bits + (bit_off & 7)
        if nr_copy > 128:
            raise self._fail(tid, "nr_copy_bits exceeds 128", f"member {i}")
        if size < bytes_off or size - bytes_off < _roundup_bytes(nr_copy):
            raise self._fail(tid, "Member exceeds struct_size", f"member {i}")

    def _resolve_datasec(self, top: list[int]) -> str | None:
        tid, next_member = top
        self.mode = TBD
        v = self.view
        for i in range(next_member, v.info[tid] & 0xFFFFFF):
            var_id, _, v_size = (self._word(tid, 3 * i + k) for k in range(3))
            if self._kind(var_id) != VAR:
                raise self._fail(tid, "Not a VAR kind member", f"var {i}")
            if not self._sink(VAR) and self.visit[var_id] != RESOLVED:
                top[1] = i + 1
                return self._push(var_id)
            sized = self._type_id_size(v.sot[var_id])
            if sized is None:
                raise self._fail(tid, "Invalid type", f"var {i}")
            if v_size < sized[2]:
                raise self._fail(tid, "Invalid size", f"var {i}")
        self._pop_resolved(0, 0)
        return None

    def _resolve_decl_tag(self, top: list[int]) -> str | None:
        tid = top[0]
        v = self.view
        next_id = v.sot[tid]
        kind = self._kind(next_id)
        if kind is None or kind not in DECL_TAG_TARGETS:
            raise self._fail(tid, "Invalid type_id")
        if self._must_push(next_id):
            return self._push(next_id)
        idx = self._word(tid, 0)
        if idx != U32:
            if kind in (VAR, TYPEDEF):
                raise self._fail(tid, "Invalid component_idx")
            holder = next_id if kind in STRUCTS else v.sot[next_id]
            if idx >= v.info[holder] & 0xFFFFFF:
                raise self._fail(tid, "Invalid component_idx")
        self._pop_resolved(next_id, 0)
        return None

    def _resolve_func(self, top: list[int]) -> str | None:
        self._pop_resolved(self._func_check(top[0]), 0)
        return None

    def _func_check(self, tid: int) -> int:
        """btf_func_check: a FUNC's type is a FUNC_PROTO whose arguments all have names;
        returns the proto's id (the FUNC's resolved id)."""
        v = self.view
        proto = v.sot[tid]
        if self._kind(proto) != FUNC_PROTO:
            raise self._fail(tid, "Invalid type_id")
        q = v.pos[proto] + 3
        words = v.words
        for i in range(v.info[proto] & 0xFFFFFF):
            if not words[q + 2 * i] and words[q + 2 * i + 1]:
                raise self._fail(tid, f"Invalid arg#{i + 1}")
        return proto

    def _resolve_unsupported(self, top: list[int]) -> str | None:
        raise self._fail(top[0], "Unsupported resolve")  # pragma: no cover - never pushed

    def _func_proto_check(self, tid: int) -> None:
        """btf_func_proto_check: the return and argument types resolve to sized types."""
        v = self.view
        kinds, visit, words = v.kind, self.visit, v.words
        n = len(kinds)
        ret = v.sot[tid]
        if ret:
            kind = kinds[ret] if ret < n else None
            if kind is None or kind in SOURCE_ONLY:
                raise self._fail(tid, "Invalid return type")
            if kind in NEEDS_RESOLVE and visit[ret] != RESOLVED:
                self._resolve(ret)
            if kind not in SIZED_ALWAYS and self._type_id_size(ret) is None:
                raise self._fail(tid, "Invalid return type")
        nr_args = v.info[tid] & 0xFFFFFF
        if not nr_args:
            return
        q = v.pos[tid] + 3  # struct btf_param {name_off, type} pairs
        if not words[q + 2 * nr_args - 1]:
            if words[q + 2 * nr_args - 2]:
                raise self._fail(tid, f"Invalid arg#{nr_args}")
            nr_args -= 1
        own_lo = v.start_str_off
        own_hi = own_lo + len(v.strings)
        strings = v.strings
        ident = _IDENTIFIER.match
        good_args, good_names = self.good_args, self.good_names
        for i in range(nr_args):
            name_off, arg = words[q + 2 * i], words[q + 2 * i + 1]
            if arg in good_args and name_off in good_names:
                continue
            kind = kinds[arg] if arg < n else None
            if kind is None or kind in SOURCE_ONLY:
                raise self._fail(tid, f"Invalid arg#{i + 1}")
            if name_off:
                if own_lo <= name_off < own_hi:
                    good = ident(strings, name_off - own_lo) is not None
                else:
                    good = self._name_offset_valid(name_off) and self._identifier(name_off)
                if not good:
                    raise self._fail(tid, f"Invalid arg#{i + 1}")
            if kind in NEEDS_RESOLVE and visit[arg] != RESOLVED:
                self._resolve(arg)
            if kind not in SIZED_ALWAYS and self._type_id_size(arg) is None:
                raise self._fail(tid, f"Invalid arg#{i + 1}")
            good_args.add(arg)  # resolved and sized: true from now on
            good_names.add(name_off)

    # ---- checks after the type section ---------------------------------------------

    def _check_modifier_chains(self) -> None:
        """btf_check_modifier_chain_length (7.3: at most 32 modifiers in a row) and
        btf_check_type_tags (6.x: type tags come before other modifiers): one walk of
        each modifier chain, stopping where an earlier, already checked id takes over."""
        rules = self.rules
        kinds, sots = self.view.kind, self.view.sot
        n = len(kinds)
        start = max(self.view.start_id, 1)
        good = start - 1
        for i in range(start, n):
            kind = kinds[i]
            if kind not in MODIFIERS:
                continue
            in_tags = kind == TYPE_TAG
            limit = MAX_CHAIN if rules.chain_limit else n  # no cycle survives resolve;
            cur = i                                         # never spin on one anyway
            while kind in MODIFIERS:
                if not limit:
                    raise self._fail(i, "Max chain length or cycle detected",
                                     errno_name="ELOOP")
                limit -= 1
                if rules.type_tag_order:
                    if kind == TYPE_TAG:
                        if not in_tags:
                            raise self._fail(i, "Type tags don't precede modifiers")
                    else:
                        in_tags = False
                if cur <= good:
                    break
                cur = sots[cur]
                if cur >= n:
                    raise self._fail(i, "modifier chain leaves the type table (no log)")
                kind = kinds[cur]
            good = i


def _check_sec_info(secs: list[tuple[int, int]], expected_total: int) -> None:
    """btf_check_sec_info: sections sorted by offset, no gap, overlap or extra bytes."""
    total = 0
    for off, length in sorted(secs):
        if expected_total < off:
            raise KernelReject("Invalid section offset")
        if total < off:
            raise KernelReject("Unsupported section found")
        if total > off:
            raise KernelReject("Section overlap found")
        if expected_total - total < length:
            raise KernelReject("Total section length too long")
        total += length
    if expected_total != total:
        raise KernelReject("Unsupported section found")


# each kind's .resolve in kind_ops[]; FUNC is done inline by _check_all_types, and the
# kinds btf_df_resolve serves are sinks in every mode, so never pushed
_RESOLVE_OPS: dict[int, Callable[[_Checker, list[int]], str | None]] = {
    int(k): _Checker._resolve_unsupported for k in Kind}
_RESOLVE_OPS.update({k: _Checker._resolve_modifier for k in MODIFIERS})
_RESOLVE_OPS.update({
    PTR: _Checker._resolve_modifier, VAR: _Checker._resolve_var,
    ARRAY: _Checker._resolve_array, STRUCT: _Checker._resolve_struct,
    UNION: _Checker._resolve_struct, FUNC: _Checker._resolve_func,
    DATASEC: _Checker._resolve_datasec, DECL_TAG: _Checker._resolve_decl_tag,
})
