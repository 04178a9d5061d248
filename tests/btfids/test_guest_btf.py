"""The kernel our transformer wrote BTF for boots, and its running BTF has the rewrite."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.btf import Kind, load
from harness.kbuild.artifacts import BuildArtifacts
from harness.targets.registry import open_target

pytestmark = [pytest.mark.guest, pytest.mark.slow]


def proto_arity(btf_path: Path, name: str) -> int:
    btf = load(btf_path)
    (func_id,) = btf.find_by_name(name, Kind.FUNC)
    return len(btf[btf[func_id].type].params)


def test_python_btfids_kernel_boots_with_implicit_arg_btf(x86_build: BuildArtifacts,
                                                          tmp_path: Path) -> None:
    assert x86_build.toolchain["btfids"] == "python"
    local = tmp_path / "vmlinux.btf"
    with open_target("qemu", x86_build, memory="512M", boot_timeout=180) as guest:
        copied = guest.run("cp /sys/kernel/btf/vmlinux /tmp/vmlinux.btf", timeout=60)
        assert copied.rc == 0, copied.err
        guest.get("/tmp/vmlinux.btf", local)
    assert proto_arity(local, "bpf_wq_set_callback") == 3
    assert proto_arity(local, "bpf_wq_set_callback_impl") == 4
    assert local.read_bytes() == _btf_section(x86_build.vmlinux)  # what we built is what runs


def _btf_section(vmlinux: Path) -> bytes:
    from harness.btf.load import btf_bytes

    return btf_bytes(vmlinux, ".BTF")
