"""The build pipeline: source → patches → config → kernel → tools → bpf_testmod → artifacts.

Three cache levels keep repeated work away:
- configs/<config key>: the merged, checked .config (kconfig runs once per input set);
- builds/<compile key>: the make O= dir, shared by every pahole/btfids choice, so
  swapping the BTF stage only relinks vmlinux and re-finalises modules; a new one
  starts as a copy of its closest sibling (seed.py), so a config change recompiles
  only what the changed symbols touch;
- artifacts/<full key>: the finished outputs with artifacts.json written last; its
  presence is what "cached" means, so a failed or interrupted build never counts.
libbpf and bpftool need no .config: they live in tools/<tree, arch, compiler>, made
incrementally every build, and a cold build makes them while Kconfig runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness.arch import lookup
from harness.cache import atomic_write, cache_dir, locked, staging_dir, touch_used
from harness.errors import HarnessError, UsageError
from harness.kbuild import kconfig, patches, seed, sources, toolchains
from harness.kbuild.artifacts import BuildArtifacts
from harness.kbuild.make import Overlapped, Progress, run_make

MIN_FREE_BYTES = 3 * 1024**3
# kbuild output that depends on time/host: pinned so rebuilds and ccache stay stable
REPRODUCIBLE_ENV = {
    "KBUILD_BUILD_TIMESTAMP": "Thu Jan  1 00:00:00 UTC 2026",
    "KBUILD_BUILD_USER": "harness",
    "KBUILD_BUILD_HOST": "kfunc-harness",
}


@dataclass
class BuildRequest:
    """What the user asked for, straight from the command line."""

    arch: str = "x86_64"
    tree: str | None = None
    kernel: str | None = None
    patches: str | None = None
    kconfigs: list[str] = field(default_factory=list)
    pahole: str = toolchains.DEFAULT_PAHOLE
    btfids: str = toolchains.DEFAULT_BTFIDS
    allow_config_drift: bool = False
    jobs: int = os.cpu_count() or 2
    use_ccache: bool = True
    testmod: bool = True
    per_arg_tags: bool = False  # the Python resolve_btfids with --per-arg-tags


@dataclass
class BuildPlan:
    """Everything decided before compiling; --dry-run prints it."""

    request: BuildRequest
    source: sources.KernelSource
    patch_series: list[patches.Patch]
    fragments: list[kconfig.Fragment]
    compiler: toolchains.Tool
    pahole: toolchains.Tool
    btfids_path: Path
    btfids_identity: str

    @property
    def arch(self) -> str:
        return self.request.arch

    def make_vars(self) -> list[str]:
        prefix = lookup(self.arch).cross_prefix
        cc = f"{prefix}gcc"
        ccache = toolchains.ccache() if self.request.use_ccache else None
        return [
            f"ARCH={lookup(self.arch).kernel_arch}",
            *([f"CROSS_COMPILE={prefix}"] if prefix else []),
            f"CC={ccache} {cc}" if ccache else f"CC={cc}",
            f"PAHOLE={self.pahole.path}",
            f"RESOLVE_BTFIDS={self.btfids_path}",
        ]

    def kernel_make(self, tree: Path, build_dir: Path) -> list[str]:
        """The kernel's make line; `tree` is the patched copy when a series is given."""
        image = lookup(self.arch).boot_image_name
        return ["make", "-C", str(tree), f"O={build_dir}", *self.make_vars(),
                f"-j{self.request.jobs}", image, "modules"]

    def toolchain_report(self) -> dict[str, str]:
        btfids = self.request.btfids + (" --per-arg-tags" if self.request.per_arg_tags else "")
        return {"cc": self.compiler.label, "pahole": self.pahole.label,
                "btfids": btfids, "btfids_identity": self.btfids_identity}


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20]


def make_plan(request: BuildRequest) -> BuildPlan:
    """Resolve every input (fetching sources and pinned tools) without compiling."""
    request.arch = lookup(request.arch).name  # any spelling; an unknown one is one line
    if request.btfids not in toolchains.BTFIDS_CHOICES and "/" not in request.btfids:
        raise UsageError(f"unknown --btfids {request.btfids!r}: choose c, python or a path")
    compiler = toolchains.cross_compiler(request.arch)
    series = patches.read_series(request.patches) if request.patches else []
    tree_own = kconfig.SELFTESTS in request.kconfigs
    fragments = kconfig.standard_fragments(request.arch, trimmed=not tree_own)
    files = [spec for spec in request.kconfigs if spec != kconfig.SELFTESTS]
    for fragment in [*fragments, *map(kconfig.user_fragment, files)]:
        kconfig.parse_fragment(fragment)  # syntax errors before any download
    # Cheap checks of the tree or release first: a bad one fails before any download.
    if request.tree and request.kernel:
        raise UsageError("give --tree or --kernel, not both")
    if request.tree:
        sources.check_kernel_tree(Path(request.tree).expanduser().resolve())
    else:
        sources.check_release(request.kernel or sources.DEFAULT_RELEASE)
    pahole = toolchains.select_pahole(request.pahole)
    source = sources.resolve(request.tree, request.kernel)
    # `--kconfig selftests` is the (unpatched) tree's own: known only once it is here
    uname = lookup(request.arch).uname
    for spec in request.kconfigs:
        fragments += kconfig.user_fragments(spec, source.path, uname)
    if request.per_arg_tags and request.btfids != "python":
        raise UsageError("--per-arg-tags is an option of the Python resolve_btfids: "
                         "use it with --btfids python")
    btfids_args = toolchains.PER_ARG_TAGS if request.per_arg_tags else ()
    if request.btfids == "python":
        btfids_path = toolchains.python_btfids_wrapper(btfids_args)
    elif request.btfids == "c":
        btfids_path = Path("$(objtree)/tools/bpf/resolve_btfids/resolve_btfids")
    else:
        btfids_path = Path(request.btfids).expanduser().resolve()
    return BuildPlan(request, source, series, fragments, compiler, pahole, btfids_path,
                     toolchains.btfids_identity(request.btfids) + "".join(btfids_args))


class Builder:
    """Carries out a plan, reusing every cache level it can."""

    def __init__(self, plan: BuildPlan, quiet: bool = False,
                 on_stage: Callable[[str], None] | None = None) -> None:
        self.plan = plan
        self.quiet = quiet
        self.on_stage = on_stage  # told each stage's name as it starts (a progress line)
        self.log: Path | None = None
        self.stage_seconds: dict[str, float] = {}

    def say(self, text: str) -> None:
        if not self.quiet:
            print(f"harness: {text}", flush=True)

    # ---- keys -------------------------------------------------------------------------
    def config_key(self, source: sources.KernelSource) -> str:
        frags = [f"{f.name}\n{f.text}" for f in self.plan.fragments]
        return _digest("config-v1", source.config_identity, self.plan.arch,
                       self.plan.compiler.version,
                       self.plan.pahole.version, *frags)

    @staticmethod
    def compile_key(source: sources.KernelSource, arch: str, config_text: str,
                    compiler: toolchains.Tool) -> str:
        # CONFIG_PAHOLE_VERSION only feeds the BTF stage: a pahole swap must reuse the dir.
        stable = "\n".join(ln for ln in config_text.splitlines()
                           if not ln.startswith("CONFIG_PAHOLE_VERSION="))
        return _digest("compile-v1", source.identity, arch, compiler.label, stable)

    def lineage(self, source: sources.KernelSource) -> str:
        """Build dirs of one lineage share tree of origin, arch and compiler: any can seed another.

        The path, not the content identity: when a developer edits their --tree, the new
        build dir starts from the last one and make's timestamps recompile the edited files,
        as an in-place `make` would. A patched copy belongs to its origin's lineage: a new
        series starts from the last build of that tree, patched or not, and seed.py
        invalidates what the two trees' differing files feed.
        """
        return _digest("lineage-v3", str(source.lineage_root), self.plan.arch,
                       self.plan.compiler.label)

    def full_key(self, compile_key: str) -> str:
        # A tree with the pre-6.14 testmod layout is keyed by it: its artifacts from before
        # the harness found bpf_testmod/ there have no module.
        src = testmod_dir(self.plan.source.path) if self.plan.request.testmod else None
        layout = [src.name] if src is not None and src.name != "test_kmods" else []
        return _digest("full-v1", compile_key, self.plan.pahole.label,
                       str(self.plan.pahole.path), self.plan.btfids_identity,
                       str(self.plan.request.testmod), *layout)

    # ---- steps ------------------------------------------------------------------------
    def prepared_source(self) -> sources.KernelSource:
        return patches.patched_tree(self.plan.source, self.plan.patch_series,
                                    progress=not self.quiet)

    def _config_cache(self, source: sources.KernelSource) -> Path:
        return cache_dir("configs") / f"{self.config_key(source)}.config"

    def merged_config(self, source: sources.KernelSource) -> str:
        """The checked .config for this source and fragment set (cached)."""
        cached = self._config_cache(source)
        plan = self.plan
        requests = kconfig.merge(plan.fragments)
        # pin-offs this tree cannot take, found by the Kconfig scan of the first run
        moot = cached.with_suffix(".moot")
        if cached.exists():
            # cached with or without --allow-config-drift: check this request's wish again
            text = cached.read_text()
            for symbol in (moot.read_text().split() if moot.exists() else []):
                requests.pop(symbol, None)
            self._check_drift(requests, text)
            return text
        unknown, promptless = kconfig.unreachable_pins(source.path, requests)
        # Pinning off a symbol this tree lacks (an older or newer release) is already true,
        # and one it gives no prompt (6.12's AF_UNIX_OOB) is the tree's to decide; only a
        # symbol we want on must exist, or it is a typo.
        dropped = [r for r in unknown if r.value == "n" or r.advisory] + promptless
        dropped += kconfig.yield_to_tree(source.path, requests)
        for request in dropped:
            requests.pop(request.symbol, None)
        stale = [r for r in unknown if r.advisory and r.value != "n"]
        if stale:
            self.say(f"note: {len(stale)} symbols of the tree's own fragments are not in "
                     f"its Kconfig, skipped: {', '.join(r.origin for r in stale[:5])}"
                     + (" ..." if len(stale) > 5 else ""))
        unknown = [r for r in unknown if r.value != "n" and not r.advisory]
        if unknown:
            first = unknown[0]
            more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
            raise kconfig.ConfigError(
                f"{first.origin}: CONFIG_{first.symbol} is not a Kconfig symbol of this "
                f"tree{more}")
        scratch = self._kconfig_scratch(source)
        with locked(scratch):
            self.say(f"merging {len(plan.fragments)} fragments over tinyconfig")
            base = ["make", "-C", str(source.path), f"O={scratch}", *plan.make_vars(),
                    f"-j{plan.request.jobs}"]  # conf and fixdep compile in parallel
            # tinyconfig is allnoconfig over tiny-base.config, then tiny.config merged and
            # an olddefconfig; ours fold into that one olddefconfig (a Kconfig run less: ~3 s
            # of a cold build; same .config for 7.3 x86_64/arm64 and 7.2 as the two-pass way).
            self._quiet_make([*base, "allnoconfig"],
                             {"KCONFIG_ALLCONFIG": "kernel/configs/tiny-base.config"})
            srcarch = lookup(plan.arch).kernel_arch
            tiny = kconfig.merge(kconfig.tiny_fragments(source.path, srcarch))
            kconfig.apply_requests(scratch / ".config", {**tiny, **requests})
            self._quiet_make([*base, "olddefconfig"])
            text = (scratch / ".config").read_text()
        self._check_drift(requests, text)
        atomic_write(moot, "".join(f"{r.symbol}\n" for r in dropped))  # before the config
        atomic_write(cached, text)
        return text

    def _kconfig_scratch(self, source: sources.KernelSource) -> Path:
        """Where tinyconfig/olddefconfig run: one dir per source and arch."""
        return cache_dir("kconfig") / _digest(source.config_identity, self.plan.arch)

    def _check_drift(self, requests: dict[str, kconfig.Request], text: str) -> None:
        drifted = kconfig.drift(requests, kconfig.read_config_text(text))
        advisory = [d for d in drifted if requests[d.symbol].advisory]
        if advisory:
            self.say(f"note: {len(advisory)} symbols of the tree's own fragments did not take "
                     f"(its merge_config.sh would only warn too): "
                     f"{'; '.join(str(d) for d in advisory[:3])}"
                     + (" ..." if len(advisory) > 3 else ""))
        drifted = [d for d in drifted if not requests[d.symbol].advisory]
        if advisory_fragments := [f for f in self.plan.fragments if f.advisory]:
            # what the tree's fragments select turns on some of our pin-offs: theirs win
            off = [d for d in drifted if requests[d.symbol].value == "n"]
            if off:
                self.say(f"note: {len(off)} of our pin-offs were turned on by what "
                         f"{advisory_fragments[0].name} and the rest select: "
                         + ", ".join(f"CONFIG_{d.symbol}" for d in off[:5])
                         + (" ..." if len(off) > 5 else ""))
            drifted = [d for d in drifted if requests[d.symbol].value != "n"]
        if drifted and not self.plan.request.allow_config_drift:
            listing = "; ".join(str(d) for d in drifted[:5])
            more = f" (and {len(drifted) - 5} more)" if len(drifted) > 5 else ""
            raise kconfig.ConfigError(
                f"{len(drifted)} requested symbols did not take: {listing}{more} "
                "(--allow-config-drift to build anyway)")
        for item in drifted:
            self.say(f"warning: config drift {item}")

    def _quiet_make(self, cmd: list[str], extra_env: dict[str, str] | None = None) -> None:
        log = self.log or Path(os.devnull)
        run_make(cmd, log, None, Path.cwd(), env={**self._env(), **(extra_env or {})})

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(REPRODUCIBLE_ENV)
        env.setdefault("CCACHE_DIR", str(cache_dir("ccache")))
        env["CCACHE_NOHASHDIR"] = "1"  # build dirs differ by key; objects do not
        # Depend mode: a miss compiles once and keys on gcc's own -MMD list, instead of
        # preprocessing every file a second time to hash it. The preprocessor-mode hits
        # it gives up (the same file under a changed autoconf.h) are what seed.py's
        # in-place rebuilds already avoid.
        env.setdefault("CCACHE_DEPEND", "1")
        env.setdefault("CCACHE_MAXSIZE", "5G")
        return env

    def build(self) -> BuildArtifacts:
        plan = self.plan
        logs = cache_dir("logs")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.log = logs / f"build-{plan.arch}-{stamp}-{os.getpid()}.log"
        self.log.write_text(f"# harness build {plan.arch} {plan.source.description}\n")
        source = self.prepared_source()
        # Kconfig runs mostly on one core for a few seconds: libbpf and bpftool (which
        # need no .config) fill the other one. With the config cached there is nothing
        # to overlap, and a cached build needs no tools at all.
        tools_job = None
        if not self._config_cache(source).exists():
            tools_job = Overlapped(lambda job: self._build_tools(source, job))
        try:
            return self._build_from(source, tools_job)
        except BaseException:
            if tools_job is not None:
                tools_job.cancel()
            raise

    def _build_from(self, source: sources.KernelSource,
                    tools_job: Overlapped[dict[str, Path]] | None) -> BuildArtifacts:
        plan = self.plan
        config_text = self.merged_config(source)
        compile_key = self.compile_key(source, plan.arch, config_text, plan.compiler)
        full_key = self.full_key(compile_key)
        final = cache_dir("artifacts") / full_key
        record = final / "artifacts.json"
        build_dir = cache_dir("builds") / compile_key
        if record.exists():
            if tools_job is not None:
                self._join_tools(tools_job)
            touch_used(final)
            self._mark_lineage(source, build_dir)
            self.say(f"cached build {full_key} ({plan.arch})")
            return BuildArtifacts.from_json(record.read_text())
        # One kernel build at a time on this machine (pytest-xdist workers included):
        # two concurrent builds on a small box are slower than two in a row.
        with locked(cache_dir("locks") / "kernel-build"), locked(build_dir):
            if record.exists():
                return BuildArtifacts.from_json(record.read_text())
            self._check_disk(build_dir)
            with self._stage("seed"):
                self._seed(source, config_text, build_dir)
            with self._stage("tools"):  # before the kernel: it leaves no core idle
                tools = self._join_tools(tools_job) if tools_job else self._build_tools(source)
            with self._stage("kernel"):
                self._compile(source, config_text, build_dir)
            tools["resolve_btfids"] = build_dir / "tools/bpf/resolve_btfids/resolve_btfids"
            if not tools["resolve_btfids"].exists():
                raise HarnessError(f"kbuild did not build {tools['resolve_btfids']} "
                                   f"(log: {self.log})")
            with self._stage("bpf_testmod"):
                testmod = (self._build_testmod(source, build_dir) if plan.request.testmod
                           else None)
            with self._stage("publish"):
                artifacts = self._publish(source, build_dir, final, full_key, tools, testmod)
        self._lint_kfuncs(artifacts)
        self.say("stages: " + ", ".join(f"{name} {secs:.1f} s"
                                        for name, secs in self.stage_seconds.items()))
        self.say(f"build log: {self.log}")
        return artifacts

    def _lint_kfuncs(self, artifacts: BuildArtifacts) -> None:
        """`harness btf kfuncs --lint` on the vmlinux just built: a kfunc whose flags
        contradict its prototype is a note here rather than a verifier reject later.
        (Not bpf_testmod: its one contradiction is deliberate, a selftest expects it.)"""
        from harness.btf.errors import BTFError
        from harness.btf.kfunc_lint import lint_kfuncs
        from harness.btf.kfuncs import find_kfuncs, load_for_kfuncs, read_set8s
        from harness.elf import kernel_version_of

        for elf in (artifacts.vmlinux,):
            try:
                btf = load_for_kfuncs(elf)
                report = lint_kfuncs(btf, find_kfuncs(btf, read_set8s(elf), arg_flags=False),
                                     kernel=kernel_version_of(elf))
            except (BTFError, OSError) as exc:
                self.say(f"note: kfunc lint could not read {Path(elf).name}: {exc}")
                continue
            for finding in report.findings:
                self.say(f"note: kfunc lint, {Path(elf).name}: {finding.kfunc}: "
                         f"[{finding.rule}] {finding.message}")
            self._log(f"# kfunc lint {Path(elf).name}: {len(report.findings)} findings in "
                      f"{report.kfuncs} kfuncs")

    @contextlib.contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        """Time one stage into stage_seconds and the log (benchmarks read them back)."""
        if self.on_stage is not None:
            self.on_stage(name)
        started = time.monotonic()
        yield
        seconds = time.monotonic() - started
        self.stage_seconds[name] = seconds
        self._log(f"# stage {name} {seconds:.2f} s")

    def _log(self, line: str) -> None:
        if self.log is not None:
            with open(self.log, "a") as out:
                out.write(line + "\n")

    def _mark_lineage(self, source: sources.KernelSource, build_dir: Path) -> None:
        marker = build_dir / seed.LINEAGE_FILE
        lineage = self.lineage(source) + "\n"
        if build_dir.is_dir() and (not marker.exists() or marker.read_text() != lineage):
            atomic_write(marker, lineage)

    def _seed(self, source: sources.KernelSource, config_text: str, build_dir: Path) -> None:
        """A new build dir starts from its closest sibling instead of from nothing."""
        if build_dir.exists():
            return
        sibling = seed.find_seed(build_dir.parent, self.lineage(source), config_text,
                                 exclude=build_dir)
        if sibling is not None:
            with locked(sibling):  # prune (or a test's cleanup) removes dirs under this lock
                if sibling.is_dir():
                    self.say(f"starting from build dir {sibling.name} (closest config); "
                             "kbuild recompiles only what the config or source change touches")
                    report = seed.seed_build_dir(sibling, build_dir, source.path,
                                                 retime=source.origin is not None)
                    self._log(f"# seeded from {sibling} ({seed.srctree_of(sibling)}): "
                              f"{report.rewritten} files repointed, {report.changed_sources} "
                              f"source files differ, {report.invalidated} targets invalidated")
                    return
        # No sibling: the kconfig scratch dir still spares make rebuilding fixdep and conf.
        scratch = self._kconfig_scratch(source)
        if (scratch / "scripts" / "kconfig" / "conf").exists():
            with locked(scratch):
                seed.seed_build_dir(scratch, build_dir, source.path)

    def _check_disk(self, where: Path) -> None:
        free = shutil.disk_usage(where.parent).free
        if free < MIN_FREE_BYTES:
            raise HarnessError(
                f"only {free // 2**20} MiB free under {where.parent}; a kernel build needs "
                f"{MIN_FREE_BYTES // 2**30} GiB (harness cache prune frees space)")

    def _compile(self, source: sources.KernelSource, config_text: str, build_dir: Path) -> None:
        plan = self.plan
        config = build_dir / ".config"
        if not config.exists() or config.read_text() != config_text:
            atomic_write(config, config_text)
        btf_stage = json.dumps({"pahole": str(plan.pahole.path), "pv": plan.pahole.version,
                                "btfids": plan.btfids_identity, "path": str(plan.btfids_path)})
        stage_file = build_dir / ".harness-btf-stage"
        linked = [build_dir / name for name in ("vmlinux.unstripped", "vmlinux")]
        known = stage_file.read_text() if stage_file.exists() else None
        if known != btf_stage and any(p.exists() for p in linked):
            # Another (or an unknown) pahole/btfids made this vmlinux: drop the linked
            # image so make reruns link-vmlinux.sh and its BTF stage, and re-finalises the
            # modules (their BTF depends on vmlinux), without recompiling anything. Since
            # 6.15 the link output is vmlinux.unstripped; vmlinux is only its objcopy.
            self.say("BTF stage changed: relinking vmlinux and modules")
            for path in linked:
                path.unlink(missing_ok=True)
        stage_file.unlink(missing_ok=True)
        self._mark_lineage(source, build_dir)
        cmd = plan.kernel_make(source.path, build_dir)
        stats = cache_dir("stats") / f"steps-{plan.arch}.json"
        expected = lookup(plan.arch).expected_make_steps
        if stats.exists():
            expected = json.loads(stats.read_text()).get("steps", expected)
        self.say(f"building {plan.source.kernel_version} {plan.arch} in {build_dir}")
        started = time.monotonic()
        progress = None if self.quiet else Progress(f"{plan.arch} kernel", expected)
        steps = run_make(cmd, self.log, progress, build_dir, env=self._env())
        if steps > expected * 0.8:
            atomic_write(stats, json.dumps({"steps": steps}))
        atomic_write(stage_file, btf_stage)
        self.say(f"kernel built in {time.monotonic() - started:.0f} s ({steps} steps)")

    def tools_tree(self, source: sources.KernelSource) -> Path:
        """The tree libbpf and bpftool are made from: a patched copy's origin when the
        series leaves them alone, so each new series does not make them again."""
        if source.origin is not None and not patches.changes_tools(self.plan.patch_series):
            return source.origin
        return source.path

    def tools_dir(self, source: sources.KernelSource) -> Path:
        """libbpf and bpftool of one tree (by path: make tracks its edits), arch, compiler."""
        return cache_dir("tools") / _digest("tools-v1", str(self.tools_tree(source)),
                                            self.plan.arch, self.plan.compiler.label)

    def _build_tools(self, source: sources.KernelSource,
                     job: Overlapped | None = None) -> dict[str, Path]:
        """libbpf for the target arch and host bpftool, made incrementally in tools_dir.

        Each make runs every time (a no-op when nothing changed), so an edit or a patch
        to tools/lib/bpf is picked up. A dir whose last make did not finish is started
        afresh: an interrupted compiler can leave an object newer than its source.
        Runs on a thread when `job` is given, logging to the side log _join_tools
        appends to the build log.
        """
        tools = self.tools_dir(source)
        log = self._tools_log() if job else self.log
        assert log is not None
        with locked(tools):
            done = tools / ".harness-complete"
            if not done.exists() and tools.exists():
                shutil.rmtree(tools)
            done.unlink(missing_ok=True)
            built = self._make_tools(self.tools_tree(source), tools, log, job)
            done.write_text("")
        return built

    def _tools_log(self) -> Path:
        assert self.log is not None
        return self.log.with_suffix(".tools.log")

    def _join_tools(self, job: Overlapped[dict[str, Path]]) -> dict[str, Path]:
        """Wait for the overlapped tools; their log joins the build log in one piece."""
        built = job.result()  # on failure the side log stays, named in the error
        side = self._tools_log()
        with open(side, errors="replace") as src, open(self.log, "a") as out:
            shutil.copyfileobj(src, out)
        side.unlink()
        return built

    def _make_tools(self, tree: Path, tools: Path, log: Path,
                    job: Overlapped | None) -> dict[str, Path]:
        plan = self.plan
        env = self._env()
        libbpf_out = tools / f"libbpf-{plan.arch}"
        libbpf_so = libbpf_out / "libbpf.so"
        headers = tools / "include"
        prefix = lookup(plan.arch).cross_prefix
        libbpf_out.mkdir(parents=True, exist_ok=True)
        # Only the shared library (the agent's): "all" would compile every object
        # twice, for libbpf.a too, which nothing here uses.
        lib_make = ["make", "-C", str(tree / "tools/lib/bpf"),
                    f"OUTPUT={libbpf_out}/", f"-j{plan.request.jobs}",
                    "fixdep", f"{libbpf_out}/libbpf.so"]
        if prefix:
            sysroot = target_sysroot(plan.arch)
            lib_make += [f"CC={prefix}gcc", f"AR={prefix}ar", f"LD={prefix}ld",
                         f"EXTRA_CFLAGS=-I{sysroot}/usr/include -O2",
                         f"LDFLAGS=-L{sysroot}/usr/lib/{lookup(plan.arch).gnu_triplet} "
                         f"-Wl,-rpath-link,{sysroot}/usr/lib/{lookup(plan.arch).gnu_triplet}"]
        self.say(f"making libbpf ({plan.arch})")
        run_make(lib_make, log, None, tools, env=env, owner=job)
        run_make(["make", "-C", str(tree / "tools/lib/bpf"),
                  f"OUTPUT={libbpf_out}/", f"DESTDIR={tools}", "prefix=",
                  "INCLUDEDIR=/include", "install_headers"], log, None, tools, env=env,
                 owner=job)
        # The bootstrap bpftool: `btf dump` (vmlinux.h, raw dumps) is all the harness
        # asks of it, and it builds in a fifth of the time of the full one (no second
        # libbpf, no BPF skeletons compiled with clang).
        bpftool = tools / "bpftool" / "bootstrap" / "bpftool"
        bpftool.parent.mkdir(parents=True, exist_ok=True)
        self.say("making bpftool (host, bootstrap)")
        run_make(["make", "-C", str(tree / "tools/bpf/bpftool"),
                  f"OUTPUT={bpftool.parent.parent}/", f"-j{plan.request.jobs}", "bootstrap"],
                 log, None, tools, env=env, owner=job)
        return {"libbpf_so": libbpf_so, "headers": headers, "bpftool": bpftool}

    def _build_testmod(self, source: sources.KernelSource, build_dir: Path) -> Path | None:
        """bpf_testmod.ko, an out-of-tree module: its BTF goes through --distill_base."""
        src = testmod_dir(source.path)
        if src is None:
            self.say(f"this tree has none of {', '.join(TESTMOD_DIRS)}/bpf_testmod.c: "
                     "skipping bpf_testmod")
            return None
        work = build_dir / "harness-tools" / "test_kmods"
        if work.exists():
            shutil.rmtree(work)  # its .ko BTF depends on vmlinux: always re-finalise
        stage_testmod(src, work)
        self.say("building bpf_testmod.ko")
        run_make(["make", "-C", str(source.path), f"O={build_dir}", *self.plan.make_vars(),
                  f"M={work}", f"-j{self.plan.request.jobs}", "modules"],
                 self.log, None, build_dir, env=self._env())
        module = work / "bpf_testmod.ko"
        if not module.exists():
            raise HarnessError(f"bpf_testmod.ko was not produced (log: {self.log})")
        return module

    def _publish(self, source: sources.KernelSource, build_dir: Path, final: Path,
                 full_key: str, tools: dict[str, Path], testmod: Path | None) -> BuildArtifacts:
        plan = self.plan
        with staging_dir(final) as tmp:
            image = build_dir / lookup(plan.arch).boot_image
            shutil.copy2(image, tmp / image.name)
            shutil.copy2(build_dir / "vmlinux", tmp / "vmlinux")
            shutil.copy2(build_dir / ".config", tmp / "config")
            modules = tmp / "modules"
            modules.mkdir()
            order = build_dir / "modules.order"
            if order.exists():
                for line in order.read_text().splitlines():
                    ko = build_dir / line.strip().replace(".o", ".ko")
                    if ko.exists():
                        shutil.copy2(ko, modules / ko.name)
            testmod_dest = None
            if testmod:
                testmod_dest = tmp / "bpf_testmod.ko"
                shutil.copy2(testmod, testmod_dest)
            (tmp / "lib").mkdir()
            with locked(self.tools_dir(source)):  # another build may be making them
                shutil.copy2(tools["libbpf_so"].resolve(), tmp / "lib" / "libbpf.so")
                shutil.copytree(tools["headers"], tmp / "include")
                shutil.copy2(tools["bpftool"], tmp / "bpftool")
            shutil.copy2(tools["resolve_btfids"], tmp / "resolve_btfids")
            log_copy = tmp / "build.log"
            shutil.copy2(self.log, log_copy)

            def at(path: Path) -> Path:
                return final / path.relative_to(tmp)

            artifacts = BuildArtifacts(
                arch=plan.arch, kernel_release=source.kernel_version, cache_key=full_key,
                boot_image=at(tmp / image.name), vmlinux=at(tmp / "vmlinux"),
                config=at(tmp / "config"), modules_dir=at(modules),
                bpf_testmod=at(testmod_dest) if testmod_dest else None,
                libbpf_so=at(tmp / "lib" / "libbpf.so"), libbpf_headers=at(tmp / "include"),
                bpftool=at(tmp / "bpftool"), resolve_btfids=at(tmp / "resolve_btfids"),
                source_tree=source.path, log=at(log_copy),
                toolchain=plan.toolchain_report() | {"build_dir": str(build_dir)},
            )
            (tmp / "artifacts.json").write_text(artifacts.to_json())
        return artifacts


# Where a tree keeps bpf_testmod, newest layout first: test_kmods/ (with the other test
# modules) since 6.14, bpf_testmod/ alone before (6.12).
TESTMOD_DIRS = ("tools/testing/selftests/bpf/test_kmods", "tools/testing/selftests/bpf/bpf_testmod")


def testmod_dir(tree: Path) -> Path | None:
    """The tree's directory holding bpf_testmod.c, or None."""
    return next((tree / d for d in TESTMOD_DIRS if (tree / d / "bpf_testmod.c").exists()), None)


def stage_testmod(src: Path, work: Path) -> None:
    """Copy the testmod directory `src` to `work` with a Kbuild for bpf_testmod alone
    (`make M=work`). The other test modules need options the harness's configs leave out.
    """
    shutil.copytree(src, work)
    (work / "Makefile").unlink()
    (work / "Kbuild").write_text("obj-m += bpf_testmod.o\nCFLAGS_bpf_testmod.o = -I$(src)\n")


SYSROOT_PACKAGES = ("libelf-dev", "libelf1", "zlib1g-dev", "zlib1g", "libzstd-dev", "libzstd1")


def target_sysroot(arch: str, extra: tuple[str, ...] = ()) -> Path:
    """Headers and libraries of libelf/zlib for a cross-built libbpf (Debian arm64 .debs),
    and of the `extra` packages a cross-built program needs besides (its own sysroot)."""
    from harness.kbuild.debian import PrivateApt, unpack_deb

    name = arch if not extra else f"{arch}-{'-'.join(sorted(extra))}"
    final = cache_dir("sysroots") / name
    if (final / ".complete").exists():
        return final
    debian_arch = lookup(arch).debian
    packages = [*SYSROOT_PACKAGES, *extra]
    apt = PrivateApt()
    debs = [apt.download(f"{name}:{debian_arch}", "bookworm") for name in packages]
    with locked(final):
        if (final / ".complete").exists():
            return final
        with staging_dir(final) as tmp:
            for deb in debs:
                unpack_deb(deb, tmp)
            lib = tmp / f"usr/lib/{lookup(arch).gnu_triplet}"
            # -dev symlinks point at /lib/...; make them resolve inside the sysroot
            for link in lib.glob("*.so"):
                if link.is_symlink() and Path(os.readlink(link)).is_absolute():
                    target = tmp / os.readlink(link).lstrip("/")
                    link.unlink()
                    link.symlink_to(os.path.relpath(target, lib))
            # a cross compiler searches no multiarch dir: merge usr/include/<triplet>
            # (openssl's opensslconf.h lives there) into usr/include
            multiarch = tmp / "usr/include" / lookup(arch).gnu_triplet
            if multiarch.is_dir():
                shutil.copytree(multiarch, tmp / "usr/include", dirs_exist_ok=True)
            (tmp / ".complete").write_text("")
    return final

