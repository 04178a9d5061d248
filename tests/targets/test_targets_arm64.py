"""arm64 under TCG with -cpu max on the cached Debian root (skips until an Image exists)."""

from __future__ import annotations

import marshal
import os
import re
from pathlib import Path
from typing import Any

import pytest
from elftools.elf.elffile import ELFFile

from harness.targets.errors import KernelPanic
from harness.targets.registry import open_target
from harness.targets.rootfs import FAST_APPLETS, ensure_rootfs

pytestmark = [pytest.mark.slow, pytest.mark.guest]


def test_arm64_boot_python_and_files(
    arm64_kernel: Any, tmp_path: Path, no_stray_guests: list
) -> None:
    root = ensure_rootfs("arm64")
    target = open_target("qemu", arm64_kernel, "arm64", root=root, memory="1G", boot_timeout=120)
    with target:
        no_stray_guests.append(target._marker)
        assert target.run("uname -m", timeout=30).out.strip() == "aarch64"
        atomics = target.run("grep -m1 -o ' atomics' /proc/cpuinfo", timeout=30)
        assert atomics.out.strip() == "atomics"  # LSE, from -cpu max
        port = target.run("readlink /dev/virtio-ports/virtme.stdin", timeout=30).out.strip()
        assert re.fullmatch(r"\.\./vport\d+p\d+", port), port  # the udev stand-in's link
        init = target.run("tr '\\0' ' ' </proc/1/cmdline", timeout=30).out
        assert "virtme-init" in init  # a root given by path: vng's bash init
        py = target.run("python3 -c 'import ctypes, json; print(json.dumps([1]))'", timeout=60)
        assert (py.rc, py.out) == (0, "[1]\n"), py.err
        (tmp_path / "f").write_bytes(b"\x00arm64\xff")
        target.put(tmp_path / "f", "/run/f", timeout=30)
        target.get("/run/f", tmp_path / "g", timeout=30)
        assert (tmp_path / "g").read_bytes() == b"\x00arm64\xff"
    assert target.processes() == []


def test_arm64_default_root_boots_on_harness_init(arm64_kernel: Any,
                                                  no_stray_guests: list) -> None:
    """The default (cached) tree boots on guest/harness-init.sh instead of vng's bash init
    (1.4-1.6 s of execs under TCG), with what the loop and the agent use."""
    with open_target("qemu", arm64_kernel, "arm64", boot_timeout=120) as target:
        no_stray_guests.append(target._marker)
        got = target.run("tr '\\0' ' ' </proc/1/cmdline; echo; "
                         "readlink /proc/$$/fd/1; touch /tmp/w && echo w; "
                         "python3 -c 'import ctypes; print(1)'", timeout=60)
        init, port, tmp, py = got.out.splitlines()
        assert re.match(r"/bin/busybox sh /usr/local/sbin/harness-init-[0-9a-f]{12}", init)
        assert re.fullmatch(r"/dev/vport\d+p\d+", port) and (tmp, py) == ("w", "1")
        assert "harness-init: starting script" in target.console()
    assert target.processes() == []


def test_arm64_panic_at_boot(arm64_kernel: Any, no_stray_guests: list) -> None:
    target = open_target("qemu", arm64_kernel, "arm64", root=ensure_rootfs("arm64"),
                         boot_timeout=120, append=["rootfstype=nope"])
    with pytest.raises(KernelPanic):
        try:
            target.start()
        finally:
            no_stray_guests.append(target._marker)
    assert target.processes() == []


def static_elf_machine(path: Path) -> tuple[str, bool]:
    with open(path, "rb") as handle:
        elf = ELFFile(handle)
        return elf["e_machine"], not any(seg["p_type"] == "PT_INTERP"
                                         for seg in elf.iter_segments())


def test_arm64_root_is_built_for_a_fast_bash_init() -> None:
    """What cuts virtme-ng's bash init under TCG: static applets, udev stand-in, .pyc."""
    root = ensure_rootfs("arm64")
    assert static_elf_machine(root / "bin/udevadm") == ("EM_AARCH64", True)
    assert os.readlink(root / "lib/systemd/systemd-udevd") == "/bin/udevadm"
    assert static_elf_machine(root / "bin/busybox") == ("EM_AARCH64", True)
    assert {os.readlink(root / "usr/local/sbin" / name) for name in FAST_APPLETS} == {
        "/bin/busybox"}
    pyc = next((root / "usr/lib").glob("python3.*/json/__pycache__/__init__.cpython-3*.pyc"))
    with open(pyc, "rb") as handle:
        handle.read(16)
        assert marshal.load(handle).co_filename.startswith("/usr/lib/python3.")
