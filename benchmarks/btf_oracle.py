"""How far harness.btf's validator is from the kernel's BTF checker, measured by mutation.

    python benchmarks/btf_oracle.py [--blobs N] [--seed S] [--vmlinux] [--split] [--built]
                                    [--build DIR] [--keep DIR] [--keep-regressions DIR]

Why: the validator is meant to reject exactly what bpf(BPF_BTF_LOAD) rejects. Random
valid-looking damage finds the rules it misses (it accepts, the kernel refuses) and the
ones it invents (it refuses, the kernel loads), with the kernel's own words for each.

How: every seed blob of harness.btf.oracle.seed_blobs (small builder-made BTF with
every kind; --vmlinux adds the host's /sys/kernel/btf/vmlinux, --built the .BTF of the
newest harness-built vmlinux or --build DIR's) gets N mutants from oracle.mutate with a
seeded RNG (same --seed, same mutants). --split adds split seeds (oracle.split_seeds: a
builder-made split on the "tiny" seed; with --built also a built kernel's module BTF):
only the split blob is mutated, and oracle.compare_split judges it (the kernel sees the
base+split merge, or the split's own header decides). Seeds the host kernel does not load
are skipped with the reason (a 7.x-only header, say), as are seeds we refuse ourselves.
Each mutant goes to oracle.compare: our parse + validate.check, then BPF_BTF_LOAD on the
running kernel (needs CAP_BPF). Printed: counts per category, per mutation label, and the
disagreements grouped by (our reason, the kernel's last log line) with numbers blanked
out, each with one example; last, one summary line with the blob, crash and disagreement
counts. A crash (an exception other than BTFError from harness.btf) is counted and shown
with its exception.

--keep DIR writes every disagreeing or crashing mutant as DIR/<category>/<seed>-<n>-<label>.btf
plus DIR/index.tsv (split mutants also DIR/bases/<seed>.btf). --keep-regressions DIR
appends small cases (blob and base at most 2 KB: mutants of the builder seeds) in the
format of tests/btf/data/oracle/: DIR/<seed>-<label>-<hash>.btf, bases as
DIR/base-<seed>.btf, and DIR/index.tsv rows "file, base|split, base file, accept|reject,
kernel log line"; kept (at most --regression-limit) are oracle.crafted_split_cases (with
--split), one of each disagreement group and crash, and one agreeing reject per kernel
rule, for base and split seeds alike (see Regressions). Time per blob is split into
mutation, our check and the kernel's.
"""

from __future__ import annotations

import argparse
import hashlib
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

CRASH = "crash"
REGRESSION_MAX = 2048  # bytes per file in the repo's regression corpus
REGRESSION_HEADER = "# file\tkind\tbase\tkernel\tkernel_log\n"


@dataclass(frozen=True)
class Seed:
    """A seed blob; `base` set when it is split BTF on that base."""

    name: str
    blob: bytes
    base: bytes | None = None


@dataclass
class Example:
    """The first mutant seen in a group, to show and to reproduce."""

    seed: str
    index: int
    label: str
    ours: str
    kernel: str


def _cell(text: str) -> str:
    return " ".join(text.split())


def _keep(keep: Path | None, category: str, seed: Seed, name: str, blob: bytes,
          row: list[str]) -> None:
    if keep is None:
        return
    d = keep / category
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(blob)
    base = ""
    if seed.base is not None:
        base = f"bases/{seed.name}.btf"
        (keep / "bases").mkdir(exist_ok=True)
        if not (keep / base).exists():
            (keep / base).write_bytes(seed.base)
    with (keep / "index.tsv").open("a") as f:
        f.write("\t".join([f"{category}/{name}", *(_cell(c) for c in row), base]) + "\n")


@dataclass(frozen=True)
class Case:
    """A candidate regression case: the mutant, its seed and the kernel's verdict."""

    seed: Seed
    label: str
    blob: bytes
    category: str
    kernel_ok: bool
    kernel_reason: str


def _interleave(cases: list[Case]) -> list[Case]:
    """Base and split cases alternately, so a cut keeps both kinds."""
    base = [c for c in cases if c.seed.base is None]
    split = [c for c in cases if c.seed.base is not None]
    out = []
    for i in range(max(len(base), len(split))):
        out += base[i:i + 1] + split[i:i + 1]
    return out


class Regressions:
    """Writer of the regression corpus format (tests/btf/data/oracle/index.tsv).

    Why a selection: the corpus should pin each distinct behaviour once, stay small
    enough to live in git, and not grow with every run (names are content hashes, rows
    already present are not repeated). Candidates are the first small mutant of each
    group: disagreements and crashes by (category, our reason, the kernel's), agreeing
    rejects by the kernel's message alone (its KIND dropped), separately for base and split
    seeds. `write` keeps at most `limit`: pinned cases, disagreements and crashes, but at
    least a third agreeing rejects (each a different kernel rule).
    """

    def __init__(self, root: Path, limit: int = 60):
        self.root = root
        self.limit = limit
        self.groups: dict[tuple[object, ...], Case] = {}
        self.pinned: list[Case] = []
        self.added = 0

    def pin(self, case: Case) -> None:
        """A case written whatever the selection (oracle.crafted_split_cases)."""
        self.pinned.append(case)

    def offer(self, case: Case, key: tuple[str, str, str]) -> None:
        if case.category == oracle.AGREE_ACCEPT or len(case.blob) > REGRESSION_MAX:
            return
        if case.seed.base is not None and len(case.seed.base) > REGRESSION_MAX:
            return
        if case.category == oracle.AGREE_REJECT:
            group: tuple[object, ...] = (case.seed.base is None, case.category,
                                         key[2].split(": ", 1)[-1])
        else:
            group = (case.seed.base is None, *key)
        self.groups.setdefault(group, case)

    def write(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        index = self.root / "index.tsv"
        if not index.exists():
            index.write_text(REGRESSION_HEADER)
        have = {line.split("\t", 1)[0] for line in index.read_text().splitlines()
                if line and not line.startswith("#")}
        cases = list(self.groups.values())
        rejects = _interleave([c for c in cases if c.category == oracle.AGREE_REJECT])
        others = _interleave([c for c in cases if c.category != oracle.AGREE_REJECT])
        room = max(0, self.limit - len(self.pinned))
        n_rej = min(len(rejects), max(room // 3, room - len(others)))
        chosen = self.pinned + others[:room - n_rej] + rejects[:n_rej]
        with index.open("a") as f:
            for case in chosen:
                name = (f"{case.seed.name}-{case.label}-"
                        f"{hashlib.sha1(case.blob).hexdigest()[:10]}.btf")
                if name in have:
                    continue
                (self.root / name).write_bytes(case.blob)
                base = ""
                if case.seed.base is not None:
                    base = f"base-{case.seed.name}.btf"
                    if not (self.root / base).exists():
                        (self.root / base).write_bytes(case.seed.base)
                row = [name, "base" if case.seed.base is None else "split", base,
                       "accept" if case.kernel_ok else "reject", _cell(case.kernel_reason)]
                f.write("\t".join(row) + "\n")
                have.add(name)
                self.added += 1


def _short(text: str, width: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."


def _compare(seed: Seed, blob: bytes) -> oracle.Outcome:
    if seed.base is None:
        return oracle.compare(blob)
    return oracle.compare_split(seed.base, blob)


def _kernel(seed: Seed, blob: bytes) -> oracle.KernelVerdict:
    if seed.base is None:
        return oracle.kernel_load(blob)
    return oracle.kernel_split(seed.base, blob)


def run(seeds: list[Seed], blobs: int, seed: int, keep: Path | None, top: int,
        regressions: Regressions | None = None) -> int:
    cats: Counter[str] = Counter()
    by_label: dict[str, Counter[str]] = defaultdict(Counter)
    groups: Counter[tuple[str, str, str]] = Counter()
    examples: dict[tuple[str, str, str], Example] = {}
    timing: dict[str, list[float]] = {}
    for sd in seeds:
        rng = random.Random(f"{seed}:{sd.name}")
        t_mut = t_ours = t_kernel = 0.0
        start = time.perf_counter()
        for i in range(blobs):
            t0 = time.perf_counter()
            mutant, label = oracle.mutate(sd.blob, rng, base=sd.base)
            t_mut += time.perf_counter() - t0
            try:
                out = _compare(sd, mutant)
            except PermissionError as exc:
                print(f"kernel oracle unavailable: {exc}", file=sys.stderr)
                return 2
            except Exception as exc:  # noqa: BLE001 - a crash of harness.btf: count it
                verdict = _kernel(sd, mutant)
                frame = traceback.extract_tb(exc.__traceback__)[-1]
                ours = f"{type(exc).__name__}: {exc} ({Path(frame.filename).name}:{frame.lineno})"
                key = (CRASH, _short(ours, 80), oracle.kernel_key(verdict.reason))
                category = CRASH
                kernel_ok, kernel_reason = verdict.loaded, verdict.reason
            else:
                t_ours += out.ours_seconds
                t_kernel += out.kernel_seconds
                category = out.category
                ours, kernel_ok, kernel_reason = out.ours_reason, out.kernel_ok, out.kernel_reason
                key = (category, oracle.our_key(ours) if ours else "(accepted)",
                       oracle.kernel_key(kernel_reason))
            cats[category] += 1
            by_label[label][category] += 1
            if regressions is not None:
                regressions.offer(Case(sd, label, mutant, category, kernel_ok, kernel_reason),
                                  key)
            if category in (oracle.WE_ACCEPT, oracle.WE_REJECT, CRASH):
                groups[key] += 1
                examples.setdefault(key, Example(sd.name, i, label, ours, kernel_reason))
                _keep(keep, category, sd, f"{sd.name}-{i:05d}-{label}.btf", mutant,
                      [label, ours, kernel_reason])
        timing[sd.name] = [time.perf_counter() - start, t_mut, t_ours, t_kernel, len(sd.blob)]

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
    if regressions is not None:
        regressions.write()
        print(f"\nregression cases added to {regressions.root}: {regressions.added} "
              f"(of {len(regressions.groups)} candidates)")
    print(f"\nblobs={total} crashes={cats[CRASH]} {oracle.WE_ACCEPT}={cats[oracle.WE_ACCEPT]} "
          f"{oracle.WE_REJECT}={cats[oracle.WE_REJECT]}")
    return 0


def gather_seeds(args: argparse.Namespace) -> list[Seed]:
    """The seeds asked for, each checked on both sides; ones the host kernel does not load
    (or we refuse) are dropped with the reason printed, since their mutants say nothing."""
    wanted: list[Seed] = []
    plain = oracle.seed_blobs(vmlinux=args.vmlinux or args.only_vmlinux)
    if args.only_vmlinux:
        plain = {"vmlinux": plain["vmlinux"]}
    wanted += [Seed(name, blob) for name, blob in plain.items()]
    if args.built:
        build = args.build or oracle.find_build()
        if build is None:
            print("--built: no built kernel (a builds/*/vmlinux) in the harness cache",
                  file=sys.stderr)
        else:
            print(f"built kernel: {build}")
            built = oracle.built_seeds(build)
            if not built:
                print(f"  skip built-vmlinux: no .BTF in {build / 'vmlinux'}", file=sys.stderr)
            wanted += [Seed(name, blob) for name, blob in built.items()]
    if args.split:
        triples = oracle.split_seeds()
        if args.built and (args.build or oracle.find_build()) is not None:
            triples += oracle.built_split_seeds(args.build)
        wanted += [Seed(name, split, base) for name, base, split in triples]
    kept = []
    for sd in wanted:
        out = _compare(sd, sd.blob)
        what = f"seed {sd.name} ({len(sd.blob)} bytes" + (
            f", on a {len(sd.base)}-byte base)" if sd.base is not None else ")")
        if not out.kernel_ok:
            print(f"skip {what}: the host kernel refuses it: {out.kernel_reason}",
                  file=sys.stderr)
        elif not out.ours_ok:
            print(f"skip {what}: we refuse what the host kernel loads: {out.ours_reason}",
                  file=sys.stderr)
        else:
            kept.append(sd)
    return kept


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blobs", type=int, default=300, help="mutants per seed blob")
    ap.add_argument("--seed", type=int, default=0, help="RNG seed (same seed, same mutants)")
    ap.add_argument("--vmlinux", action="store_true",
                    help="also mutate /sys/kernel/btf/vmlinux (~1 s per mutant)")
    ap.add_argument("--only-vmlinux", action="store_true", help="skip the small seeds")
    ap.add_argument("--split", action="store_true",
                    help="also mutate split BTF seeds (checked against the base+split merge)")
    ap.add_argument("--built", action="store_true",
                    help="also seed from a harness-built kernel: its vmlinux .BTF and, with "
                         "--split, its module BTF (~0.3 s per mutant)")
    ap.add_argument("--build", type=Path, help="the build dir for --built (default: newest)")
    ap.add_argument("--keep", type=Path, help="write disagreeing/crashing mutants here")
    ap.add_argument("--keep-regressions", type=Path, metavar="DIR",
                    help="append small cases in the tests/btf/data/oracle format")
    ap.add_argument("--regression-limit", type=int, default=60, metavar="N",
                    help="at most N cases per --keep-regressions run")
    ap.add_argument("--top", type=int, default=12, help="groups shown per category")
    args = ap.parse_args(argv)
    why = oracle.kernel_unavailable()
    if why is not None:
        print(f"kernel oracle unavailable: {why}", file=sys.stderr)
        return 2
    seeds = gather_seeds(args)
    if not seeds:
        print("no usable seed", file=sys.stderr)
        return 2
    regressions = None
    if args.keep_regressions:
        regressions = Regressions(args.keep_regressions, args.regression_limit)
        for sd in seeds:
            if sd.name == "split-tiny" and sd.base is not None:
                for what, blob in oracle.crafted_split_cases(sd.base).items():
                    out = oracle.compare_split(sd.base, blob)
                    regressions.pin(Case(sd, f"crafted-{what}", blob, out.category,
                                         out.kernel_ok, out.kernel_reason))
    return run(seeds, args.blobs, args.seed, args.keep, args.top, regressions)


if __name__ == "__main__":
    sys.exit(main())
