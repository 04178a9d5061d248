"""Dedup benchmark: harness.btf.dedup next to libbpf's btf__dedup on the same input.

    python benchmarks/btf_dedup.py [FILE] [--base BASE] [--repeat N] [--rows ROW,...]

FILE defaults to /sys/kernel/btf/vmlinux (raw BTF or an ELF with .BTF); with
--base it is split BTF on BASE. The target (issue 3) is dedup <= 3 s and peak
RSS <= 1 GiB on a ~153k-type vmlinux. Each row runs in a fresh child process
(peak RSS is its own: getrusage ru_maxrss, input parse included; `rss_before`
is the RSS once the input is parsed); wall time is the best of --repeat runs and
covers only the job, never the parse. Every row checks its output against
libbpf's once, so a fast wrong answer cannot look good.

- dedup: harness.btf.dedup.dedup(), in place.
- dedup+write: the same, then to_bytes() (what the transformer does next).
- libbpf dedup: btf__dedup() through ctypes (libbpf.so built from the tree).

`--inflate N OUT` writes FILE plus appended "second CU" copies of struct
closures (FWDs for some pointed-to structs, the rest shared), N types in all,
to OUT and benchmarks that: sysfs BTF went through libbpf already, so its
dedup merges nothing, while this input makes every phase do real work (the
host's 126k-type vmlinux inflated to ~153k matches issue 3's input size).
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

from harness.btf import Btf  # noqa: E402
from harness.btf.dedup import dedup  # noqa: E402
from harness.btf.load import btf_bytes  # noqa: E402


def _oracle():  # noqa: ANN202 - the tests' ctypes wrapper
    from tests.helpers import libbpf_oracle

    lib = libbpf_oracle.libbpf()
    if lib is None:
        raise SystemExit("libbpf.so unavailable")
    return lib


def libbpf_output(data: bytes, base: bytes | None) -> bytes:
    lib = _oracle()
    o = lib.new(data, lib.new(base) if base is not None else None)
    o.call("btf__dedup", None)
    return o.raw_data()


class Job:
    """One row: `prepare()` parses (untimed), `run()` does the timed job,
    `output()` gives the bytes to check against libbpf."""

    def __init__(self, data: bytes, base: bytes | None):
        self.data = data
        self.base_raw = base
        self.base = Btf.from_bytes(base) if base is not None else None
        self.btf: Btf | None = None

    def prepare(self) -> None:
        self.btf = Btf.from_bytes(self.data, self.base, validate=False)

    def run(self) -> None:
        dedup(self.btf)  # type: ignore[arg-type]

    def output(self) -> bytes:
        return self.btf.to_bytes()  # type: ignore[union-attr]


class WriteJob(Job):
    def run(self) -> None:
        dedup(self.btf)  # type: ignore[arg-type]
        self.raw = self.btf.to_bytes()  # type: ignore[union-attr]

    def output(self) -> bytes:
        return self.raw


class LibbpfJob(Job):
    def prepare(self) -> None:
        lib = _oracle()
        base = lib.new(self.base_raw) if self.base_raw is not None else None
        self.o = lib.new(self.data, base)

    def run(self) -> None:
        self.o.call("btf__dedup", None)

    def output(self) -> bytes:
        return self.o.raw_data()


ROWS: dict[str, Callable[[bytes, bytes | None], Job]] = {
    "dedup": Job,
    "dedup+write": WriteJob,
    "libbpf dedup": LibbpfJob,
}


def child(row: str, path: str, base_path: str | None, repeat: int) -> dict[str, object]:
    data = btf_bytes(path)
    base = btf_bytes(base_path) if base_path else None
    best = float("inf")
    rss_before = 0.0
    outputs = []
    for _ in range(repeat):
        job = ROWS[row](data, base)
        job.prepare()
        rss_before = max(rss_before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        t0 = time.perf_counter()
        job.run()
        best = min(best, time.perf_counter() - t0)
        outputs.append(job.output())
        del job
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    want = libbpf_output(data, base)  # after measuring: it must not count in the peak
    return {"seconds": best, "identical": all(o == want for o in outputs),
            "rss_before_mib": rss_before, "rss_mib": peak}


def inflate(path: str, total: int, out: Path) -> str:
    """FILE plus second-CU duplicates up to `total` types, written to `out`."""
    import random

    from test_dedup import add_second_cu

    b = Btf.from_bytes(btf_bytes(path), validate=False)
    rng = random.Random(1)
    while len(b) < total:
        add_second_cu(b, rng, roots=40, budget=min(2000, total - len(b)))
    out.write_bytes(b.to_bytes())
    return str(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", default="/sys/kernel/btf/vmlinux")
    ap.add_argument("--base", help="base BTF when FILE is split BTF")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--rounds", type=int, default=3,
                    help="every row once per round; medians over the rounds")
    ap.add_argument("--inflate", nargs=2, metavar=("N", "OUT"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.inflate:
        args.file = inflate(args.file, int(args.inflate[0]), Path(args.inflate[1]))
    if args.child:
        print(json.dumps(child(args.child, args.file, args.base, args.repeat)))
        return 0
    base = Btf.from_bytes(btf_bytes(args.base), validate=False) if args.base else None
    ntypes = len(Btf.from_bytes(btf_bytes(args.file), base, validate=False).types)
    print(f"{args.file}: {ntypes} types" + (f" on {args.base}" if args.base else ""))
    runs, failed = run_rounds(__file__, args)
    print(f"median of {args.rounds} rounds, each the best of {args.repeat}")
    print(f"{'job':16} {'wall s':>8} {'RSS before MiB':>15} {'peak RSS MiB':>13} {'= libbpf':>9}")
    for row in runs:
        if row in failed:
            print(f"{row:16} failed: {failed[row]}")
            continue
        got = runs[row]
        same = all(g["identical"] for g in got)
        print(f"{row:16} {median(got):8.3f} {median(got, 'rss_before_mib'):15.1f} "
              f"{max(g['rss_mib'] for g in got):13.1f} {'yes' if same else 'NO':>9}")
    ratio = paired_ratio(runs, "dedup", "libbpf dedup")
    if ratio is not None:
        print(f"dedup / libbpf dedup: {ratio:.2f}x, median of the rounds' ratios "
              "(issue 29's target: 2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
