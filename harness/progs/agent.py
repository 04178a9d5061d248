#!/usr/bin/env python3
"""Target-side agent: load BPF programs with the tree's libbpf and report raw outcomes as JSON.

This file is copied to the target (a QEMU guest or a lab board) and run there
with the target's python3, so it imports nothing but the standard library and
talks to the ``libbpf.so`` built from the kernel tree for that architecture
through ctypes. Doing the loading with libbpf itself (not a home-made loader)
is the point: libbpf's own refusals (``extern (func ksym) 'X': func_proto [21]
incompatible with kernel``) are exactly what a broken kfunc BTF produces, and
they come out of ``libbpf_set_print``, which this agent captures next to the
verifier log.

It follows test_loader.c's ``run_subtest`` step by step: open the object, set
autoload on the program under test and the auxiliary ones only, log buffer and
level on the program, prog flags = kernel-probed testing flags with the
annotation's ``__flag`` edits, load, then (when asked) attach struct_ops maps,
BPF_PROG_TEST_RUN, read the BPF streams. Judging stays on the host: the agent
only reports what happened. Each job runs in a forked child, so a crash or a
hang in one load costs one result, not the whole run.

Usage::

    agent.py --libbpf /path/libbpf.so probe
    agent.py --libbpf /path/libbpf.so run JOBS.json      # JSON list of jobs -> JSON results
    agent.py --mark-console --libbpf ... run JOBS.json   # log "kfunc-harness: job ID pid N" first
    agent.py --parallel N --libbpf ... run JOBS.json     # N jobs at once (0: one per CPU)
    agent.py hid probe | hid run SCENARIO                  # uhid/hidraw plumbing (hidtool.py)

A job with ``hid`` (the harness's ``__hid`` tag) makes a /dev/uhid device
before loading, writes its id into the struct_ops map, and after attaching
runs the scenario instead of a test run (see hidtool.py).
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import struct
import sys
import time

# json's C half alone (json_loads/json_dumps below): the json package imports re, which
# imports enum; on a TCG guest the agent's imports took 0.38-0.54 s with it, 0.24-0.32 s
# without
try:
    import _json
except ImportError:  # pragma: no cover - a python3 built without it
    _json = None  # type: ignore[assignment]

SIGKILL = 9  # every Linux ABI; the signal module would import enum too

LOG_BUF_SIZE = 2 * 1024 * 1024  # TEST_LOADER_LOG_BUF_SZ
TEST_DATA_LEN = 64
STREAM_STDOUT = 1
STREAM_STDERR = 2

BPF_PROG_TYPE_SOCKET_FILTER = 1
BPF_PROG_TYPE_STRUCT_OPS = 27
BPF_PROG_TYPE_SYSCALL = 31
BPF_MAP_TYPE_STRUCT_OPS = 26
BPF_F_TEST_RND_HI32 = 1 << 2
BPF_F_TEST_REG_INVARIANTS = 1 << 7
BPF_F_ZERO_SEED = 1 << 6

# Map types test_loader lets an unprivileged load create (is_unpriv_capable_map).
_HASH_TYPES = {1, 5, 13}  # HASH, PERCPU_HASH, HASH_OF_MAPS
_UNPRIV_MAP_TYPES = {21, 2, 27, 3, 8, 6, 31, 12, 19, 4}
# PERCPU_CGROUP_STORAGE, ARRAY, RINGBUF, PROG_ARRAY, CGROUP_ARRAY, PERCPU_ARRAY,
# USER_RINGBUF, ARRAY_OF_MAPS, CGROUP_STORAGE, PERF_EVENT_ARRAY

CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 12, 21, 38, 39
_CAPS_TO_DROP = (1 << CAP_SYS_ADMIN) | (1 << CAP_NET_ADMIN) | (1 << CAP_PERFMON) | (1 << CAP_BPF)
_SYS_CAPGET = {"x86_64": 125, "aarch64": 90, "arm64": 90, "riscv64": 90, "s390x": 184}
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

_SK_BUFF_SIZE = 192  # sizeof(struct __sk_buff)
_SK_BUFF_DATA_END = 80  # offsetof(struct __sk_buff, data_end)


class TestRunOpts(ctypes.Structure):
    """struct bpf_test_run_opts (tools/lib/bpf/bpf.h)."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("data_in", ctypes.c_void_p),
        ("data_out", ctypes.c_void_p),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_void_p),
        ("ctx_out", ctypes.c_void_p),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("repeat", ctypes.c_int),
        ("duration", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


class StreamReadOpts(ctypes.Structure):
    """struct bpf_prog_stream_read_opts."""

    _fields_ = [("sz", ctypes.c_size_t)]


class ProgLoadOpts(ctypes.Structure):
    """The head of struct bpf_prog_load_opts, up to prog_flags (libbpf honours a short sz)."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("attempts", ctypes.c_int),
        ("expected_attach_type", ctypes.c_int),
        ("prog_btf_fd", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
    ]


class ObjectOpenOpts(ctypes.Structure):
    """The head of struct bpf_object_open_opts, up to btf_custom_path."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("object_name", ctypes.c_char_p),
        ("relaxed_maps", ctypes.c_bool),
        ("pin_root_path", ctypes.c_char_p),
        ("_stub", ctypes.c_uint32),
        ("kconfig", ctypes.c_char_p),
        ("btf_custom_path", ctypes.c_char_p),
    ]


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


_LIBBPF: dict[str, Libbpf] = {}


def libbpf_for(path: str) -> Libbpf:
    """One Libbpf per process and path: a job's forked child uses the one its parent made
    for the probe (typing the entry points cost each job 6-12 ms on a TCG guest)."""
    lb = _LIBBPF.get(path)
    if lb is None:
        lb = _LIBBPF[path] = Libbpf(path)
    return lb


class Libbpf:
    """The few libbpf entry points the agent needs, typed once."""

    def __init__(self, path: str) -> None:
        self.lib = ctypes.CDLL(path, use_errno=True)
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.messages: list[list[object]] = []
        self.keep_debug = False
        vp, cp, i, u32, sz = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint32,
                              ctypes.c_size_t)
        sigs = {
            "libbpf_set_print": (vp, [PRINT_FN]),
            "bpf_object__open_file": (vp, [cp, ctypes.POINTER(ObjectOpenOpts)]),
            "bpf_object__load": (i, [vp]),
            "bpf_object__close": (None, [vp]),
            "bpf_object__next_program": (vp, [vp, vp]),
            "bpf_object__next_map": (vp, [vp, vp]),
            "bpf_program__name": (cp, [vp]),
            "bpf_program__section_name": (cp, [vp]),
            "bpf_program__set_autoload": (i, [vp, ctypes.c_bool]),
            "bpf_program__set_log_buf": (i, [vp, vp, sz]),
            "bpf_program__set_log_level": (i, [vp, u32]),
            "bpf_program__flags": (u32, [vp]),
            "bpf_program__set_flags": (i, [vp, u32]),
            "bpf_program__type": (i, [vp]),
            "bpf_program__fd": (i, [vp]),
            "bpf_map__type": (i, [vp]),
            "bpf_map__name": (cp, [vp]),
            "bpf_map__map_flags": (u32, [vp]),
            "bpf_map__autocreate": (ctypes.c_bool, [vp]),
            "bpf_map__set_autocreate": (i, [vp, ctypes.c_bool]),
            "bpf_map__attach_struct_ops": (vp, [vp]),
            "bpf_map__initial_value": (vp, [vp, ctypes.POINTER(sz)]),
            "bpf_link__destroy": (i, [vp]),
            "bpf_prog_test_run_opts": (i, [i, ctypes.POINTER(TestRunOpts)]),
            "bpf_prog_load": (i, [i, cp, cp, vp, sz, ctypes.POINTER(ProgLoadOpts)]),
            "bpf_prog_get_info_by_fd": (i, [i, vp, ctypes.POINTER(u32)]),
        }
        for name, (res, args) in sigs.items():
            fn = getattr(self.lib, name)
            fn.restype = res
            fn.argtypes = args
        try:
            fn = self.lib.bpf_prog_stream_read
            fn.restype = i
            fn.argtypes = [i, u32, vp, u32, ctypes.POINTER(StreamReadOpts)]
            self.has_stream_read = True
        except AttributeError:
            self.has_stream_read = False
        self.libc.vsnprintf.restype = i
        self.libc.vsnprintf.argtypes = [cp, sz, cp, vp]
        self._fmt_buf = ctypes.create_string_buffer(65536)
        # Keep a reference: libbpf stores the bare function pointer.
        self._printer = PRINT_FN(self._print)
        self.lib.libbpf_set_print(self._printer)

    def _print(self, level: int, fmt: bytes, args: int) -> int:
        # va_list is a pointer on x86_64 and a by-reference struct on arm64:
        # handing the same pointer to vsnprintf is right on both.
        if level >= 2 and not self.keep_debug:
            return 0
        n = self.libc.vsnprintf(self._fmt_buf, len(self._fmt_buf), fmt, args)
        text = self._fmt_buf.raw[: max(0, min(n, len(self._fmt_buf) - 1))]
        self.messages.append([level, text.decode("utf-8", "replace")])
        return 0

    def programs(self, obj: int):
        prog = self.lib.bpf_object__next_program(obj, None)
        while prog:
            yield prog
            prog = self.lib.bpf_object__next_program(obj, prog)

    def maps(self, obj: int):
        m = self.lib.bpf_object__next_map(obj, None)
        while m:
            yield m
            m = self.lib.bpf_object__next_map(obj, m)


def _errno_name(err: int) -> str:
    return errno.errorcode.get(abs(err), str(err))


def testing_prog_flags(lb: Libbpf) -> int:
    """test_progs' testing_prog_flags(): the test flags this kernel accepts."""
    insns = struct.pack("=BBhiBBhi", 0xB7, 0, 0, 0, 0x95, 0, 0, 0)
    buf = ctypes.create_string_buffer(insns, len(insns))
    flags = 0
    for flag in (BPF_F_TEST_RND_HI32, BPF_F_TEST_REG_INVARIANTS):
        opts = ProgLoadOpts(sz=ctypes.sizeof(ProgLoadOpts), prog_flags=flag)
        fd = lb.lib.bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, b"flag-test", b"GPL",
                                  ctypes.cast(buf, ctypes.c_void_p), 2, ctypes.byref(opts))
        if fd >= 0:
            flags |= flag
            os.close(fd)
    return flags


def _read_int(path: str) -> int | None:
    try:
        with open(path) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def jit_enabled() -> bool:
    return (_read_int("/proc/sys/net/core/bpf_jit_enable") or 0) != 0


def unpriv_disabled() -> str:
    """Why test_loader would skip unprivileged runs here ("" when it would not): the
    sysctl, or spectre mitigations off or not known to be on (unpriv_helpers.c)."""
    if (_read_int("/proc/sys/kernel/unprivileged_bpf_disabled") or 0) != 0:
        return "kernel.unprivileged_bpf_disabled is set"
    try:
        with open("/proc/cmdline") as fh:
            tokens = fh.read().split()
    except OSError:
        tokens = []
    # unpriv_helpers.c's cmdline_contains: a token that is a prefix of the pattern
    if any("mitigations=off".startswith(token) for token in tokens):
        return "mitigations=off on the kernel command line"
    config = _kernel_config()
    if config is None:
        return "cannot tell whether CPU mitigations are on (no /boot/config-* or /proc/config.gz)"
    if "CONFIG_CPU_MITIGATIONS=y" not in config:
        return "CONFIG_CPU_MITIGATIONS is not set"
    return ""


def _kernel_config() -> list[str] | None:
    """The running kernel's config lines: /boot/config-<release>, else /proc/config.gz."""
    import gzip  # noqa: PLC0415 - only unprivileged runs need it

    for path in (f"/boot/config-{os.uname().release}", "/proc/config.gz"):
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        if data[:2] == b"\x1f\x8b":  # gzopen reads plain and gzip files alike
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError):
                continue
        return data.decode("utf-8", "replace").splitlines()
    return None


class Caps:
    """capget/capset on the calling thread, for test_loader's unprivileged mode."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.nr = _SYS_CAPGET.get(os.uname().machine)

    def _get(self) -> tuple[CapHeader, ctypes.Array]:
        if self.nr is None:
            raise OSError(errno.ENOSYS, "capget syscall number unknown for this arch")
        hdr = CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (CapData * 2)()
        if self.libc.syscall(self.nr, ctypes.byref(hdr), data) != 0:
            raise OSError(ctypes.get_errno(), "capget")
        return hdr, data

    def effective(self) -> int:
        _, data = self._get()
        return data[0].effective | (data[1].effective << 32)

    def set_effective(self, caps: int) -> None:
        hdr, data = self._get()
        data[0].effective = caps & 0xFFFFFFFF
        data[1].effective = (caps >> 32) & 0xFFFFFFFF
        if self.libc.syscall(self.nr + 1, ctypes.byref(hdr), data) != 0:
            raise OSError(ctypes.get_errno(), "capset")


def _unpriv_capable_map(lb: Libbpf, m: int) -> bool:
    mtype = lb.lib.bpf_map__type(m)
    if mtype in _HASH_TYPES:
        return not (lb.lib.bpf_map__map_flags(m) & BPF_F_ZERO_SEED)
    return mtype in _UNPRIV_MAP_TYPES


def _test_run(lb: Libbpf, fd: int, empty_opts: bool, linear_size: int) -> dict:
    """do_prog_test_run(): 64 zero bytes in, 256 out, repeat 1 (empty opts for SYSCALL)."""
    data_in = ctypes.create_string_buffer(TEST_DATA_LEN)
    data_out = ctypes.create_string_buffer(TEST_DATA_LEN << 2)
    ctx = ctypes.create_string_buffer(_SK_BUFF_SIZE)
    opts = TestRunOpts(sz=ctypes.sizeof(TestRunOpts))
    if not empty_opts:
        opts.data_in = ctypes.cast(data_in, ctypes.c_void_p)
        opts.data_size_in = TEST_DATA_LEN
        opts.data_out = ctypes.cast(data_out, ctypes.c_void_p)
        opts.data_size_out = TEST_DATA_LEN << 2
        opts.repeat = 1
        if linear_size:
            struct.pack_into("=I", ctx, _SK_BUFF_DATA_END, linear_size)
            opts.ctx_in = ctypes.cast(ctx, ctypes.c_void_p)
            opts.ctx_size_in = _SK_BUFF_SIZE
    start = time.monotonic()
    err = lb.lib.bpf_prog_test_run_opts(fd, ctypes.byref(opts))
    out = {"run_ms": round((time.monotonic() - start) * 1000, 3)}
    if err:
        e = ctypes.get_errno()
        out.update(run_error=f"bpf_prog_test_run: {_errno_name(e)} ({os.strerror(e)})")
        return out
    retval = opts.retval
    out["retval"] = retval - (1 << 32) if retval >= 1 << 31 else retval
    return out


# struct bpf_prog_info: the two xlated fields test_loader's get_xlated_program uses
# struct bpf_prog_info (uapi/linux/bpf.h): its size and the offsets the agent reads
_INFO_SIZE = 256
_JITED_LEN, _XLATED_LEN, _JITED_INSNS, _XLATED_INSNS = 16, 20, 24, 32
_NR_JITED_FUNC_LENS, _JITED_FUNC_LENS = 108, 120


def _prog_info(lb: Libbpf, fd: int, fields: dict | None = None):  # noqa: ANN202
    """`fd`'s bpf_prog_info, `fields` (offset -> (struct format, value)) set in it first:
    the buffers the kernel fills and their lengths. A str (the failure) if the call fails."""
    info = ctypes.create_string_buffer(_INFO_SIZE)
    for off, (fmt, value) in (fields or {}).items():
        struct.pack_into(fmt, info, off, value)
    size = ctypes.c_uint32(_INFO_SIZE)
    if lb.lib.bpf_prog_get_info_by_fd(fd, info, ctypes.byref(size)):
        return f"bpf_prog_get_info_by_fd: {_errno_name(ctypes.get_errno())}"
    return info


def _xlated(lb: Libbpf, fd: int) -> dict:
    """The program's translated instructions as hex (the host disassembles them)."""
    info = _prog_info(lb, fd)
    if isinstance(info, str):
        return {"error": info}
    length = struct.unpack_from("=I", info, _XLATED_LEN)[0]
    insns = ctypes.create_string_buffer(length)
    info = _prog_info(lb, fd, {_XLATED_LEN: ("=I", length),
                               _XLATED_INSNS: ("=Q", ctypes.addressof(insns))})
    if isinstance(info, str):
        return {"error": info}
    return {"hex": insns.raw[:length].hex()}


def _jited(lb: Libbpf, fd: int) -> dict:
    """The program's JIT image as hex and each function's length in it (the host
    disassembles them with LLVM: jit_disasm.py), as get_jited_program_text reads them."""
    info = _prog_info(lb, fd)
    if isinstance(info, str):
        return {"error": info}
    length = struct.unpack_from("=I", info, _JITED_LEN)[0]
    funcs = struct.unpack_from("=I", info, _NR_JITED_FUNC_LENS)[0]
    image = ctypes.create_string_buffer(max(length, 1))
    lens = (ctypes.c_uint32 * max(funcs, 1))()
    info = _prog_info(lb, fd, {_JITED_LEN: ("=I", length),
                               _JITED_INSNS: ("=Q", ctypes.addressof(image)),
                               _NR_JITED_FUNC_LENS: ("=I", funcs),
                               _JITED_FUNC_LENS: ("=Q", ctypes.addressof(lens))})
    if isinstance(info, str):
        return {"error": info}
    return {"hex": image.raw[:length].hex(), "func_lens": list(lens)[:funcs]}


def _read_stream(lb: Libbpf, fd: int, stream_id: int) -> dict:
    if not lb.has_stream_read:
        return {"rc": -errno.ENOSYS, "text": "", "error": "libbpf lacks bpf_prog_stream_read"}
    buf = ctypes.create_string_buffer(LOG_BUF_SIZE)
    opts = StreamReadOpts(sz=ctypes.sizeof(StreamReadOpts))
    ret = lb.lib.bpf_prog_stream_read(fd, stream_id, buf, LOG_BUF_SIZE - 1, ctypes.byref(opts))
    if ret < 0:
        e = ctypes.get_errno()
        return {"rc": ret, "text": "", "error": f"{_errno_name(e)} ({os.strerror(e)})"}
    return {"rc": ret, "text": buf.raw[:ret].decode("utf-8", "replace")}


def _find_program(lb: Libbpf, obj: int, name: str) -> int | None:
    for prog in lb.programs(obj):
        if lb.lib.bpf_program__name(prog).decode() == name:
            return prog
    return None


def _struct_ops_programs(lb: Libbpf, m: int, progs: set[int]) -> set[int]:
    """Programs a struct_ops map refers to.

    libbpf keeps the map's value as a "shadow" struct in which every function
    pointer member holds the ``struct bpf_program *`` it was set to, and hands
    it out through ``bpf_map__initial_value`` (documented in libbpf.c); scanning
    its pointer-sized slots for known program handles needs no BTF walk.
    """
    size = ctypes.c_size_t(0)
    data = lb.lib.bpf_map__initial_value(m, ctypes.byref(size))
    if not data or size.value < 8:
        return set()
    words = (ctypes.c_uint64 * (size.value // 8)).from_address(data)
    return {w for w in words if w in progs}


def _isolate_struct_ops(lb: Libbpf, obj: int, selected: set[int]) -> list[int]:
    """Create only the struct_ops maps that use a selected program; return those maps.

    Harness deviation from test_loader, for struct_ops programs under test only:
    test_loader leaves every struct_ops map of the object to be created, and
    libbpf then loads every program those maps use whatever the autoload
    selection said, so one program's expected verifier reject would fail its
    neighbours' loads. Here a map none of whose programs is selected is not
    created, so each struct_ops program is judged on its own.
    """
    progs = set(lb.programs(obj))
    kept = []
    for m in lb.maps(obj):
        if lb.lib.bpf_map__type(m) != BPF_MAP_TYPE_STRUCT_OPS:
            continue
        uses = _struct_ops_programs(lb, m, progs)
        if uses and not uses & selected:
            lb.lib.bpf_map__set_autocreate(m, False)
        elif lb.lib.bpf_map__autocreate(m):
            kept.append(m)
    return kept


def _set_hid_id(lb: Libbpf, maps: list[int], hid_id: int) -> None:
    """Write the device id into each struct hid_bpf_ops map before it is created.

    ``hid_id`` is the first member of ``struct hid_bpf_ops`` (the kernel keeps
    it first on purpose), and the kernel binds the program to that device when
    the map is attached.
    """
    for m in maps:
        size = ctypes.c_size_t(0)
        data = lb.lib.bpf_map__initial_value(m, ctypes.byref(size))
        if data and size.value >= 4:
            ctypes.c_int32.from_address(data).value = hid_id


def _load_hidtool():
    """hidtool.py, shipped next to this file (imported only by HID jobs)."""
    import importlib.util  # noqa: PLC0415

    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("hidtool", os.path.join(here, "hidtool.py"))
    if spec is None or spec.loader is None or not os.path.exists(spec.origin or ""):
        raise RuntimeError("hidtool.py must sit next to agent.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_job(lb: Libbpf, job: dict, testing_flags: int) -> dict:
    """One test_loader sub-test: open, select programs, load, run, read streams."""
    res: dict = {"id": job["id"], "program": job["program"], "loaded": False}
    if job.get("load_modes"):
        current = "jited" if jit_enabled() else "no_jited"
        if current not in job["load_modes"]:
            res["skip"] = f"load mode {current} not in {job['load_modes']}"
            return res
    unpriv = bool(job.get("unpriv"))
    caps = Caps() if unpriv else None
    saved_caps: int | None = None
    if unpriv:
        why = unpriv_disabled()
        if why:
            res["skip"] = why
            return res
        assert caps is not None
        saved_caps = caps.effective()
        caps.set_effective((saved_caps & ~_CAPS_TO_DROP) | int(job.get("caps", 0)))

    lb.keep_debug = bool(job.get("libbpf_debug"))
    lb.messages.clear()
    opts = ObjectOpenOpts(sz=ctypes.sizeof(ObjectOpenOpts))
    if job.get("object_name"):
        opts.object_name = job["object_name"].encode()
    if job.get("btf_custom_path"):  # __btf_path: CO-RE relocates against this BTF
        opts.btf_custom_path = job["btf_custom_path"].encode()
    obj = lb.lib.bpf_object__open_file(job["object"].encode(), ctypes.byref(opts))
    if not obj:
        e = ctypes.get_errno()
        res["open_error"] = f"{_errno_name(e)} ({os.strerror(e)})"
        res["libbpf_log"] = list(lb.messages)
        if saved_caps is not None and caps is not None:
            caps.set_effective(saved_caps)
        return res
    log_buf = ctypes.create_string_buffer(LOG_BUF_SIZE)
    links: list[int] = []
    hid_dev = None
    hidtool = None
    try:
        autoload = set(job.get("autoload", [])) | {job["program"]}
        tprog = None
        for prog in lb.programs(obj):
            name = lb.lib.bpf_program__name(prog).decode()
            lb.lib.bpf_program__set_autoload(prog, name in autoload)
            if name == job["program"]:
                tprog = prog
        if tprog is None:
            res["open_error"] = f"program {job['program']} not in object"
            return res
        lb.lib.bpf_program__set_log_buf(tprog, ctypes.cast(log_buf, ctypes.c_void_p),
                                        LOG_BUF_SIZE)
        lb.lib.bpf_program__set_log_level(tprog, int(job.get("log_level", 0)))
        flags = testing_flags if job.get("testing_flags", True) else 0
        for clear, value in job.get("flag_ops", []):
            flags = flags & ~value if clear else flags | value
        flags |= int(job.get("force_flags", 0))
        lb.lib.bpf_program__set_flags(tprog, lb.lib.bpf_program__flags(tprog) | flags)
        res["prog_flags"] = lb.lib.bpf_program__flags(tprog)
        for m in lb.maps(obj):
            lb.lib.bpf_map__set_autocreate(m, not unpriv or _unpriv_capable_map(lb, m))
        st_maps: list[int] = []
        if lb.lib.bpf_program__type(tprog) == BPF_PROG_TYPE_STRUCT_OPS:
            selected = {p for p in lb.programs(obj)
                        if lb.lib.bpf_program__name(p).decode() in autoload}
            st_maps = _isolate_struct_ops(lb, obj, selected)
        if job.get("hid"):
            hidtool = _load_hidtool()
            try:
                hid_dev = hidtool.create_device()
            except hidtool.HidUnavailable as exc:
                res["skip"] = f"HID: {exc}"
                return res
            except hidtool.HidError as exc:
                res["hid"] = {"ok": False, "error": f"device setup: {exc}"}
                return res
            res["hid_id"] = hid_dev.hid_id
            _set_hid_id(lb, st_maps, hid_dev.hid_id)

        start = time.monotonic()
        err = lb.lib.bpf_object__load(obj)
        res["load_ms"] = round((time.monotonic() - start) * 1000, 3)
        e = ctypes.get_errno()
        res["verifier_log"] = log_buf.value.decode("utf-8", "replace")
        res["libbpf_log"] = list(lb.messages)
        if err:
            res["load_error"] = f"{_errno_name(e)} ({os.strerror(e)})"
            return res
        res["loaded"] = True
        if saved_caps is not None and caps is not None:
            caps.set_effective(saved_caps)
            saved_caps = None
        if job.get("xlated"):  # after the caps: the kernel hides program info otherwise
            res["xlated"] = _xlated(lb, lb.lib.bpf_program__fd(tprog))
        if job.get("jited"):
            res["jited"] = _jited(lb, lb.lib.bpf_program__fd(tprog))
        if not job.get("execute"):
            return res

        for m in lb.maps(obj):
            if not lb.lib.bpf_map__autocreate(m) or lb.lib.bpf_map__type(m) != \
                    BPF_MAP_TYPE_STRUCT_OPS:
                continue
            link = lb.lib.bpf_map__attach_struct_ops(m)
            if not link:
                e = ctypes.get_errno()
                res["run_error"] = (f"bpf_map__attach_struct_ops failed for map "
                                    f"{lb.lib.bpf_map__name(m).decode()}: err=-{e}")
                return res
            links.append(link)

        if hid_dev is not None and hidtool is not None:
            # The scenario is this run's execution: struct_ops programs have no test run.
            res["hid"] = hidtool.run_scenario(hid_dev, job["hid"])
            res["libbpf_log"] = list(lb.messages)
            return res

        fd = lb.lib.bpf_program__fd(tprog)
        is_syscall = lb.lib.bpf_program__type(tprog) == BPF_PROG_TYPE_SYSCALL
        res.update(_test_run(lb, fd, is_syscall, int(job.get("linear_size", 0))))
        if job.get("read_stderr"):
            res["stderr"] = _read_stream(lb, fd, STREAM_STDERR)
        if job.get("read_stdout"):
            res["stdout"] = _read_stream(lb, fd, STREAM_STDOUT)
        then = job.get("then_run")
        if then and "run_error" not in res:
            res["then_run"] = _then_run(lb, obj, then)
        res["libbpf_log"] = list(lb.messages)
        return res
    finally:
        while links:
            lb.lib.bpf_link__destroy(links.pop())
        if hid_dev is not None:
            hid_dev.close()
        lb.lib.bpf_object__close(obj)
        if saved_caps is not None and caps is not None:
            caps.set_effective(saved_caps)


def _then_run(lb: Libbpf, obj: int, then: dict) -> dict:
    """Harness extension: poll a loaded checker program until it returns the wanted value.

    Asynchronous work (bpf_wq callbacks, task_work) finishes after the test run
    returns; the checker reads what the callbacks recorded. Polling up to a
    deadline instead of one fixed sleep keeps fast targets fast and slow (TCG)
    ones correct.
    """
    prog = _find_program(lb, obj, then["program"])
    out: dict = {"program": then["program"], "attempts": 0, "want": then.get("retval")}
    if prog is None or lb.lib.bpf_program__fd(prog) < 0:
        out["run_error"] = f"checker {then['program']} is not loaded (mark it __auxiliary)"
        return out
    fd = lb.lib.bpf_program__fd(prog)
    is_syscall = lb.lib.bpf_program__type(prog) == BPF_PROG_TYPE_SYSCALL
    deadline = time.monotonic() + float(then.get("timeout_ms", 2000)) / 1000
    while True:
        out["attempts"] += 1
        got = _test_run(lb, fd, is_syscall, 0)
        out.update(got)
        if "run_error" in got or got.get("retval") == then.get("retval"):
            return out
        if time.monotonic() >= deadline:
            return out
        time.sleep(0.005)


def _child(libbpf: str, job: dict, testing_flags: int | None, wfd: int) -> None:
    try:
        lb = libbpf_for(libbpf)
        flags = testing_prog_flags(lb) if testing_flags is None else testing_flags
        res = run_job(lb, job, flags)
        res["testing_flags"] = flags
    except Exception as exc:  # report, never die silently
        res = {"id": job.get("id"), "program": job.get("program"), "loaded": False,
               "agent_error": f"{type(exc).__name__}: {exc}"}
    data = json_dumps(res).encode()
    view = memoryview(data)
    while view:
        n = os.write(wfd, view)
        view = view[n:]
    os.close(wfd)


class _Child:
    """One job running in a forked child with a deadline; its crash or hang becomes its
    result, not the agent's."""

    def __init__(self, libbpf: str, job: dict, testing_flags: int | None,
                 timeout: float, mark: bool) -> None:
        self.job = job
        self.timeout = timeout
        self.started = time.monotonic()
        self.deadline = self.started + timeout
        self.chunks: list[bytes] = []
        self.rfd, wfd = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self.rfd)
            code = 0
            try:
                if mark:  # before anything it does: a splat's PID is this process's
                    mark_console(f"{job.get('id')} pid {os.getpid()}")
                _child(libbpf, job, testing_flags, wfd)
            except BaseException:  # noqa: BLE001 - the child must always exit here
                code = 1
            os._exit(code)
        os.close(wfd)

    def read(self) -> bool:
        """Take what the child wrote; True at its end of file."""
        chunk = os.read(self.rfd, 1 << 16)
        self.chunks.append(chunk)
        return not chunk

    def finish(self, timed_out: bool) -> dict:
        """Reap the child (killed first when past its deadline): its result."""
        os.close(self.rfd)
        if timed_out:
            os.kill(self.pid, SIGKILL)
        _, status = os.waitpid(self.pid, 0)
        job = self.job
        base = {"id": job.get("id"), "program": job.get("program"), "loaded": False}
        if timed_out:
            base["agent_error"] = f"job timed out after {self.timeout:.0f} s"
            res = base
        elif os.WIFSIGNALED(status):
            base["agent_error"] = f"job process killed by signal {os.WTERMSIG(status)}"
            res = base
        else:
            try:
                res = json_loads(b"".join(self.chunks))  # type: ignore[assignment]
            except ValueError:
                base["agent_error"] = (f"job process exited "
                                       f"{os.waitstatus_to_exitcode(status)} without JSON")
                res = base
        res["wall_ms"] = round((time.monotonic() - self.started) * 1000, 3)
        return res


def run_jobs(libbpf: str, jobs: list, testing_flags: int | None, timeout: float,
             parallel: int = 1, mark: bool = False) -> list:
    """Every job's result, in job order, with up to `parallel` jobs on the CPUs at once
    (_may_start says which may join). With `mark`, the kernel log gets ``job ID pid N``
    from each job's process as it starts and ``done ID`` as it ends, so a splat can be put
    on the jobs running then, and on the one whose PID it names (progs/isolation.py)."""
    origin = time.monotonic()
    results: list = [None] * len(jobs)
    queue = list(range(len(jobs)))[::-1]  # the next job last
    running: dict[int, tuple[int, _Child]] = {}  # read fd -> (job index, child)
    while queue or running:
        while queue and _may_start(jobs[queue[-1]], [c for _, c in running.values()],
                                   parallel):
            n = queue.pop()
            child = _Child(libbpf, jobs[n], testing_flags, timeout, mark)
            running[child.rfd] = (n, child)
        left = min(child.deadline for _, child in running.values()) - time.monotonic()
        ready = select.select(list(running), [], [], max(left, 0))[0] if left > 0 else []
        now = time.monotonic()
        for rfd, (n, child) in list(running.items()):
            ended = rfd in ready and child.read()
            if ended or now >= child.deadline:
                del running[rfd]
                results[n] = child.finish(timed_out=not ended)
                results[n]["start_ms"] = round((child.started - origin) * 1000, 3)
                if mark:
                    mark_console(child.job.get("id"), CONSOLE_DONE)
    return results


def _may_start(job: dict, running: list, parallel: int) -> bool:
    """Room for `job` beside the `running` children: none beside a job marked ``alone``
    (it may attach a struct_ops map for the whole system); a job that ``waits`` (a HID
    scenario: on its device, not on a CPU) needs no free CPU unless jobs run one by one."""
    if any(child.job.get("alone") for child in running):
        return False
    if job.get("alone"):
        return not running
    if job.get("waits") and parallel > 1:
        return True
    return sum(not child.job.get("waits") for child in running) < max(parallel, 1)


class _DecodeContext:
    """The settings _json.make_scanner reads off a json.JSONDecoder: the defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # NaN, Infinity, -Infinity


_scan = _json.make_scanner(_DecodeContext()) if _json is not None else None


def json_loads(text: str | bytes) -> object:
    """json.loads for what the host and the job children write; ValueError if malformed."""
    if isinstance(text, bytes):
        text = text.decode()
    if _scan is None:  # pragma: no cover - see the _json import
        import json  # noqa: PLC0415

        return json.loads(text)
    text = text.strip(" \t\n\r")
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        raise ValueError("no JSON value") from None
    if end != len(text):
        raise ValueError(f"extra data after the JSON value at {end}")
    return value


def json_dumps(value: object) -> str:
    """json.dumps (ASCII, keys made strings as json does) for results: dicts, lists,
    tuples, strings, numbers, booleans and None."""
    if _json is None:  # pragma: no cover - see the _json import
        import json  # noqa: PLC0415

        return json.dumps(value)
    out: list[str] = []
    _encode(value, out)
    return "".join(out)


def _encode(value: object, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_json.encode_basestring_ascii(value))
    elif value is None or isinstance(value, bool):
        out.append("null" if value is None else "true" if value else "false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_float_text(value))
    elif isinstance(value, dict):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                if key is not None and not isinstance(key, (bool, int, float)):
                    raise TypeError(f"keys must be str, int, float, bool or None, not "
                                    f"{type(key).__name__}")
                key = _float_text(key) if isinstance(key, float) else json_dumps(key)
            out.append(", " if i else "")
            out.append(_json.encode_basestring_ascii(key))
            out.append(": ")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(", ")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _float_text(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


# progs/isolation.py reads these off the console: the jobs started and not done when a
# splat came are the ones it can be put on
CONSOLE_MARK = "kfunc-harness: job "
CONSOLE_DONE = "kfunc-harness: done "


def mark_console(job_id: object, mark: str = CONSOLE_MARK) -> None:
    """One kernel log line naming a job that starts (or, with CONSOLE_DONE, ended).

    A fresh open per line: /dev/kmsg rate-limits writes per open file (10 per 5 s)."""
    try:
        fd = os.open("/dev/kmsg", os.O_WRONLY)
    except OSError:
        return
    try:
        os.write(fd, f"{mark}{job_id}\n".encode())
    except OSError:
        pass
    finally:
        os.close(fd)


def probe(libbpf: str) -> dict:
    """Facts about the target the host needs (and that every job would re-probe otherwise)."""
    lb = libbpf_for(libbpf)
    return {
        "machine": os.uname().machine,  # not platform: its import costs 0.3 s on a TCG guest
        "release": os.uname().release,
        "testing_flags": testing_prog_flags(lb),
        "jit_enabled": jit_enabled(),
        "unpriv_disabled": unpriv_disabled(),
        "stream_read": lb.has_stream_read,
        "btf_vmlinux": os.path.exists("/sys/kernel/btf/vmlinux"),
        "libbpf_log": list(lb.messages),
    }


_PROBED: dict[tuple[str, int, int, int], dict] = {}


def probe_once(libbpf: str) -> dict:
    """probe(), once per libbpf file in a process that serves many runs (bundle_main's
    --serve): a probe loads programs, ~0.1 s on a TCG guest."""
    st = os.stat(libbpf)
    key = (libbpf, st.st_ino, st.st_size, st.st_mtime_ns)
    info = _PROBED.get(key)
    if info is None:
        info = _PROBED[key] = probe(libbpf)
    return info


def main(argv: list[str]) -> int:
    args = list(argv)
    libbpf = None
    timeout = 60.0
    mark = False
    parallel = 1
    while args and args[0].startswith("--"):
        opt = args.pop(0)
        if opt == "--mark-console":
            mark = True
        elif opt == "--libbpf":
            libbpf = args.pop(0)
        elif opt == "--timeout":
            timeout = float(args.pop(0))
        elif opt == "--parallel":  # 0: one per CPU
            parallel = int(args.pop(0))
        else:
            print(f"agent: unknown option {opt}", file=sys.stderr)
            return 2
    if not args:
        print("agent: usage: agent.py --libbpf SO (probe | run JOBS.json) | hid ...",
              file=sys.stderr)
        return 2
    cmd = args.pop(0)
    if cmd == "hid":
        try:
            mod = _load_hidtool()
        except RuntimeError as exc:
            print(f"agent: {exc}", file=sys.stderr)
            return 2
        return int(mod.main(args))
    if libbpf is None:
        print("agent: --libbpf PATH is required", file=sys.stderr)
        return 2
    if cmd == "probe":
        print(json_dumps(probe(libbpf)))
        return 0
    if cmd == "run":
        with open(args[0]) as fh:
            jobs = json_loads(fh.read())
        info = probe_once(libbpf)
        results = run_jobs(libbpf, jobs, info["testing_flags"], timeout,
                           parallel or os.cpu_count() or 1, mark)
        print(json_dumps({"probe": info, "results": results}))
        return 0
    print(f"agent: unknown command {cmd}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
