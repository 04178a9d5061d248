"""Build pipeline timings: cold build, bare make of the same .config, no-change rebuild,
BTF-stage-only rebuild (pahole swap) and ccache-warm rebuilds after a config change and
after a patch series change.

    python benchmarks/build.py --arch x86_64 [--arch arm64] [--pairs N] [--skip-cold]
                               [--skip-warm] [--cold-ccache] [--reference [DIR]]

Each cold build uses a throwaway cache (HARNESS_CACHE) with ccache off, so it measures
compiling, not cache hits; pinned pahole and sources are shared from the main cache.
The bare figure replays the very make commands the harness logged (kernel, libbpf,
bpftool, bpf_testmod) one after another into a fresh dir holding the same .config, so
the ratio is the harness's own cost (config merging and checking, progress parsing,
publishing) less what it saves by making libbpf and bpftool while Kconfig runs.
`--pairs N` runs N harness/bare pairs in ABBA order and reports the median ratio (this
machine's speed drifts by more than the 3 % the ratio is judged on).
`--cold-ccache` adds a newcomer's first build: ccache on, as by default, but empty.
`--reference` builds the measured minimal fragments the cold target was derived from
(../shared/reference/kconfig, 228.5 s for x86_64 and 220.4 s for arm64 where they were
measured) with bare make on this machine: the ratio of the two is this machine's speed
against that one, and the cold build is also given scaled by it.
Prints one table; targets (2-core machine): cold <= 240 s, overhead ratio <= 1.03,
no-change <= 10 s, BTF-stage-only <= 60 s, warm rebuild after a change <= 90 s.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness.cache import cache_root
from harness.kbuild import kconfig
from harness.kbuild.build import Builder, BuildRequest, make_plan, stage_testmod, testmod_dir

HARNESS = [sys.executable, "-m", "harness", "build"]
REFERENCE_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference" / "kconfig"
# Clean -j2 builds of REFERENCE_DIR's fragments on the machine the cold target came from.
REFERENCE_SECONDS = {"x86_64": 228.5, "arm64": 220.4}


def children_cpu() -> float:
    """CPU seconds (user + system) of every finished descendant so far.

    Wall time on this shared machine drifts by 10-20 % between back-to-back runs of the
    same make lines; the CPU time the work took drifts far less, so the overhead ratio
    is given both ways.
    """
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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


def logged_makes(log: Path, dirs: list[Path]) -> list[list[str]]:
    """The make command lines a harness build ran into `dirs` (kconfig runs excluded)."""
    cmds = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("$ make ") and any(str(d) in line for d in dirs):
            cmds.append(shlex.split(line[2:]))
    return cmds


def _what(cmd: list[str]) -> str:
    """The harness stage a logged make line belongs to."""
    if any(a.startswith("M=") for a in cmd):
        return "bpf_testmod"
    if any(a.endswith(("tools/lib/bpf", "tools/bpf/bpftool")) for a in cmd):
        return "tools"
    return "kernel"


def bare_replay(cmds: list[list[str]], build_dir: Path, tools_dir: Path, bare: Path,
                source: Path, env: dict[str, str]) -> dict[str, float]:
    """Run the harness's own make commands, unwrapped, one after another into `bare`
    (same .config; libbpf and bpftool into bare/tools).

    Returns seconds per stage, named like the harness's `# stage` lines.
    """
    shutil.copy2(build_dir / ".config", bare / ".config")
    stages: dict[str, float] = {}
    for cmd in cmds:
        cmd = [arg.replace(str(tools_dir), str(bare / "tools")).replace(str(build_dir),
                                                                         str(bare))
               for arg in cmd]
        for arg in cmd:
            if arg.startswith("OUTPUT="):
                Path(arg[len("OUTPUT="):]).mkdir(parents=True, exist_ok=True)
            if arg.startswith("M="):  # the out-of-tree bpf_testmod, as the harness stages it
                stage_testmod(testmod_dir(source) or source, Path(arg[2:]))
        started = time.monotonic()
        proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"bare {' '.join(cmd[:4])} failed: {proc.stderr.strip()[-400:]}")
        stages[_what(cmd)] = stages.get(_what(cmd), 0.0) + time.monotonic() - started
    return stages


def newest_log(cache: Path) -> Path:
    """The build log the last harness run in `cache` wrote."""
    return max((cache / "logs").glob("build-*.log"), key=lambda p: p.stat().st_mtime)


def stage_times(log: Path) -> dict[str, float]:
    found = re.findall(r"^# stage (\S+) ([\d.]+) s$", log.read_text(errors="replace"), re.M)
    return {name: float(secs) for name, secs in found}


def keys(request: BuildRequest) -> tuple[Path, Path]:
    """(artifacts dir, build dir) this request maps to, without building."""
    builder = Builder(make_plan(request), quiet=True)
    source = builder.prepared_source()
    compile_key = builder.compile_key(source, request.arch, builder.merged_config(source),
                                      builder.plan.compiler)
    return (cache_root() / "artifacts" / builder.full_key(compile_key),
            cache_root() / "builds" / compile_key)


@dataclass
class ColdRun:
    wall: float
    cpu: float
    stages: dict[str, float]


@dataclass
class Recipe:
    """What a bare replay needs from a harness build: its make lines and build dir.

    The lines name paths inside that build's throwaway cache (the source and pahole
    links, the btfids wrapper), so the cache lives as long as the recipe is replayed.
    """

    cmds: list[list[str]]
    build_dir: Path  # holds the .config the replay builds
    tools_dir: Path  # where the harness made libbpf and bpftool


def harness_cold(arch: str, env: dict[str, str], cold_cache: Path) -> tuple[ColdRun, Recipe]:
    """One cold harness build into the empty cache `cold_cache`."""
    cpu_before = children_cpu()
    wall = timed([*HARNESS, "--arch", arch, "--no-ccache"],
                 dict(env, HARNESS_CACHE=str(cold_cache)))
    cpu = children_cpu() - cpu_before
    build_dir = next(p for p in (cold_cache / "builds").iterdir() if p.is_dir())
    tools_dir = next(p for p in (cold_cache / "tools").iterdir() if p.is_dir())
    log = newest_log(cold_cache)
    return (ColdRun(wall, cpu, stage_times(log)),
            Recipe(logged_makes(log, [build_dir, tools_dir]), build_dir, tools_dir))


def harness_again(arch: str, env: dict[str, str]) -> ColdRun:
    """Another cold harness build, in a throwaway cache removed right after."""
    cold_cache = fresh_cache()
    try:
        return harness_cold(arch, env, cold_cache)[0]
    finally:
        shutil.rmtree(cold_cache, ignore_errors=True)


def bare_cold(recipe: Recipe, env: dict[str, str]) -> ColdRun:
    """The harness's make lines replayed bare into an empty dir holding the same .config."""
    bare = Path(tempfile.mkdtemp(prefix="harness-bare-", dir=cache_root().parent))
    try:
        source = next(p for p in (cache_root() / "sources").iterdir() if p.is_dir())
        cpu_before = children_cpu()
        stages = bare_replay(recipe.cmds, recipe.build_dir, recipe.tools_dir, bare, source,
                             env)
        return ColdRun(sum(stages.values()), children_cpu() - cpu_before, stages)
    finally:
        shutil.rmtree(bare, ignore_errors=True)


def bench_cold(arch: str, env: dict[str, str], pairs: int = 1) -> dict[str, float]:
    """Cold harness builds against bare replays of the same make lines, in ABBA order.

    Back-to-back runs of identical make lines differ by 5-20 % in wall and CPU time on
    this shared machine, and drift over an hour; alternating which side goes first
    (harness, bare, bare, harness, ...) cancels a steady drift, and the median of the
    pairs' ratios is the figure.
    """
    figures: dict[str, float] = {}
    ratios: list[float] = []
    cpu_ratios: list[float] = []
    recipe_cache = fresh_cache()  # the first harness build's: every bare run replays it
    try:
        harness, recipe = harness_cold(arch, env, recipe_cache)
        for pair in range(pairs):
            tag = "" if pairs == 1 else f" [pair {pair + 1}]"
            if pair == 0:
                bare = bare_cold(recipe, env)
            elif pair % 2:  # bare first, then harness
                bare = bare_cold(recipe, env)
                harness = harness_again(arch, env)
            else:
                harness = harness_again(arch, env)
                bare = bare_cold(recipe, env)
            figures[f"cold build (harness, no ccache){tag}"] = harness.wall
            for name, secs in harness.stages.items():
                figures[f"  of which {name}{tag}"] = secs
            figures[f"same .config, bare make -j2 (same commands){tag}"] = bare.wall
            for name, secs in bare.stages.items():
                figures[f"  of which {name} (bare){tag}"] = secs
            ratios.append(harness.wall / bare.wall)
            cpu_ratios.append(harness.cpu / bare.cpu)
            figures[f"harness overhead ratio{tag}"] = ratios[-1]
            figures[f"CPU time, harness{tag}"] = harness.cpu
            figures[f"CPU time, bare{tag}"] = bare.cpu
            figures[f"harness overhead ratio (CPU time){tag}"] = cpu_ratios[-1]
    finally:
        shutil.rmtree(recipe_cache, ignore_errors=True)
    if pairs > 1:
        figures[f"harness overhead ratio, median of {pairs} pairs"] = statistics.median(ratios)
        figures[f"ratio (CPU time), median of {pairs} pairs"] = statistics.median(cpu_ratios)
    return figures


def bench_cold_ccache(arch: str, env: dict[str, str]) -> dict[str, float]:
    """A newcomer's first build: ccache on (the default) but empty, so every call misses."""
    cold_cache = fresh_cache()
    try:
        cold_env = {k: v for k, v in env.items() if not k.startswith("CCACHE_")}
        cold_env["HARNESS_CACHE"] = str(cold_cache)
        figures = {"cold build (harness, empty ccache)": timed([*HARNESS, "--arch", arch],
                                                               cold_env)}
        log = newest_log(cold_cache)
        figures["  of which kernel (empty ccache)"] = stage_times(log).get("kernel", 0.0)
    finally:
        shutil.rmtree(cold_cache, ignore_errors=True)
    return figures


def bench_warm(arch: str, env: dict[str, str]) -> dict[str, float]:
    figures: dict[str, float] = {}
    timed([*HARNESS, "--arch", arch], env)  # make sure the default build is cached
    figures["no-change rebuild"] = timed([*HARNESS, "--arch", arch], env)
    swap = "1.30"
    # A real relink: drop both published variants, relink the default (pahole 1.32) so
    # the build dir's BTF stage is known, then time the swap.
    default_art, _ = keys(BuildRequest(arch=arch))
    swap_art, _ = keys(BuildRequest(arch=arch, pahole=swap))
    shutil.rmtree(swap_art, ignore_errors=True)
    shutil.rmtree(default_art, ignore_errors=True)
    timed([*HARNESS, "--arch", arch], env)
    figures[f"BTF-stage-only rebuild (pahole {swap})"] = timed(
        [*HARNESS, "--arch", arch, "--pahole", swap], env)
    timed([*HARNESS, "--arch", arch], env)  # relink back, so tests find the default
    with tempfile.NamedTemporaryFile("w", suffix=".config", delete=False) as frag:
        frag.write(f"CONFIG_LOG_BUF_SHIFT={14 + int(time.time()) % 4}\n")
    try:
        art, build_dir = keys(BuildRequest(arch=arch, kconfigs=[frag.name]))
        shutil.rmtree(art, ignore_errors=True)  # never a cache hit: a new dir each time
        shutil.rmtree(build_dir, ignore_errors=True)
        figures["rebuild after a config change (seeded dir + ccache)"] = timed(
            [*HARNESS, "--arch", arch, "--kconfig", frag.name], env)
        shutil.rmtree(art, ignore_errors=True)  # 1.3 GB per variant: keep the cache bounded
        shutil.rmtree(build_dir, ignore_errors=True)
    finally:
        os.unlink(frag.name)
    figures.update(bench_patch_change(arch, env))
    return figures


def append_function_patch(tree: Path, rel: str, symbol: str, where: Path) -> Path:
    """A one-patch series that appends a new global function to `rel`."""
    original = (tree / rel).read_text().splitlines(keepends=True)
    added = ["\n", f"noinline int {symbol}(void);\n",
             f"noinline int {symbol}(void) {{ return 0; }}\n"]
    patch = where / f"{symbol}.patch"
    patch.write_text("".join(difflib.unified_diff(original, original + added,
                                                  f"a/{rel}", f"b/{rel}")))
    return patch


def bench_patch_change(arch: str, env: dict[str, str]) -> dict[str, float]:
    """A series on the default tree, then another series: each starts from the last build."""
    figures: dict[str, float] = {}
    tree = make_plan(BuildRequest(arch=arch)).source.path
    stamp = int(time.time())  # new function names: never a cache hit
    made: list[Path] = []
    with tempfile.TemporaryDirectory() as work:
        try:
            for label, rel in (("first series", "kernel/bpf/helpers.c"),
                               ("another series", "kernel/bpf/syscall.c")):
                patch = append_function_patch(tree, rel, f"bench_{label[0]}_{stamp}", Path(work))
                # patching and the config merge for the new tree are part of the figure
                figures[f"rebuild after a patch change ({label})"] = timed(
                    [*HARNESS, "--arch", arch, "--patches", str(patch)], env)
                request = BuildRequest(arch=arch, patches=str(patch))
                made += [*keys(request), Builder(make_plan(request)).prepared_source().path]
        finally:
            for path in made:  # 1.3 GB per build dir: keep the cache bounded
                shutil.rmtree(path, ignore_errors=True)
    return figures


def bench_reference(arch: str, env: dict[str, str], reference_dir: Path) -> dict[str, float]:
    """The reference fragments over tinyconfig, built by bare make in a throwaway dir.

    Same tree, compiler and pahole as the harness uses, no ccache, kbuild's own C
    resolve_btfids: the build the target's 228.5 s / 220.4 s figures describe.
    """
    fragment = reference_dir / f"min-{arch}.config"
    if not fragment.is_file():
        raise SystemExit(f"--reference: no {fragment}")
    plan = make_plan(BuildRequest(arch=arch, use_ccache=False))
    work = Path(tempfile.mkdtemp(prefix="harness-ref-", dir=cache_root().parent))
    build = [a for a in plan.kernel_make(plan.source.path, work)
             if not a.startswith("RESOLVE_BTFIDS=")]
    configure = build[:-2]  # the same line without its image and modules targets
    try:
        timed([*configure, "tinyconfig"], env)
        requests = kconfig.merge([kconfig.user_fragment(str(fragment))])
        kconfig.apply_requests(work / ".config", requests)
        timed([*configure, "olddefconfig"], env)
        drifted = kconfig.drift(requests, kconfig.read_config(work / ".config"))
        if drifted:
            raise SystemExit(f"--reference: {len(drifted)} symbols did not take, "
                             f"first {drifted[0]}")
        here = timed(build, env)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"reference config, bare make here": here,
            "reference config where the target was set": REFERENCE_SECONDS[arch],
            "machine speed factor (here / there)": here / REFERENCE_SECONDS[arch]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", action="append", choices=["x86_64", "arm64"])
    parser.add_argument("--skip-cold", action="store_true",
                        help="skip the two cold builds (about 2 x 4-12 min per arch)")
    parser.add_argument("--pairs", type=int, default=1,
                        help="cold harness/bare pairs per arch, in ABBA order; the "
                             "overhead ratio is their median (default 1)")
    parser.add_argument("--skip-warm", action="store_true",
                        help="skip the rebuild figures (about 3 min per arch)")
    parser.add_argument("--cold-ccache", action="store_true",
                        help="also time a first build with ccache on but empty (4-12 min)")
    parser.add_argument("--reference", nargs="?", const=REFERENCE_DIR, type=Path,
                        metavar="DIR", help="also build the reference fragments "
                        f"(min-<arch>.config, default {REFERENCE_DIR}) bare: this "
                        "machine's speed against the target's (4-6 min per arch)")
    args = parser.parse_args()
    env = dict(os.environ)
    for arch in args.arch or ["x86_64"]:
        figures: dict[str, float] = {}
        parts = [] if args.skip_cold else [lambda a, e: bench_cold(a, e, args.pairs)]
        parts += [] if args.skip_warm else [bench_warm]
        parts += [bench_cold_ccache] if args.cold_ccache else []
        if args.reference:
            parts += [lambda a, e: bench_reference(a, e, args.reference)]
        for part in parts:
            for name, value in part(arch, env).items():
                figures[name] = value
                unit = "" if "ratio" in name or "factor" in name else " s"
                print(f"{arch:7s} {name:52s} {value:8.2f}{unit}", flush=True)
        factor = figures.get("machine speed factor (here / there)")
        colds = [v for k, v in figures.items() if k.startswith("cold build (harness, no")]
        if factor and colds:
            scaled = statistics.median(colds) / factor
            print(f"{arch:7s} {'cold build (median) scaled to the reference machine':52s} "
                  f"{scaled:8.2f} s", flush=True)


if __name__ == "__main__":
    main()
