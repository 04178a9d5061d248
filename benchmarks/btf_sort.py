"""Sort-by-name benchmark: our sort_by_name vs libbpf's btf__permute and the C resolve_btfids.

    python benchmarks/btf_sort.py [FILE] [--repeat N] [--rows ROW,...]

FILE defaults to /sys/kernel/btf/vmlinux (raw BTF or an ELF with .BTF). The
target (issue 3) is sort <= 0.5 s on a ~153k-type vmlinux. Each row runs in a
fresh child process (peak RSS is its own); wall time is the best of --repeat.
Rows time only their job: the input is parsed before the clock starts.

- sort: harness.btf.sort.sort_by_name (order + permute + id remap), in place.
- sort+write: the same, then to_bytes() (what the transformer's last step does).
- libbpf permute: btf__permute() alone, given our id map (ctypes): the C half of
  resolve_btfids' sort_btf_by_name.
- C resolve_btfids 7.2: the whole process (parse, sort, write .BTF) on a dummy ELF,
  when the 7.2 tool is built (tests/btf/test_sort.py builds it).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "btf"))

from harness.btf import Btf  # noqa: E402
from harness.btf.load import btf_bytes  # noqa: E402
from harness.btf.sort import sort_by_name  # noqa: E402


def row_sort(data: bytes) -> float:
    b = Btf.from_bytes(data, validate=False)
    t0 = time.perf_counter()
    sort_by_name(b)
    return time.perf_counter() - t0


def row_sort_write(data: bytes) -> float:
    b = Btf.from_bytes(data, validate=False)
    t0 = time.perf_counter()
    sort_by_name(b)
    b.to_bytes()
    return time.perf_counter() - t0


def row_libbpf_permute(data: bytes) -> float:
    import libbpf_oracle

    lib = libbpf_oracle.libbpf()
    if lib is None:
        raise SystemExit("libbpf.so unavailable")
    lib.declare("btf__permute", ctypes.c_int, [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32),
                                              ctypes.c_uint32, ctypes.c_void_p])
    id_map = sort_by_name(Btf.from_bytes(data, validate=False))
    arr = (ctypes.c_uint32 * len(id_map))(*id_map)
    o = lib.new(data)
    t0 = time.perf_counter()
    err = lib.so.btf__permute(o.ptr, arr, len(id_map), None)
    elapsed = time.perf_counter() - t0
    if err:
        raise SystemExit(f"btf__permute failed: {err}")
    return elapsed


def row_c_tool_72(data: bytes) -> float:
    from test_sort import build_resolve_btfids_72

    tool = build_resolve_btfids_72()
    if tool is None:
        raise SystemExit("7.2 resolve_btfids not available")
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "in.btf"
        src.write_bytes(data)
        (Path(d) / "e.c").write_text("int x;\n")
        subprocess.run(["cc", "-c", f"{d}/e.c", "-o", f"{d}/e.o"], check=True)
        t0 = time.perf_counter()
        subprocess.run([str(tool), "--btf", str(src), f"{d}/e.o"], check=True,
                       capture_output=True)
        return time.perf_counter() - t0


ROWS: dict[str, Callable[[bytes], float]] = {
    "sort": row_sort,
    "sort+write": row_sort_write,
    "libbpf permute": row_libbpf_permute,
    "C resolve_btfids 7.2": row_c_tool_72,
}


def child(row: str, path: str, repeat: int) -> dict[str, float]:
    data = btf_bytes(path)
    best = min(ROWS[row](data) for _ in range(repeat))
    return {"seconds": best,
            "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", default="/sys/kernel/btf/vmlinux")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.file, args.repeat)))
        return 0
    ntypes = len(Btf.from_bytes(btf_bytes(args.file), validate=False).types)
    print(f"{args.file}: {ntypes} types")
    print(f"{'job':24} {'wall s':>8} {'peak RSS MiB':>13}")
    for row in args.rows.split(","):
        cmd = [sys.executable, __file__, args.file, "--child", row, "--repeat", str(args.repeat)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            print(f"{row:24} failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
            continue
        res = json.loads(r.stdout)
        print(f"{row:24} {res['seconds']:8.3f} {res['rss_mib']:13.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
