"""Edit -> verdict for one program, boot, and whole-suite time per arch (warm caches; TCG
here, KVM where the probe says a guest really boots).

    python benchmarks/run.py [--arch x86_64 --arch arm64] [--runs 3]

Each "edit" rewrites a copy of bpf_progs/implicit_args.c with a new comment, so clang
really recompiles it (the object cache is keyed by content), then measures until its
verdict is back:
- fresh guest: `harness run --prog FILE` the way a one-off check runs it: the guest
  boots while the program compiles, bpf_testmod and the bundle go over in one transfer;
- warm guest: `harness progs watch FILE` after a save: the guest is already up.
The whole suite is every program of bpf_progs/ plus the tree's three selftests in one
boot. Targets (2 cores, TCG): one program <= 8 s on x86_64 and <= 10 s on arm64;
arm64 whole suite <= 2 min.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from harness.kbuild.build import Builder, BuildRequest, make_plan
from harness.progs.suite import run_arch
from harness.progs.watch import judge_once
from harness.targets.qemu import QemuTarget

REPO = Path(__file__).resolve().parents[1]
PROGRAM = REPO / "bpf_progs" / "implicit_args.c"
ONE_PROGRAM = "implicit_plain"


def edit(copy: Path, n: int) -> None:
    """A real edit: new bytes, so the compile cache misses."""
    copy.write_text(PROGRAM.read_text() + f"\n/* edit {n} at {time.time_ns()} */\n")


def expect_pass(arch: str, results: list, error: str | None) -> None:
    if error or not results or any(r.verdict != "pass" for r in results):
        raise SystemExit(f"{arch}: {error or [(r.program, r.verdict) for r in results]}")


def measure(arch: str, runs: int) -> dict[str, float]:
    artifacts = Builder(make_plan(BuildRequest(arch=arch)), quiet=True).build()
    work = Path(tempfile.mkdtemp(prefix="harness-bench-run-"))
    copy = work / PROGRAM.name
    figures: dict[str, float] = {}
    try:
        fresh, boots = [], []
        for n in range(runs):
            edit(copy, n)
            started = time.monotonic()
            run = run_arch(artifacts, [copy], only=ONE_PROGRAM)
            fresh.append(time.monotonic() - started)
            boots.append(run.boot_s or 0.0)
            expect_pass(arch, run.results, run.error)
        figures["edit->verdict, fresh guest (median)"] = statistics.median(fresh)
        figures["  of which boot (median)"] = statistics.median(boots)
        warm = []
        with QemuTarget(artifacts, arch) as target:
            for n in range(runs + 1):
                edit(copy, 100 + n)
                result = judge_once(artifacts, target, [copy], only=ONE_PROGRAM)
                expect_pass(arch, result.results, result.error)
                if n:  # the first round also loads bpf_testmod: that is a boot's cost
                    warm.append(result.seconds)
        figures["edit->verdict, warm guest / watch (median)"] = statistics.median(warm)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    started = time.monotonic()
    whole = run_arch(artifacts)
    if whole.error:
        raise SystemExit(f"{arch}: {whole.error}")
    figures["whole suite incl. boot"] = time.monotonic() - started
    figures["  boot"] = whole.boot_s or 0.0
    figures["  suite programs"] = float(len(whole.results))
    figures["  suite not passing"] = float(sum(r.verdict != "pass" for r in whole.results))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", action="append", choices=["x86_64", "arm64"])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for arch in args.arch or ["x86_64", "arm64"]:
        for name, value in measure(arch, args.runs).items():
            print(f"{arch:7s} {name:44s} {value:8.2f}", flush=True)


if __name__ == "__main__":
    main()
