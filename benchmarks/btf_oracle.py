"""How far harness.btf's validator is from the kernel's BTF checker, measured by mutation.

    python benchmarks/btf_oracle.py [--blobs N] [--seed S] [--vmlinux] [--keep DIR]

Why: the validator is meant to reject exactly what bpf(BPF_BTF_LOAD) rejects. Random
valid-looking damage finds the rules it misses (it accepts, the kernel refuses) and the
ones it invents (it refuses, the kernel loads), with the kernel's own words for each.

How: every seed blob of harness.btf.oracle.seed_blobs (small builder-made BTF with
every kind; --vmlinux adds the host's /sys/kernel/btf/vmlinux) gets N mutants from
oracle.mutate with a seeded RNG (same --seed, same mutants). Each mutant goes to
oracle.compare: our parse + validate.check, then BPF_BTF_LOAD on the running kernel
(needs CAP_BPF). Printed: counts per category, per mutation label, and the disagreements
grouped by (our reason, the kernel's last log line) with numbers blanked out, each with
one example. A crash (an exception other than BTFError from harness.btf) is counted and
shown with its exception. --keep DIR writes every disagreeing or crashing mutant as
DIR/<category>/<seed>-<n>-<label>.btf plus DIR/index.tsv, for regression cases.
Time per blob is split into mutation, our check and the kernel's.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.btf import oracle  # noqa: E402
from harness.btf.kernel_check import kernel_load  # noqa: E402

CRASH = "crash"


@dataclass
class Example:
    """The first mutant seen in a group, to show and to reproduce."""

    seed: str
    index: int
    label: str
    ours: str
    kernel: str


def _keep(keep: Path | None, category: str, name: str, blob: bytes, row: list[str]) -> None:
    if keep is None:
        return
    d = keep / category
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(blob)
    with (keep / "index.tsv").open("a") as f:
        f.write("\t".join([f"{category}/{name}", *(" ".join(c.split()) for c in row)]) + "\n")


def _short(text: str, width: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."


def run(seeds: dict[str, bytes], blobs: int, seed: int, keep: Path | None, top: int) -> int:
    cats: Counter[str] = Counter()
    by_label: dict[str, Counter[str]] = defaultdict(Counter)
    groups: Counter[tuple[str, str, str]] = Counter()
    examples: dict[tuple[str, str, str], Example] = {}
    timing: dict[str, list[float]] = {}
    for name, blob in seeds.items():
        rng = random.Random(f"{seed}:{name}")
        t_mut = t_ours = t_kernel = 0.0
        start = time.perf_counter()
        for i in range(blobs):
            t0 = time.perf_counter()
            mutant, label = oracle.mutate(blob, rng)
            t_mut += time.perf_counter() - t0
            try:
                out = oracle.compare(mutant)
            except PermissionError as exc:
                print(f"kernel oracle unavailable: {exc}", file=sys.stderr)
                return 2
            except Exception as exc:  # noqa: BLE001 - a crash of harness.btf: count it
                verdict = kernel_load(mutant)
                frame = traceback.extract_tb(exc.__traceback__)[-1]
                ours = f"{type(exc).__name__}: {exc} ({Path(frame.filename).name}:{frame.lineno})"
                key = (CRASH, _short(ours, 80), oracle.kernel_key(verdict.reason))
                category = CRASH
                kernel_reason = verdict.reason
            else:
                t_ours += out.ours_seconds
                t_kernel += out.kernel_seconds
                category = out.category
                ours, kernel_reason = out.ours_reason, out.kernel_reason
                key = (category, oracle.our_key(ours) if ours else "(accepted)",
                       oracle.kernel_key(kernel_reason))
            cats[category] += 1
            by_label[label][category] += 1
            if category in (oracle.WE_ACCEPT, oracle.WE_REJECT, CRASH):
                groups[key] += 1
                examples.setdefault(key, Example(name, i, label, ours, kernel_reason))
                _keep(keep, category, f"{name}-{i:05d}-{label}.btf", mutant,
                      [label, ours, kernel_reason])
        timing[name] = [time.perf_counter() - start, t_mut, t_ours, t_kernel, len(blob)]

    total = sum(cats.values())
    print(f"{total} mutants (seed {seed}, {blobs} per seed blob)\n")
    print("time per blob (ms)   size      mutate    ours  kernel   total")
    for name, (wall, t_mut, t_ours, t_kernel, size) in timing.items():
        print(f"  {name:<16} {size:>9} {1e3 * t_mut / blobs:>9.2f} {1e3 * t_ours / blobs:>7.2f}"
              f" {1e3 * t_kernel / blobs:>7.2f} {1e3 * wall / blobs:>7.2f}")
    print("\ncategories")
    for cat in (*oracle.CATEGORIES, CRASH):
        print(f"  {cat:<26} {cats[cat]:>6}  {100 * cats[cat] / max(total, 1):5.1f}%")
    cols = (*oracle.CATEGORIES, CRASH)
    short = ("acc", "rej", "WE-ACC", "we-rej", "crash")
    print("\nper mutation label    " + " ".join(f"{s:>7}" for s in short))
    for label in oracle.MUTATORS:
        counts = by_label.get(label)
        if counts:
            print(f"  {label:<20}" + " ".join(f"{counts[c]:>7}" for c in cols))
    for cat in (oracle.WE_ACCEPT, oracle.WE_REJECT, CRASH):
        rows = [(n, k) for k, n in groups.most_common() if k[0] == cat]
        if not rows:
            continue
        print(f"\n{cat}: {len(rows)} groups (ours | kernel), top {min(top, len(rows))}")
        for n, key in rows[:top]:
            ex = examples[key]
            print(f"  {n:>5}  {_short(key[1], 60)} | {_short(key[2], 60)}")
            print(f"         e.g. {ex.seed} #{ex.index} {ex.label}: ours={_short(ex.ours, 70)!r}")
            print(f"              kernel={_short(ex.kernel, 90)!r}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blobs", type=int, default=300, help="mutants per seed blob")
    ap.add_argument("--seed", type=int, default=0, help="RNG seed (same seed, same mutants)")
    ap.add_argument("--vmlinux", action="store_true",
                    help="also mutate /sys/kernel/btf/vmlinux (~1 s per mutant)")
    ap.add_argument("--only-vmlinux", action="store_true", help="skip the small seeds")
    ap.add_argument("--keep", type=Path, help="write disagreeing/crashing mutants here")
    ap.add_argument("--top", type=int, default=12, help="groups shown per category")
    args = ap.parse_args(argv)
    why = oracle.kernel_unavailable()
    if why is not None:
        print(f"kernel oracle unavailable: {why}", file=sys.stderr)
        return 2
    seeds = oracle.seed_blobs(vmlinux=args.vmlinux or args.only_vmlinux)
    if args.only_vmlinux:
        seeds = {"vmlinux": seeds["vmlinux"]}
    for name, blob in seeds.items():
        out = oracle.compare(blob)
        if out.category != oracle.AGREE_ACCEPT:
            print(f"seed {name} is not accepted by both: {out}", file=sys.stderr)
            return 2
    return run(seeds, args.blobs, args.seed, args.keep, args.top)


if __name__ == "__main__":
    sys.exit(main())
