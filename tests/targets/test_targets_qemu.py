"""The QEMU target on a real x86_64 kernel under real QEMU: commands, files, panics, hangs.

Every test ends with no qemu-system-*/virtiofsd process of its own left (no_stray_guests).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness.targets import procs
from harness.targets.base import Target
from harness.targets.errors import (
    BootTimeout,
    CommandTimeout,
    KernelPanic,
    RemoteFileError,
    TargetGone,
)
from harness.targets.registry import open_target
from tests.helpers.terminal import default_sigint

pytestmark = [pytest.mark.slow, pytest.mark.guest]
REPO = Path(__file__).resolve().parents[2]


def _target(kernel: Any, started: list[str], **kw: Any) -> Target:
    target = open_target("qemu", kernel, cpus=1, memory="512M", **kw)
    original = target.start

    def start() -> Target:
        try:
            return original()
        finally:
            started.append(target._marker)

    target.start = start  # type: ignore[method-assign]
    return target


def test_boot_run_put_get(x86_kernel: Any, tmp_path: Path, no_stray_guests: list) -> None:
    with _target(x86_kernel, no_stray_guests, boot_timeout=90) as target:
        assert isinstance(target, Target)
        assert len(target.processes()) == 1  # QEMU, and no virtiofsd (--force-9p)
        uname = target.run("uname -r", timeout=30)
        assert uname.rc == 0 and uname.out.strip()
        release = getattr(x86_kernel, "kernel_release", None)
        if release:
            assert uname.out.strip() == release
        cmdline = target.run("cat /proc/cmdline", timeout=30)
        assert "virtme" in cmdline.out and "panic=-1" in cmdline.out
        failing = target.run("echo out; echo err >&2; exit 7", timeout=30)
        assert (failing.rc, failing.stdout, failing.stderr) == (7, b"out\n", b"err\n")

        blob = bytes(range(256)) * 4096 + b"\n@@not-a-frame 1 2 3 4 5\n"
        local = tmp_path / "blob.bin"
        local.write_bytes(blob)
        local.chmod(0o750)
        target.put(local, "/run/blob.bin", timeout=60)
        stat = target.run("stat -c '%s %a' /run/blob.bin; df -P /run | tail -1", timeout=30)
        assert stat.out.splitlines()[0] == f"{len(blob)} 750"
        assert "tmpfs" in stat.out or "run" in stat.out  # scratch lives in RAM, not on 9p
        target.get("/run/blob.bin", tmp_path / "back.bin", timeout=60)
        assert (tmp_path / "back.bin").read_bytes() == blob
        with pytest.raises(RemoteFileError):  # the guest is still up: not TargetGone
            target.get("/run/missing", tmp_path / "x", timeout=30)
        assert "Linux version" in target.console()
    assert target.processes() == []


def test_x86_guest_boots_on_the_cached_tree_with_the_host_root_on_request(
        x86_kernel: Any, no_stray_guests: list) -> None:
    """Default: the cached Debian tree, mounted cache=loose; root="host": the host's own /."""
    with _target(x86_kernel, no_stray_guests, boot_timeout=90) as target:
        root = target.run("grep ' / 9p ' /proc/mounts; cat /.harness-rootfs-ok; command -v head",
                          timeout=30)
        assert "cache=loose" in root.out or "cache=0xf" in root.out  # kernels print either
        assert "recipe" in root.out  # rootfs.py's completion stamp: the cached tree
        assert "/usr/local/sbin/head" in root.out  # busybox applets first in the loop's PATH
        # the loop shell's own stdin and stdout ($$ is the loop in a subshell too)
        port = target.run("readlink /proc/$$/fd/0; readlink /proc/$$/fd/1", timeout=30)
        assert re.fullmatch(r"/dev/vport\d+p\d+\n/dev/vport\d+p\d+\n", port.out), port.out
        init = target.run("tr '\\0' ' ' </proc/1/cmdline; echo; cut -d' ' -f2,3 "
                          "/proc/mounts; grep -ow 'debugfs\\|tracefs' /proc/filesystems",
                          timeout=30)
        assert re.match(r"/bin/busybox sh /usr/local/sbin/harness-init-[0-9a-f]{12} ", init.out)
        lines = init.out.splitlines()
        where = {"debugfs": "/sys/kernel/debug", "tracefs": "/sys/kernel/tracing"}
        kernel_has = {fs for fs in where if fs in lines}
        assert "tracefs" in kernel_has  # the suite's config has it (and not debugfs)
        for mount in ("/run tmpfs", "/tmp tmpfs", "/dev/pts devpts", "/dev/shm tmpfs",
                      "/sys/fs/cgroup cgroup2", "/proc proc", "/sys sysfs",
                      *(f"{where[fs]} {fs}" for fs in kernel_has)):
            assert mount in lines, mount
    with _target(x86_kernel, no_stray_guests, boot_timeout=90, root="host") as target:
        host = target.run("grep ' / 9p ' /proc/mounts; ls /.harness-rootfs-ok; ls -d /work; "
                          "tr '\\0' ' ' </proc/1/cmdline", timeout=30)
        assert "cache=loose" not in host.out and "cache=0xf" not in host.out
        assert "/work" in host.out and "No such file" in host.err
        assert "virtme-ng-init" in host.out  # the host's root: vng's own init

def test_panic_at_boot_is_reported_as_panic(x86_kernel: Any, no_stray_guests: list) -> None:
    # vng's rootfstype=9p comes first; ours wins, the root mount fails, the kernel panics.
    target = _target(x86_kernel, no_stray_guests, boot_timeout=60, append=["rootfstype=nope"])
    start = time.monotonic()
    with pytest.raises(KernelPanic) as info:
        target.start()
    took = time.monotonic() - start
    assert took < 60
    assert "Kernel panic - not syncing: VFS: Unable to mount root fs" in str(info.value)
    assert any("Call Trace" in line for line in info.value.lines)
    assert target.processes() == []
    print(f"panic reported after {took:.1f} s")


def test_kernel_that_never_reaches_userspace_is_a_hang(
    x86_kernel: Any, no_stray_guests: list
) -> None:
    # A root device that never appears, with rootwait: the kernel waits forever.
    target = _target(
        x86_kernel, no_stray_guests, boot_timeout=12, append=["root=/dev/vdz", "rootwait"]
    )
    start = time.monotonic()
    with pytest.raises(BootTimeout, match="no userspace within 12 s"):
        target.start()
    took = time.monotonic() - start
    assert 12 <= took < 12 + 5
    assert target.processes() == []
    print(f"boot hang reported after {took:.1f} s")


def test_command_that_never_returns_is_a_hang(x86_kernel: Any, no_stray_guests: list) -> None:
    with _target(x86_kernel, no_stray_guests, boot_timeout=90) as target:
        start = time.monotonic()
        with pytest.raises(CommandTimeout, match="hang"):
            target.run("sleep 1000", timeout=5)
        took = time.monotonic() - start
        assert 5 <= took < 5 + 5
        assert target.processes() == []  # the hung guest was stopped at once
        with pytest.raises(TargetGone):
            target.run("true", timeout=5)
        target.reboot()  # and a fresh boot works again
        assert target.run("echo back", timeout=30).out == "back\n"
    print(f"command hang reported after {took:.1f} s")


def test_exception_inside_with_stops_the_guest(x86_kernel: Any, no_stray_guests: list) -> None:
    with pytest.raises(KeyboardInterrupt), _target(x86_kernel, no_stray_guests) as target:
        assert target.run("true", timeout=30).rc == 0
        raise KeyboardInterrupt  # what Ctrl-C raises in the main thread
    assert target.processes() == []


def _spawn_cli(kernel: Any, *args: str) -> subprocess.Popen[str]:
    image = str(getattr(kernel, "boot_image", kernel))
    return subprocess.Popen(
        [sys.executable, "-m", "harness", "boot", "--image", image, *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
        # xdist workers run with SIGINT ignored, and Python only turns SIGINT into
        # KeyboardInterrupt if it was not ignored at start: give the CLI a terminal's.
        preexec_fn=default_sigint,
    )


def test_cli_panic_is_one_line_and_nonzero(x86_kernel: Any, no_stray_guests: list) -> None:
    proc = _spawn_cli(x86_kernel, "--append", "rootfstype=nope", "--boot-timeout", "60")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert err.strip().count("\n") == 0, err
    assert err.startswith("harness: error: kernel panic") and "Traceback" not in err


def _cli_marker(cli_pid: int) -> str | None:
    """The target marker of the CLI's vng child: other xdist workers boot guests too."""
    markers = [procs.marker_of(child) for child in procs.child_pids(cli_pid)]
    return next((m for m in markers if m), None)


@pytest.mark.parametrize(("how", "code"), [("ctrl-c", 130), ("kill", 143)])
def test_ctrl_c_during_a_command_leaves_no_guest(x86_kernel: Any, no_stray_guests: list,
                                                 how: str, code: int) -> None:
    """Ctrl-C (SIGINT to the foreground group) and `kill PID` (SIGTERM to the harness
    alone: pkill, a cancelled CI job) both stop the guest; a plain SIGTERM death had left
    QEMU running under init."""
    proc = _spawn_cli(x86_kernel, "--timeout", "300", "sleep 300")
    deadline = time.monotonic() + 90
    marker = None
    while time.monotonic() < deadline:  # wait for its QEMU to exist
        marker = marker or _cli_marker(proc.pid)
        if marker and procs.guest_processes(marker):
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the CLI's guest never started")
    time.sleep(3)  # let the guest reach the command
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends to the foreground
    else:
        proc.terminate()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert procs.guest_processes(marker) == []
