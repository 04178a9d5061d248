"""The BTF container: types by id, strings, optional base, and libbpf-style editing.

Ids follow libbpf: 0 is void, a base BTF's own types are 1..n, a split BTF's
own types continue at the base's type count (`start_id`). String offsets of a
split BTF continue after the base's string section (`strings.start_off`).

The `add_*` methods mirror libbpf's `btf__add_*` (same argument checks, same
string handling, ids assigned in order), so the same calls give the same bytes
as `btf__raw_data()`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from harness.btf import codec
from harness.btf.errors import BTFError
from harness.btf.kernel_rules import LOAD, KernelView, Rules
from harness.btf.kinds import (
    DEFAULT_LAYOUT,
    HEADER_LEN,
    HEADER_LEN_V1,
    INT_ENCODING_MASK,
    LIBBPF_MAX_NR_TYPES,
    MAX_VLEN,
    FuncLinkage,
    FwdKind,
    Kind,
    VarLinkage,
)
from harness.btf.strings import StringTable
from harness.btf.types import (
    VOID,
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
from harness.btf.validate import check, check_kernel


@dataclass(frozen=True)
class RawTypes:
    """A type section the kernel's checks passed, kept as read until .types is used."""

    section: bytes
    endian: str
    count: int  # own types in it
    file_off: int  # its offset in the input, for decode's messages
    starts: Sequence[int]  # word index of each own record in `section`
    kinds: Sequence[int]  # kind of each own record
    infos: Sequence[int]  # info word of each own record

    def words(self) -> list[int]:
        """The section's u32 words in host order (records start at `starts`)."""
        return codec.section_words(self.section, self.endian)

    def decode_one(self, idx: int, type_id: int) -> BtfType:
        """Own record `idx` alone (id `type_id`), for a lookup that needs only it."""
        lo = self.starts[idx]
        hi = self.starts[idx + 1] if idx + 1 < self.count else len(self.section) // 4
        return codec.decode_types(self.section[4 * lo:4 * hi], self.endian, type_id,
                                  self.file_off + 4 * lo)[0]


IdMapping = Callable[[int], int] | Mapping[int, int] | Sequence[int]


class Btf:
    """A base or split BTF object.

    Attributes:
        types: own types; ``types[i]`` has id ``start_id + i``.
        strings: own string section (StringTable).
        base: the base Btf for split BTF, else None.
        endian: "little" or "big"; output uses it.
        hdr_len: header length written back (24 from pahole < 1.31, 32 otherwise).
        layout: kind layout section as (info_sz, elem_sz, flags) triples, or None.
    """

    def __init__(
        self,
        base: Btf | None = None,
        *,
        endian: str | None = None,
        add_layout: bool = False,
        hdr_len: int = HEADER_LEN,
    ):
        """An empty BTF, as btf__new_empty() / btf__new_empty_split(base)."""
        self.base = base
        self.start_id = base.type_count if base is not None else 1
        start_str = base.strings.end_off if base is not None else 0
        self.strings = StringTable(b"" if base is not None else b"\0", start_str)
        self.types = []
        self.endian = endian or (base.endian if base is not None else codec.LITTLE)
        self.hdr_len = hdr_len
        self.layout: list[tuple[int, int, int]] | None = (
            list(DEFAULT_LAYOUT) if add_layout else None
        )
        # header layout_off when there is no layout section: written back unchanged
        self.spare_layout_off = 0
        # the kernel's view of this BTF by (rules, how, types, strings): split checks need it
        self.kernel_views: dict[tuple[str, str, int, int], KernelView] = {}

    # ---- construction -------------------------------------------------------------

    @classmethod
    def from_bytes(
        cls, data: bytes | bytearray | memoryview, base: Btf | None = None, *,
        validate: bool = True, strict: Rules | None = None, how: str = LOAD,
        checked: KernelView | None = None,
    ) -> Btf:
        """Parse raw BTF (either byte order); `base` for split BTF.

        Raises BTFError on anything malformed; with `validate`, also runs
        validate.check (dangling ids, string offsets, sizes). With `strict` (a kernel's
        rules), first the kernel's own checks (validate.check_kernel, `how` the kernel
        gets it), which imply the lenient ones. `checked`: the view an earlier strict
        read of these same bytes (no base, same `strict` and `how`) got (view_store); the
        kernel's checks are then not run again.
        """
        mv = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        view = None
        if strict is not None:
            if checked is not None:
                if base is not None:
                    raise ValueError("checked= is a base BTF's view; this BTF has a base")
                view = checked
            else:
                view = check_kernel(bytes(mv), base, rules=strict, how=how)
            validate = False
        hdr = codec.parse_header(mv)
        self = cls.__new__(cls)
        self.kernel_views = {}
        self._types = None
        self._raw = None
        self._singles: dict[int, BtfType] = {}
        self.base = base
        self.start_id = base.type_count if base is not None else 1
        self.endian = hdr.endian
        self.hdr_len = max(hdr.hdr_len, HEADER_LEN_V1)  # a shorter one is written as v1
        self.spare_layout_off = 0 if hdr.layout_len else hdr.layout_off
        body = hdr.hdr_len
        str_start = body + hdr.str_off
        strs = bytes(mv[str_start:str_start + hdr.str_len])
        if base is None and (not strs or strs[0] != 0):
            raise BTFError(
                "string section does not start with an empty string "
                "(split BTF parsed without its base?)", offset=str_start)
        if strs and strs[-1] != 0:
            raise BTFError("string section is not NUL-terminated",
                           offset=str_start + len(strs) - 1)
        start_str = base.strings.end_off if base is not None else 0
        self.strings = StringTable(strs, start_str)
        if hdr.layout_len:
            lo = body + hdr.layout_off
            self.layout = codec.decode_layout(mv[lo:lo + hdr.layout_len], hdr.endian)
        else:
            self.layout = None
        section = mv[body:body + hdr.type_len]
        if view is not None:
            # The kernel's checks passed, so the records decode: leave that to the first
            # use of .types, and a copy that never looks at them writes them back as read.
            first = max(view.start_id, 1)
            word_base = len(view.words) - len(section) // 4  # the base's words, if split
            starts = view.pos[first:]
            if word_base:
                starts = [p - word_base for p in starts]
            self._raw = RawTypes(bytes(section), hdr.endian, view.nr_types - first, body,
                                 starts, view.kind[first:], view.info[first:])
        else:
            self.types = codec.decode_types(section, hdr.endian, self.start_id, body)
        if self.type_count > LIBBPF_MAX_NR_TYPES:
            raise BTFError(f"too many types: {self.type_count}")
        if validate:
            check(self)
        if view is not None and strict is not None:
            self.kernel_views[self.view_key(strict, how)] = view
        return self

    def view_key(self, rules: Rules, how: str) -> tuple[str, str, int, int]:
        """Where `kernel_views` keeps the kernel's view of this BTF (rules, how, size)."""
        return (rules.name, how, len(self), self.strings.end_off)

    @property
    def types(self) -> list[BtfType]:
        """Own types; ``types[i]`` has id ``start_id + i``. A BTF read under a kernel's
        rules decodes its records here, on first use."""
        if self._types is None:
            raw = self._raw
            assert raw is not None  # exactly one of the two is set
            types = codec.decode_types(raw.section, raw.endian, self.start_id, raw.file_off)
            for idx, t in self._singles.items():  # the objects already handed out stay
                types[idx] = t
            self._types = types
            self._raw = None
            self._singles = {}
        return self._types

    @types.setter
    def types(self, value: list[BtfType]) -> None:
        self._types = value
        self._raw = None
        self._singles = {}

    def to_bytes(self) -> bytes:
        """Raw BTF: header, types, optional layout, strings (libbpf's writer layout)."""
        if self._raw is not None and not self._singles:  # unchanged: the records as read
            types = codec.swap_words(self._raw.section, self._raw.endian, self.endian)
        else:
            types = codec.encode_types(self.types, self.endian, self.start_id)
        layout = codec.encode_layout(self.layout, self.endian) if self.layout else b""
        strs = self.strings.to_bytes()
        head = codec.encode_header(
            self.hdr_len, self.endian, len(types), len(layout), len(strs), self.spare_layout_off
        )
        return b"".join((head, types, layout, strs))

    # ---- lookup -----------------------------------------------------------------

    @property
    def type_count(self) -> int:
        """libbpf's btf__type_cnt(): one past the last valid id (base included)."""
        return self.start_id + len(self)

    def __len__(self) -> int:
        """Number of own types (not counting void or base types)."""
        return len(self._types) if self._types is not None else self._raw.count  # type: ignore[union-attr]

    def __getitem__(self, type_id: int) -> BtfType:
        """Type by id: 0 is VOID, ids below start_id come from the base."""
        idx = type_id - self.start_id
        if idx >= 0:
            types = self._types
            if types is None:
                # Still as read: decode this record alone. A module's run looks up a few
                # of its vmlinux base's 60-130k types, and decoding them all cost 0.15 s.
                raw = self._raw
                if idx < raw.count:  # type: ignore[union-attr]
                    t = self._singles.get(idx)
                    if t is None:
                        t = self._singles[idx] = raw.decode_one(idx, type_id)  # type: ignore[union-attr]
                    return t
            elif idx < len(types):
                return types[idx]
            raise BTFError(f"type id {type_id} out of range (type count {self.type_count})")
        if type_id == 0:
            return VOID
        if self.base is not None and type_id > 0:
            return self.base[type_id]
        raise BTFError(f"type id {type_id} out of range")

    def __setitem__(self, type_id: int, t: BtfType) -> None:
        self.replace(type_id, t)

    def has_id(self, type_id: int) -> bool:
        return 0 <= type_id < self.type_count

    def ids(self) -> range:
        """Own type ids."""
        return range(self.start_id, self.type_count)

    def items(self) -> Iterator[tuple[int, BtfType]]:
        """(id, type) for own types."""
        return zip(range(self.start_id, self.type_count), self.types, strict=True)

    def records_as_read(self) -> tuple[RawTypes, dict[int, BtfType]] | None:
        """While the own types are not decoded as a whole (a read under the kernel's
        rules): the records as read and the types looked up by id so far, by index (an
        edit made through one of those is not in the records); else None."""
        if self._types is not None:
            return None
        return self._raw, self._singles  # type: ignore[return-value]

    def ids_of(self, cls: type[BtfType]) -> list[int]:
        """Own ids of the types of class `cls` (exactly, not subclasses), in id order;
        from the kinds the kernel's checks read when the records are still as read."""
        if self._types is None:
            kind, first = cls.kind_id, self.start_id
            return [first + i for i, k in enumerate(self._raw.kinds) if k == kind]  # type: ignore[union-attr]
        return [tid for tid, t in self.items() if type(t) is cls]

    def all_ids_of(self, cls: type[BtfType]) -> list[int]:
        """ids_of(cls), base first."""
        base = self.base.all_ids_of(cls) if self.base is not None else []
        return base + self.ids_of(cls)

    def all_items(self) -> Iterator[tuple[int, BtfType]]:
        """(id, type) for base types then own types (void excluded)."""
        if self.base is not None:
            yield from self.base.all_items()
        yield from self.items()

    def str(self, off: int) -> str:
        """String at a logical offset (base strings for split BTF below start_off)."""
        if off < self.strings.start_off:
            if self.base is None:
                raise BTFError(f"string offset {off} out of range")
            return self.base.str(off)
        return self.strings.get(off)

    def has_str_off(self, off: int) -> bool:
        if off < self.strings.start_off:
            return self.base is not None and self.base.has_str_off(off)
        return self.strings.contains_offset(off)

    def name(self, t: BtfType | int) -> str:
        """Name of a type (or type id); '' for anonymous."""
        if isinstance(t, int):
            t = self[t]
        return self.str(t.name_off) if t.name_off else ""

    def func_proto(self, func_id: int) -> tuple[Func, FuncProto]:
        """A FUNC and its FUNC_PROTO; BTFError when `func_id` is not a FUNC with one."""
        func = self[func_id]
        if not isinstance(func, Func):
            raise BTFError(f"type [{func_id}] is a {func.kind.name}, not a FUNC")
        proto = self[func.type]
        if not isinstance(proto, FuncProto):
            raise BTFError(f"FUNC [{func_id}] {self.name(func)} has no FUNC_PROTO")
        return func, proto

    def find_by_name(self, name: str, kind: Kind | None = None) -> list[int]:
        """Ids (base then own) of types called `name`, optionally of one kind."""
        out = []
        for tid, t in self.all_items():
            if (kind is None or t.kind == kind) and t.name_off and self.str(t.name_off) == name:
                out.append(tid)
        return out

    def find(self, name: str, kind: Kind | None = None) -> int:
        """The first id called `name` (libbpf's btf__find_by_name_kind); BTFError if none."""
        found = self.find_by_name(name, kind)
        if not found:
            what = f"{kind.name} " if kind is not None else ""
            raise BTFError(f"no {what}type named {name!r}")
        return found[0]

    # ---- strings ------------------------------------------------------------------

    def find_str(self, s: str) -> int | None:
        """Offset of `s` (base first), or None: btf__find_str()."""
        if self.base is not None:
            off = self.base.find_str(s)
            if off is not None:
                return off
        return self.strings.find(s)

    def add_str(self, s: str) -> int:
        """Offset of `s`, adding it to the own section if needed: btf__add_str()."""
        if self.base is not None:
            off = self.base.find_str(s)
            if off is not None:
                return off
        return self.strings.add(s)

    def _name_off(self, name: str | None) -> int:
        return self.add_str(name) if name else 0

    # ---- generic editing ------------------------------------------------------------

    def add(self, t: BtfType) -> int:
        """Append a ready-made type (its offsets must already be valid here); returns its id."""
        if self.type_count >= LIBBPF_MAX_NR_TYPES:
            raise BTFError("too many types")
        self.types.append(t)
        return self.type_count - 1

    def replace(self, type_id: int, t: BtfType) -> None:
        """Put `t` in place of own type `type_id` (ids of everything else unchanged)."""
        idx = type_id - self.start_id
        if not 0 <= idx < len(self.types):
            raise BTFError(f"cannot replace type id {type_id}: not an own type of this BTF")
        self.types[idx] = t

    def remap_type_ids(self, mapping: IdMapping) -> None:
        """Rewrite every type-id field of every own type through `mapping`.

        `mapping` is a callable, a dict (ids not in it stay as they are) or a
        sequence indexed by old id. Void (0) is passed through the mapping too.
        """
        fn = _as_function(mapping)
        for t in self.types:
            t.remap_type_ids(fn)

    def remap_str_offs(self, mapping: IdMapping) -> None:
        """Rewrite every string-offset field of every own type (string dedup needs it)."""
        fn = _as_function(mapping)
        for t in self.types:
            t.remap_str_offs(fn)

    def set_strings(self, data: bytes) -> None:
        """Replace the own string section by `data` (caller remaps offsets to match)."""
        self.strings = StringTable(data, self.strings.start_off)

    def last_type(self) -> BtfType:
        if not self.types:
            raise BTFError("no own types to extend")
        return self.types[-1]

    def copy(self) -> Btf:
        """Deep copy of own types and strings; the base is shared, not copied."""
        new = Btf.__new__(Btf)
        new.base = self.base
        new.start_id = self.start_id
        new.endian = self.endian
        new.hdr_len = self.hdr_len
        new.spare_layout_off = self.spare_layout_off
        new.layout = list(self.layout) if self.layout is not None else None
        new.strings = StringTable(self.strings.to_bytes(), self.strings.start_off)
        new.kernel_views = {}
        new._singles = {}
        if self._raw is not None and not self._singles:  # as read: share, decode on use
            new._types, new._raw = None, self._raw
        else:
            new.types = [t.copy() for t in self.types]
        return new

    # ---- libbpf btf__add_* ----------------------------------------------------------

    def add_int(self, name: str, byte_sz: int, encoding: int = 0) -> int:
        if not name:
            raise BTFError("add_int: empty name")
        if byte_sz <= 0 or byte_sz & (byte_sz - 1) or byte_sz > 16:
            raise BTFError(f"add_int: size {byte_sz} is not a power of 2 up to 16")
        if encoding & ~INT_ENCODING_MASK:
            raise BTFError(f"add_int: bad encoding {encoding:#x}")
        return self.add(Int(self.add_str(name), byte_sz, encoding, 0, byte_sz * 8))

    def add_float(self, name: str, byte_sz: int) -> int:
        if not name:
            raise BTFError("add_float: empty name")
        if byte_sz not in (2, 4, 8, 12, 16):
            raise BTFError(f"add_float: bad size {byte_sz}")
        return self.add(Float(self.add_str(name), byte_sz))

    def _ref(self, cls: type, name: str | None, ref_type_id: int, *extra: int) -> int:
        _check_id(ref_type_id)
        return self.add(cls(self._name_off(name), ref_type_id, *extra))

    def add_ptr(self, ref_type_id: int) -> int:
        return self._ref(Ptr, None, ref_type_id)

    def add_const(self, ref_type_id: int) -> int:
        return self._ref(Const, None, ref_type_id)

    def add_volatile(self, ref_type_id: int) -> int:
        return self._ref(Volatile, None, ref_type_id)

    def add_restrict(self, ref_type_id: int) -> int:
        return self._ref(Restrict, None, ref_type_id)

    def add_typedef(self, name: str, ref_type_id: int) -> int:
        if not name:
            raise BTFError("add_typedef: empty name")
        return self._ref(Typedef, name, ref_type_id)

    def add_type_tag(self, value: str, ref_type_id: int) -> int:
        if not value:
            raise BTFError("add_type_tag: empty value")
        return self._ref(TypeTag, value, ref_type_id, 0)

    def add_type_attr(self, value: str, ref_type_id: int) -> int:
        """TYPE_TAG with kind_flag=1 (an attribute such as address_space(1))."""
        if not value:
            raise BTFError("add_type_attr: empty value")
        return self._ref(TypeTag, value, ref_type_id, 1)

    def add_array(self, index_type_id: int, elem_type_id: int, nr_elems: int) -> int:
        _check_id(index_type_id)
        _check_id(elem_type_id)
        return self.add(Array(0, elem_type_id, index_type_id, nr_elems))

    def add_struct(self, name: str | None, byte_sz: int) -> int:
        return self.add(Struct(self._name_off(name), byte_sz, []))

    def add_union(self, name: str | None, byte_sz: int) -> int:
        return self.add(Union(self._name_off(name), byte_sz, []))

    def add_field(
        self, name: str | None, type_id: int, bit_offset: int, bit_size: int = 0
    ) -> None:
        """Append a member to the last type (a STRUCT or UNION): btf__add_field()."""
        t = self.last_type()
        if not isinstance(t, Struct | Union):
            raise BTFError("add_field: last type is not a struct or union")
        if len(t.members) == MAX_VLEN:
            raise BTFError("add_field: too many members")
        _check_id(type_id)
        is_bitfield = bool(bit_size) or bit_offset % 8 != 0
        if is_bitfield and (bit_size == 0 or bit_size > 255 or bit_offset > 0xFFFFFF):
            raise BTFError(f"add_field: bad bitfield {bit_offset}:{bit_size}")
        if isinstance(t, Union) and bit_offset:
            raise BTFError("add_field: union member at non-zero offset")
        t.members.append(Member(self._name_off(name), type_id, bit_offset | (bit_size << 24)))
        if is_bitfield:
            t.bitfield_flag = 1

    def _add_enum_common(self, cls: type, name: str | None, byte_sz: int, signed: bool) -> int:
        if byte_sz <= 0 or byte_sz & (byte_sz - 1) or byte_sz > 8:
            raise BTFError(f"add_enum: size {byte_sz} is not a power of 2 up to 8")
        return self.add(cls(self._name_off(name), byte_sz, [], int(signed)))

    def add_enum(self, name: str | None, byte_sz: int = 4) -> int:
        return self._add_enum_common(Enum, name, byte_sz, False)

    def add_enum_value(self, name: str, value: int) -> None:
        """Append to the last ENUM; a negative value makes it signed, as libbpf does."""
        t = self.last_type()
        if not isinstance(t, Enum):
            raise BTFError("add_enum_value: last type is not an enum")
        if not name:
            raise BTFError("add_enum_value: empty name")
        if not -(1 << 31) <= value <= 0xFFFFFFFF:
            raise BTFError(f"add_enum_value: {value} does not fit 32 bits")
        if len(t.values) == MAX_VLEN:
            raise BTFError("add_enum_value: too many values")
        t.values.append(EnumValue(self.add_str(name), value & 0xFFFFFFFF))
        if value < 0:
            t.signed = 1

    def add_enum64(self, name: str | None, byte_sz: int = 8, is_signed: bool = False) -> int:
        return self._add_enum_common(Enum64, name, byte_sz, is_signed)

    def add_enum64_value(self, name: str, value: int) -> None:
        t = self.last_type()
        if not isinstance(t, Enum64):
            raise BTFError("add_enum64_value: last type is not an enum64")
        if not name:
            raise BTFError("add_enum64_value: empty name")
        if not -(1 << 63) <= value < (1 << 64):
            raise BTFError(f"add_enum64_value: {value} does not fit 64 bits")
        if len(t.values) == MAX_VLEN:
            raise BTFError("add_enum64_value: too many values")
        t.values.append(EnumValue(self.add_str(name), value & 0xFFFFFFFFFFFFFFFF))

    def add_fwd(self, name: str, fwd_kind: FwdKind | int) -> int:
        if not name:
            raise BTFError("add_fwd: empty name")
        if fwd_kind == FwdKind.ENUM:
            return self.add_enum(name, 4)
        if fwd_kind not in (FwdKind.STRUCT, FwdKind.UNION):
            raise BTFError(f"add_fwd: bad kind {fwd_kind}")
        return self.add(Fwd(self.add_str(name), int(fwd_kind == FwdKind.UNION)))

    def add_func(self, name: str, linkage: FuncLinkage | int, proto_type_id: int) -> int:
        if not name:
            raise BTFError("add_func: empty name")
        if linkage not in (0, 1, 2):
            raise BTFError(f"add_func: bad linkage {linkage}")
        return self._ref(Func, name, proto_type_id, int(linkage))

    def add_func_proto(self, ret_type_id: int) -> int:
        _check_id(ret_type_id)
        return self.add(FuncProto(0, ret_type_id, []))

    def add_func_param(self, name: str | None, type_id: int) -> None:
        _check_id(type_id)
        t = self.last_type()
        if not isinstance(t, FuncProto):
            raise BTFError("add_func_param: last type is not a func_proto")
        if len(t.params) == MAX_VLEN:
            raise BTFError("add_func_param: too many params")
        t.params.append(Param(self._name_off(name), type_id))

    def add_var(self, name: str, linkage: VarLinkage | int, type_id: int) -> int:
        if not name:
            raise BTFError("add_var: empty name")
        if linkage not in (0, 1, 2):
            raise BTFError(f"add_var: bad linkage {linkage}")
        _check_id(type_id)
        return self.add(Var(self.add_str(name), type_id, int(linkage)))

    def add_datasec(self, name: str, byte_sz: int) -> int:
        if not name:
            raise BTFError("add_datasec: empty name")
        return self.add(Datasec(self.add_str(name), byte_sz, []))

    def add_datasec_var_info(self, var_type_id: int, offset: int, byte_sz: int) -> None:
        t = self.last_type()
        if not isinstance(t, Datasec):
            raise BTFError("add_datasec_var_info: last type is not a datasec")
        _check_id(var_type_id)
        if len(t.vars) == MAX_VLEN:
            raise BTFError("add_datasec_var_info: too many vars")
        t.vars.append(VarSecinfo(var_type_id, offset, byte_sz))

    def _add_decl_tag(self, value: str, ref_type_id: int, component_idx: int, attr: int) -> int:
        if not value or component_idx < -1:
            raise BTFError("add_decl_tag: empty value or component index below -1")
        _check_id(ref_type_id)
        return self.add(DeclTag(self.add_str(value), ref_type_id, component_idx, attr))

    def add_decl_tag(self, value: str, ref_type_id: int, component_idx: int = -1) -> int:
        return self._add_decl_tag(value, ref_type_id, component_idx, 0)

    def add_decl_attr(self, value: str, ref_type_id: int, component_idx: int = -1) -> int:
        """DECL_TAG with kind_flag=1 (an attribute)."""
        return self._add_decl_tag(value, ref_type_id, component_idx, 1)

    def add_type(self, src: Btf, src_type: BtfType) -> int:
        """Copy one type from another Btf, re-adding its strings here: btf__add_type().

        Type ids are copied as they are (the caller remaps them if needed).
        """
        t = src_type.copy()
        t.remap_str_offs(lambda off: self.add_str(src.str(off)) if off else 0)
        return self.add(t)

    def __repr__(self) -> str:
        split = f" split on {self.base.type_count - 1} base types" if self.base else ""
        return f"<Btf {len(self)} types from id {self.start_id}{split}, {self.endian}>"


def _check_id(type_id: int) -> None:
    # libbpf's validate_type_id(): forward references are fine, negatives are not
    if not 0 <= type_id <= LIBBPF_MAX_NR_TYPES:
        raise BTFError(f"invalid type id {type_id}")


def _as_function(mapping: IdMapping) -> Callable[[int], int]:
    if callable(mapping):
        return mapping
    if isinstance(mapping, Mapping):
        get = mapping.get
        return lambda i: get(i, i)
    seq = mapping
    return seq.__getitem__
