"""Host side of program runs: plan jobs from expectations, ship them to a target, judge.

Data flow: compiled objects -> :func:`plan` (one job per test_loader sub-test,
skips decided on the host with their reasons) -> :func:`execute` (the agent on
a ``harness.targets.base.Target``, or on this host with :class:`LocalHost`) ->
:func:`harness.progs.judge.judge` -> :class:`~harness.progs.results.ProgResult`.

Beyond test_loader, programs whose object calls a ``KF_IMPLICIT_ARGS`` kfunc
get a second run with ``BPF_F_TEST_RND_HI32`` forced (``<prog>@rnd_hi32``):
the verifier's zero-extension rewrite is where implicit-argument calls were
feared to go wrong. test_loader means to set that flag on every load too, but
its probe names the probe program ``flag-test``, which the kernel refuses (a
``-`` in a program name is EINVAL), so upstream never sets it; the agent
reproduces the probe as written and the explicit variant gives the coverage.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import shlex
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness.arch import host
from harness.errors import HarnessError
from harness.progs.agent_server import new_server_dir, remember_server, served_run
from harness.progs.expectations import (
    BPF_F_TEST_RND_HI32,
    Mode,
    ObjectSpecs,
    Run,
    Spec,
    object_specs,
)
from harness.progs.judge import ERROR, SKIP, Verdict, describe, judge
from harness.progs.lean import lean_copy
from harness.progs.makeflags import DEFAULT_FLAVOR
from harness.progs.results import ProgResult
from harness.targets.base import RemoteShell

AGENT = Path(__file__).with_name("agent.py")
BUNDLE_MAIN = Path(__file__).with_name("bundle_main.py")
INSMOD_FAILED = 97  # bundle_main.py's exit status when the module does not load
HIDTOOL = Path(__file__).with_name("hidtool.py")
REMOTE_DIR = "/tmp/kfunc-harness-progs"  # guest tmpfs: keep writes off 9p shares


@functools.cache
def agent_warmup() -> str:
    """The command that reads in what the agent's first run loads on a booted guest:
    python3 and the modules agent.py and bundle_main.py import at their top. On a guest
    with a spare vCPU it runs while the host sends the bundle
    (channel.loop_script); a fresh x86_64 run took 3.7 s with it, 4.2 s without."""
    modules: list[str] = []
    for path in (BUNDLE_MAIN, AGENT):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Try):  # agent.py's optional _json
                node = next((n for n in node.body if isinstance(n, ast.Import)), node)
            if isinstance(node, ast.Import):  # os and sys: every interpreter has them
                modules += [alias.name for alias in node.names
                            if alias.name not in (*modules, "os", "sys")]
    return f"python3 -S -c 'import {','.join(modules)}'"


class RunnerError(HarnessError):
    """The agent could not be run or returned something unreadable."""


@dataclass
class Job:
    """One sub-test on one arch, ready for the agent (or skipped on the host already)."""

    id: str
    object: Path
    object_stem: str
    run: Run
    variant: str = ""  # "" or "rnd_hi32"
    force_flags: int = 0
    autoload: list[str] = field(default_factory=list)
    skip: str | None = None
    # __btf_path: the object test_loader opens with btf_custom_path, built for this run
    btf_object: Path | None = None
    # runs with no other job at once: it may attach a struct_ops map for the whole
    # system, or it ran beside others when the target died (isolation.py)
    alone: bool = False
    # a HID scenario: it spends its time waiting for its device's events, not on a CPU
    waits: bool = False

    @property
    def name(self) -> str:
        return self.run.name + (f"@{self.variant}" if self.variant else "")

    def agent_job(self, remote_object: str, remote_btf: str | None = None) -> dict[str, object]:
        spec, mode = self.run.spec, self.run.mode
        hid = bool(spec.hid) and not mode.expect_failure
        # A HID scenario is the execution step of a struct_ops program (no test run).
        execute = (mode.execute or hid) and not mode.expect_failure
        job: dict[str, object] = {
            "id": self.id,
            "object": remote_object,
            "object_name": self.object_stem,
            "program": spec.prog_name,
            "autoload": self.autoload,
            "log_level": spec.log_level,
            "flag_ops": [[clear, value] for clear, value in spec.flag_ops],
            "force_flags": self.force_flags,
            "execute": execute,
            "linear_size": spec.linear_size,
            "read_stderr": execute and bool(mode.stderr),
            "read_stdout": execute and bool(mode.stdout),
            "load_modes": sorted(spec.load_modes),
            "unpriv": self.run.unpriv,
            "caps": mode.caps,
            "xlated": bool(mode.xlated),
            "jited": bool(mode.jited),
            "alone": self.alone,
            "waits": self.waits,
        }
        if remote_btf is not None:
            job["btf_custom_path"] = remote_btf
        if spec.then_run and execute:
            prog, want, timeout = spec.then_run
            job["then_run"] = {"program": prog, "retval": want, "timeout_ms": timeout}
        if hid:
            job["hid"] = spec.hid
        return job


def kernel_implicit_kfuncs(kernel_files: Iterable[str | Path]) -> frozenset[str]:
    """KF_IMPLICIT_ARGS kfuncs (and `_impl` twins) of the kernel the programs load into:
    its vmlinux, then its modules (ELF: the .BTF_ids flags), or /sys/kernel/btf files."""
    files = [str(f) for f in kernel_files]
    names: frozenset[str] = frozenset()
    for path in files:
        st = os.stat(path)
        names |= _implicit_kfuncs_of(path, files[0], st.st_mtime_ns, st.st_size)
    return names


@functools.cache
def _implicit_kfuncs_of(path: str, vmlinux: str, _mtime_ns: int, _size: int) -> frozenset[str]:
    """One file's answer, kept while the file is unchanged (a watch loop asks each round)."""
    from harness.btf.kfuncs import implicit_arg_kfuncs  # noqa: PLC0415 - the BTF library

    return implicit_arg_kfuncs(path, vmlinux)


def plan(objects: Iterable[str | Path], arch: str, *, implicit_kfuncs: frozenset[str] = frozenset(),
         only: str | None = None) -> list[Job]:
    """Jobs for every sub-test of every object, in object and program order.

    Invalid specs become ERROR jobs and host-side skips (arch, unsupported
    features) SKIP jobs, so no program disappears from the results.
    ``only`` keeps runs whose name (or object/name) contains it.
    """
    jobs: list[Job] = []
    for obj in objects:
        specs = object_specs(obj, arch)
        stem = Path(obj).name.removesuffix(".o").removesuffix(".bpf")
        calls_implicit = bool(implicit_kfuncs & set(specs.info.externs))
        for spec in specs.specs:
            if only and only not in spec.prog_name and only not in f"{stem}/{spec.prog_name}":
                continue
            if not spec.valid:
                jobs.append(error_job(Path(obj), stem, spec,
                                      f"error: can't parse test spec: {spec.error}"))
                continue
            for run in spec.runs:
                jobs.extend(_jobs_for(specs, stem, Path(obj), run, arch, calls_implicit))
    seen: dict[str, Path] = {}
    for job in jobs:
        # Results are keyed by id (tables, pytest ids): two objects with one stem (our
        # wq.c and the tree's) may share a stem, never a program name.
        other = seen.setdefault(job.id, job.object)
        if other != job.object:
            raise RunnerError(f"program {job.id} is in both {other} and {job.object}; "
                              "rename one of them")
    return jobs


def error_job(path: Path, stem: str, spec: Spec | str, reason: str) -> Job:
    """A job that never runs and reports `reason` (starting "error:") as its verdict: a
    program whose annotations do not parse, or a whole file that did not compile (then
    `spec` is the name its result carries)."""
    if isinstance(spec, str):
        spec = Spec(prog_name=spec, section="", arch="", tags=(), legacy_tags=False,
                    valid=False, error=reason, priv=None, unpriv=None, log_level=0,
                    flag_ops=(), arches=None, load_modes=frozenset(), linear_size=0,
                    auxiliary=False, btf_custom_path=None, btf_custom_func_path=None)
    dummy = Mode(spec.prog_name, None, False, (), (), (), (), (), 0, False, 0)
    return Job(f"{stem}/{spec.prog_name}", path, stem, Run(spec, dummy, False), skip=reason)


def _jobs_for(specs: ObjectSpecs, stem: str, obj: Path, run: Run, arch: str,
              implicit: bool) -> list[Job]:
    # a HID run's struct_ops map is bound to its own uhid device; any other run of an
    # object with struct_ops programs may attach a map for the whole system
    alone = specs.has_struct_ops and not run.spec.hid
    waits = bool(run.spec.hid) and not run.mode.expect_failure
    base = Job(f"{stem}/{run.name}", obj, stem, run, autoload=specs.auxiliaries(run.unpriv),
               alone=alone, waits=waits)
    skip = run.arch_skip(arch)
    reasons = run.unsupported(arch)
    if skip is None and reasons:
        skip = "; ".join(reasons)
    if run.spec.hid and run.unpriv:
        skip = skip or "HID scenarios run privileged only"
    base.skip = skip
    out = [base]
    if implicit:
        out.append(Job(f"{stem}/{run.name}@rnd_hi32", obj, stem, run, "rnd_hi32",
                       BPF_F_TEST_RND_HI32, list(base.autoload), skip, alone=alone,
                       waits=waits))
    return out


class LocalHost:
    """Runs the agent on this machine (root needed): the host kernel as a target."""

    @property
    def arch(self) -> str:
        return host().name

    def agent(self, libbpf_so: Path, jobs: list[dict[str, object]], timeout: float) -> str:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump(jobs, fh)
        try:
            proc = subprocess.run([sys.executable, str(AGENT), "--libbpf", str(libbpf_so),
                                   "--timeout", str(timeout), "--parallel", "0",
                                   "run", fh.name],
                                  capture_output=True, text=True,
                                  timeout=timeout * (len(jobs) + 2))
        finally:
            os.unlink(fh.name)
        if proc.returncode != 0:
            raise RunnerError(f"agent failed (rc {proc.returncode}): "
                              f"{proc.stderr.strip().splitlines()[-1:] or ''}")
        return proc.stdout


def _identity(data: bytes) -> str:
    """What bundle_main compares to tell a member it already has: CRC-32 and size."""
    return f"{zlib.crc32(data):08x}-{len(data)}"


# The bundle's entry: with sys.argv[0] the zip and the zip first on sys.path, bundle_main
# is found in it by zipimport (from the .pyc the bundle carries when the target's python3
# can use it). It is the zip's __main__.py too, for `python3 BUNDLE ARGS` by hand.
_ENTRY = "import sys,bundle_main;sys.exit(bundle_main.main(sys.argv[1:]))"


def launch_command(bundle: str, args: Iterable[str]) -> str:
    """The shell command that runs a bundle on a target: `python3 -S BUNDLE ARGS` without
    runpy, which running a zip as a script imports (importlib.util, contextlib and what
    they pull in: ~0.1 s of a fresh TCG guest)."""
    boot = f"import sys;sys.argv[0]=sys.argv.pop(1);sys.path.insert(0,sys.argv[0]);{_ENTRY}"
    return f"python3 -S -c {shlex.quote(boot)} " + " ".join(
        shlex.quote(a) for a in (bundle, *args))


@functools.lru_cache(maxsize=8)
def _compiled(source: Path, mtime_ns: int, size: int) -> bytes:
    """`source` compiled by this host's python3 into an unchecked-hash .pyc: a target whose
    python3 has the same cache tag imports it without compiling agent.py (~0.06 s under
    TCG); any other ignores it (the tag is in the member's name, the magic is checked)."""
    import py_compile  # noqa: PLC0415 - only when a bundle is made

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.pyc"
        py_compile.compile(str(source), cfile=str(out), doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        return out.read_bytes()


def _pyc(source: Path) -> bytes:
    st = source.stat()
    return _compiled(source, st.st_mtime_ns, st.st_size)


def _bundle(libbpf_so: Path, objects: dict[Path, str], jobs: list[dict[str, object]],
            module: Path | None, arch: str | None = None,
            present: dict[str, str] | None = None) -> tuple[Path, dict[str, str]]:
    """One zip with everything a run needs; bundle_main.py unpacks it on the target.
    Returns the zip and its manifest (member -> identity).

    With `arch`, the shared library and the module travel without debug info (lean.py).
    `present`: what the target holds from an earlier bundle (member -> identity); those
    members are listed but not shipped again (libbpf.so and the module: most of a watch
    round's transfer).
    """
    def ship(path: Path) -> Path:
        return lean_copy(path, arch) if arch is not None else path

    members: list[tuple[str, Path]] = [("agent.py", AGENT), ("libbpf.so", ship(libbpf_so))]
    if HIDTOOL.exists():
        members.append(("hidtool.py", HIDTOOL))
    members += [(remote.removeprefix(REMOTE_DIR + "/"), local) for local, remote in objects.items()]
    if module is not None:
        members.append((module.name, ship(module)))
    contents = [(member, local.read_bytes()) for member, local in members]
    # unpacked next to agent.py, where its import looks for it
    tag = sys.implementation.cache_tag
    contents.append((f"__pycache__/agent.{tag}.pyc", _pyc(AGENT)))
    contents.append(("jobs.json", json.dumps(jobs).encode()))
    manifest = {member: _identity(data) for member, data in contents}
    fd, name = tempfile.mkstemp(suffix=".zip")
    os.close(fd)
    with zipfile.ZipFile(name, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("__main__.py", _ENTRY + "\n")
        archive.write(BUNDLE_MAIN, "bundle_main.py")
        archive.writestr("bundle_main.pyc", _pyc(BUNDLE_MAIN))  # zipimport's cached form
        for member, data in contents:
            if present is None or present.get(member) != manifest[member]:
                archive.writestr(member, data)
        # member TAB identity: bundle_main leaves a member it has as it is (libbpf.so
        # keeps its inode: the persistent agent's probe holds), and takes one not in the
        # zip from what it has
        archive.writestr("MANIFEST", "\n".join(f"{m}\t{i}" for m, i in manifest.items()))
    return Path(name), manifest


def _remote_agent(target: RemoteShell, libbpf_so: Path, objects: dict[Path, str],
                  jobs: list[dict[str, object]], timeout: float,
                  module: Path | None = None, keep_agent: bool = False) -> str:
    """Ship one bundle through the Target protocol and run it: one put, one command.

    `keep_agent` (a watch loop's rounds): run it through a persistent agent on the
    target, which the first round's agent turns into (bundle_main.py --then-serve)."""
    def ship(present: dict[str, str] | None) -> dict[str, str]:
        bundle, manifest = _bundle(libbpf_so, objects, jobs, module, target.arch, present)
        try:
            target.put(bundle, f"{REMOTE_DIR}.zip", timeout=120)
        finally:
            bundle.unlink()
        return manifest

    # --mark-console: each job is named in the kernel log as it starts and ends
    # (progs/isolation.py); --parallel 0: a job per target CPU at once
    args = (["--insmod", module.name] if module is not None else []) + [
        "--mark-console", "--libbpf", f"{REMOTE_DIR}/libbpf.so", "--timeout", f"{timeout:g}",
        "--parallel", "0", "run", f"{REMOTE_DIR}/jobs.json"]
    budget = timeout * (len(jobs) + 2) + 30
    res = served_run(target, ship, f"{REMOTE_DIR}.zip", args, budget) if keep_agent else None
    if res is None:
        manifest = ship(None)
        sdir = new_server_dir()
        then_serve = ["--then-serve", sdir] if keep_agent else []
        # -S: the agent is stdlib-only, and site's .pth scan is slow on a 9p root
        cmd = launch_command(f"{REMOTE_DIR}.zip", then_serve + args)
        res = target.run(cmd, timeout=budget)
        if then_serve and res.rc == 0:
            remember_server(target, sdir, manifest)
    if res.rc == INSMOD_FAILED:
        raise RunnerError(res.err.strip() or "insmod failed")
    if res.rc != 0:
        raise RunnerError(f"agent failed on the target (rc {res.rc}): "
                          f"{(res.err.strip().splitlines() or [''])[-1]}")
    return res.out


def execute(jobs: list[Job], libbpf_so: str | Path, target: RemoteShell | None = None, *,
            timeout: float = 60.0, module: Path | None = None,
            keep_agent: bool = False) -> list[ProgResult]:
    """Run the non-skipped jobs through the agent (on ``target``, else this host); judge all.

    ``module`` (bpf_testmod.ko) is loaded on the target first unless it is loaded already.
    ``keep_agent``: the caller will run more rounds on this target (a watch loop), so
    keep an agent running there between them (see _remote_agent).
    """
    libbpf_so = Path(libbpf_so)
    arch = target.arch if target is not None else LocalHost().arch
    jobs = [replace(j, skip=f"__btf_path {j.run.spec.btf_custom_path} was not built for "
                    "this run (suite_jobs builds it from the tree)")
            if j.skip is None and j.run.spec.btf_custom_path and j.btf_object is None else j
            for j in jobs]
    runnable = [j for j in jobs if j.skip is None]
    raw_by_id: dict[str, dict] = {}
    probe: dict = {}
    if runnable:
        files = [f for j in runnable for f in (j.object, j.btf_object) if f is not None]
        if target is None:
            remote = {f: str(f.resolve()) for f in files}
        else:
            remote = {}
            for f in files:
                if f not in remote:
                    remote[f] = f"{REMOTE_DIR}/obj/{len(remote)}-{f.name}"
        payload = [j.agent_job(remote[j.object], remote.get(j.btf_object)) for j in runnable]
        if target is None:
            out = LocalHost().agent(libbpf_so, payload, timeout)
        else:
            out = _remote_agent(target, libbpf_so, remote, payload, timeout, module,
                                keep_agent)
        try:
            data = json.loads(out)
        except ValueError:
            raise RunnerError(f"agent printed no JSON: {out[:200]!r}") from None
        probe = data.get("probe", {})
        raw_by_id = {str(r.get("id")): r for r in data.get("results", [])}
    results = []
    for job in jobs:
        results.append(_record(job, arch, raw_by_id.get(job.id), probe))
    return results


def _record(job: Job, arch: str, raw: dict | None, probe: dict) -> ProgResult:
    mode = job.run.mode
    if job.skip is not None:
        verdict = (Verdict(ERROR, job.skip) if job.skip.startswith("error:")
                   else Verdict(SKIP, job.skip))
        raw = {}
    elif raw is None:
        verdict, raw = Verdict(ERROR, "agent returned no result for this job"), {}
    else:
        verdict = judge(job.run, raw)
    times = [raw.get(k) for k in ("load_ms", "run_ms") if raw.get(k) is not None]
    return ProgResult(
        object=job.object_stem,
        program=job.name,
        arch=arch,
        verdict=verdict.verdict,
        expected=(describe(mode) + (" hid" if job.run.spec.hid and not mode.expect_failure
                                    else "")) if job.run.spec.valid else "valid spec",
        reason=verdict.reason,
        time_ms=round(sum(times), 3) if times else None,
        retval=raw.get("retval"),
        prog_flags=raw.get("prog_flags"),
        verifier_log=str(raw.get("verifier_log", "")),
        libbpf_log=[str(m) for _lvl, m in raw.get("libbpf_log", [])],
        details=verdict.details,
        description=mode.description,
    )


def run_objects(objects: Iterable[str | Path], libbpf_so: str | Path,
                target: RemoteShell | None = None,
                *, arch: str | None = None, kernel_files: Iterable[str | Path] = (),
                only: str | None = None, timeout: float = 60.0,
                module: Path | None = None, keep_agent: bool = False) -> list[ProgResult]:
    """Plan and execute: the one call for already-compiled objects.

    `kernel_files` (the target kernel's vmlinux and modules, or /sys/kernel/btf files)
    say which kfuncs take implicit arguments: their callers get the @rnd_hi32 twin.
    """
    arch = arch or (target.arch if target is not None else LocalHost.arch)
    implicit = kernel_implicit_kfuncs(kernel_files)
    jobs = plan(objects, arch, implicit_kfuncs=implicit, only=only)
    return execute(jobs, libbpf_so, target, timeout=timeout, module=module,
                   keep_agent=keep_agent)


def run_suite(artifacts: object, target: RemoteShell, sources: Iterable[str | Path], *,
              only: str | None = None, timeout: float = 60.0,
              clang: str = "clang", flavor: str = DEFAULT_FLAVOR,
              keep_agent: bool = False) -> list[ProgResult]:
    """Compile ``sources`` with ``clang`` (a command or path) as test_progs ``flavor``
    builds them, for a build (``BuildArtifacts``), and judge them on ``target``.

    Loads the build's bpf_testmod on the target first when the build has one
    (the implicit-args and wq selftests call its kfuncs).
    """
    from harness.progs.compile import compile_prog, toolchain_for  # noqa: PLC0415

    tc = toolchain_for(artifacts, clang, flavor)
    objects = [compile_prog(src, tc) for src in sources]
    return run_objects(objects, artifacts.libbpf_so, target,  # type: ignore[attr-defined]
                       arch=artifacts.arch,  # type: ignore[attr-defined]
                       kernel_files=kernel_files_of(artifacts),
                       only=only, timeout=timeout, module=testmod_of(artifacts),
                       keep_agent=keep_agent)


def testmod_of(artifacts: object) -> Path | None:
    """The build's bpf_testmod.ko, loaded before the programs (their kfuncs live in it)."""
    testmod = getattr(artifacts, "bpf_testmod", None)
    return Path(testmod) if testmod is not None and Path(testmod).is_file() else None


def kernel_files_of(artifacts: object) -> list[Path]:
    """The build's vmlinux and bpf_testmod.ko: where its kfuncs' flags are."""
    testmod = testmod_of(artifacts)
    return [Path(artifacts.vmlinux)] + ([testmod] if testmod else [])  # type: ignore[attr-defined]


BPF_PROGS_DIR = Path(__file__).resolve().parents[2] / "bpf_progs"  # the project's programs


# the tree's own selftests that join bpf_progs/ in the suite, where the tree has them:
# implicit kfunc args, bpf_wq and its verifier rejects, and (7.3) the JIT's rebase of
# __arena kfunc arguments, judged by its __jited patterns
TREE_SUITE = ("kfunc_implicit_args", "wq", "wq_failures", "arena_kfunc_jit")


def default_sources(tree: Path, repo: Path | None = None) -> list[Path]:
    """Our bpf_progs/*.c plus the tree's TREE_SUITE sources that it has."""
    ours = sorted(((repo / "bpf_progs") if repo else BPF_PROGS_DIR).glob("*.c"))
    st = tree / "tools/testing/selftests/bpf/progs"
    upstream = [st / f"{n}.c" for n in TREE_SUITE]
    return ours + [p for p in upstream if p.is_file()]
