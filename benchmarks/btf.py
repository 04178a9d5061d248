"""BTF library benchmark: wall seconds and peak RSS per job, next to libbpf.

    python benchmarks/btf.py [FILE] [--base BASE] [--repeat N] [--rounds N] [--rows ROW,...]

FILE defaults to /sys/kernel/btf/vmlinux (raw BTF or an ELF with .BTF). Each
row runs in a fresh child process so its peak RSS (getrusage ru_maxrss) is its
own; `rss_before` is the child's RSS after reading the input, before the job.
Wall time is the best of --repeat runs inside that child; every row runs once per round,
rows interleaved, and the table shows medians over --rounds rounds. Ratios are the
median of each round's ratio (the two rows of a round ran moments apart), so a noisy
machine moves both sides of a ratio together.

To add a row (dedup, sort, ...): write `def row_x(data, base) -> None` doing
the job once and register it in ROWS. `data` and `base` are raw BTF bytes.

Why issue 29's 2x of libbpf stays out of reach in pure Python (host vmlinux, 130k types,
2026-12-08): libbpf's whole parse, sanity check and write takes 0.041 s; the least a
Python reader can do, one loop step per record that only finds where the next record
starts (`i += 3 + fixed[kind] + per_member[kind] * vlen` over a memoryview of u32s),
takes 0.027 s on its own, two thirds of libbpf's job, before it has checked or kept
anything. Decoding the records into objects is 0.2 s (`parse (no validation)`), and a
strict read that keeps them as read still runs the kernel's checks over every record
(`kernel rules alone`, 0.27 s). Medians of 3 rounds that day: parse+write 0.316 s,
strict parse+write 0.298 s, libbpf 0.041 s: 7.8x.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from paired import median, paired_ratio, run_rounds  # noqa: E402 - benchmarks/paired.py

from harness.btf import Btf, kernel_rules  # noqa: E402
from harness.btf.kernel_rules import KERNEL_7_3  # noqa: E402
from harness.btf.load import btf_bytes  # noqa: E402
from harness.btf.validate import check  # noqa: E402


def _base(base: bytes | None) -> Btf | None:
    return Btf.from_bytes(base) if base is not None else None


def row_parse_write(data: bytes, base: bytes | None) -> None:
    """Our job: parse with validation, write raw BTF back (and check it)."""
    b = _base(base)
    out = Btf.from_bytes(data, b).to_bytes()
    if out != data:
        raise SystemExit("round trip differs")


def row_parse_only(data: bytes, base: bytes | None) -> None:
    Btf.from_bytes(data, _base(base), validate=False)


def row_validate(data: bytes, base: bytes | None) -> None:
    """Parse without checks, then time-inclusive validation on its own for comparison."""
    check(Btf.from_bytes(data, _base(base), validate=False))


def row_strict_parse_write(data: bytes, base: bytes | None) -> None:
    """`harness btf copy`'s job: the kernel's checker (7.3 rules, as BPF_BTF_LOAD runs
    them) instead of the lenient one, then write. A strictly checked Btf decodes its
    records on first use of .types, so a copy that never looks at them writes them as
    read: this is the checker plus the header, strings and writing."""
    b = Btf.from_bytes(base, strict=KERNEL_7_3) if base is not None else None
    out = Btf.from_bytes(data, b, strict=KERNEL_7_3).to_bytes()
    if out != data:
        raise SystemExit("round trip differs")


def row_strict_decode_write(data: bytes, base: bytes | None) -> None:
    """A strict read whose user then walks the types (dump, kfuncs, btfids): the
    checker, the decode into objects and writing them encoded again."""
    b = Btf.from_bytes(base, strict=KERNEL_7_3) if base is not None else None
    btf = Btf.from_bytes(data, b, strict=KERNEL_7_3)
    if not btf.types:
        raise SystemExit("no types")
    if btf.to_bytes() != data:
        raise SystemExit("round trip differs")


def row_kernel_rules(data: bytes, base: bytes | None) -> None:
    """The kernel's checker alone (harness.btf.kernel_rules.check), on the raw bytes."""
    view = kernel_rules.check(base) if base is not None else None
    kernel_rules.check(data, view)


def row_libbpf_parse_write(data: bytes, base: bytes | None) -> None:
    """libbpf doing the same: btf__new (parse + sanity check), make it modifiable
    (btf__add_str of an existing string builds the string index), btf__raw_data."""
    from tests.helpers import libbpf_oracle

    lib = libbpf_oracle.libbpf()
    if lib is None:
        raise SystemExit("libbpf.so unavailable")
    b = lib.new(base) if base is not None else None
    btf = lib.new(data, b)
    btf.add_str("int")
    if btf.raw_data() != data:
        raise SystemExit("libbpf round trip differs")


ROWS: dict[str, Callable[[bytes, bytes | None], None]] = {
    "parse+write": row_parse_write,
    "parse (no validation)": row_parse_only,
    "parse then check": row_validate,
    "strict parse+write": row_strict_parse_write,
    "strict parse+decode+write": row_strict_decode_write,
    "kernel rules alone": row_kernel_rules,
    "libbpf parse+write": row_libbpf_parse_write,
}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(row: str, path: str, base: str | None, repeat: int) -> dict[str, float]:
    data = btf_bytes(path)
    base_data = btf_bytes(base) if base else None
    before = _rss_mib()
    fn = ROWS[row]
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(data, base_data)
        best = min(best, time.perf_counter() - t0)
    return {"seconds": best, "rss_mib": _rss_mib(), "rss_before_mib": before,
            "bytes": len(data)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", default="/sys/kernel/btf/vmlinux")
    ap.add_argument("--base")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--rounds", type=int, default=5,
                    help="every row once per round; medians over the rounds")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.file, args.base, args.repeat)))
        return 0
    # Nothing big is loaded here: a child's ru_maxrss starts from its parent's RSS.
    runs, failed = run_rounds(__file__, args)
    print(f"{args.file}: median of {args.rounds} rounds, each the best of {args.repeat}")
    print(f"{'job':28} {'wall s':>8} {'peak RSS MiB':>13} {'(before job)':>13}")
    for row in runs:
        if row in failed:
            print(f"{row:28} failed: {failed[row]}")
            continue
        got = runs[row]
        print(f"{row:28} {median(got):8.3f} {max(g['rss_mib'] for g in got):13.1f} "
              f"{median(got, 'rss_before_mib'):13.1f}")
    for mine, theirs, what in (("strict parse+write", "parse+write", "issue 19's target: 1.2x"),
                               ("strict parse+decode+write", "parse+write",
                                "the same when the types are then used"),
                               ("parse+write", "libbpf parse+write", "issue 29's target: 2x")):
        ratio = paired_ratio(runs, mine, theirs)
        if ratio is not None:
            print(f"{mine} / {theirs}: {ratio:.2f}x, median of the rounds' ratios ({what})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
