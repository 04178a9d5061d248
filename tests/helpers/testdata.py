"""Real BTF checked in under tests/data, so the fast tier needs no kernel build.

``vmlinux-7.3-x86_64.btf.xz`` is the .BTF of this project's own default kernel
(Linux 7.3.4, x86_64, the project's kconfig fragments, pahole 1.32, the Python
resolve_btfids): real kernel BTF with kfunc decl tags, ``KF_IMPLICIT_ARGS``
prototypes, ``_impl`` functions and arena type attributes. Remake it after a change
to the default kernel with::

    python3 -m tests.helpers.testdata          # builds (or takes from the cache), then writes
"""

from __future__ import annotations

import functools
import lzma
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"
VMLINUX_73 = DATA / "vmlinux-7.3-x86_64.btf.xz"


@functools.cache
def vmlinux_73() -> bytes:
    """The raw .BTF of the default 7.3 x86_64 kernel."""
    return lzma.decompress(VMLINUX_73.read_bytes())


def remake(vmlinux: Path, out: Path = VMLINUX_73) -> int:
    """Write `vmlinux`'s .BTF, xz-compressed, to `out` (atomically); returns its size."""
    from harness.btf.load import btf_bytes
    from harness.cache import atomic_write

    data = lzma.compress(btf_bytes(vmlinux), preset=9 | lzma.PRESET_EXTREME)
    atomic_write(out, data)
    return len(data)


def main() -> int:
    from tests.helpers.kernels import default_kernel

    artifacts = default_kernel("x86_64")
    size = remake(artifacts.vmlinux)
    print(f"{VMLINUX_73}: {size} bytes from {artifacts.vmlinux} "
          f"({artifacts.kernel_release}, {artifacts.toolchain.get('pahole', '?')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
