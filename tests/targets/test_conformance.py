"""Run the conformance suite (conformance.py) on every target implementation.

`local` needs no kernel and `ssh` logs in to a private real sshd on 127.0.0.1 (both fast
tier); `qemu` and `qemu-arm64` boot the suite's x86_64 and arm64 kernels once each for
the module (guest tier; arm64 with --arch x86_64,arm64) and, as no_stray_guests does per
test, proves at the end that none of its guests and no orphaned qemu-system-*/virtiofsd
is left.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness.errors import UsageError
from harness.targets import procs
from harness.targets.base import Target, read_identity
from harness.targets.errors import TargetError
from harness.targets.registry import TARGETS, open_target
from tests.targets.conformance import *  # noqa: F403
from tests.targets.sshd import PrivateSshd

IMPLEMENTATIONS = [
    pytest.param(("local", None), id="local"),
    pytest.param(("ssh", None), id="ssh"),  # a real OpenSSH server on 127.0.0.1
    pytest.param(("qemu", "x86_64"), id="qemu", marks=[pytest.mark.guest, pytest.mark.slow]),
    pytest.param(("qemu", "arm64"), id="qemu-arm64",
                 marks=[pytest.mark.guest, pytest.mark.slow, pytest.mark.arm64]),
]
KERNEL_FIXTURE = {"x86_64": "x86_kernel", "arm64": "arm64_kernel"}


class _Shared:
    """One target for the module, and every QEMU marker it had (reboots make new ones)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.markers: set[str] = set()

    def note_marker(self) -> None:
        marker = getattr(self.target, "_marker", "")
        if marker:
            self.markers.add(marker)


@pytest.fixture(scope="module", params=IMPLEMENTATIONS)
def shared_target(request: pytest.FixtureRequest) -> Iterator[_Shared]:
    name, arch = request.param
    before = {pid for pid, _ in procs.guest_processes()}
    sshd = None
    if name == "qemu":
        kernel = request.getfixturevalue(KERNEL_FIXTURE[arch])
        target = open_target(name, kernel, arch, cpus=1, memory="512M", boot_timeout=90)
    elif name == "ssh":
        sshd = PrivateSshd(request.getfixturevalue("tmp_path_factory").mktemp("sshd")).start()
        target = open_target(name, board=sshd.board(), known_hosts=sshd.known_hosts)
    else:
        target = open_target(name)
    shared = _Shared(target)
    try:
        yield shared
    finally:
        shared.note_marker()
        target.close()
        if sshd is not None:
            sshd.stop()
    assert target.processes() == []
    if name == "qemu":
        for marker in shared.markers:
            assert procs.guest_processes(marker) == [], f"guest processes left for {marker}"
        orphans = [(pid, comm) for pid, comm in procs.guest_processes()
                   if pid not in before and procs.parent_pid(pid) == 1]
        assert orphans == [], f"stray guest processes: {orphans}"


@pytest.fixture
def target(shared_target: _Shared) -> Iterator[Target]:
    """The module's target, started (again, if a previous test closed it or a hang
    stopped it)."""
    shared_target.target.start()
    shared_target.note_marker()
    yield shared_target.target
    shared_target.note_marker()


# -- the registry and identity parsing: no target needed ------------------------------


def test_registry_knows_qemu_and_local_and_names_them_on_a_typo() -> None:
    assert {"qemu", "local", "ssh", "board"} <= set(TARGETS)
    known = r"\(known: board, local, qemu, ssh\)"
    with pytest.raises(UsageError, match=r"unknown target 'qmeu' " + known):
        open_target("qmeu")
    with pytest.raises(UsageError, match="needs a kernel"):
        open_target("qemu")
    with pytest.raises(UsageError, match="needs a board from the lab inventory"):
        open_target("ssh")


class _Canned:
    """A CommandProtocol answering every command with one canned result."""

    arch = "x86_64"

    def __init__(self, rc: int, stdout: bytes, stderr: bytes = b"") -> None:
        from harness.targets.base import CommandResult

        self.result = CommandResult(rc, stdout, stderr, 0.0)

    def run(self, cmd: str, timeout: float = 60.0) -> Any:
        return self.result


def test_identity_without_btf_is_a_clear_error() -> None:
    with pytest.raises(TargetError, match="no /sys/kernel/btf/vmlinux.*CONFIG_DEBUG_INFO_BTF"):
        read_identity(_Canned(3, b"6.1.0\n"))
    with pytest.raises(TargetError, match="cannot read the target's identity.*not found"):
        read_identity(_Canned(127, b"6.1.0\n", b"sh: sha256sum: not found\n"))
    ident = read_identity(_Canned(0, b"6.1.0\n" + b"ab" * 32 + b"  -\n"))
    assert (ident.release, ident.btf_sha256) == ("6.1.0", "ab" * 32)
