"""Debug-stripped copies of the binaries a run ships to a target, cached by source stat.

bpf_testmod.ko and the x86_64 libbpf.so are mostly DWARF (788 KB -> 114 KB and
1.9 MB -> 0.5 MB); the bundle crosses a TCG guest's virtio-serial port at 2-6 MB/s, so
that is a third of a second per fresh guest. `--strip-debug` is what
`make modules_install INSTALL_MOD_STRIP=1` does: .BTF, .BTF.base and .BTF_ids stay, so
the verifier sees the same module. The published artifacts keep their debug info.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from harness.arch import lookup
from harness.cache import cache_dir


def lean_copy(path: Path, arch: str) -> Path:
    """`path` without debug sections, or `path` itself when objcopy cannot strip it."""
    try:
        st = path.stat()
    except OSError:
        return path
    key = hashlib.sha256(f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    lean = cache_dir("progs", "lean") / f"{key.hexdigest()[:20]}-{path.name}"
    if lean.exists():
        return lean
    tmp = lean.with_name(f".{lean.name}.{os.getpid()}")
    try:
        proc = subprocess.run([f"{lookup(arch).cross_prefix}objcopy", "--strip-debug", str(path),
                               str(tmp)], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        tmp.unlink(missing_ok=True)
        return path
    if proc.returncode != 0:  # not an ELF we can strip: ship it as it is
        tmp.unlink(missing_ok=True)
        return path
    os.replace(tmp, lean)
    return lean
