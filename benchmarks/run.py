"""Boot-to-first-verdict and whole-suite time per arch, warm caches (TCG here; KVM where
the probe says a guest really boots).

    python benchmarks/run.py [--arch x86_64 --arch arm64] [--runs 3]

"edit -> verdict" is one program's object compiled (cache hit unless edited), a fresh
guest booted and the verdict back; the whole suite is every program of bpf_progs/ plus the
tree's three selftests in one boot. Targets (2 cores, TCG): one program <= 8 s on x86_64
and <= 10 s on arm64; arm64 whole suite <= 2 min.
"""

from __future__ import annotations

import argparse
import statistics
import time

from harness.kbuild.build import Builder, BuildRequest, make_plan
from harness.progs.suite import run_arch, suite_sources

ONE_PROGRAM = "implicit_plain"


def measure(arch: str, runs: int) -> dict[str, float]:
    artifacts = Builder(make_plan(BuildRequest(arch=arch)), quiet=True).build()
    one = [s for s in suite_sources(artifacts) if s.name == "implicit_args.c"]
    firsts = []
    for _ in range(runs):
        started = time.monotonic()
        run = run_arch(artifacts, one, only=ONE_PROGRAM)
        if run.error or not run.results:
            raise SystemExit(f"{arch}: {run.error or 'no result'}")
        firsts.append(time.monotonic() - started)
    started = time.monotonic()
    whole = run_arch(artifacts)
    if whole.error:
        raise SystemExit(f"{arch}: {whole.error}")
    failed = [r.test_id for r in whole.results if r.verdict != "pass"]
    return {"edit->verdict, one program (median)": statistics.median(firsts),
            "whole suite incl. boot": time.monotonic() - started,
            "boot": whole.boot_s or 0.0, "suite programs": float(len(whole.results)),
            "suite not passing": float(len(failed))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", action="append", choices=["x86_64", "arm64"])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for arch in args.arch or ["x86_64", "arm64"]:
        for name, value in measure(arch, args.runs).items():
            print(f"{arch:7s} {name:40s} {value:8.2f}", flush=True)


if __name__ == "__main__":
    main()
