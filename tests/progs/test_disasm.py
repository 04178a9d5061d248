"""harness.progs.disasm against the kernel's own printer, compiled with gcc.

The oracle is Linux 7.3's kernel/bpf/disasm.c and selftests' disasm_helpers.c, read in
place from the cached source tree and built (the way the selftests Makefile builds them
into test_progs: tools/include, tools/include/uapi, tools/lib) with a small driver
written here. The driver reads an instruction image and prints it as test_loader.c's
get_xlated_program_text does; a second mode runs print_bpf_insn with
allow_ptr_leaks=false behind callbacks that behave like disasm_helpers.c's. Every case
must match byte for byte: each opcode class and op with interesting fields, all 256
opcodes, and a seeded fuzz of random instructions.
"""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.cache import cache_root
from harness.progs.disasm import Insn, decode, insn_text, program_text

TREE_NAME = "linux-source-7.3_7.3.4-1~bpo13+1"
LITTLE = sys.byteorder == "little"
NATIVE = struct.Struct("<BBhi" if LITTLE else ">BBhi")

# get_xlated_program_text's loop, over the tree's disasm_insn ("leaks") or over a copy
# of disasm_insn that passes allow_ptr_leaks=false ("noleaks"). A zeroed instruction
# after the image gives a trailing ld_imm64 a defined second half.
DRIVER = r"""
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/bpf.h>
#include "disasm.h"

struct bpf_insn *disasm_insn(struct bpf_insn *insn, char *buf, size_t buf_sz);

struct ctx { char scratch[16]; char *buf; size_t sz; };

static void print_cb(void *private_data, const char *fmt, ...)
{
	struct ctx *ctx = private_data;
	va_list args;

	va_start(args, fmt);
	vsnprintf(ctx->buf, ctx->sz, fmt, args);
	va_end(args);
}

static const char *call_cb(void *private_data, const struct bpf_insn *insn)
{
	struct ctx *ctx = private_data;

	if (insn->src_reg != BPF_PSEUDO_CALL)
		return NULL;
	snprintf(ctx->scratch, sizeof(ctx->scratch), "%+d", insn->off);
	return ctx->scratch;
}

static struct bpf_insn *disasm_noleaks(struct bpf_insn *insn, char *buf, size_t sz)
{
	struct ctx ctx = { .buf = buf, .sz = sz };
	struct bpf_insn_cbs cbs = { print_cb, call_cb, NULL, &ctx };
	char *end, *hash;
	int len;

	print_bpf_insn(&cbs, insn, false);
	end = buf + strlen(buf);
	if (strncmp(buf + 5, "call ", 5) == 0 && (hash = strrchr(buf, '#')))
		end = hash;
	len = end - (buf + 5);
	memmove(buf, buf + 5, len);
	buf[len] = 0;
	return insn + (insn->code == (BPF_LD | BPF_IMM | BPF_DW) ? 2 : 1);
}

int main(int argc, char **argv)
{
	struct bpf_insn *start, *insn, *end;
	char buf[64];
	FILE *f;
	long n;
	int leaks;

	if (argc != 3)
		return 2;
	leaks = strcmp(argv[2], "leaks") == 0;
	f = fopen(argv[1], "rb");
	if (!f || fseek(f, 0, SEEK_END))
		return 3;
	n = ftell(f) / sizeof(struct bpf_insn);
	rewind(f);
	start = calloc(n + 1, sizeof(struct bpf_insn));
	if (!start || fread(start, sizeof(struct bpf_insn), n, f) != (size_t)n)
		return 4;
	fclose(f);
	end = start + n;
	insn = start;
	while (insn < end) {
		int i = insn - start;

		if (leaks)
			insn = disasm_insn(insn, buf, sizeof(buf));
		else
			insn = disasm_noleaks(insn, buf, sizeof(buf));
		printf("%d: %s\n", i, buf);
	}
	return 0;
}
"""


def _tree() -> Path | None:
    tree = cache_root() / "sources" / TREE_NAME
    return tree if (tree / "kernel/bpf/disasm.c").is_file() else None


Oracle = Callable[[bytes, bool], str]


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Oracle:
    """raw image, allow_ptr_leaks -> the C text; built once per module (about 0.3 s)."""
    tree = _tree()
    if tree is None:
        pytest.skip(f"no {TREE_NAME} under {cache_root() / 'sources'}: "
                    "`harness build` (or the 7.3 source download) puts it there")
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("no gcc to build the kernel's disasm.c")
    work = tmp_path_factory.mktemp("disasm-oracle")
    (work / "driver.c").write_text(DRIVER)
    exe = work / "disasm-oracle"
    selftests = tree / "tools/testing/selftests/bpf"
    cmd = [gcc, "-std=gnu11", "-O1", "-Wall",
           f"-I{tree / 'kernel/bpf'}", f"-I{tree / 'tools/include'}",
           f"-I{tree / 'tools/include/uapi'}", f"-I{tree / 'tools/lib'}",
           "-o", str(exe), str(work / "driver.c"),
           str(tree / "kernel/bpf/disasm.c"), str(selftests / "disasm_helpers.c")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stderr}"
    counter = iter(range(1 << 30))

    def run(raw: bytes, leaks: bool = True) -> str:
        path = work / f"image{next(counter)}.bin"
        path.write_bytes(raw)
        out = subprocess.run([str(exe), str(path), "leaks" if leaks else "noleaks"],
                             capture_output=True, check=True)
        return out.stdout.decode()

    return run


def pack(insns: list[Insn], fmt: struct.Struct = NATIVE, little: bool = LITTLE) -> bytes:
    """The image of insns (the register nibbles as decode() reads them)."""
    return b"".join(
        fmt.pack(i.code, i.dst | i.src << 4 if little else i.dst << 4 | i.src, i.off, i.imm)
        for i in insns)


def ours_noleaks(insns: list[Insn]) -> str:
    lines, i = [], 0
    while i < len(insns):
        text, slots = insn_text(insns, i, allow_ptr_leaks=False)
        lines.append(f"{i}: {text}\n")
        i += slots
    return "".join(lines)


def assert_same(ours: str, theirs: str, insns: list[Insn]) -> None:
    """Equal text, else the first differing lines with the instructions behind them."""
    if ours == theirs:
        return
    a, b = ours.splitlines(), theirs.splitlines()
    bad = [(x, y) for x, y in zip(a, b, strict=False) if x != y][:10]
    detail = "\n".join(f"  ours {x!r}\n  C    {y!r}\n  insn {insns[int(y.split(':')[0])]}"
                       for x, y in bad)
    pytest.fail(f"{len(a)} vs {len(b)} lines; first differences:\n{detail}", pytrace=False)


# --- instruction streams ------------------------------------------------------------

REG_PAIRS = ((0, 1), (10, 15), (15, 0), (3, 3), (9, 10))
IMMS = (0, 1, -1, 8, 16, 32, 64, 42, 0x7FFFFFFF, -0x80000000, 0x00010002, -0x10000)
OFFS = (0, 1, -1, 2, 8, 16, 32, 4, 0x7FFF, -0x8000)


def _regs(k: int) -> tuple[int, int]:
    return REG_PAIRS[k % len(REG_PAIRS)]


def alu() -> Iterator[Insn]:
    """ALU/ALU64, every op, K and X: sdiv/smod (off=1), movsx (off 8/16/32), neg, end."""
    k = 0
    for cls in (0x04, 0x07):
        for op in range(0, 0x100, 0x10):
            for x in (0x00, 0x08):
                for off in OFFS:
                    for imm in IMMS if not x else (0, -1, 0x00010002):
                        k += 1
                        yield Insn(cls | op | x, *_regs(k), off, imm)


def endian() -> Iterator[Insn]:
    """bswap (ALU64), be/le (ALU) with the valid widths and some that are not."""
    for code in (0xD4, 0xDC, 0xD7, 0xDF):
        for k, imm in enumerate((16, 32, 64, 0, 8, -1, 0x7FFFFFFF)):
            yield Insn(code, *_regs(k), k - 3, imm)


def jumps() -> Iterator[Insn]:
    """JMP/JMP32, every op, K and X, with the src values calls and may_goto read."""
    k = 0
    for cls in (0x05, 0x06):
        for op in range(0, 0x100, 0x10):
            for x in (0x00, 0x08):
                for src in (0, 1, 2, 15):
                    for off in (0, 1, -1, 0x7FFF, -0x8000):
                        for imm in (0, 1, -1, 5, 0x7FFFFFFF, -0x80000000):
                            k += 1
                            yield Insn(cls | op | x, _regs(k)[0], src, off, imm)


def calls() -> Iterator[Insn]:
    """Helper ids around 0..211, pseudo calls (printed by off), kfunc and odd src calls."""
    for imm in range(-3, 216):
        yield Insn(0x85, 0, 0, 0, imm)
    for src in range(16):
        for off, imm in ((0, 0), (5, 1), (-7, 2), (0x7FFF, -1), (-0x8000, 0x7FFFFFFF),
                         (3, -0x80000000), (0, 14), (1, 211)):
            for code in (0x85, 0x86, 0x8D, 0x8E):
                yield Insn(code, 0, src, off, imm)
    yield Insn(0x85, 0, 0, 0, -0x80000000)  # the longest call text


def memory() -> Iterator[Insn]:
    """LDX, ST, STX: every mode and size (ldsx included), offsets at both ends."""
    k = 0
    for cls in (0x01, 0x02, 0x03):
        for mode in range(0, 0x100, 0x20):
            for size in (0x00, 0x08, 0x10, 0x18):
                for off in (0, 1, -1, 0x7FFF, -0x8000):
                    for imm in (0, -1, 123, 0x7FFFFFFF):
                        k += 1
                        yield Insn(cls | mode | size, *_regs(k), off, imm)


ATOMIC_IMMS = (0x00, 0x50, 0x40, 0xA0, 0x01, 0x51, 0x41, 0xA1, 0xE1, 0xF1, 0x100, 0x110,
               0x02, 0xE0, 0xF0, 0x10, 0x101, 0x111, 0x1A1, -1, -0x80000000, 0x7FFFFFFF)


def atomics() -> Iterator[Insn]:
    """BPF_ATOMIC and the 7.3 probe atomics: lock ops, fetch ops, xchg, cmpxchg,
    load_acquire, store_release, and imms no atomic has."""
    k = 0
    for mode in (0xC0, 0xE0):
        for size in (0x00, 0x08, 0x10, 0x18):
            for imm in ATOMIC_IMMS:
                for off in (0, -8, 0x7FFF, -0x8000):
                    k += 1
                    yield Insn(0x03 | mode | size, *_regs(k), off, imm)


def loads() -> Iterator[Insn]:
    """LD: abs/ind, every mode and size, and ld_imm64 with every src (the pseudo ones)."""
    k = 0
    for mode in range(0, 0x100, 0x20):
        for size in (0x00, 0x08, 0x10, 0x18):
            for imm in (0, -1, 14, 0x7FFFFFFF):
                k += 1
                yield Insn(mode | size, *_regs(k), k - 50, imm)
                yield Insn(0x00, 0, 0, 0, -imm)  # the second half when this is ld_imm64
    for src in range(16):
        for lo, hi in ((0, 0), (1, 0), (-1, -1), (0, 1), (0x7FFFFFFF, -0x80000000),
                       (-0x80000000, 0x7FFFFFFF), (0x1234, 0x5678)):
            yield Insn(0x18, src % 11, src, 0, lo)
            yield Insn(0x00, 0, 0, 0, hi)


def specials() -> Iterator[Insn]:
    """addr_space_cast, the percpu address mov, nospec, gotox, may_goto, gotol, exit."""
    for imm in (0x00010000, 0x00000001, 0x00010001, -1, 0, -0x10000, 0x7FFF0002):
        yield Insn(0xBF, 1, 2, 1, imm)  # addr_space_cast
        yield Insn(0xBC, 1, 2, 1, imm)  # the 32-bit mov with that off is a plain mov
    for dst, src in ((0, 0), (1, 1), (10, 7)):
        yield Insn(0xBF, dst, src, -1, 0)  # r = &(void __percpu *)(r)
        yield Insn(0xBC, dst, src, -1, 0)
    yield Insn(0xC2, 0, 0, 0, 0)  # nospec
    yield Insn(0xD2, 0, 0, 0, 0)
    for off in (0, 3, -1):
        yield Insn(0x0D, 4, 0, off, 0)  # gotox
        yield Insn(0xE5, 0, 0, off, 0)  # may_goto
        yield Insn(0xE5, 0, 1, off, 0)  # a JCOND that is not may_goto
        yield Insn(0x06, 0, 0, off, off * 1000)  # gotol
        yield Insn(0x05, 0, 0, off, 0)  # goto
    yield Insn(0x95, 0, 0, 0, 0)


def every_code() -> Iterator[Insn]:
    """All 256 opcodes, each with a few field patterns."""
    fields = ((0, 0, 0, 0), (1, 2, 3, 4), (10, 1, -1, -1), (15, 15, 0x7FFF, 0x7FFFFFFF),
              (5, 2, 8, 16), (6, 3, 1, 32), (7, 4, -0x8000, -0x80000000), (2, 0, 16, 64))
    for code in range(256):
        for f in fields:
            yield Insn(code, *f)


def _rng(seed: int) -> random.Random:
    return random.Random(seed)


def fuzz_bytes() -> Iterator[Insn]:
    """4000 instructions of random bytes."""
    yield from decode(_rng(0x7E57).randbytes(8 * 4000), LITTLE)


def fuzz_fields() -> Iterator[Insn]:
    """3000 random instructions biased to the values the printer tests."""
    rng = _rng(0xB9F)
    offs = (0, 1, -1, 8, 16, 32, 0x7FFF, -0x8000)
    imms = (0, 1, -1, 16, 32, 64, *ATOMIC_IMMS)
    for _ in range(3000):
        off = rng.choice(offs) if rng.random() < 0.7 else rng.randint(-0x8000, 0x7FFF)
        imm = rng.choice(imms) if rng.random() < 0.7 else rng.randint(-(1 << 31), (1 << 31) - 1)
        yield Insn(rng.randrange(256), rng.randrange(16), rng.randrange(16), off, imm)


STREAMS = {f.__name__: f for f in (alu, endian, jumps, calls, memory, atomics, loads,
                                   specials, every_code, fuzz_bytes, fuzz_fields)}


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_program_text_matches_kernel(oracle: Oracle, name: str) -> None:
    insns = list(STREAMS[name]())
    raw = pack(insns)
    assert decode(raw, LITTLE) == insns
    assert_same(program_text(raw, LITTLE), oracle(raw, True), insns)


@pytest.mark.parametrize("name", ["loads", "every_code", "fuzz_bytes"])
def test_without_pointer_leaks_matches_kernel(oracle: Oracle, name: str) -> None:
    insns = list(STREAMS[name]())
    assert_same(ours_noleaks(insns), oracle(pack(insns), False), insns)


def test_trailing_ld_imm64_matches_kernel(oracle: Oracle) -> None:
    """An image that ends in half an ld_imm64: the missing upper imm reads as 0."""
    insns = [Insn(0xB7, 0, 0, 0, 1), Insn(0x18, 1, 2, 0, -5)]
    raw = pack(insns)
    assert program_text(raw, LITTLE) == oracle(raw, True) == "0: r0 = 1\n1: r1 = 0xfffffffb\n"


def test_every_stream_covers_what_it_claims() -> None:
    """The streams reach the printer's rarer branches (a guard against a dull generator)."""
    texts = set()
    for name in ("alu", "endian", "jumps", "calls", "memory", "atomics", "loads", "specials"):
        insns = list(STREAMS[name]())
        i = 0
        while i < len(insns):
            text, slots = insn_text(insns, i)
            texts.add(text)
            i += slots
    blob = "\n" + "\n".join(texts) + "\n"
    for needle in ("s/=", "s%=", "(s8)", "(s16)", "(s32)", "bswap64", "be16", "le32",
                   "may_goto", "gotol", "gotox", "call bpf_cgrp_storage_delete\n",
                   "call bpf_unspec\n", "call kernel-function\n", "call unknown\n",
                   "call pc-7", "*(s8 *)", "*(s32 *)", "lock *(u64 *)", "atomic64_fetch_xor",
                   "atomic_fetch_and", "atomic64_cmpxchg", "atomic_xchg", "load_acquire",
                   "store_release", "probe lock", "probe r0 = atomic64_cmpxchg", "nospec",
                   "addr_space_cast(r2, 1, 0)", "&(void __percpu *)", "skb[r", "(null)",
                   "\nd_", "r1 = 0x7fffffff80000000"):
        assert needle in blob, needle


# --- without the oracle: decode, the API, and lines from the tree's __xlated tags -----

def test_decode_layouts() -> None:
    insns = [Insn(0x18, 1, 2, -3, -0x80000000), Insn(0x00, 15, 0, 0x7FFF, 7),
             Insn(0xDB, 10, 3, -8, 0xF1)]
    le = pack(insns, struct.Struct("<BBhi"), True)
    be = pack(insns, struct.Struct(">BBhi"), False)
    assert le[:2] == b"\x18\x21" and be[:2] == b"\x18\x12"
    assert decode(le) == decode(be, little_endian=False) == insns
    assert program_text(le) == program_text(be, little_endian=False)


def test_decode_rejects_partial_instruction() -> None:
    with pytest.raises(ValueError, match="8-byte"):
        decode(b"\x95" + b"\0" * 8)


def test_insn_rejects_out_of_range_fields() -> None:
    with pytest.raises(ValueError, match="off"):
        Insn(0x95, 0, 0, 0x8000, 0)
    with pytest.raises(ValueError, match="src"):
        Insn(0x95, 0, 16, 0, 0)


def test_insn_text_slots_and_ptr_leaks() -> None:
    ld_map = [Insn(0x18, 1, 1, 0, 0x1234), Insn(0, 0, 0, 0, 1)]
    assert insn_text(ld_map, 0) == ("r1 = 0x100001234", 2)
    assert insn_text(ld_map, 0, allow_ptr_leaks=False) == ("r1 = 0x0", 2)
    ld_func = [Insn(0x18, 1, 4, 0, 9), Insn(0, 0, 0, 0, 0)]  # BPF_PSEUDO_FUNC: no pointer
    assert insn_text(ld_func, 0, allow_ptr_leaks=False) == ("r1 = 0x9", 2)
    assert insn_text([Insn(0x95, 0, 0, 0, 0)], 0) == ("exit", 1)


@pytest.mark.parametrize(("insn", "text"), [
    (Insn(0xB7, 0, 0, 0, 1), "r0 = 1"),
    (Insn(0xB4, 2, 0, 0, -0x80000000), "w2 = -2147483648"),
    (Insn(0x95, 0, 0, 0, 0), "exit"),
    (Insn(0x7B, 10, 1, -8, 0), "*(u64 *)(r10 -8) = r1"),
    (Insn(0x79, 1, 10, -8, 0), "r1 = *(u64 *)(r10 -8)"),
    (Insn(0x7A, 1, 0, 0, 0), "*(u64 *)(r1 +0) = 0"),
    (Insn(0x61, 0, 0, 0, 0), "r0 = *(u32 *)(r0 +0)"),
    (Insn(0x05, 0, 0, 1, 0), "goto pc+1"),
    (Insn(0x06, 0, 0, 0, -12), "gotol pc-12"),
    (Insn(0x15, 1, 0, 5, 0), "if r1 == 0x0 goto pc+5"),
    (Insn(0x25, 12, 0, 4, 1), "if r12 > 0x1 goto pc+4"),
    (Insn(0x16, 12, 0, 1, 0), "if w12 == 0x0 goto pc+1"),
    (Insn(0x84, 2, 0, 0, 0), "w2 = -w2"),
    (Insn(0x9C, 2, 3, 1, 0), "w2 s%= w3"),
    (Insn(0xBC, 4, 2, 0, 0), "w4 = w2"),
    (Insn(0xBF, 0, 0, -1, 0), "r0 = &(void __percpu *)(r0)"),
    (Insn(0x85, 0, 0, 0, 8), "call bpf_get_smp_processor_id"),
    (Insn(0x85, 0, 2, 0, 12345), "call kernel-function"),
    (Insn(0x85, 0, 1, 8, 3), "call pc+8"),
    (Insn(0x85, 0, 0, 0, -1), "call unknown"),
])
def test_lines_from_selftests_xlated_tags(insn: Insn, text: str) -> None:
    """Expectations as the tree's progs/*.c write them in __xlated(...)."""
    assert insn_text([insn], 0) == (text, 1)


def test_program_text_numbers_ld_imm64_slots() -> None:
    insns = [Insn(0x18, 2, 0, 0, 0), Insn(0, 0, 0, 0, -0x80000000), Insn(0x95, 0, 0, 0, 0)]
    assert program_text(pack(insns, struct.Struct("<BBhi"), True)) == (
        "0: r2 = 0x8000000000000000\n2: exit\n")
