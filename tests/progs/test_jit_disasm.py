"""harness.progs.jit_disasm against real LLVM: the text test_progs' get_jited_program_text makes.

No mocks: every case goes through the libLLVM this host loads (the module is skipped
when none loads). Where the expected texts come from:

- the instruction bytes are llvm-mc's encodings of each case's ``source`` (the cap case
  is 33 ``jmp .+2``); ``test_matches_llvm_objdump`` reassembles the sources and checks them;
- the instruction text is LLVM's (PrintImmHex on): ``test_matches_llvm_objdump`` holds
  it equal to llvm-objdump ``--print-imm-hex`` of the same object (another tool, its own
  LLVM build), minus objdump's ``# imm``/``//`` comments and ``<sym+off>`` suffixes;
- the framing (pcs, byte columns, labels, func headers, the 63-character cut) is the
  text the kernel's own jit_disasm_helpers.c printed for these images: the literals were
  taken from it, built by ``kernel_oracle`` below with gcc against libLLVM, which
  ``test_matches_kernel_c`` re-runs on every case where the 7.3 tree, gcc and the llvm-c
  headers are present. For arm64 that driver feeds the C code the module's CPU and
  features in place of the host's, the one choice that is ours.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.arch import ARM64 as ARM64_ARCH
from harness.cache import cache_root
from harness.progs import jit_disasm
from harness.progs.jit_disasm import (
    JitDisasmError,
    available,
    jited_program_text,
    library_path,
)

REASON = available()
if REASON is not None:
    pytest.skip(REASON, allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
TREE_NAME = "linux-source-7.3_7.3.4-1~bpo13+1"


def _in_process() -> jit_disasm._Llvm | None:
    """The newest libLLVM this Python loads itself (the system's 14/15 here)."""
    for path in jit_disasm._candidates():
        try:
            return jit_disasm._open(path)
        except OSError:
            continue
    return None


IN_PROCESS = _in_process()


@pytest.fixture(autouse=True)
def _system_llvm(monkeypatch: pytest.MonkeyPatch) -> None:
    """The expected texts below come from LLVM 14's llvm-mc/llvm-objdump and from the
    kernel's C code linked with libLLVM-15, so these tests disassemble with the newest
    libLLVM this Python loads itself; what the harness prefers, the pinned LLVM 21
    through its toolchain's loader, is test_the_pinned_llvm_runs_through_its_loader's."""
    if IN_PROCESS is None:
        pytest.skip("no libLLVM loads in this Python")
    monkeypatch.setattr(jit_disasm, "_loaded", IN_PROCESS)


@dataclass(frozen=True)
class Case:
    arch: str
    source: str  # assembly for llvm-mc (AT&T for x86_64)
    hex: str  # llvm-mc's encoding of it
    func_lens: tuple[int, ...]
    text: str  # get_jited_program_text's text

    @property
    def image(self) -> bytes:
        return bytes.fromhex(self.hex)


# A backward (jne) and a forward (je) branch: labels L0 < L1 by pc; a call whose target
# is outside the function (printed as hex); PrintImmHex immediates, a negative one; a
# 10-byte movabsq padded to 36 columns and a 13-byte movq that is not padded at all.
X86_ONE = Case("x86_64", """\
	endbr64
	nopl	(%rax,%rax)
	pushq	%rbp
	movq	%rsp, %rbp
.Lloop:
	subq	$0x10, %rdi
	addq	$-0x8, %rsi
	movabsq	$0x123456789abcdef0, %rax
	movq	$0x12345678, %gs:0x12345678(%r15,%r14,8)
	testq	%rdi, %rdi
	jne	.Lloop
	je	.Lout
	.byte	0xe8, 0x00, 0x10, 0x00, 0x00
.Lout:
	leave
	retq
""", "f30f1efa0f1f0400554889e54883ef104883c6f848b8f0debc9a78563412654bc784f7785634127856341248"
     "85ff75dc7405e800100000c9c3", (57,), (
    "func #0:\n"
    "0:\tf3 0f 1e fa                         \tendbr64\n"
    "4:\t0f 1f 04 00                         \tnopl\t(%rax,%rax)\n"
    "8:\t55                                  \tpushq\t%rbp\n"
    "9:\t48 89 e5                            \tmovq\t%rsp, %rbp\n"
    "c:\t48 83 ef 10                         L0:\tsubq\t$0x10, %rdi\n"
    "10:\t48 83 c6 f8                         \taddq\t$-0x8, %rsi\n"
    "14:\t48 b8 f0 de bc 9a 78 56 34 12       \tmovabsq\t$0x123456789abcdef0, %rax\n"
    "1e:\t65 4b c7 84 f7 78 56 34 12 78 56 34 12 "
    "\tmovq\t$0x12345678, %gs:0x12345678(%r15,%r14,8)\n"
    "2b:\t48 85 ff                            \ttestq\t%rdi, %rdi\n"
    "2e:\t75 dc                               \tjne\tL0\n"
    "30:\t74 05                               \tje\tL1\n"
    "32:\te8 00 10 00 00                      \tcallq\t0x1037\n"
    "37:\tc9                                  L1:\tleave\n"
    "38:\tc3                                  \tretq\n"
    "\n"
))

# Two functions (func_lens [13, 17]): each block restarts its pcs and its labels at 0.
X86_TWO = Case("x86_64", """\
	xorl	%eax, %eax
	testq	%rdi, %rdi
	je	.La
	movl	$0x1, %eax
.La:
	retq
.Lb:
	addq	$0x1, %rdi
	cmpq	$0x100, %rdi
	jb	.Lb
	jmp	.Lc
	int3
.Lc:
	retq
""", "31c04885ff7405b801000000c34883c7014881ff0001000072f3eb01ccc3", (13, 17), (
    "func #0:\n"
    "0:\t31 c0                               \txorl\t%eax, %eax\n"
    "2:\t48 85 ff                            \ttestq\t%rdi, %rdi\n"
    "5:\t74 05                               \tje\tL0\n"
    "7:\tb8 01 00 00 00                      \tmovl\t$0x1, %eax\n"
    "c:\tc3                                  L0:\tretq\n"
    "\n"
    "func #1:\n"
    "0:\t48 83 c7 01                         L0:\taddq\t$0x1, %rdi\n"
    "4:\t48 81 ff 00 01 00 00                \tcmpq\t$0x100, %rdi\n"
    "b:\t72 f3                               \tjb\tL0\n"
    "d:\teb 01                               \tjmp\tL1\n"
    "f:\tcc                                  \tint3\n"
    "10:\tc3                                  L1:\tretq\n"
    "\n"
))

# What the arm64 JIT emits (PAC and BTI landing pads, LSE atomics, load-acquire and
# store-release, sb), on this x86_64 host: by name, not as `hint #..`. cbz's target is
# a label, bl's (outside the function) is hex.
ARM64 = Case("arm64", """\
	paciasp
	bti	c
	stp	x29, x30, [sp, #-16]!
	mov	x29, sp
.Lloop:
	ldaddal	x1, x2, [x3]
	swpal	w1, w2, [x3]
	casal	x1, x2, [x3]
	ldar	x1, [x2]
	stlr	w1, [x2]
	subs	x0, x0, #1
	b.ne	.Lloop
	cbz	x0, .Lout
	mov	x0, #0x1234
	movk	x0, #0x5678, lsl #16
	.inst	0x94000400
	sb
.Lout:
	ldp	x29, x30, [sp], #16
	autiasp
	ret
""", "3f2303d55f2403d5fd7bbfa9fd0300916200e1f86280e1b862fce1c841fcdfc841fc9f88000400f141ffff54"
     "a00000b4804682d200cfaaf200040094ff3003d5fd7bc1a8bf2303d5c0035fd6", (76,), (
    "func #0:\n"
    "0:\t3f 23 03 d5                         \tpaciasp\n"
    "4:\t5f 24 03 d5                         \tbti\tc\n"
    "8:\tfd 7b bf a9                         \tstp\tx29, x30, [sp, #-0x10]!\n"
    "c:\tfd 03 00 91                         \tmov\tx29, sp\n"
    "10:\t62 00 e1 f8                         L0:\tldaddal\tx1, x2, [x3]\n"
    "14:\t62 80 e1 b8                         \tswpal\tw1, w2, [x3]\n"
    "18:\t62 fc e1 c8                         \tcasal\tx1, x2, [x3]\n"
    "1c:\t41 fc df c8                         \tldar\tx1, [x2]\n"
    "20:\t41 fc 9f 88                         \tstlr\tw1, [x2]\n"
    "24:\t00 04 00 f1                         \tsubs\tx0, x0, #0x1\n"
    "28:\t41 ff ff 54                         \tb.ne\tL0\n"
    "2c:\ta0 00 00 b4                         \tcbz\tx0, L1\n"
    "30:\t80 46 82 d2                         \tmov\tx0, #0x1234\n"
    "34:\t00 cf aa f2                         \tmovk\tx0, #0x5678, lsl #16\n"
    "38:\t00 04 00 94                         \tbl\t0x1038\n"
    "3c:\tff 30 03 d5                         \tsb\n"
    "40:\tfd 7b c1 a8                         L1:\tldp\tx29, x30, [sp], #0x10\n"
    "44:\tbf 23 03 d5                         \tautiasp\n"
    "48:\tc0 03 5f d6                         \tret\n"
    "\n"
))

# LLVM's texts of these AVX-512 instructions are 72 and 74 characters: the 64-byte
# buffer keeps 63 (the first ends in a space). The second is exactly 12 bytes: no padding.
VPTERNLOGQ = "\tvpternlogq\t$0xff, %fs:0x12345678(%r15,%r14,8), %zmm31, %zmm30 {%k7} {z}"
VFMADD231PS = "\tvfmadd231ps\t%fs:-0x12345678(%r15,%r14,8){1to16}, %zmm29, %zmm30 {%k7} {z}"
X86_LONG = Case("x86_64", VPTERNLOGQ.replace("\t", "", 1) + "\n"
                + VFMADD231PS.replace("\t", "", 1) + "\n\tretq\n",
                "64620385c725b4f778563412ff64620215d7b8b4f788a9cbedc3", (26,), (
    "func #0:\n"
    "0:\t64 62 03 85 c7 25 b4 f7 78 56 34 12 ff "
    "\tvpternlogq\t$0xff, %fs:0x12345678(%r15,%r14,8), %zmm31, %zmm30 \n"
    "d:\t64 62 02 15 d7 b8 b4 f7 88 a9 cb ed "
    "\tvfmadd231ps\t%fs:-0x12345678(%r15,%r14,8){1to16}, %zmm29, %zmm3\n"
    "19:\tc3                                  \tretq\n"
    "\n"
))

# Two branches to pc 0 put it in the label table twice ([0, 0, 7] -> L0, L1, L2): the
# branches print the first name (L0), the line the one glibc's bsearch probes first (L1).
X86_REPEAT = Case("x86_64", """\
.Lt:
	nop
	je	.Lt
	jne	.Lt
	jmp	.Lu
.Lu:
	retq
""", "9074fd75fbeb00c3", (8,), (
    "func #0:\n"
    "0:\t90                                  L1:\tnop\n"
    "1:\t74 fd                               \tje\tL0\n"
    "3:\t75 fb                               \tjne\tL0\n"
    "5:\teb 00                               \tjmp\tL2\n"
    "7:\tc3                                  L2:\tretq\n"
    "\n"
))


def _cap_text() -> str:
    """33 `jmp .+2`: only the first 32 targets become labels; the 33rd prints as hex."""
    lines = ["func #0:\n"]
    for i in range(33):
        label = f"L{i - 1}:" if i else ""
        target = f"L{i}" if i < 32 else "0x42"
        lines.append(f"{2 * i:x}:\teb 00{' ' * 31}{label}\tjmp\t{target}\n")
    lines.append(f"42:\tc3{' ' * 34}\tretq\n\n")
    return "".join(lines)


X86_CAP = Case("x86_64", "\tjmp\t.+2\n" * 33 + "\tretq\n", "eb00" * 33 + "c3", (67,),
               _cap_text())

CASES = {"x86_one": X86_ONE, "x86_two": X86_TWO, "arm64": ARM64, "x86_long": X86_LONG,
         "x86_repeat": X86_REPEAT, "x86_cap": X86_CAP}


def text_of(case: Case) -> str:
    return jited_program_text(case.image, list(case.func_lens), case.arch)


# --- the cases, literally -------------------------------------------------------------


def test_x86_labels_call_hex_immediates_and_padding() -> None:
    assert text_of(X86_ONE) == X86_ONE.text


def test_two_functions_have_their_own_pcs_and_labels() -> None:
    assert text_of(X86_TWO) == X86_TWO.text


def test_arm64_on_an_x86_64_host() -> None:
    assert text_of(ARM64) == ARM64.text


@pytest.mark.parametrize("name", [name for name, case in CASES.items() if case.arch == "x86_64"])
def test_x86_64_image_on_an_arm64_host(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Off an x86_64 host the x86 image gets cpu "generic", no features: the same text."""
    monkeypatch.setattr(jit_disasm.platform, "machine", lambda: "aarch64")
    assert jit_disasm._target(jit_disasm._llvm(), "x86_64")[1:] == (b"generic", b"")
    assert text_of(CASES[name]) == CASES[name].text


def test_text_is_cut_at_63_characters() -> None:
    lines = text_of(X86_LONG).splitlines()
    assert lines[1].split(" \t", 1)[1] == VPTERNLOGQ[1:63]
    assert lines[2].split(" \t", 1)[1] == VFMADD231PS[1:63]
    assert text_of(X86_LONG) == X86_LONG.text


def test_repeated_targets_name_lines_as_bsearch_does() -> None:
    assert text_of(X86_REPEAT) == X86_REPEAT.text


def test_at_most_32_labels() -> None:
    assert text_of(X86_CAP) == X86_CAP.text
    assert "L31:\tjmp\t0x42\n" in X86_CAP.text and "L32" not in X86_CAP.text


def test_empty_and_zero_length_functions() -> None:
    assert jited_program_text(b"", [], "x86_64") == ""
    assert jited_program_text(b"\xc3", [0, 1], "x86_64") == (
        "func #0:\n\nfunc #1:\n0:\tc3" + " " * 34 + "\tretq\n\n")


# --- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(("arch", "image", "func_lens", "message"), [
    ("x86_64", b"\x55\x06\xc3", [3], "at offset 0x1 of func #0: 06 c3"),
    ("x86_64", b"\x48", [1], "at offset 0x0 of func #0: 48"),
    ("x86_64", b"\xc3\x90\xd6", [1, 2], "at offset 0x1 of func #1: d6"),
    ("x86_64", b"\x06" + bytes(range(1, 20)), [20],
     "at offset 0x0 of func #0: 06 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f"),
    ("arm64", bytes.fromhex("c0035fd6ffffffff"), [8], "at offset 0x4 of func #0: ff ff ff ff"),
    ("arm64", bytes.fromhex("c0035fd6c003"), [6], "at offset 0x4 of func #0: c0 03"),
])
def test_undecodable_bytes_raise(arch: str, image: bytes, func_lens: list[int],
                                 message: str) -> None:
    with pytest.raises(JitDisasmError) as info:
        jited_program_text(image, func_lens, arch)
    assert str(info.value) == f"can't disassemble {arch} JIT code {message}"


def test_available_here_and_unknown_arch_rejected() -> None:
    assert available() is None
    assert available("x86_64") is None and available("arm64") is None
    assert "riscv64" in (available("riscv64") or "")
    with pytest.raises(JitDisasmError, match="riscv64"):
        jited_program_text(b"\xc3", [1], "riscv64")


def test_func_lens_must_fit_the_image() -> None:
    with pytest.raises(JitDisasmError, match=r"\[1, 2\] do not fit a 2-byte"):
        jited_program_text(b"\xc3\xc3", [1, 2], "x86_64")
    with pytest.raises(JitDisasmError, match="do not fit"):
        jited_program_text(b"\xc3", [-1, 2], "x86_64")


# --- which libLLVM --------------------------------------------------------------------


def test_version_from_library_names() -> None:
    assert jit_disasm._version("/usr/lib/x86_64-linux-gnu/libLLVM-15.so.1") == (15,)
    assert jit_disasm._version("/x/libLLVM-14.0.6.so") == (14, 0, 6)
    assert jit_disasm._version("/x/libLLVM.so.21.1") == (21, 1)
    assert jit_disasm._version("/x/libLLVM.so") == (0,)
    assert jit_disasm._version("/x/libLLVMX86Desc.a") is None
    assert jit_disasm._version("/x/libLLVMSupport.so.14") is None


def _python(code: str, **env: str | None) -> str:
    """Run `code` in a fresh interpreter (the library is loaded once per process)."""
    environ = {**os.environ, "PYTHONPATH": str(REPO)}
    for key, value in env.items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environ, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


SHOW = "from harness.progs import jit_disasm as j; print(j.library_path()); print(j.available())"


def test_harness_libllvm_comes_first() -> None:
    """HARNESS_LIBLLVM wins over a newer library (here: an older one found on the system)."""
    candidates = jit_disasm._candidates()
    current = library_path()
    older = candidates[candidates.index(current) + 1:] if current in candidates else []
    chosen = older[0] if older else str(current)
    assert _python(SHOW, HARNESS_LIBLLVM=chosen).splitlines() == [chosen, "None"]


def test_an_unloadable_library_is_skipped(tmp_path: Path) -> None:
    broken = tmp_path / "libLLVM-99.so.1"
    broken.write_bytes(b"not an ELF file")
    chosen = _python(SHOW, HARNESS_LIBLLVM=str(broken)).splitlines()
    assert chosen == [library_path(), "None"]  # the newest that loads in-process


ARM64_FAR_CALL = bytes.fromhex("1f2003d5" * 20 + "c080ca97" + "c0035fd6")  # bl to the kernel


def test_the_pinned_llvm_runs_through_its_loader() -> None:
    """The pinned clang-21's libLLVM 21 needs a newer glibc than this Python's: the harness
    runs it in a child through the toolchain's own loader, and prints an arm64 call into
    the kernel as BPF CI's test_progs does (``bl 0x{{.*}}``); LLVM 15 prints it negative."""
    pinned = [p for p in jit_disasm._candidates() if jit_disasm._version(p) >= (21,)]
    if not pinned:
        pytest.skip("no pinned clang-21 toolchain in the cache (harness run fetches it)")
    code = ("from harness.progs import jit_disasm as j\nprint(j.library_path())\n"
            "texts = []\npids = set()\n"
            "for _ in range(3):\n"
            f"    texts.append(j.jited_program_text({ARM64_FAR_CALL!r}, "
            f"[{len(ARM64_FAR_CALL)}], 'arm64'))\n"
            "    pids.add(j._llvm().proc.pid)\n"
            "print(len(set(texts)), len(pids))\nprint(repr(texts[0]))")
    path, counts, text = _python(code, HARNESS_LIBLLVM=None).splitlines()
    assert path == pinned[0]
    assert counts == "1 1"  # one child served all three images, the same way
    assert "\tbl\t0xffffffffff2a0350\n" in eval(text)  # noqa: S307 - our own repr
    ours = jited_program_text(ARM64_FAR_CALL, [len(ARM64_FAR_CALL)], "arm64")
    assert "\tbl\t-0xd5fcb0\n" in ours  # the in-process LLVM 15 of the other tests


def test_newest_first_and_newer_unloadable_builds_skipped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache's clang-21 libLLVM.so.21 needs glibc 2.38: on an older host it is listed
    first and skipped, and the newest system one is used."""
    loaded_by_search = "HARNESS_LIBLLVM" not in os.environ
    monkeypatch.delenv("HARNESS_LIBLLVM", raising=False)
    candidates = jit_disasm._candidates()
    versions = [jit_disasm._version(p) for p in candidates]
    assert versions == sorted(versions, reverse=True)
    if not loaded_by_search:
        return
    assert library_path() in candidates
    for path in candidates[:candidates.index(library_path())]:
        probe = f"import ctypes\ntry:\n ctypes.CDLL({path!r})\nexcept OSError:\n print('fails')"
        assert _python(probe) == "fails", f"{path} loads, yet was not chosen"


NO_SYSTEM = "from harness.progs import jit_disasm as j\nj._SYSTEM_GLOBS = ()\n"


def test_reason_when_no_library_loads(tmp_path: Path) -> None:
    """No library (none on the system, an empty cache), or only one that fails to load:
    available() says why in one line, jited_program_text raises it."""
    empty = {"HARNESS_CACHE": str(tmp_path / "cache")}
    show = NO_SYSTEM + "print(j.available())\nprint(j.library_path())"
    none = _python(show, HARNESS_LIBLLVM=None, **empty)
    assert none.splitlines() == [
        "no libLLVM found (install libllvm<N> or set HARNESS_LIBLLVM)", "None"]
    broken = tmp_path / "libLLVM-99.so"
    broken.write_bytes(b"")
    reason, path = _python(show, HARNESS_LIBLLVM=str(broken), **empty).splitlines()
    assert reason.startswith(f"no libLLVM loads: {broken}: ") and path == "None"
    use = NO_SYSTEM + ("try:\n j.jited_program_text(b'', [], 'x86_64')\n"
                       "except j.JitDisasmError as exc:\n print(exc)")
    assert _python(use, HARNESS_LIBLLVM=None, **empty) == none.splitlines()[0]


# --- cross-check with llvm-mc and llvm-objdump ----------------------------------------


def _llvm_tools() -> tuple[str, str] | None:
    """An llvm-mc and llvm-objdump of one LLVM (PATH first, then /usr/lib/llvm-*/bin)."""
    pairs = [(shutil.which("llvm-mc"), shutil.which("llvm-objdump"))]
    for suffix in ("-21", "-20", "-19", "-18", "-17", "-16", "-15", "-14"):
        pairs.append((shutil.which(f"llvm-mc{suffix}"), shutil.which(f"llvm-objdump{suffix}")))
    for bindir in sorted(glob.glob("/usr/lib/llvm-*/bin"), reverse=True):
        pairs.append((shutil.which("llvm-mc", path=bindir),
                      shutil.which("llvm-objdump", path=bindir)))
    for mc, objdump in pairs:
        if mc and objdump:
            return mc, objdump
    return None


OBJDUMP_LINE = re.compile(r"^\s*([0-9a-f]+):((?: [0-9a-f]{2})+)\s*\t(.*)$")


def objdump_lines(case: Case, work: Path) -> list[tuple[int, bytes, str]]:
    """(address, bytes, text) per instruction, from llvm-objdump of llvm-mc's object."""
    tools = _llvm_tools()
    if tools is None:
        pytest.skip("no llvm-mc and llvm-objdump here")
    mc, objdump = tools
    triple = "x86_64" if case.arch == "x86_64" else "aarch64"
    mattr = [f"--mattr={ARM64_ARCH.llvm_cross_cpu[1]}"] if case.arch == "arm64" else []
    (work / "case.s").write_text(case.source)
    subprocess.run([mc, f"--triple={triple}", *mattr, "--filetype=obj", "-o",
                    str(work / "case.o"), str(work / "case.s")], check=True)
    out = subprocess.run([objdump, "-d", "--print-imm-hex", *mattr, str(work / "case.o")],
                         check=True, capture_output=True, text=True).stdout
    lines = []
    for line in out.splitlines():
        match = OBJDUMP_LINE.match(line)
        if match:
            text = re.sub(r"\s+(?:#|//) .*$", "", match.group(3))  # objdump's comments
            text = re.sub(r" <[^>]*>$", "", text)  # and symbolised targets
            lines.append((int(match.group(1), 16), bytes.fromhex(match.group(2)), text))
    return lines


OUR_LINE = re.compile(r"^([0-9a-f]+):\t((?:[0-9a-f]{2} )+) *(?:L\d+:)?(\t.*)$")


@pytest.mark.parametrize("name", CASES)
def test_matches_llvm_objdump(name: str, tmp_path: Path) -> None:
    """Same bytes as llvm-mc's; same instruction text as llvm-objdump's, but for branch
    targets (labels here, addresses there) and the 63-character cut."""
    case = CASES[name]
    theirs = objdump_lines(case, tmp_path)
    assert b"".join(raw for _, raw, _ in theirs) == case.image
    starts = [sum(case.func_lens[:i]) for i in range(len(case.func_lens))]
    ours: dict[int, tuple[bytes, str]] = {}
    func = -1
    for line in text_of(case).splitlines():
        if line.startswith("func #"):
            func += 1
        elif line:
            match = OUR_LINE.match(line)
            assert match, line
            ours[starts[func] + int(match.group(1), 16)] = (bytes.fromhex(match.group(2)),
                                                            match.group(3))
    assert sorted(ours) == [address for address, _, _ in theirs]
    for address, raw, text in theirs:
        mine_raw, mine = ours[address]
        assert mine_raw == raw
        if re.search(r"[\t ]L\d+$", mine):  # a branch to a label
            assert re.sub(r"L\d+$", "L", mine) == "\t" + re.sub(r"0x[0-9a-f]+$", "L", text)
        else:
            assert mine == ("\t" + text)[:63], f"at {address:#x}"


# --- the kernel's C code --------------------------------------------------------------

# Stand-ins for what jit_disasm_helpers.c includes from test_progs and libbpf, and a
# driver whose bpf_prog_get_info_by_fd hands out an image from a file. The C code asks
# LLVM for the default triple and the host's CPU and features; PRELUDE routes those
# through the driver, which passes the host's on ("-") or the given ones (arm64 here).
TEST_PROGS_H = r"""
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/types.h>
extern int oracle_failed;
#define PRINT_FAIL(...) (oracle_failed = 1, printf("FAIL: " __VA_ARGS__))
#define ASSERT_OK_PTR(p, name) ((p) != NULL || (PRINT_FAIL("%s\n", name), 0))
#define ASSERT_EQ(a, b, name) ((a) == (b) || (PRINT_FAIL("%s\n", name), 0))
#define ASSERT_OK(e, name) ((e) == 0 || (PRINT_FAIL("%s\n", name), 0))
"""
BPF_H = r"""
#include <linux/bpf.h>
int bpf_prog_get_info_by_fd(int prog_fd, struct bpf_prog_info *info, __u32 *info_len);
"""
PRELUDE = r"""
#define LLVMGetDefaultTargetTriple oracle_triple
#define LLVMGetHostCPUName oracle_cpu
#define LLVMGetHostCPUFeatures oracle_features
"""
DRIVER = r"""
#undef LLVMGetDefaultTargetTriple
#undef LLVMGetHostCPUName
#undef LLVMGetHostCPUFeatures
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/bpf.h>
#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

int get_jited_program_text(int fd, char *text, size_t text_sz);
int oracle_failed;
static unsigned char image[1 << 16];
static __u32 image_len, func_lens[64], nr_func_lens;
static const char *triple, *cpu, *features;

static char *pick(const char *arg, char *(*host)(void))
{
	return strcmp(arg, "-") ? strdup(arg) : host();
}

char *oracle_triple(void) { return pick(triple, LLVMGetDefaultTargetTriple); }
char *oracle_cpu(void) { return pick(cpu, LLVMGetHostCPUName); }
char *oracle_features(void) { return pick(features, LLVMGetHostCPUFeatures); }

int bpf_prog_get_info_by_fd(int fd, struct bpf_prog_info *info, __u32 *info_len)
{
	if (info->jited_prog_insns) {
		memcpy((void *)(unsigned long)info->jited_prog_insns, image, image_len);
		void *lens = (void *)(unsigned long)info->jited_func_lens;

		memcpy(lens, func_lens, nr_func_lens * sizeof(__u32));
	}
	info->jited_prog_len = image_len;
	info->nr_jited_func_lens = nr_func_lens;
	return 0;
}

/* oracle IMAGE TRIPLE CPU FEATURES LEN... ("-": the host's) */
int main(int argc, char **argv)
{
	static char text[1 << 20];
	FILE *f;
	int i;

	if (argc < 5 || argc - 5 > 64)
		return 2;
	f = fopen(argv[1], "rb");
	if (!f)
		return 3;
	image_len = fread(image, 1, sizeof(image), f);
	fclose(f);
	triple = argv[2];
	cpu = argv[3];
	features = argv[4];
	for (i = 5; i < argc; i++)
		func_lens[nr_func_lens++] = strtoul(argv[i], NULL, 0);
	if (get_jited_program_text(0, text, sizeof(text)))
		return 4;
	fputs(text, stdout);
	return oracle_failed;
}
"""

Oracle = Callable[[bytes, list[int], str], tuple[int, str]]


def _llvm_c_headers(library: str) -> Path | None:
    """An include dir with llvm-c/, preferring the loaded library's major version."""
    major = (jit_disasm._version(library) or (0,))[0]
    dirs = [f"/usr/lib/llvm-{major}/include", f"/usr/include/llvm-c-{major}"]
    dirs += sorted(glob.glob("/usr/lib/llvm-*/include"), reverse=True) + ["/usr/include"]
    for d in dirs:
        if (Path(d) / "llvm-c/Disassembler.h").is_file():
            return Path(d)
    return None


@pytest.fixture(scope="module")
def kernel_oracle(tmp_path_factory: pytest.TempPathFactory) -> Oracle:
    """(image, func_lens, arch) -> (exit status, stdout) of the tree's jit_disasm_helpers.c,
    linked with the libLLVM the tests here load (_system_llvm)."""
    helpers = (cache_root() / "sources" / TREE_NAME
               / "tools/testing/selftests/bpf/jit_disasm_helpers.c")
    if not helpers.is_file():
        pytest.skip(f"no {helpers}: `harness build` (or the 7.3 source download) puts it there")
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("no gcc to build the kernel's jit_disasm_helpers.c")
    if IN_PROCESS is None:
        pytest.skip("no libLLVM loads in this Python")
    library = IN_PROCESS.path  # the one the tests here use (_system_llvm)
    headers = _llvm_c_headers(library)
    if headers is None:
        pytest.skip("no llvm-c headers (llvm-<N>-dev) to build jit_disasm_helpers.c")
    work = tmp_path_factory.mktemp("jit-disasm-oracle")
    (work / "inc/bpf").mkdir(parents=True)
    (work / "inc/test_progs.h").write_text(TEST_PROGS_H)
    (work / "inc/bpf/bpf.h").write_text(BPF_H)
    (work / "inc/bpf/libbpf.h").write_text("")
    (work / "prelude.h").write_text(PRELUDE)
    (work / "driver.c").write_text(DRIVER)
    exe = work / "oracle"
    cmd = [gcc, "-std=gnu11", "-O1", "-Wall", "-DHAVE_LLVM_SUPPORT", f"-I{work / 'inc'}",
           f"-I{headers}", "-include", str(work / "prelude.h"), "-o", str(exe),
           str(work / "driver.c"), str(helpers), library,
           f"-Wl,-rpath,{os.path.dirname(library)}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"
    counter = iter(range(1 << 30))

    def run(image: bytes, func_lens: list[int], arch: str) -> tuple[int, str]:
        path = work / f"image{next(counter)}.bin"
        path.write_bytes(image)
        target = ["-", "-", "-"] if arch == "x86_64" else [ARM64_ARCH.llvm_triple,
                                                           *ARM64_ARCH.llvm_cross_cpu]
        out = subprocess.run([str(exe), str(path), *target, *map(str, func_lens)],
                             capture_output=True, text=True, timeout=60)
        return out.returncode, out.stdout

    return run


@pytest.mark.parametrize("name", CASES)
def test_matches_kernel_c(name: str, kernel_oracle: Oracle) -> None:
    case = CASES[name]
    assert kernel_oracle(case.image, list(case.func_lens), case.arch) == (0, case.text)


@pytest.mark.parametrize(("arch", "image", "func_lens"), [
    ("x86_64", b"\x55\x06\xc3", [3]),
    ("x86_64", b"\x06" + bytes(range(1, 20)), [20]),
    ("arm64", bytes.fromhex("c0035fd6ffffffff"), [8]),
])
def test_undecodable_like_kernel_c(arch: str, image: bytes, func_lens: list[int],
                                   kernel_oracle: Oracle) -> None:
    """The C code names the same offset and bytes (and fails the test)."""
    status, out = kernel_oracle(image, func_lens, arch)
    failure = re.search(r"Can't disasm instruction at offset (\d+):((?: [0-9a-f]{2})+)", out)
    assert status == 1 and failure
    with pytest.raises(JitDisasmError) as info:
        jited_program_text(image, func_lens, arch)
    offset, shown = int(failure.group(1)), failure.group(2).strip()
    assert str(info.value).endswith(f"at offset {offset:#x} of func #0: {shown}")
