"""harness.btf.kernel_rules: the kernel's BTF checker in Python, on crafted BTF.

The mutation oracle (test_oracle.py, benchmarks/btf_oracle.py) holds these rules to the
running kernel; here each rule group is pinned with a small BTF and its expected wording,
including what only the resolve pass sees and what differs between kernels.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from harness.btf import Btf
from harness.btf.kernel_rules import (
    BOOT,
    KERNEL_6_18,
    KERNEL_7_3,
    LOAD,
    KernelReject,
    check,
    rules_for,
)
from harness.btf.kinds import INT_SIGNED
from harness.btf.types import Int

VMLINUX = Path("/sys/kernel/btf/vmlinux")


def _int_btf() -> Btf:
    b = Btf()
    b.add_int("int", 4, INT_SIGNED)
    return b


def _reason(blob: bytes, base: object = None, **kw: object) -> str:
    with pytest.raises(KernelReject) as caught:
        check(blob, base, **kw)  # type: ignore[arg-type]
    return caught.value.reason


def test_rules_by_release() -> None:
    assert rules_for("6.18.44-fc-v1300") is KERNEL_6_18
    assert rules_for("7.3.4") is KERNEL_7_3
    assert rules_for("7.10.0-rc1") is KERNEL_7_3


@pytest.mark.skipif(not VMLINUX.exists(), reason="no /sys/kernel/btf/vmlinux")
@pytest.mark.parametrize("rules", [KERNEL_6_18, KERNEL_7_3], ids=lambda r: r.name)
def test_the_hosts_vmlinux_passes_both_ways(rules) -> None:  # noqa: ANN001
    data = VMLINUX.read_bytes()
    view = check(data, rules=rules)
    assert view.nr_types == Btf.from_bytes(data).type_count
    check(data, rules=rules, how=BOOT)


def test_a_loop_is_found_by_the_resolve_pass_or_the_chain_check() -> None:
    """7.3 parses vmlinux and module BTF without btf_check_all_types: there a typedef
    loop is caught by btf_check_modifier_chain_length instead."""
    b = _int_btf()
    a = b.add_typedef("a", 3)
    b.add_typedef("b", a)
    blob = b.to_bytes()
    assert _reason(blob, how=LOAD) == "Loop detected"
    assert _reason(blob, how=BOOT) == "Max chain length or cycle detected"
    assert _reason(blob, how=BOOT, rules=KERNEL_6_18) == "Loop detected"
    s = _int_btf()
    s.add_struct("s", 4)
    s.add_field("x", 1, 16)  # placement is a resolve-pass rule: boot-time 7.3 lets it by
    check(s.to_bytes(), how=BOOT)


def test_member_placement_and_names() -> None:
    b = _int_btf()
    s = b.add_struct("s", 4)
    b.add_field("x", 1, 16)  # 4 bytes at byte 2 of a 4-byte struct
    assert _reason(b.to_bytes()) == "Member exceeds struct_size"

    b = _int_btf()
    b.add_struct("bad name", 4)
    assert _reason(b.to_bytes()) == "Invalid name"
    assert s == 2


def test_func_arguments() -> None:
    b = _int_btf()
    proto = b.add_func_proto(1)
    b.add_func_param(None, 1)  # an unnamed argument is fine in a FUNC_PROTO...
    check(b.to_bytes())
    b.add_func("f", 1, proto)  # ...but not under a FUNC (btf_func_check)
    assert _reason(b.to_bytes()) == "Invalid arg#1"
    b = _int_btf()
    b.add_func("g", 2, b.add_func_proto(1))
    assert _reason(b.to_bytes()) == "Invalid func linkage"  # extern: a BPF object's, fixed up


def test_type_tag_order_is_a_6x_rule() -> None:
    b = _int_btf()
    tag = b.add_type_tag("user", 1)
    b.add_ptr(b.add_const(tag))  # ptr -> const -> type_tag: tag after a modifier
    blob = b.to_bytes()
    assert _reason(blob, rules=KERNEL_6_18) == "Type tags don't precede modifiers"
    check(blob, rules=KERNEL_7_3)


def test_strings_before_types() -> None:
    """btf_check_sec_info sorts the sections: 7.3 takes strings first, 6.x wants them last."""
    b = _int_btf()
    b.add_str("ab")  # 8 bytes of strings: the types after them stay 4-byte aligned
    blob = b.to_bytes()
    hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<5I", blob, 4)
    types = blob[hdr_len:hdr_len + type_len]
    strs = blob[hdr_len + str_off:hdr_len + str_off + str_len]
    swapped = bytearray(blob[:hdr_len] + strs + types)
    struct.pack_into("<4I", swapped, 8, str_len, type_len, 0, str_len)
    assert _reason(bytes(swapped), rules=KERNEL_6_18) == "String section is not at the end"
    check(bytes(swapped), rules=KERNEL_7_3)


def test_int_reserved_bits_load_and_round_trip() -> None:
    """Bits 8-15 of an INT's data word are no field, and BTF_INT_MASK lets them through:
    the kernel loads them, so the library must read and write them back unchanged."""
    b = Btf()
    b.add(Int(b.add_str("int"), 4, INT_SIGNED, 0, 32, 0x5A))
    blob = b.to_bytes()
    check(blob)
    again = Btf.from_bytes(blob, strict=KERNEL_7_3)
    assert again.to_bytes() == blob
    assert again.types[0].reserved == 0x5A


def test_split_on_its_base() -> None:
    base = _int_btf()
    split = Btf(base)
    split.add_ptr(1)
    split.add_typedef("t", 99)
    base_view = check(base.to_bytes())
    assert _reason(split.to_bytes(), base_view) == "Invalid type_id"
    ok = Btf(base)
    ok.add_ptr(1)
    assert check(ok.to_bytes(), base_view).nr_types == 3


def test_big_endian_btf_is_read_in_its_own_order() -> None:
    """s390x BTF read on x86: judged as its own (big-endian) kernel would judge it, and
    refused in the host's order exactly as the host kernel refuses it."""
    b = Btf(endian="big")
    b.add_typedef("t", b.add_int("int", 4, INT_SIGNED))
    blob = b.to_bytes()
    assert check(blob).nr_types == 3
    assert _reason(blob, byte_order="little") == "btf_header not found"
