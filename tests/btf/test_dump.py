"""`harness btf dump` against bpftool, line for line: Debian's, and the one built from the
7.3 tree (bpftool_path is parametrized over both)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.btf import Btf, load
from harness.btf.dump import dump
from harness.btf.load import elf_sections
from harness.kbuild.artifacts import BuildArtifacts
from tests.btf.conftest import SYSFS, modules_of


def bpftool_raw(tool: Path, path: Path, base: Path | None = None) -> bytes:
    cmd = [str(tool), "btf", "dump", "file", str(path), "format", "raw"]
    if base is not None:
        cmd[1:1] = ["-B", str(base)]
    return subprocess.run(cmd, check=True, capture_output=True).stdout


def assert_same_lines(ours: bytes, theirs: bytes) -> None:
    a, b = ours.splitlines(), theirs.splitlines()
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        assert x == y, f"line {i + 1}: ours {x!r} bpftool {y!r}"
    assert len(a) == len(b)


def test_dump_host_vmlinux(bpftool_path: Path) -> None:
    vm = SYSFS / "vmlinux"
    if not vm.exists():
        pytest.skip("no /sys/kernel/btf/vmlinux")
    assert_same_lines(dump(load(vm)), bpftool_raw(bpftool_path, vm))


def test_dump_clang_object(bpftool_path: Path, clang_obj: Path) -> None:
    assert_same_lines(dump(load(clang_obj)), bpftool_raw(bpftool_path, clang_obj))


def test_dump_every_kind_and_split(bpftool_path: Path, tmp_path: Path) -> None:
    """ENUM64, signed enums, attrs, bitfields (kinds clang 14 lacks), then split on it."""
    from tests.btf.test_edit import EVERY_KIND

    base = Btf()
    for name, *args in EVERY_KIND:
        getattr(base, name)(*args)
    base_path = tmp_path / "base.btf"
    base_path.write_bytes(base.to_bytes())
    assert_same_lines(dump(load(base_path)), bpftool_raw(bpftool_path, base_path))

    split = Btf(base)
    p = split.add_ptr(8)
    proto = split.add_func_proto(1)
    split.add_func_param("s", p)
    split.add_func_param("e", 12)
    fn = split.add_func("split_fn", 1, proto)
    split.add_decl_tag("bpf_kfunc", fn)
    split.add_enum64("neg64", 8, True)
    split.add_enum64_value("MINUS", -2)
    split_path = tmp_path / "split.btf"
    split_path.write_bytes(split.to_bytes())
    ours = dump(load(split_path, base=base_path))
    assert_same_lines(ours, bpftool_raw(bpftool_path, split_path, base_path))


def test_dump_built_vmlinux_and_modules(x86_build: BuildArtifacts, x86_build_dir: Path) -> None:
    """The built 7.3 kernel (kind layout section and all) with the tree's own bpftool."""
    bpftool_path = x86_build.bpftool
    build = x86_build_dir
    vm = build / "vmlinux"
    assert_same_lines(dump(load(vm)), bpftool_raw(bpftool_path, vm))
    vm_btf = load(vm)
    for ko in modules_of(build):
        if elf_sections(ko.read_bytes(), (".BTF.base",)):
            # distilled base: both tools read the module on its own .BTF.base
            assert_same_lines(dump(load(ko)), bpftool_raw(bpftool_path, ko))
        else:
            assert_same_lines(dump(load(ko, base=vm_btf)), bpftool_raw(bpftool_path, ko, vm))
