"""Every per-architecture fact, declared once: one frozen record per arch the harness builds
and boots, found by any spelling a user types.

Why: the kbuild, compile, rootfs and QEMU code each need a few of these facts (make's
ARCH, the cross prefix, Debian's arch name, the boot image, clang's __TARGET_ARCH_*,
TCG's CPU); keeping them in separate dicts let them drift and made every new verb write
its own `--arch` check. Models: virtme-ng's architectures.py, drgn vmtest's Architecture.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from harness.errors import UsageError


@dataclass(frozen=True)
class Architecture:
    name: str  # the harness's name: x86_64, arm64
    kernel_arch: str  # make ARCH= (and the tree's arch/<dir>)
    uname: str  # `uname -m` on such a machine
    debian: str  # dpkg's name (apt, mmdebstrap --architectures)
    gnu_triplet: str  # multiarch dirs (/usr/lib/<triplet>) and the cross prefix
    boot_image: str  # the image kbuild makes, relative to the build dir
    target_arch_define: str  # clang -D__TARGET_ARCH_<this> for BPF programs (bpf_tracing.h)
    tcg_cpu: str | None  # QEMU -cpu under TCG when vng's default lacks what the JIT needs
    qemu_binary: str
    expected_make_steps: int  # a cold build's make lines, for progress before a build log exists
    bpf_syscall: int  # __NR_bpf, for calling bpf(2) on a host of this arch
    # LLVM's name of the target (LLVMInitialize<this>Disassembler), and the CPU and
    # features that decode all this arch's BPF JIT emits on a host of another arch
    # (progs/jit_disasm.py; on a host of this arch, the host's own, as test_progs does)
    llvm_target: str
    llvm_cross_cpu: tuple[str, str]
    aliases: tuple[str, ...] = ()  # other spellings users type

    @property
    def llvm_triple(self) -> str:
        return f"{self.uname}-unknown-linux-gnu"

    @property
    def cross_prefix(self) -> str:
        """CROSS_COMPILE for building on another host ("" on a host of this arch)."""
        return "" if self.is_host else f"{self.gnu_triplet}-"

    @property
    def boot_image_name(self) -> str:
        return self.boot_image.rsplit("/", 1)[1]

    @property
    def is_host(self) -> bool:
        return os.uname().machine == self.uname

    @property
    def spellings(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


X86_64 = Architecture(
    name="x86_64", kernel_arch="x86", uname="x86_64", debian="amd64",
    gnu_triplet="x86_64-linux-gnu", boot_image="arch/x86/boot/bzImage",
    target_arch_define="x86", tcg_cpu=None, qemu_binary="qemu-system-x86_64",
    expected_make_steps=2000, bpf_syscall=321, llvm_target="X86",
    llvm_cross_cpu=("generic", ""),  # the x86 decoder does not depend on features
    aliases=("amd64", "x86"),
)
ARM64 = Architecture(
    name="arm64", kernel_arch="arm64", uname="aarch64", debian="arm64",
    gnu_triplet="aarch64-linux-gnu", boot_image="arch/arm64/boot/Image",
    # vng's default cortex-a57 lacks the LSE atomics the arm64 BPF JIT needs for some
    # programs
    target_arch_define="arm64", tcg_cpu="max", qemu_binary="qemu-system-aarch64",
    expected_make_steps=1700, bpf_syscall=280, llvm_target="AArch64",
    # v8.5a implies LSE (ldaddal, swpal, casal), RCpc, PAuth (paciasp), BTI and SB; each
    # is also named, so it means the same to an LLVM whose v8.5a differs (14 takes it,
    # and rejects "+all"); the arm64 guests run QEMU's -cpu max, which has all of them
    llvm_cross_cpu=("generic", "+v8.5a,+lse,+rcpc,+pauth,+bti,+sb"),
    aliases=("aarch64",),
)
ARCHES: dict[str, Architecture] = {a.name: a for a in (X86_64, ARM64)}
NAMES: tuple[str, ...] = tuple(ARCHES)
_BY_SPELLING = {spelling: a for a in ARCHES.values() for spelling in a.spellings}
SPELLINGS: tuple[str, ...] = tuple(_BY_SPELLING)  # every name lookup() takes


def lookup(name: str) -> Architecture:
    """The record for any spelling (x86_64, amd64, x86, arm64, aarch64); one error listing
    them otherwise."""
    found = _BY_SPELLING.get(name.strip())
    if found is None:
        known = ", ".join(f"{a.name} ({'/'.join(a.aliases)})" for a in ARCHES.values())
        raise UsageError(f"unknown arch {name!r}: choose {known}")
    return found


def arch_arg(text: str) -> str:
    """argparse `type=` for --arch on a verb that runs one arch (a boot, a watch, a
    bisect): any spelling in, the harness name out; a list is read the same way as on
    the verbs that take several, and refused with one line."""
    try:
        chosen = arch_list(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if len(chosen) > 1:
        raise argparse.ArgumentTypeError(
            f"{text!r}: this verb runs one arch at a time (build and run take a list)")
    return chosen[0].name


def arch_list(text: str) -> list[Architecture]:
    """A comma list (`x86_64,arm64`, `amd64, aarch64`), in order, without repeats."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise UsageError(f"no arch in {text!r}: choose from {', '.join(NAMES)}")
    return list(dict.fromkeys(lookup(item) for item in items))


def host() -> Architecture:
    """This machine's architecture; a host the harness cannot build on is an error."""
    machine = os.uname().machine
    found = next((a for a in ARCHES.values() if a.uname == machine), None)
    if found is None:
        raise UsageError(f"host arch {machine} is not supported (x86_64 or arm64 hosts)")
    return found
