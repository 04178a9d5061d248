"""Where one `python -m harness.btfids` run spends its time, phase by phase.

    python benchmarks/btfids_phases.py [resolve_btfids options] ELF

Why: cProfile triples the run and blurs the shares; this wraps the pipeline's own
phases (BTF load, kfunc edits, finalize and dedup, the kernel check, BTF_ID resolve,
encoding, writes) with wall-clock timers and runs the tool once, in this process, on
the arguments kbuild would pass. The outputs are written next to ELF as usual.
"""

from __future__ import annotations

import collections
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

T_START = time.perf_counter()
from harness.btf import codec  # noqa: E402
from harness.btf import dedup as btf_dedup  # noqa: E402
from harness.btfids import cli, resolve  # noqa: E402
from harness.btfids import ids as btf_ids  # noqa: E402

T_IMPORTED = time.perf_counter()
SPENT: collections.Counter[str] = collections.Counter()


def _timed(module: ModuleType, name: str, label: str) -> None:
    """Replace module.name by a wrapper adding its wall time to SPENT[label]."""
    fn: Callable[..., object] = getattr(module, name)

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[label] += time.perf_counter() - t0

    setattr(module, name, wrapper)


PHASES = (
    (resolve, "load_btf", "load BTF (decode + sanity check)"),
    (resolve, "_btf2btf", "kfunc edits"),
    (resolve, "_finalize", "finalize (dedup, distill, sort)"),
    (btf_dedup, "dedup", "  of which dedup"),
    (resolve, "_kernel_check", "kernel check (boot rules)"),
    (btf_ids, "collect", "symbol walk"),
    (btf_ids, "resolve", "BTF_ID resolve"),
    (codec, "encode_types", "encode types"),
    (resolve, "write_outputs", "write outputs"),
)


def main(argv: list[str]) -> int:
    for module, name, label in PHASES:
        _timed(module, name, label)
    t0 = time.perf_counter()
    rc = cli.main(argv)
    total = time.perf_counter() - t0
    print(f"imports {T_IMPORTED - T_START:.3f} s (after interpreter start), run {total:.3f} s, "
          f"exit {rc}")
    for label, seconds in SPENT.most_common():
        print(f"  {label:34} {seconds:.3f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
