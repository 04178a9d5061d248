"""One class per BTF kind, holding exactly the fields its record encodes.

Every field is the raw integer the record stores (string offsets, type ids,
the member offset word), so a parsed type written back gives the same bytes.
Helpers interpret the kind_flag-dependent parts (bitfields, signedness, FWD
union, tag attributes). Lists of members/values/params/vars hold small
NamedTuples: cheap to build from `struct` output and comparable by value.

Common methods (on every kind):
  - ``type_ids()`` / ``remap_type_ids(fn)``: the type-id fields, in libbpf's
    field-iterator order (ARRAY: elem then index; FUNC_PROTO: return then params).
  - ``str_offs()`` / ``remap_str_offs(fn)``: the string-offset fields.
  - ``vlen``, ``kflag``, ``info``: the header word as it will be encoded.
  - ``record_size()``: bytes in the type section; ``copy()``: a deep copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

from harness.btf.kinds import ENTRY_WORDS, FIXED_WORDS, WORD, Kind, info_word

IdMap = Callable[[int], int]


class Member(NamedTuple):
    """struct btf_member; `offset` is the raw word (bitfield size in bits 24-31 when kflag)."""

    name_off: int
    type: int
    offset: int


class EnumValue(NamedTuple):
    """struct btf_enum / btf_enum64; `val` is the raw unsigned value (u32 or u64)."""

    name_off: int
    val: int


class Param(NamedTuple):
    """struct btf_param."""

    name_off: int
    type: int


class VarSecinfo(NamedTuple):
    """struct btf_var_secinfo."""

    type: int
    offset: int
    size: int


class BtfType:
    """Base of all kinds. Subclasses are slotted dataclasses with `name_off` first."""

    __slots__ = ()
    kind: ClassVar[Kind] = Kind.UNKN
    kind_id: ClassVar[int] = 0  # int(kind): a plain int hashes and compares in C
    name_off: int

    def __init_subclass__(cls, **kwargs: object) -> None:
        """Set `kind_id`, and make `info` a class constant where vlen and kflag are
        always 0 (PTR, TYPEDEF, INT, ARRAY, ...): dedup reads it for every type."""
        super().__init_subclass__(**kwargs)
        cls.kind_id = int(cls.kind)
        if cls.vlen is BtfType.vlen and cls.kflag is BtfType.kflag:
            cls.info = info_word(cls.kind_id)  # type: ignore[assignment]

    @property
    def vlen(self) -> int:
        return 0

    @property
    def kflag(self) -> int:
        return 0

    @property
    def info(self) -> int:
        """The btf_type.info word: kflag << 31 | kind << 24 | vlen."""
        return info_word(self.kind, self.vlen, self.kflag)

    def record_size(self) -> int:
        """Bytes of this record in the type section (from the kind's declared shape)."""
        return WORD * (FIXED_WORDS[self.kind] + ENTRY_WORDS[self.kind] * self.vlen)

    def type_ids(self) -> list[int]:
        return []

    def remap_type_ids(self, fn: IdMap) -> None:
        return None

    def str_offs(self) -> list[int]:
        return [self.name_off]

    def remap_str_offs(self, fn: IdMap) -> None:
        self.name_off = fn(self.name_off)

    def copy(self) -> BtfType:
        raise NotImplementedError


@dataclass(slots=True)
class Void(BtfType):
    """Type id 0 (BTF_KIND_UNKN): returned for id 0, never stored or encoded."""

    kind: ClassVar[Kind] = Kind.UNKN
    name_off: int = 0

    def copy(self) -> Void:
        return self


VOID = Void()


@dataclass(slots=True)
class Int(BtfType):
    """INT: size in bytes plus the data word (encoding, bit offset, bit count).

    `reserved` is bits 8-15 of the data word: no field of BTF's, ignored by the kernel
    (BTF_INT_MASK lets them through), kept so that such a blob round-trips.
    """

    kind: ClassVar[Kind] = Kind.INT
    name_off: int
    size: int
    encoding: int = 0
    bit_offset: int = 0
    bits: int = 0
    reserved: int = 0

    @property
    def data(self) -> int:
        return (self.encoding << 24) | (self.bit_offset << 16) | (self.reserved << 8) | self.bits

    def copy(self) -> Int:
        return Int(self.name_off, self.size, self.encoding, self.bit_offset, self.bits,
                   self.reserved)


@dataclass(slots=True)
class _Ref(BtfType):
    """A kind whose only payload is one referenced type id."""

    name_off: int
    type: int

    def type_ids(self) -> list[int]:
        return [self.type]

    def remap_type_ids(self, fn: IdMap) -> None:
        self.type = fn(self.type)

    def copy(self) -> _Ref:
        return type(self)(self.name_off, self.type)


@dataclass(slots=True)
class Ptr(_Ref):
    kind: ClassVar[Kind] = Kind.PTR


@dataclass(slots=True)
class Typedef(_Ref):
    kind: ClassVar[Kind] = Kind.TYPEDEF


@dataclass(slots=True)
class Volatile(_Ref):
    kind: ClassVar[Kind] = Kind.VOLATILE


@dataclass(slots=True)
class Const(_Ref):
    kind: ClassVar[Kind] = Kind.CONST


@dataclass(slots=True)
class Restrict(_Ref):
    kind: ClassVar[Kind] = Kind.RESTRICT


@dataclass(slots=True)
class TypeTag(BtfType):
    """TYPE_TAG: kflag=1 marks an attribute (``__attribute__((...))``, e.g. address_space)."""

    kind: ClassVar[Kind] = Kind.TYPE_TAG
    name_off: int
    type: int
    attr: int = 0

    @property
    def kflag(self) -> int:
        return self.attr

    def type_ids(self) -> list[int]:
        return [self.type]

    def remap_type_ids(self, fn: IdMap) -> None:
        self.type = fn(self.type)

    def copy(self) -> TypeTag:
        return TypeTag(self.name_off, self.type, self.attr)


@dataclass(slots=True)
class Array(BtfType):
    """ARRAY: element type, index type, element count (the record's size field is 0)."""

    kind: ClassVar[Kind] = Kind.ARRAY
    name_off: int
    type: int
    index_type: int
    nelems: int

    def type_ids(self) -> list[int]:
        return [self.type, self.index_type]

    def remap_type_ids(self, fn: IdMap) -> None:
        self.type = fn(self.type)
        self.index_type = fn(self.index_type)

    def copy(self) -> Array:
        return Array(self.name_off, self.type, self.index_type, self.nelems)


@dataclass(slots=True)
class _Composite(BtfType):
    """STRUCT/UNION. kflag=1: member offset words are ``bitfield_size << 24 | bit_offset``."""

    name_off: int
    size: int
    members: list[Member] = field(default_factory=list)
    bitfield_flag: int = 0

    @property
    def vlen(self) -> int:
        return len(self.members)

    @property
    def kflag(self) -> int:
        return self.bitfield_flag

    def member_bit_offset(self, m: Member) -> int:
        return m.offset & 0xFFFFFF if self.bitfield_flag else m.offset

    def member_bitfield_size(self, m: Member) -> int:
        return m.offset >> 24 if self.bitfield_flag else 0

    def type_ids(self) -> list[int]:
        return [m.type for m in self.members]

    def remap_type_ids(self, fn: IdMap) -> None:
        self.members = [Member(m.name_off, fn(m.type), m.offset) for m in self.members]

    def str_offs(self) -> list[int]:
        return [self.name_off, *(m.name_off for m in self.members)]

    def remap_str_offs(self, fn: IdMap) -> None:
        self.name_off = fn(self.name_off)
        self.members = [Member(fn(m.name_off), m.type, m.offset) for m in self.members]

    def copy(self) -> _Composite:
        return type(self)(self.name_off, self.size, list(self.members), self.bitfield_flag)


@dataclass(slots=True)
class Struct(_Composite):
    kind: ClassVar[Kind] = Kind.STRUCT


@dataclass(slots=True)
class Union(_Composite):
    kind: ClassVar[Kind] = Kind.UNION


@dataclass(slots=True)
class _EnumBase(BtfType):
    """ENUM/ENUM64: kflag=1 means signed values. `val` is stored unsigned."""

    name_off: int
    size: int
    values: list[EnumValue] = field(default_factory=list)
    signed: int = 0
    val_bits: ClassVar[int] = 32

    @property
    def vlen(self) -> int:
        return len(self.values)

    @property
    def kflag(self) -> int:
        return self.signed

    def value_of(self, v: EnumValue) -> int:
        """The value as C sees it: sign-extended when the enum is signed."""
        top = 1 << (self.val_bits - 1)
        if self.signed and v.val & top:
            return v.val - (top << 1)
        return v.val

    def str_offs(self) -> list[int]:
        return [self.name_off, *(v.name_off for v in self.values)]

    def remap_str_offs(self, fn: IdMap) -> None:
        self.name_off = fn(self.name_off)
        self.values = [EnumValue(fn(v.name_off), v.val) for v in self.values]

    def copy(self) -> _EnumBase:
        return type(self)(self.name_off, self.size, list(self.values), self.signed)


@dataclass(slots=True)
class Enum(_EnumBase):
    kind: ClassVar[Kind] = Kind.ENUM



@dataclass(slots=True)
class Enum64(_EnumBase):
    kind: ClassVar[Kind] = Kind.ENUM64
    val_bits: ClassVar[int] = 64



@dataclass(slots=True)
class Fwd(BtfType):
    """FWD: a forward declaration; kflag=1 means ``union``, 0 ``struct``."""

    kind: ClassVar[Kind] = Kind.FWD
    name_off: int
    is_union: int = 0

    @property
    def kflag(self) -> int:
        return self.is_union

    def copy(self) -> Fwd:
        return Fwd(self.name_off, self.is_union)


@dataclass(slots=True)
class Func(BtfType):
    """FUNC: `type` is its FUNC_PROTO; linkage (FuncLinkage) is stored in vlen."""

    kind: ClassVar[Kind] = Kind.FUNC
    name_off: int
    type: int
    linkage: int = 0

    @property
    def vlen(self) -> int:
        return self.linkage

    def type_ids(self) -> list[int]:
        return [self.type]

    def remap_type_ids(self, fn: IdMap) -> None:
        self.type = fn(self.type)

    def copy(self) -> Func:
        return Func(self.name_off, self.type, self.linkage)


@dataclass(slots=True)
class FuncProto(BtfType):
    """FUNC_PROTO: `type` is the return type; a last param of type 0 means varargs."""

    kind: ClassVar[Kind] = Kind.FUNC_PROTO
    name_off: int
    type: int
    params: list[Param] = field(default_factory=list)

    @property
    def vlen(self) -> int:
        return len(self.params)

    def type_ids(self) -> list[int]:
        return [self.type, *(p.type for p in self.params)]

    def remap_type_ids(self, fn: IdMap) -> None:
        self.type = fn(self.type)
        self.params = [Param(p.name_off, fn(p.type)) for p in self.params]

    def str_offs(self) -> list[int]:
        return [self.name_off, *(p.name_off for p in self.params)]

    def remap_str_offs(self, fn: IdMap) -> None:
        self.name_off = fn(self.name_off)
        self.params = [Param(fn(p.name_off), p.type) for p in self.params]

    def copy(self) -> FuncProto:
        return FuncProto(self.name_off, self.type, list(self.params))


@dataclass(slots=True)
class Var(BtfType):
    """VAR: a variable of `type` with VarLinkage `linkage`."""

    kind: ClassVar[Kind] = Kind.VAR
    name_off: int
    type: int
    linkage: int = 0

    def type_ids(self) -> list[int]:
        return [self.type]

    def remap_type_ids(self, fn: IdMap) -> None:
        self.type = fn(self.type)

    def copy(self) -> Var:
        return Var(self.name_off, self.type, self.linkage)


@dataclass(slots=True)
class Datasec(BtfType):
    """DATASEC: a section of `size` bytes and the VARs placed in it."""

    kind: ClassVar[Kind] = Kind.DATASEC
    name_off: int
    size: int
    vars: list[VarSecinfo] = field(default_factory=list)

    @property
    def vlen(self) -> int:
        return len(self.vars)

    def type_ids(self) -> list[int]:
        return [v.type for v in self.vars]

    def remap_type_ids(self, fn: IdMap) -> None:
        self.vars = [VarSecinfo(fn(v.type), v.offset, v.size) for v in self.vars]

    def copy(self) -> Datasec:
        return Datasec(self.name_off, self.size, list(self.vars))


@dataclass(slots=True)
class Float(BtfType):
    kind: ClassVar[Kind] = Kind.FLOAT
    name_off: int
    size: int

    def copy(self) -> Float:
        return Float(self.name_off, self.size)


@dataclass(slots=True)
class DeclTag(BtfType):
    """DECL_TAG on `type` (component_idx -1: the type itself, else member/param index).

    kflag=1 (`attr`) marks an attribute rather than a btf_decl_tag string.
    """

    kind: ClassVar[Kind] = Kind.DECL_TAG
    name_off: int
    type: int
    component_idx: int = -1
    attr: int = 0

    @property
    def kflag(self) -> int:
        return self.attr

    def type_ids(self) -> list[int]:
        return [self.type]

    def remap_type_ids(self, fn: IdMap) -> None:
        self.type = fn(self.type)

    def copy(self) -> DeclTag:
        return DeclTag(self.name_off, self.type, self.component_idx, self.attr)


# kind value -> class (UNKN maps to Void, which is never encoded)
KIND_CLASSES: dict[int, type[BtfType]] = {
    cls.kind.value: cls
    for cls in (
        Void, Int, Ptr, Array, Struct, Union, Enum, Fwd, Typedef, Volatile, Const,
        Restrict, Func, FuncProto, Var, Datasec, Float, DeclTag, TypeTag, Enum64,
    )
}

# Kinds whose `type` field is a single type reference (handy for chain walks).
REF_KINDS = frozenset(
    {Kind.PTR, Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG,
     Kind.FUNC, Kind.VAR, Kind.DECL_TAG}
)
# Kinds that carry a `size` in bytes.
SIZED_KINDS = frozenset(
    {Kind.INT, Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.DATASEC, Kind.FLOAT}
)
