"""Build libbpf.so from the real libbpf git history at a pinned commit, cached like a toolchain.

The BTF tests drive libbpf through ctypes as an oracle. Building it from libbpf's own
repository (not from a downloaded kernel tree) keeps the fast tests free of kernel
downloads; the result lives in the harness cache, so it is built once per commit.

    so = build_libbpf()           # Path of libbpf.so; ctypes.CDLL(so) loads it
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness.cache import atomic_write, cache_root, locked, staging_dir, touch_used

# libbpf master, "libbpf: Fix double-free of distilled base BTF on .BTF.ext parse error"
# (July 2026, v1.7.0-76). Tagged releases up to v1.7.0 lack BTF kind-layout support (they
# write 24-byte BTF headers); the 7.3 kernel tree's tools/lib/bpf has it, and this commit
# matches 7.3's copy, so the oracle agrees with the kernel the suite tests.
LIBBPF_COMMIT = "b99e1ad74c66c2b3d07489164f3ab82bf8878c4e"

LIBBPF_URL = "https://github.com/libbpf/libbpf.git"
# The libbpf history shipped beside the checkout, in ../shared/bisect of it or of a
# directory above it (a CI clone may sit deeper); read in place, never copied.
_BUNDLE_REL = Path("shared") / "bisect" / "libbpf.bundle"


def _shipped_bundle() -> Path | None:
    for parent in Path(__file__).resolve().parents[3:]:
        if (parent / _BUNDLE_REL).exists():
            return parent / _BUNDLE_REL
    return None

_FULL_SHA = re.compile(r"[0-9a-fA-F]{40}")
_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")


class LibbpfBuildError(RuntimeError):
    """libbpf could not be fetched or built; the message is one line."""


def libbpf_repo() -> str:
    """HARNESS_LIBBPF_REPO (a path or URL) if set, else the local bundle, else GitHub."""
    explicit = os.environ.get("HARNESS_LIBBPF_REPO")
    if explicit:
        return explicit
    bundle = _shipped_bundle()
    return str(bundle) if bundle is not None else LIBBPF_URL


def build_libbpf(commit: str = LIBBPF_COMMIT, repo: str | None = None) -> Path:
    """Path of libbpf.so built from `repo` at `commit`, building it on the first call only.

    The entry is cache_root()/toolchains/libbpf-<sha12>: libbpf.so, include/ and
    source.json. It is published atomically under a lock, so parallel workers build once
    and a failed build leaves nothing behind (but its log, <entry>.log).
    """
    repo = _check_repo(repo if repo is not None else libbpf_repo())
    sha = (commit if _FULL_SHA.fullmatch(commit) else _resolve(repo, commit)).lower()
    final = cache_root() / "toolchains" / f"libbpf-{sha[:12]}"
    so = final / "libbpf.so"
    if so.is_file():
        touch_used(final)
        return so
    with locked(final):
        if so.is_file():  # another worker built it while we waited for the lock
            touch_used(final)
            return so
        with staging_dir(final) as stage:
            work = stage / "work"  # checkout and objects: removed before publishing
            src = work / "libbpf"
            _clone(repo, src)
            if _rev_parse(src, sha) is None:
                raise LibbpfBuildError(f"commit {commit} not in {repo}")
            _git(["-C", str(src), "-c", "advice.detachedHead=false", "checkout", "--quiet",
                  "--detach", sha], f"git checkout {commit} in {repo}")
            built = _make(src, work / "obj", stage / "include", sha,
                          final.with_name(final.name + ".log"))
            shutil.copyfile(built, stage / "libbpf.so")
            (stage / "libbpf.so").chmod(0o755)
            describe = _git(["-C", str(src), "describe", "--tags", "--always", sha],
                            "git describe").stdout.strip()
            (stage / "source.json").write_text(json.dumps(
                {"repo": repo, "commit": sha, "describe": describe}, indent=2) + "\n")
            shutil.rmtree(work)
    return so


def _is_url(repo: str) -> bool:
    return "://" in repo or bool(_SCP_LIKE.match(repo))


def _check_repo(repo: str) -> str:
    """A URL as given; a local path made absolute, failing early if it does not exist."""
    if _is_url(repo):
        return repo
    path = Path(repo).expanduser()
    if not path.exists():
        raise LibbpfBuildError(f"libbpf repository {repo} not found (set HARNESS_LIBBPF_REPO "
                               f"to a clone of {LIBBPF_URL.removesuffix('.git')})")
    return str(path.resolve())


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _git(args: list[str], what: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")  # a bad URL fails instead of prompting
    try:
        proc = subprocess.run(["git", *args], capture_output=True, text=True, env=env)
    except FileNotFoundError:
        raise LibbpfBuildError("git not found on PATH (needed to build libbpf)") from None
    if proc.returncode != 0:
        raise LibbpfBuildError(f"{what} failed: {_last_line(proc.stderr)}")
    return proc


def _clone(repo: str, dest: Path, *, bare: bool = False) -> None:
    flags = ["--bare"] if bare else ["--no-checkout"]
    _git(["clone", "--quiet", *flags, repo, str(dest)], f"git clone {repo}")


def _rev_parse(git_dir: Path, commit: str) -> str | None:
    """The full sha of `commit` in the clone at `git_dir`, or None if it has no such commit."""
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    proc = subprocess.run(
        ["git", "-C", str(git_dir), "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"],
        capture_output=True, text=True, env=env)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _resolve(repo: str, commit: str) -> str:
    """Full sha of an abbreviated commit or ref, which the cache key needs before building."""
    with tempfile.TemporaryDirectory(prefix="libbpf-resolve-") as tmp:
        _clone(repo, Path(tmp) / "repo.git", bare=True)
        sha = _rev_parse(Path(tmp) / "repo.git", commit)
    if sha is None:
        raise LibbpfBuildError(f"commit {commit} not in {repo}")
    return sha


def _make(src: Path, objdir: Path, include: Path, sha: str, log: Path) -> Path:
    """Run make -C src for the shared library and headers; return the built .so.

    Only the shared library: the static archive would double the compile time and ctypes
    cannot use it. The full log goes to `log` whether make succeeds or not.
    """
    cmd = ["make", "-C", str(src / "src"), "-j2", "V=1", f"OBJDIR={objdir}",
           f"{objdir}/libbpf.so", "install_headers", "install_uapi_headers",
           f"INCLUDEDIR={include}", f"UAPIDIR={include}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        raise LibbpfBuildError("make not found on PATH (needed to build libbpf)") from None
    atomic_write(log, f"$ {' '.join(cmd)}\n# libbpf {sha}, exit status {proc.returncode}\n"
                      f"--- stdout ---\n{proc.stdout}--- stderr ---\n{proc.stderr}")
    if proc.returncode != 0:
        errors = [line.strip() for line in proc.stderr.splitlines() if "error:" in line]
        reason = errors[0] if errors else _last_line(proc.stderr)
        raise LibbpfBuildError(f"make -C src failed at {sha[:12]}: {reason} (log: {log})")
    built = (objdir / "libbpf.so").resolve()
    if not built.is_file():
        raise LibbpfBuildError(f"make -C src at {sha[:12]} produced no libbpf.so (log: {log})")
    return built
