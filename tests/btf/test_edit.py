"""Editing API: the same btf__add_* calls must give libbpf's ids and bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.btf import Btf, BTFError, FwdKind
from harness.btf.load import btf_bytes

# (method, args...) applied to both our Btf and libbpf's struct btf.
EVERY_KIND = [
    ("add_int", "int", 4, 1),
    ("add_int", "unsigned char", 1, 0),
    ("add_int", "_Bool", 1, 4),
    ("add_int", "__int128", 16, 1),
    ("add_float", "double", 8),
    ("add_ptr", 1),
    ("add_array", 1, 2, 16),
    ("add_struct", "s", 24),
    ("add_field", "a", 1, 0, 0),
    ("add_field", "bf", 2, 32, 3),
    ("add_field", None, 6, 64, 0),
    ("add_field", "int", 1, 128, 0),  # member name equal to a type name: one string
    ("add_union", None, 8),
    ("add_field", "x", 1, 0, 0),
    ("add_field", "y", 5, 0, 0),
    ("add_enum", "e", 4),
    ("add_enum_value", "E_A", 0),
    ("add_enum_value", "E_NEG", -5),
    ("add_enum", None, 2),
    ("add_enum_value", "E_U", 0xFFFF),
    ("add_enum64", "e64", 8, False),
    ("add_enum64_value", "E64_BIG", 0xFFFFFFFF_00000001),
    ("add_enum64", "e64s", 8, True),
    ("add_enum64_value", "E64_S", 1 << 40),
    ("add_fwd", "fs", FwdKind.STRUCT),
    ("add_fwd", "fu", FwdKind.UNION),
    ("add_fwd", "fe", FwdKind.ENUM),
    ("add_typedef", "int_t", 1),
    ("add_volatile", 1),
    ("add_const", 1),
    ("add_restrict", 6),
    ("add_type_tag", "user", 1),
    ("add_type_attr", "address_space(1)", 1),
    ("add_func_proto", 1),
    ("add_func_param", "p", 6),
    ("add_func_param", None, 1),
    ("add_func", "f", 1, 23),
    ("add_func_proto", 0),
    ("add_func", "bpf_kfunc_x", 2, 25),
    ("add_var", "v", 1, 1),
    ("add_var", "sv", 0, 2),
    ("add_datasec", ".data", 16),
    ("add_datasec_var_info", 27, 0, 4),
    ("add_datasec_var_info", 28, 8, 1),
    ("add_decl_tag", "bpf_kfunc", 26, -1),
    ("add_decl_tag", "arg_tag", 24, 0),
    ("add_decl_attr", "attr", 8, 1),
    ("add_str", "only a string"),
    ("add_str", "int"),
    ("add_str", ""),
]


def apply(ours: Btf, theirs, ops) -> None:  # noqa: ANN001
    for name, *args in ops:
        got = getattr(ours, name)(*args)
        want = theirs.call(f"btf__{name}", *[int(a) if isinstance(a, FwdKind) else a
                                               for a in args])
        if name.startswith("add_") and got is not None:
            assert got == want, (name, args)


def test_every_kind_from_empty(oracle) -> None:  # noqa: ANN001
    ours = Btf()
    theirs = oracle.new_empty()
    apply(ours, theirs, EVERY_KIND)
    assert ours.to_bytes() == theirs.raw_data()
    assert ours.type_count == theirs.type_cnt()
    # the script builds coherent BTF: it passes validation and parses back
    assert Btf.from_bytes(ours.to_bytes()).to_bytes() == ours.to_bytes()


def test_layout_section_like_libbpf(oracle) -> None:  # noqa: ANN001
    """7.3's kind layout section (pahole >= 1.31 writes one): built, parsed, edited."""
    ours, theirs = Btf(add_layout=True), oracle.new_empty_layout()
    apply(ours, theirs, EVERY_KIND)
    raw = theirs.raw_data()
    assert ours.to_bytes() == raw
    # parse libbpf's blob (with layout), edit both further, compare again
    ours2, theirs2 = Btf.from_bytes(raw), oracle.new(raw)
    assert ours2.layout is not None and ours2.to_bytes() == raw
    apply(ours2, theirs2, [("add_int", "long", 8, 1), ("add_ptr", 1)])
    assert ours2.to_bytes() == theirs2.raw_data()
    # and split BTF on it
    s_ours, s_theirs = Btf(ours2), oracle.new_empty(theirs2)
    apply(s_ours, s_theirs, [("add_ptr", 2), ("add_str", "split")])
    assert s_ours.to_bytes() == s_theirs.raw_data()


def test_forward_reference_allowed(oracle) -> None:  # noqa: ANN001
    ours, theirs = Btf(), oracle.new_empty()
    apply(ours, theirs, [("add_ptr", 1000), ("add_int", "int", 4, 1)])
    assert ours.to_bytes() == theirs.raw_data()
    with pytest.raises(BTFError, match="type id 1000"):
        Btf.from_bytes(ours.to_bytes())


def test_edit_parsed_object(oracle, clang_obj: Path) -> None:  # noqa: ANN001
    """Adding to parsed BTF keeps its string table and dedups against it as libbpf does."""
    raw = btf_bytes(clang_obj)
    ours = Btf.from_bytes(raw)
    theirs = oracle.new(raw)
    ops = EVERY_KIND
    apply(ours, theirs, [("add_str", "int"), ("add_str", "holder"), ("add_str", "new one")])
    apply(ours, theirs, ops)
    assert ours.to_bytes() == theirs.raw_data()


def test_duplicate_strings_first_wins(oracle) -> None:  # noqa: ANN001
    """A table with a duplicate entry and a suffix: libbpf indexes entry starts, first wins."""
    src = Btf()
    src.add_int("int", 4, 1)
    raw = bytearray(src.to_bytes())
    # append "int\0" again and "xint\0" (its suffix "int" is not an entry start)
    extra = b"int\0xint\0"
    import struct

    hdr = list(struct.unpack_from("<HBBIIIIIII", raw, 0))
    hdr[7] += len(extra)  # str_len
    raw[: struct.calcsize("<HBBIIIIIII")] = struct.pack("<HBBIIIIIII", *hdr)
    raw += extra
    raw = bytes(raw)
    ours = Btf.from_bytes(raw)
    theirs = oracle.new(raw)
    assert ours.to_bytes() == raw
    ops = [("add_str", "int"), ("add_str", "xint"), ("add_str", "nt"), ("add_int", "xint", 8, 0),
           ("find_str", "int")]
    for name, *args in ops:
        assert getattr(ours, name)(*args) == theirs.call(f"btf__{name}", *args), (name, args)
    assert ours.to_bytes() == theirs.raw_data()


def test_split_on_parsed_base(oracle, clang_obj: Path) -> None:  # noqa: ANN001
    raw = btf_bytes(clang_obj)
    base, tbase = Btf.from_bytes(raw), oracle.new(raw)
    ours, theirs = Btf(base), oracle.new_empty(tbase)
    n = base.type_count
    apply(ours, theirs, [
        ("add_str", "int"),            # found in base: base offset
        ("add_str", "split-only"),
        ("add_int", "int", 4, 1),      # name from base: id n
        ("add_struct", "holder2", 8),
        ("add_field", "fw", 7, 0, 0),  # member type in base
        ("add_ptr", n),
        ("add_func_proto", 1),
        ("add_func_param", "split-only", n + 2),
        ("add_func", "split_fn", 1, n + 3),
        ("add_decl_tag", "bpf_kfunc", n + 4, -1),
    ])
    out = ours.to_bytes()
    assert out == theirs.raw_data()
    again = Btf.from_bytes(out, base)
    assert again.to_bytes() == out
    assert again.name(again.start_id + 1) == "holder2"


def test_split_round_trip_and_edit_on_vmlinux(oracle) -> None:  # noqa: ANN001
    vm = Path("/sys/kernel/btf/vmlinux")
    if not vm.exists():
        pytest.skip("no host vmlinux BTF")
    raw = vm.read_bytes()
    ours, theirs = Btf.from_bytes(raw), oracle.new(raw)
    task = ours.find("task_struct")
    apply(ours, theirs, [
        ("add_ptr", task),
        ("add_func_proto", 1),
        ("add_func_param", "task", ours.type_count),
        ("add_func", "bpf_new_kfunc", 1, ours.type_count + 1),
        ("add_decl_tag", "bpf_kfunc", ours.type_count + 2, -1),
        ("add_type_attr", "address_space(1)", 1),
    ])
    assert ours.to_bytes() == theirs.raw_data()


def test_add_type_copies_strings(oracle, clang_obj: Path) -> None:  # noqa: ANN001
    raw = btf_bytes(clang_obj)
    src, tsrc = Btf.from_bytes(raw), oracle.new(raw)
    ours, theirs = Btf(), oracle.new_empty()
    names = ("int", "holder", "bits", "small", "func", "un")
    for tid in (src.find(n) for n in names):
        got = ours.add_type(src, src[tid])
        want = theirs.call("btf__add_type", tsrc, oracle.so.btf__type_by_id(tsrc.ptr, tid))
        assert got == want
    assert ours.to_bytes() == theirs.raw_data()


@pytest.mark.parametrize("op", [
    ("add_int", "", 4, 0), ("add_int", "i", 3, 0), ("add_int", "i", 4, 8),
    ("add_float", "f", 3), ("add_typedef", "", 1), ("add_field", "x", 1, 0, 0),
    ("add_enum_value", "A", 1), ("add_func", "f", 3, 1), ("add_var", "v", 5, 1),
    ("add_decl_tag", "t", 1, -2), ("add_ptr", -1), ("add_enum", "e", 3),
])
def test_bad_calls_raise_btferror(op) -> None:  # noqa: ANN001
    b = Btf()
    b.add_int("int", 4, 1)
    name, *args = op
    with pytest.raises(BTFError):
        getattr(b, name)(*args)


def test_replace_and_remap() -> None:
    b = Btf()
    i = b.add_int("int", 4, 1)
    p = b.add_ptr(i)
    s = b.add_struct("s", 8)
    b.add_field("p", p, 0)
    # swap ids 1 and 2 by hand: types and every reference
    b.types[0], b.types[1] = b.types[1], b.types[0]
    b.remap_type_ids({1: 2, 2: 1})
    assert b.name(2) == "int" and b[1].type == 2 and b[s].members[0].type == 1
    b[p - 1] = b[p - 1].copy()
    raw = b.to_bytes()
    assert Btf.from_bytes(raw).to_bytes() == raw
