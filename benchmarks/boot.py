"""Boot-to-exit time per arch: boot a kernel, run `true`, stop; several runs, median.

TCG always; KVM too when the (cached) probe says KVM really boots a kernel here. Each
on the cached tree twice: as `vng --exec true` boots it (vng's start-up and its init;
the yardstick benchmarks/run.py pairs with) and as the harness boots it (vng's QEMU
command taken once per process, guest/harness-init.sh as init).
Usage: python benchmarks/boot.py [--runs N] [--x86 IMAGE] [--arm64 IMAGE]
(default images: the default `harness build` of each arch, built first if not cached).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from harness.errors import HarnessError
from harness.kbuild.build import Builder, BuildRequest, make_plan
from harness.targets import procs
from harness.targets.kvm import probe_kvm
from harness.targets.qemu import QemuTarget
from harness.targets.vng import clear_command_cache


def default_image(arch: str) -> Path:
    """The boot image of the default build for `arch` (a cache hit after the first run)."""
    return Path(Builder(make_plan(BuildRequest(arch=arch)), quiet=True).build().boot_image)


def boot_to_exit(image: Path, arch: str, kvm: bool, *,
                 vng_init: bool = True) -> tuple[float, float]:
    """(boot-to-command-ready, boot-to-exit) seconds for one guest on the cached tree;
    `vng_init`: booted by vng with its init, else as the harness boots it (own init,
    vng's QEMU command cached in this process)."""
    start = time.monotonic()
    target = QemuTarget(image, arch, kvm=None if kvm else False, cpus=1, boot_timeout=180,
                        vng_init=vng_init)
    with target:
        ready = time.monotonic() - start
        target.run("true", timeout=60)
    total = time.monotonic() - start
    if target.processes():
        raise SystemExit(f"stray guest processes after a run: {target.processes()}")
    return ready, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--x86", dest="x86_64", type=Path, default=None)
    parser.add_argument("--arm64", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = []
    for arch in ("x86_64", "arm64"):
        try:
            image = getattr(args, arch) or default_image(arch)
        except HarnessError as exc:
            print(f"{arch}: skipped, cannot build its kernel: {exc}", file=sys.stderr)
            continue
        if not image.is_file():
            print(f"{arch}: skipped, no image at {image}", file=sys.stderr)
            continue
        modes = ["tcg"]
        if arch == "x86_64":
            verdict = probe_kvm(image)
            print(f"KVM probe: usable={verdict.usable} ({verdict.reason}; "
                  f"{verdict.seconds:.1f} s{', cached' if verdict.cached else ''})")
            if verdict.usable:
                modes.append("kvm")
        for mode in [m + init for m in modes for init in ("/vng", "/harness")]:
            samples = []
            clear_command_cache()
            try:
                for _ in range(args.runs):
                    samples.append(boot_to_exit(image, arch, mode.startswith("kvm"),
                                                vng_init=mode.endswith("/vng")))
            except HarnessError as exc:
                print(f"{arch}/{mode}: error: {exc}", file=sys.stderr)
                continue
            ready = statistics.median(s[0] for s in samples)
            total = statistics.median(s[1] for s in samples)
            spread = f"{min(s[1] for s in samples):.2f}-{max(s[1] for s in samples):.2f}"
            rows.append((arch, mode, len(samples), ready, total, spread))
    print(f"{'arch':8} {'accel/init':12} {'runs':>4} {'ready s':>8} {'exit s':>7} "
          f"{'range':>11}")
    for arch, mode, n, ready, total, spread in rows:
        print(f"{arch:8} {mode:12} {n:4d} {ready:8.2f} {total:7.2f} {spread:>11}")
    print(f"guest processes left: {len(procs.guest_processes())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
