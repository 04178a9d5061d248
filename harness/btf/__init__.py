"""Pure-Python BTF: read and write real kernel BTF byte for byte, edit it as libbpf does.

Public API (what dedup, sort, distill and the resolve_btfids transformer build on)

Loading::

    from harness.btf import Btf, BTFError, Kind, load
    vm = load("/sys/kernel/btf/vmlinux")          # raw file, ELF (.BTF section) or sysfs
    mod = load("foo.ko", base=vm)                 # split BTF; sysfs modules get vmlinux
    tm = load("bpf_testmod.ko")                   # has .BTF.base: split on that (no base=)
    b = Btf.from_bytes(raw, base=None)            # from bytes; validate=False skips checks
    from harness.btf.load import btf_bytes, btf_and_base_bytes, elf_sections, write_atomic
    btf_bytes(path, ".BTF.base")                  # raw bytes of another ELF section

Every failure on bad input is a BTFError (a harness.errors.UsageError, exit code 2)
whose message names the type id and byte offset.

Ids and types::

    b.start_id, b.type_count        # own ids are range(start_id, type_count) == b.ids()
    b[tid]                          # 0 -> VOID, < start_id -> from b.base, else own
    b.types                         # own types; b.types[i] has id b.start_id + i
    for tid, t in b.items(): ...    # own (id, type); b.all_items() includes the base
    t.kind                          # Kind.STRUCT, ...
    t.name_off, b.name(t), b.str(off)
    b.find("task_struct", Kind.STRUCT) / b.find_by_name(name, kind)

One slotted dataclass per kind (harness.btf.types): Int, Ptr, Array, Struct, Union,
Enum, Fwd, Typedef, Volatile, Const, Restrict, Func, FuncProto, Var, Datasec, Float,
DeclTag, TypeTag, Enum64. Fields are the raw record values: `type` (referenced id),
`size`, `members` (Member(name_off, type, offset)), `values` (EnumValue(name_off, val),
val unsigned), `params` (Param(name_off, type)), `vars` (VarSecinfo(type, offset, size)),
and the kind_flag as a named field: Struct/Union.bitfield_flag, Enum/Enum64.signed,
Fwd.is_union, DeclTag.attr / TypeTag.attr. Helpers: `member_bit_offset(m)`,
`member_bitfield_size(m)`, `value_of(v)` (sign-extended), `t.info`, `t.vlen`,
`t.kflag`, `t.record_size()`, `t.type_ids()` and `t.str_offs()` (libbpf field-iterator
order), `t.remap_type_ids(fn)`, `t.remap_str_offs(fn)`, `t.copy()`. Dataclass equality
compares all fields, so two types with equal fields compare equal.

Editing (same checks, ids and bytes as libbpf's btf__add_*)::

    b = Btf()  /  Btf(base)                       # btf__new_empty / _split
    i = b.add_int("int", 4, INT_SIGNED); p = b.add_ptr(i)
    s = b.add_struct("s", 8); b.add_field("x", i, 0); b.add_field("bf", i, 32, 3)
    fp = b.add_func_proto(i); b.add_func_param("a", p); f = b.add_func("fn", 1, fp)
    b.add_decl_tag("bpf_kfunc", f, -1); b.add_type_attr("address_space(1)", i)
    b.add_enum/_value, add_enum64/_value, add_fwd, add_typedef, add_const, ...
    b.add_str(s) / b.find_str(s)                  # libbpf's strset dedup (base first)
    b.add(t) -> id                                # append a ready-made type object
    b.add_type(src_btf, src_type)                 # btf__add_type: copies strings over
    b[tid] = t  /  b.replace(tid, t)              # rewrite a type in place
    b.remap_type_ids(mapping)                     # every id field of every own type;
                                                  # dict (missing ids kept), list or callable
    b.remap_str_offs(mapping); b.set_strings(data)  # for string dedup
    b.types[:] = new_order                        # permute, then remap_type_ids(old->new)
    b.copy()                                      # deep copy (base shared)

Writing::

    raw = b.to_bytes()             # header, types, [layout], strings; b.endian kept
    write_atomic(path, raw)        # temp file + rename (harness.btf.load)

The string section stays the original bytes until something is added, so an
unmodified object writes back identically. Header length (24/32), the 7.3 kind
layout section (`b.layout`) and the byte order (`b.endian`) are preserved.
`harness.btf.validate.check(b)` runs the semantic checks; `harness.btf.dump.dump(b)`
gives bpftool's `format raw` lines. `harness.btf.codec.gc_paused()` is the context
manager the codec uses around bulk object work (the cyclic GC otherwise costs ~60%).
`Btf(add_layout=True)` is btf__new_empty_opts(.add_layout) (a 32-byte header and the
default kind layout table).

Performance (host vmlinux, 126k types): parse+validate+write ~0.3 s, ~55 MiB over
the interpreter; parse alone ~0.2 s. See benchmarks/btf.py.
"""

from harness.btf.btf import Btf
from harness.btf.errors import BTFError
from harness.btf.kinds import (
    INT_BOOL,
    INT_CHAR,
    INT_SIGNED,
    FuncLinkage,
    FwdKind,
    Kind,
    VarLinkage,
)
from harness.btf.load import load
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

__all__ = [
    "INT_BOOL", "INT_CHAR", "INT_SIGNED", "VOID", "Array", "BTFError", "Btf", "BtfType",
    "Const", "Datasec", "DeclTag", "Enum", "Enum64", "EnumValue", "Float", "FuncLinkage",
    "Func", "FuncProto", "Fwd", "FwdKind", "Int", "Kind", "Member", "Param", "Ptr",
    "Restrict", "Struct", "TypeTag", "Typedef", "Union", "Var", "VarLinkage", "VarSecinfo",
    "Volatile", "load",
]
