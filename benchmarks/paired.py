"""Rows run in child processes, interleaved over rounds, and ratios paired by round.

Why: this machine is shared, and a slow spell can make one row 50% slower than the row
run a minute earlier. Running every row once per round and taking the median of each
round's ratio (its two rows ran moments apart) moves both sides of a ratio together.
Used by btf.py and btf_dedup.py, whose children print one JSON object with "seconds".
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys


def run_rounds(script: str, args: argparse.Namespace) -> tuple[dict[str, list[dict]],
                                                                dict[str, str]]:
    """`python script FILE --repeat N [--base B] --child ROW` for every row of args.rows,
    once per round (args.rounds); returns each row's results (in round order) and, for
    a row that failed, its last error line."""
    rows = args.rows.split(",")
    cmd = [sys.executable, script, args.file, "--repeat", str(args.repeat)]
    if args.base:
        cmd += ["--base", args.base]
    runs: dict[str, list[dict]] = {row: [] for row in rows}
    failed: dict[str, str] = {}
    for _ in range(args.rounds):
        for row in rows:
            if row in failed:
                continue
            r = subprocess.run([*cmd, "--child", row], capture_output=True, text=True,
                               check=False)
            if r.returncode:
                failed[row] = str((r.stderr or r.stdout).strip().splitlines()[-1:])
                continue
            runs[row].append(json.loads(r.stdout))
    return runs, failed


def median(results: list[dict], key: str = "seconds") -> float:
    return statistics.median(r[key] for r in results)


def paired_ratio(runs: dict[str, list[dict]], mine: str, theirs: str) -> float | None:
    """Median over rounds of mine's seconds / theirs' (None unless both ran every round)."""
    a, b = runs.get(mine), runs.get(theirs)
    if not a or not b or len(a) != len(b):
        return None
    return statistics.median(x["seconds"] / y["seconds"] for x, y in zip(a, b, strict=True))
