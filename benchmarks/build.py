"""Build pipeline timings: cold build, bare make of the same .config, no-change rebuild,
BTF-stage-only rebuild (pahole swap) and a ccache-warm rebuild after a config change.

    python benchmarks/build.py --arch x86_64 [--arch arm64] [--skip-cold]

Each cold build uses a throwaway cache (HARNESS_CACHE) with ccache off, so it measures
compiling, not cache hits; pinned pahole and sources are shared from the main cache.
Prints one table; targets (2-core machine): cold <= 240 s, overhead ratio <= 1.03,
no-change <= 10 s, BTF-stage-only <= 60 s, warm rebuild after a change <= 90 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.cache import cache_root
from harness.kbuild import toolchains

HARNESS = [sys.executable, "-m", "harness", "build"]


def timed(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.strip()[-400:]}")
    return elapsed


def fresh_cache() -> Path:
    """An empty cache that shares sources, debs and toolchains (not builds, not ccache)."""
    root = Path(tempfile.mkdtemp(prefix="harness-bench-", dir=cache_root().parent))
    for shared in ("sources", "toolchains", "debs", "apt", "sysroots"):
        if (cache_root() / shared).exists():
            (root / shared).symlink_to(cache_root() / shared)
    return root


def bench_arch(arch: str, skip_cold: bool) -> dict[str, float]:
    figures: dict[str, float] = {}
    env = dict(os.environ)
    if not skip_cold:
        cold_cache = fresh_cache()
        try:
            cold_env = dict(env, HARNESS_CACHE=str(cold_cache))
            figures["cold build (harness, no ccache)"] = timed(
                [*HARNESS, "--arch", arch, "--no-ccache"], cold_env)
            build_dir = next((cold_cache / "builds").iterdir())
            bare = cold_cache / "bare"
            bare.mkdir()
            shutil.copy2(build_dir / ".config", bare / ".config")
            source = next(p for p in (cache_root() / "sources").iterdir() if p.is_dir())
            prefix = toolchains.cross_prefix(arch)
            image = toolchains.BOOT_IMAGE[arch].rsplit("/", 1)[1]
            pahole = toolchains.select_pahole(toolchains.DEFAULT_PAHOLE).path
            bare_cmd = ["make", "-C", str(source), f"O={bare}",
                        f"ARCH={toolchains.KERNEL_ARCH[arch]}",
                        *([f"CROSS_COMPILE={prefix}"] if prefix else []),
                        f"PAHOLE={pahole}", "-j2", image, "modules"]
            figures["same .config, bare make -j2"] = timed(bare_cmd, env)
            figures["kernel overhead ratio"] = (figures["cold build (harness, no ccache)"]
                                                / figures["same .config, bare make -j2"])
        finally:
            shutil.rmtree(cold_cache, ignore_errors=True)
    timed([*HARNESS, "--arch", arch], env)  # make sure the default build is cached
    figures["no-change rebuild"] = timed([*HARNESS, "--arch", arch], env)
    swap = "1.30"
    figures[f"BTF-stage-only rebuild (pahole {swap})"] = timed(
        [*HARNESS, "--arch", arch, "--pahole", swap], env)
    with tempfile.NamedTemporaryFile("w", suffix=".config", delete=False) as frag:
        frag.write(f"CONFIG_LOG_BUF_SHIFT={14 + int(time.time()) % 4}\n")
    try:
        figures["warm (ccache) rebuild after a config change"] = timed(
            [*HARNESS, "--arch", arch, "--kconfig", frag.name], env)
    finally:
        os.unlink(frag.name)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", action="append", choices=["x86_64", "arm64"])
    parser.add_argument("--skip-cold", action="store_true",
                        help="skip the two cold builds (about 2 x 4-12 min per arch)")
    args = parser.parse_args()
    for arch in args.arch or ["x86_64"]:
        for name, value in bench_arch(arch, args.skip_cold).items():
            unit = "" if "ratio" in name else " s"
            print(f"{arch:7s} {name:48s} {value:8.2f}{unit}", flush=True)


if __name__ == "__main__":
    main()
