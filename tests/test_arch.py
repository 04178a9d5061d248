"""The Architecture records: every spelling users type, one error, one place for facts."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import pytest

from harness.arch import ARCHES, ARM64, X86_64, arch_arg, arch_list, host, lookup
from harness.errors import UsageError


@pytest.mark.parametrize(("spelling", "name"), [
    ("x86_64", "x86_64"), ("amd64", "x86_64"), ("x86", "x86_64"), (" x86_64 ", "x86_64"),
    ("arm64", "arm64"), ("aarch64", "arm64"),
])
def test_every_spelling_finds_its_record(spelling: str, name: str) -> None:
    assert lookup(spelling).name == name


def test_an_unknown_arch_is_one_line_listing_every_spelling() -> None:
    with pytest.raises(UsageError) as info:
        lookup("riscv64")
    assert str(info.value) == ("unknown arch 'riscv64': choose x86_64 (amd64/x86), "
                               "arm64 (aarch64)")
    with pytest.raises(argparse.ArgumentTypeError, match="unknown arch 'mips'"):
        arch_arg("mips")
    assert arch_arg("aarch64") == "arm64"


def test_lists_keep_order_and_drop_repeats() -> None:
    assert arch_list("arm64, amd64,aarch64,x86_64") == [ARM64, X86_64]
    with pytest.raises(UsageError, match="no arch in ' , '"):
        arch_list(" , ")


def test_facts_agree_with_the_machine_and_the_trees() -> None:
    machine = os.uname().machine
    here = host()
    assert here.uname == machine and here.cross_prefix == "" and here.is_host
    other = ARM64 if here is X86_64 else X86_64
    assert other.cross_prefix == f"{other.gnu_triplet}-" and not other.is_host
    for record in ARCHES.values():
        assert record.boot_image.startswith(f"arch/{record.kernel_arch}/boot/")
        assert record.boot_image_name in ("bzImage", "Image")
        assert re.fullmatch(r"qemu-system-\w+", record.qemu_binary)
        assert (Path(__file__).resolve().parents[1] / "kconfigs" / f"{record.name}.config"
                ).is_file()


def test_no_other_module_holds_a_per_arch_dict() -> None:
    """Only the guest-side scripts (agent.py, bundle_main.py: stdlib-only, they run in the
    guest without this package) key facts by `uname -m` themselves."""
    root = Path(__file__).resolve().parents[1] / "harness"
    pattern = re.compile(r'"(x86_64|arm64|aarch64|amd64)"\s*:')
    holders = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                     if pattern.search(p.read_text()))
    assert holders == ["progs/agent.py", "progs/bundle_main.py"]
