"""The running kernel's own BTF checker as an oracle: BPF_BTF_LOAD with a log buffer.

Why: "the harness accepts this BTF" must mean "the kernel would load it"; the only
complete statement of the kernel's rules is kernel/bpf/btf.c, run by bpf(BPF_BTF_LOAD).
Needs CAP_BPF (root on the hosts here); the blob is loaded, its fd closed at once.
"""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass

from harness.arch import host

BPF_BTF_LOAD = 18
LOG_SIZE = 16 * 2**20  # the kernel's log limit is UINT_MAX >> 2; vmlinux logs stay small


class _BtfLoadAttr(ctypes.Structure):
    """union bpf_attr's BPF_BTF_LOAD member (include/uapi/linux/bpf.h)."""

    _fields_ = [
        ("btf", ctypes.c_uint64),
        ("btf_log_buf", ctypes.c_uint64),
        ("btf_size", ctypes.c_uint32),
        ("btf_log_size", ctypes.c_uint32),
        ("btf_log_level", ctypes.c_uint32),
        ("btf_log_true_size", ctypes.c_uint32),
        ("btf_flags", ctypes.c_uint32),
        ("btf_token_fd", ctypes.c_uint32),
    ]


@dataclass(frozen=True)
class KernelVerdict:
    """What BPF_BTF_LOAD said: loaded, or the errno and the checker's log."""

    loaded: bool
    errno: int
    log: str

    @property
    def reason(self) -> str:
        """The checker's last log line (its verdict), else the errno's name."""
        if self.loaded:
            return "loaded"
        lines = [ln for ln in self.log.splitlines() if ln.strip()]
        if lines:
            return lines[-1]
        return errno.errorcode.get(self.errno, str(self.errno)) if self.errno else "loaded"


def kernel_load(data: bytes, *, log_level: int = 1) -> KernelVerdict:
    """Load `data` (base BTF) into the running kernel and say what its checker said."""
    libc = ctypes.CDLL(None, use_errno=True)
    blob = ctypes.create_string_buffer(data, len(data))
    log = ctypes.create_string_buffer(LOG_SIZE)
    attr = _BtfLoadAttr(btf=ctypes.addressof(blob), btf_log_buf=ctypes.addressof(log),
                        btf_size=len(data), btf_log_size=LOG_SIZE, btf_log_level=log_level)
    fd = libc.syscall(host().bpf_syscall, BPF_BTF_LOAD, ctypes.byref(attr),
                      ctypes.sizeof(attr))
    err = ctypes.get_errno() if fd < 0 else 0
    if fd >= 0:
        os.close(fd)
    text = log.value.decode("utf-8", "replace")
    if fd < 0 and err == errno.ENOSPC:  # the log did not fit; the verdict stands
        text += "\n(log truncated)"
    return KernelVerdict(fd >= 0, err, text)
