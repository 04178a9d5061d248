"""Targets: where kernels under test run (QEMU guests now, SSH boards later).

Program runners use only the Target protocol (base.py); QemuTarget boots a kernel with
virtme-ng (qemu.py), KVM only where the probe proved it boots (kvm.py), on a cached
Debian tree (rootfs.py) or, when asked, the host's own root; splat.py turns console text
into KernelPanic/KernelSplat errors.
"""

from harness.targets.base import CommandResult, Target

__all__ = ["CommandResult", "Target"]
