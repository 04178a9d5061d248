"""What a nightly matrix costs: every cell's wall time, the total, and --jobs against one
cell at a time, on this machine.

    python benchmarks/matrix.py [FILE] [--cells FILTER] [--jobs K] [--skip-sequential]

Runs `harness matrix FILE` (default matrix.toml, the 36-cell product) as a CI job would,
first one cell at a time, then with --jobs K (default 2) on the now warm cache, and
prints per cell: status, the first run's seconds (cold when the cache lacked that
kernel: a build, else a BTF-stage relink or a cache hit), the warm sequential seconds
when the first run was cold, and the parallel run's seconds; then the totals. A cell's
seconds are its build + boot + suite (CellOutcome.seconds), the totals wall clock.
Nothing here asserts a figure: the figures go into the notes.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from harness.matrix.run import run_cells
from harness.matrix.spec import load_matrix, select

REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Pass:
    label: str
    seconds: float
    cells: dict[str, tuple[str, float]]  # id -> (status, seconds)


def run_pass(label: str, cells: list, jobs: int) -> Pass:
    started = time.monotonic()
    outcomes = run_cells(cells, jobs=jobs)
    return Pass(label, time.monotonic() - started,
                {o.cell.id: (o.status, o.seconds) for o in outcomes})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path, default=REPO / "matrix.toml")
    parser.add_argument("--cells", help="as harness matrix --cells")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--skip-sequential", action="store_true",
                        help="only the --jobs run (the cache is known warm)")
    args = parser.parse_args()
    cells = list(load_matrix(args.file).cells)
    if args.cells:
        cells = select(cells, args.cells)
    passes = []
    if not args.skip_sequential:
        passes.append(run_pass("first (jobs 1)", cells, 1))
        if any(seconds > 120 for _, seconds in passes[0].cells.values()):
            passes.append(run_pass("warm (jobs 1)", cells, 1))
    passes.append(run_pass(f"warm (jobs {args.jobs})", cells, args.jobs))
    width = max(len(c.id) for c in cells)
    print()
    print(f"{'cell':{width}s}  " + "  ".join(f"{p.label:>18s}" for p in passes))
    for cell in cells:
        row = []
        for p in passes:
            status, seconds = p.cells.get(cell.id, ("-", 0.0))
            row.append(f"{status:>6s} {seconds:9.1f} s ")
        print(f"{cell.id:{width}s}  " + "  ".join(f"{r:>18s}" for r in row))
    print(f"{'total (wall)':{width}s}  " + "  ".join(f"{p.seconds:16.1f} s" for p in passes))
    statuses = [s for s, _ in passes[-1].cells.values()]
    print(f"{len(cells)} cells: " + ", ".join(
        f"{statuses.count(s)} {s}" for s in ("pass", "fail", "expect", "infra")))


if __name__ == "__main__":
    main()
