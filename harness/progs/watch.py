"""Keep one guest booted and re-judge BPF sources every time one is saved.

A fresh guest costs a boot (about 6 s for x86_64 and 11 s for arm64 under TCG here)
plus loading bpf_testmod; a developer iterating on one program pays that once, and
each save then costs a compile, one bundle transfer and the agent's run: the
edit -> verdict loop `harness progs watch` and benchmarks/run.py measure. A guest
that dies under a program (panic, splat, hang) is reported and booted again before
the next round.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.progs.compile import CompileError
from harness.progs.makeflags import DEFAULT_FLAVOR
from harness.progs.results import ProgResult
from harness.progs.runner import run_suite
from harness.targets.base import Target
from harness.targets.errors import TargetError


@dataclass
class Round:
    """One edit -> verdict round: results, or the compile/guest error that stopped it."""

    results: list[ProgResult]
    seconds: float
    error: str | None = None


def judge_once(artifacts: Any, target: Target, sources: Sequence[Path], *,
               only: str | None = None, timeout: float = 60.0, clang: str = "clang",
               flavor: str = DEFAULT_FLAVOR) -> Round:
    """Compile `sources` (cached by content) and judge them on the running `target`;
    after the first round a persistent agent there runs them (runner._remote_agent)."""
    started = time.monotonic()
    try:
        results = run_suite(artifacts, target, sources, only=only, timeout=timeout,
                            clang=clang, flavor=flavor, keep_agent=True)
    except CompileError as exc:
        return Round([], time.monotonic() - started, f"compile: {exc}")
    except TargetError as exc:
        return Round([], time.monotonic() - started, f"{type(exc).__name__}: {exc}")
    return Round(results, time.monotonic() - started)


def _stamps(sources: Sequence[Path]) -> dict[Path, int]:
    stamps = {}
    for src in sources:
        try:
            stamps[src] = src.stat().st_mtime_ns
        except OSError:
            stamps[src] = -1  # deleted or mid-save: a later stat decides
    return stamps


def watch(artifacts: Any, target: Target, sources: Sequence[Path], report: Callable[[Round], None],
          *, only: str | None = None, timeout: float = 60.0, poll: float = 0.2,
          rounds: int | None = None, clang: str = "clang",
          flavor: str = DEFAULT_FLAVOR) -> None:
    """Judge now and after every save until Ctrl-C (or `rounds` rounds, for tests);
    `clang` is the compiler's command or path, `flavor` a test_progs flavor."""
    seen: dict[Path, int] = {}
    done = 0
    while rounds is None or done < rounds:
        stamps = _stamps(sources)
        if stamps == seen:
            time.sleep(poll)
            continue
        seen = stamps
        target.start()  # a no-op while it runs; a fresh boot after a hang stopped it
        result = judge_once(artifacts, target, sources, only=only, timeout=timeout,
                            clang=clang, flavor=flavor)
        report(result)
        done += 1
