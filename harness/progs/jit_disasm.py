"""test_progs' ``get_jited_program_text()``, reproduced on the host over libLLVM's C API.

test_loader.c checks ``__jited("...")`` expectations against the text that selftests'
jit_disasm_helpers.c makes of a loaded program's JIT image. That code runs inside
test_progs and needs libLLVM, which the harness's guests do not have; so the agent only
fetches the image and ``bpf_prog_info``'s ``jited_func_lens`` on the target, and this
module makes the same text on the host, where the patterns are matched.

What it reproduces, per jit_disasm_helpers.c (Linux 7.3): for each JITed function,
``"func #<i>:\\n"``, the function's lines, then ``"\\n"``. A function is disassembled
twice with one LLVM disassembler (``LLVMCreateDisasmCPUFeatures`` with a symbol lookup
callback, ``PrintImmHex`` on): the first pass collects branch targets inside the
function (at most 32, duplicates included), which are sorted and named ``L0``, ``L1``,
...; the second prints each instruction as ``"<pc hex>:\\t"``, its bytes as ``"%02x "``
padded with spaces to 36 columns (never cut), ``"<label>:"`` when the pc is a label
(found with glibc's bsearch, which matters when a target repeats), and LLVM's text cut
to 63 characters (the C code's 64-byte buffer); branches to a label print its name.
Bytes LLVM cannot decode raise :class:`JitDisasmError` (the C code fails the test).

Which LLVM: ``HARNESS_LIBLLVM`` (a path) if set and loadable, else the newest libLLVM
that loads: the system's (``/usr/lib/llvm-*/lib``, ``/usr/lib/<triplet>``) and any
under the harness cache's toolchains (whose newer builds may need a newer glibc than
this Python's, and are skipped when they fail to load). It is loaded on first use, once
per process; one that only loads under its toolchain's own loader (the pinned clang-21's
libLLVM 21 needs glibc 2.38) runs in a child Python started through that loader, one
child kept for the images to come. The newest matters: LLVM 15 prints an arm64 branch
to the kernel as ``bl -0xd5fcb0``, LLVM 21 (what BPF CI builds test_progs with) as
``bl 0xffffffffff2a0350``, which the selftests' ``bl 0x{{.*}}`` expects.
Only the X86 and AArch64 targets are initialised, through their exported
``LLVMInitialize<T>TargetInfo/TargetMC/Disassembler`` (``LLVMInitializeAll*`` are
static inline in the headers).

CPU and features: the C code uses the host's, as test_progs runs on the target. Here
that holds only when the image's arch is the host's; an arm64 image on another host
gets ``Architecture.llvm_cross_cpu`` (harness.arch), a superset of what the arm64 JIT
emits (the harness's arm64 guests run QEMU's ``-cpu max``, which has all of it), so
``bti``/``paciasp``/``sb`` print by name, not as ``hint``. ``+all`` would do on LLVM
15 but LLVM 14 rejects it (with a warning on stderr), hence the explicit list.
"""

from __future__ import annotations

import atexit
import ctypes
import glob
import json
import os
import platform
import re
import select
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from harness.arch import ARCHES
from harness.cache import cache_root
from harness.errors import HarnessError

__all__ = [
    "JitDisasmError", "available",
    "jited_program_text", "library_path",
]

# llvm-c/Disassembler.h and jit_disasm_helpers.c.
_PRINT_IMM_HEX = 2  # LLVMDisassembler_Option_PrintImmHex
_REF_NONE = 0  # LLVMDisassembler_ReferenceType_InOut_None
_REF_IN_BRANCH = 1  # LLVMDisassembler_ReferenceType_In_Branch
_MAX_LABELS = 32  # MAX_LOCAL_LABELS
_BUF_SZ = 64  # disasm_one_func's buf: 63 characters and the NUL
_BYTE_COLUMNS = 12 * 3  # instruction bytes are padded to this width
_ERROR_BYTES = 16  # bytes shown for an instruction LLVM cannot decode

_LOOKUP = ctypes.CFUNCTYPE(
    # const char *(*)(void *DisInfo, uint64_t ReferenceValue, uint64_t *ReferenceType,
    #                 uint64_t ReferencePC, const char **ReferenceName); returned as an
    # address so ctypes keeps no temporary (it warns of a leak for a returned bytes).
    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64, ctypes.POINTER(ctypes.c_uint64),
    ctypes.c_uint64, ctypes.POINTER(ctypes.c_char_p),
)

_LIBRARY_NAME = re.compile(r"^libLLVM(?:-(\d+(?:\.\d+)*))?\.so(?:\.(\d+(?:\.\d+)*))?$")
_SYSTEM_GLOBS = (
    "/usr/lib/llvm-*/lib/libLLVM*.so*",
    "/usr/lib/*-linux-gnu/libLLVM*.so*",
    "/usr/lib64/libLLVM*.so*",
    "/usr/lib/libLLVM*.so*",
)
_TOOLCHAIN_GLOBS = (
    "toolchains/*/root/usr/lib/*-linux-gnu/libLLVM*.so*",
    "toolchains/*/root/usr/lib/llvm-*/lib/libLLVM*.so*",
)
_REQUIRED = (
    "LLVMCreateDisasmCPUFeatures", "LLVMSetDisasmOptions", "LLVMDisasmInstruction",
    "LLVMDisasmDispose", "LLVMGetHostCPUName", "LLVMGetHostCPUFeatures", "LLVMDisposeMessage",
)


class JitDisasmError(HarnessError):
    """The JIT image cannot be turned into get_jited_program_text's text."""


# harness.kbuild.toolchains.NATIVE_STAMP: a pinned toolchain's dir names its own loader
# and library path in this file (restated: kbuild is heavier than this child needs)
_NATIVE_STAMP = ".native"
_REPO = Path(__file__).resolve().parents[2]
_CHILD_TIMEOUT = 120.0  # seconds for one image: LLVM never takes more than a moment
_CHILD = ("import sys; sys.path.insert(0, sys.argv[1]); "
          "from harness.progs.jit_disasm import _child_main; _child_main()")


@dataclass
class _Remote:
    """A libLLVM that loads only under its toolchain's loader: a child Python run through
    that loader (HARNESS_LIBLLVM naming the library) answers one JSON line per image, and
    stays up for the next (starting it costs ~0.2 s); it ends when this process does."""

    path: str
    loader: str
    libpath: str
    unsupported: dict[str, str]
    proc: subprocess.Popen | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ask(self, request: dict) -> dict:
        """One request to the child (_child_main); its JSON answer."""
        with self.lock:
            for attempt in (1, 2):  # a child that died is started once more
                try:
                    answer = json.loads(self._exchange(json.dumps(request)))
                    break
                except (OSError, ValueError) as exc:
                    self.close()
                    if attempt == 2:
                        raise JitDisasmError(
                            f"LLVM child through {self.loader} failed: {exc}") from None
        if not isinstance(answer, dict):
            raise JitDisasmError(f"LLVM child through {self.loader} answered {answer!r}")
        return answer

    def _exchange(self, line: str) -> str:
        if self.proc is None or self.proc.poll() is not None:
            env = dict(os.environ, HARNESS_LIBLLVM=self.path)
            self.proc = subprocess.Popen(
                [self.loader, "--library-path", self.libpath, sys.executable, "-S", "-c",
                 _CHILD, str(_REPO)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, text=True, env=env)
            atexit.register(self.close)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        if not select.select([self.proc.stdout], [], [], _CHILD_TIMEOUT)[0]:
            raise OSError(f"no answer in {_CHILD_TIMEOUT} s")
        answer = self.proc.stdout.readline()
        if not answer:
            raise OSError(f"it exited ({self.proc.wait()})")
        return answer

    def close(self) -> None:
        """End the child (its stdin closed, it returns); kill it if it does not."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()


def _remote(path: str) -> _Remote | None:
    """`path` through its pinned toolchain's loader, if it has one and loads there."""
    for parent in Path(path).parents:
        stamp = parent / _NATIVE_STAMP
        if stamp.is_file():
            loader, libpath = (stamp.read_text().split("\n") + ["", ""])[:2]
            break
    else:
        return None
    remote = _Remote(path, loader, libpath, {})
    try:
        answer = remote.ask({"probe": True})
    except JitDisasmError:
        return None
    if answer.get("path") != path:  # it fell back to another library: not this one
        return None
    remote.unsupported = dict(answer.get("unsupported", {}))
    return remote


def _child_main() -> None:
    """The child's side of _Remote.ask: a JSON request per line on stdin, a JSON answer per
    line on stdout, until stdin ends."""
    for line in sys.stdin:
        request = json.loads(line)
        llvm = _llvm()
        if isinstance(llvm, str):
            answer: dict = {"error": llvm}
        elif request.get("probe"):
            answer = {"path": llvm.path, "unsupported": llvm.unsupported}
        else:
            try:
                answer = {"text": jited_program_text(bytes.fromhex(request["image"]),
                                                     request["func_lens"], request["arch"])}
            except JitDisasmError as exc:
                answer = {"error": str(exc)}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


@dataclass
class _Llvm:
    """A loaded libLLVM and what it can disassemble."""

    path: str
    lib: ctypes.CDLL
    unsupported: dict[str, str]  # arch -> why its target is missing
    host_cpu: tuple[bytes, bytes]  # LLVMGetHostCPUName, LLVMGetHostCPUFeatures


_lock = threading.Lock()
_loaded: _Llvm | _Remote | str | None = None  # the library, or why none loads


def _version(path: str) -> tuple[int, ...] | None:
    """The LLVM version in a libLLVM file name (libLLVM-15.so.1, libLLVM.so.21.1), or
    None for a name that is not the monolithic libLLVM."""
    match = _LIBRARY_NAME.match(os.path.basename(path))
    if match is None:
        return None
    number = match.group(1) or match.group(2)
    return tuple(int(part) for part in number.split(".")) if number else (0,)


def _candidates() -> list[str]:
    """HARNESS_LIBLLVM, then every libLLVM found, newest first (one path per real file)."""
    root = cache_root()
    patterns = list(_SYSTEM_GLOBS) + [str(root / pattern) for pattern in _TOOLCHAIN_GLOBS]
    found: dict[str, tuple[int, ...]] = {}
    for pattern in patterns:
        for path in glob.glob(pattern):
            real = os.path.realpath(path)
            version = _version(real) or _version(path)
            if version is not None and os.path.isfile(real):
                found[real] = max(version, found.get(real, version))
    ordered = sorted(found, key=lambda p: (found[p], p), reverse=True)
    explicit = os.environ.get("HARNESS_LIBLLVM")
    if explicit:
        real = os.path.realpath(explicit)
        return [explicit] + [p for p in ordered if p != real]
    return ordered


def _message(lib: ctypes.CDLL, name: str) -> bytes:
    """Call an LLVM function returning a message, copy it, and free it with LLVM."""
    pointer = getattr(lib, name)()
    try:
        return ctypes.string_at(pointer) if pointer else b""
    finally:
        if pointer:
            lib.LLVMDisposeMessage(pointer)


def _open(path: str) -> _Llvm:
    """Load one libLLVM, declare the C API used and initialise the X86/AArch64 targets."""
    lib = ctypes.CDLL(path)  # OSError when it does not load (glibc too old, ...)
    missing = [name for name in _REQUIRED if not hasattr(lib, name)]
    if missing:
        raise OSError(f"no {missing[0]} in it")
    lib.LLVMCreateDisasmCPUFeatures.restype = ctypes.c_void_p
    lib.LLVMCreateDisasmCPUFeatures.argtypes = [
        ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int,
        ctypes.c_void_p, _LOOKUP,
    ]
    lib.LLVMSetDisasmOptions.restype = ctypes.c_int
    lib.LLVMSetDisasmOptions.argtypes = [ctypes.c_void_p, ctypes.c_uint64]
    lib.LLVMDisasmInstruction.restype = ctypes.c_size_t
    lib.LLVMDisasmInstruction.argtypes = [
        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64,
        ctypes.c_char_p, ctypes.c_size_t,
    ]
    lib.LLVMDisasmDispose.restype = None
    lib.LLVMDisasmDispose.argtypes = [ctypes.c_void_p]
    lib.LLVMDisposeMessage.restype = None
    lib.LLVMDisposeMessage.argtypes = [ctypes.c_void_p]
    for name in ("LLVMGetHostCPUName", "LLVMGetHostCPUFeatures"):
        getattr(lib, name).restype = ctypes.c_void_p
        getattr(lib, name).argtypes = []
    unsupported: dict[str, str] = {}
    for arch, record in ARCHES.items():
        inits = [f"LLVMInitialize{record.llvm_target}{part}" for part in ("TargetInfo", "TargetMC",
                                                              "Disassembler")]
        absent = [name for name in inits if not hasattr(lib, name)]
        if absent:
            unsupported[arch] = f"{path} has no {absent[0]}: no {arch} disassembler"
            continue
        for name in inits:
            getattr(lib, name).restype = None
            getattr(lib, name)()
    if len(unsupported) == len(ARCHES):
        raise OSError("neither the X86 nor the AArch64 disassembler is in it")
    host = (_message(lib, "LLVMGetHostCPUName"), _message(lib, "LLVMGetHostCPUFeatures"))
    return _Llvm(path, lib, unsupported, host)


def _llvm() -> _Llvm | _Remote | str:
    """The process's libLLVM, loaded on first use (or reached through its toolchain's
    loader); or why none loads (also cached)."""
    global _loaded
    with _lock:
        if _loaded is None:
            failures: list[str] = []
            for path in _candidates():
                try:
                    _loaded = _open(path)
                    break
                except OSError as exc:
                    remote = None if os.environ.get("HARNESS_LIBLLVM") else _remote(path)
                    if remote is not None:
                        _loaded = remote
                        break
                    failures.append(f"{path}: {' '.join(str(exc).split())}")
            else:
                _loaded = ("no libLLVM loads: " + "; ".join(failures) if failures else
                           "no libLLVM found (install libllvm<N> or set HARNESS_LIBLLVM)")
        return _loaded


def available(arch: str | None = None) -> str | None:
    """None when an LLVM disassembler (for `arch`, if given) loads here, else the one-line
    reason, for a skip."""
    llvm = _llvm()
    if isinstance(llvm, str):
        return llvm
    if arch is None:
        return None
    if arch not in ARCHES:
        return f"unknown arch {arch!r} ({' or '.join(ARCHES)})"
    return llvm.unsupported.get(arch)


def library_path() -> str | None:
    """The path of the libLLVM in use, None when none loads (for logs and tests)."""
    llvm = _llvm()
    return None if isinstance(llvm, str) else llvm.path


def _target(llvm: _Llvm, arch: str) -> tuple[bytes, bytes, bytes]:
    """Triple, CPU and features for `arch`: the host's CPU when the image is the host's."""
    record = ARCHES[arch]
    triple = record.llvm_triple.encode()
    if platform.machine().lower() == record.uname:
        return triple, *llvm.host_cpu
    cpu, features = record.llvm_cross_cpu
    return triple, cpu.encode(), features.encode()


@dataclass
class _Labels:
    """jit_disasm_helpers.c's struct local_labels, for one function."""

    prog_len: int
    print_phase: bool = False
    pcs: list[int] = field(default_factory=list)
    names: list[ctypes.Array[ctypes.c_char]] = field(default_factory=list)  # kept alive

    def lookup(self, _info: int | None, value: int, ref_type: ctypes._Pointer,
               _ref_pc: int, ref_name: ctypes._Pointer) -> int | None:
        """lookup_symbol(): collect branch targets, then name those that are labels."""
        kind = ref_type[0]
        ref_type[0] = _REF_NONE
        ref_name[0] = None
        if kind != _REF_IN_BRANCH:
            return None
        if self.print_phase:
            for pc, name in zip(self.pcs, self.names, strict=True):
                if pc == value:
                    return ctypes.addressof(name)
        elif len(self.pcs) < _MAX_LABELS and value < self.prog_len:
            self.pcs.append(value)
        return None

    def at(self, pc: int) -> int | None:
        """The label index glibc's bsearch finds for `pc` (any of equal ones: its probe)."""
        low, high = 0, len(self.pcs)
        while low < high:
            middle = (low + high) // 2
            if pc < self.pcs[middle]:
                high = middle
            elif pc > self.pcs[middle]:
                low = middle + 1
            else:
                return middle
        return None


def _one_func(llvm: _Llvm, arch: str, code: bytes, func: int) -> str:
    """disasm_one_func(): the lines of one JITed function."""
    labels = _Labels(len(code))
    callback = _LOOKUP(labels.lookup)  # referenced until the context is disposed
    triple, cpu, features = _target(llvm, arch)
    lib = llvm.lib
    ctx = lib.LLVMCreateDisasmCPUFeatures(triple, cpu, features, None, 0, None, callback)
    if not ctx:
        raise JitDisasmError(f"LLVM ({llvm.path}) made no disassembler for {triple.decode()} "
                             f"cpu {cpu.decode()}")
    try:
        if lib.LLVMSetDisasmOptions(ctx, _PRINT_IMM_HEX) != 1:
            raise JitDisasmError(f"LLVM ({llvm.path}) refused the PrintImmHex option")
        image = ctypes.create_string_buffer(code, len(code))
        base = ctypes.addressof(image)
        out = ctypes.create_string_buffer(_BUF_SZ)

        def disasm(pc: int, out_size: int) -> int:
            size = lib.LLVMDisasmInstruction(ctx, base + pc, len(code) - pc, pc,
                                             out, out_size)
            if size > 0:
                return size
            shown = " ".join(f"{b:02x}" for b in code[pc:pc + _ERROR_BYTES])
            raise JitDisasmError(f"can't disassemble {arch} JIT code at offset {pc:#x} of "
                                 f"func #{func}: {shown}")

        pc = 0
        while pc < len(code):  # discover labels
            pc += disasm(pc, 1)
        labels.pcs.sort()
        labels.names = [ctypes.create_string_buffer(f"L{i}".encode())
                        for i in range(len(labels.pcs))]
        labels.print_phase = True
        lines = []
        pc = 0
        while pc < len(code):  # print with labels
            size = disasm(pc, _BUF_SZ)
            index = labels.at(pc)
            label = "" if index is None else f"L{index}:"
            raw = "".join(f"{b:02x} " for b in code[pc:pc + size])
            text = out.value.decode("utf-8", "replace")
            lines.append(f"{pc:x}:\t{raw.ljust(_BYTE_COLUMNS)}{label}{text}\n")
            pc += size
        return "".join(lines)
    finally:
        lib.LLVMDisasmDispose(ctx)


def jited_program_text(image: bytes, func_lens: list[int], arch: str) -> str:
    """get_jited_program_text's text for a JIT image of `arch` ("x86_64" or "arm64"),
    cut into functions by bpf_prog_info's jited_func_lens."""
    if arch not in ARCHES:
        raise JitDisasmError(f"no JIT disassembly for arch {arch!r} ({' or '.join(ARCHES)})")
    if any(length < 0 for length in func_lens) or sum(func_lens) > len(image):
        raise JitDisasmError(f"jited_func_lens {list(func_lens)} do not fit a "
                             f"{len(image)}-byte JIT image")
    llvm = _llvm()
    if isinstance(llvm, str):
        raise JitDisasmError(llvm)
    if arch in llvm.unsupported:
        raise JitDisasmError(llvm.unsupported[arch])
    if isinstance(llvm, _Remote):
        answer = llvm.ask({"image": bytes(image).hex(), "func_lens": list(func_lens),
                           "arch": arch})
        if "text" not in answer:
            raise JitDisasmError(str(answer.get("error", "no text from the LLVM child")))
        return str(answer["text"])
    parts = []
    start = 0
    for func, length in enumerate(func_lens):
        code = bytes(image[start:start + length])
        parts.append(f"func #{func}:\n{_one_func(llvm, arch, code, func)}\n")
        start += length
    return "".join(parts)
