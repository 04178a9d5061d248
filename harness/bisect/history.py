"""A tool's git history, read without touching the user's checkout.

Bisect steps need a commit's source tree, not a checked-out repository: `git archive`
exports it into the cache, so the user's HEAD, index and worktrees are never changed and
a Ctrl-C leaves nothing to clean up in their repository. Bundles (`git clone` of a
`.bundle` file) are cloned bare into the cache once, so test data and a user's clone are
read the same way.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from collections.abc import Sequence
from pathlib import Path

from harness.cache import cache_dir, locked, staging_dir
from harness.errors import HarnessError, UsageError


class HistoryError(HarnessError):
    """git could not answer a question about the history (a broken repository)."""


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True,
                              text=True, timeout=300)
    except OSError as exc:
        raise HistoryError(f"cannot run git: {exc.strerror}") from None
    if check and proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise HistoryError(f"git {' '.join(args[:2])} in {repo} failed: {last[:200]}")
    return proc


def open_repo(path: Path | str) -> Path:
    """A git repository (work tree, bare, or a .bundle file cloned bare into the cache).

    A path inside a work tree means its top level: git archive and ls-tree run from a
    subdirectory would see only that subdirectory.
    """
    repo = Path(path).expanduser().resolve()
    if repo.is_file():
        return _bundle_mirror(repo)
    if not repo.is_dir():
        raise UsageError(f"no such repository: {path}")
    bare = _git(repo, "rev-parse", "--is-bare-repository", check=False)
    if bare.returncode:
        raise UsageError(f"{path} is not a git repository")
    if bare.stdout.strip() == "true":
        return repo
    return Path(_git(repo, "rev-parse", "--show-toplevel").stdout.strip())


def _bundle_mirror(bundle: Path) -> Path:
    stat = bundle.stat()
    key = hashlib.sha256(f"{bundle}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()
    final = cache_dir("bisect", "repos") / f"{bundle.stem}-{key[:12]}.git"
    if final.is_dir():
        return final
    with locked(final):
        if final.is_dir():
            return final
        with staging_dir(final) as tmp:
            proc = subprocess.run(["git", "clone", "-q", "--bare", str(bundle), str(tmp / "r")],
                                  capture_output=True, text=True)
            if proc.returncode:
                said = (proc.stderr.strip().splitlines() or ["git clone failed"])[0]
                raise UsageError(f"{bundle} is not a git repository or bundle: "
                                 f"{said[:200]}")
            for item in (tmp / "r").iterdir():
                item.rename(tmp / item.name)
            (tmp / "r").rmdir()
    return final


def resolve(repo: Path, rev: str) -> str:
    """The full commit id of `rev`; an unknown revision is a one-line usage error."""
    proc = _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
    if proc.returncode or not proc.stdout.strip():
        raise UsageError(f"unknown revision {rev!r} in {repo}")
    return proc.stdout.strip()


def is_ancestor(repo: Path, older: str, newer: str) -> bool:
    return _git(repo, "merge-base", "--is-ancestor", older, newer, check=False).returncode == 0


def commits_between(repo: Path, old: str, new: str) -> list[str]:
    """`old`, then every commit on an ancestry path from it to `new`, oldest first.

    The order is git's topological order, so a mostly linear history (dwarves, a kernel
    tool's directory) bisects as git bisect would; `old` must be an ancestor of `new`.
    """
    if not is_ancestor(repo, old, new):
        raise UsageError(f"{old[:12]} is not an ancestor of {new[:12]}: give the older "
                         "revision first")
    out = _git(repo, "rev-list", "--reverse", "--topo-order", "--ancestry-path",
               f"{old}..{new}").stdout.split()
    return [old, *out]


def subject(repo: Path, commit: str) -> str:
    return _git(repo, "log", "-1", "--format=%s", commit).stdout.strip()


def describe(repo: Path, commit: str) -> str:
    """`v1.26-34-g72e88f2`, or the short id when no tag precedes it."""
    proc = _git(repo, "describe", "--tags", commit, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else commit[:12]


def gitlink(repo: Path, commit: str, path: str) -> str | None:
    """The commit a submodule at `path` is pinned to in `commit`, or None if absent."""
    out = _git(repo, "ls-tree", commit, path).stdout.split()
    return out[2] if len(out) >= 3 and out[1] == "commit" else None


def path_exists(repo: Path, commit: str, path: str) -> bool:
    """Whether `path` (file or directory) is in the tree of `commit`."""
    return bool(_git(repo, "ls-tree", commit, "--", path, check=False).stdout.strip())


def export(repo: Path, commit: str, dest: Path, subdir: str | None = None,
           paths: Sequence[str] = ()) -> None:
    """Write the tree of `commit` (or only `subdir` / `paths`) into `dest` with git
    archive; paths keep their place in the tree."""
    args = ["git", "-C", str(repo), "archive", "--format=tar", commit, "--"]
    if subdir:
        args.append(subdir)
    args += list(paths)
    try:
        proc = subprocess.run(args, capture_output=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HistoryError(f"git archive {commit[:12]} failed: {exc}") from None
    if proc.returncode:
        said = (proc.stderr.decode(errors="replace").strip().splitlines() or ["no output"])
        raise HistoryError(f"git archive {commit[:12]} failed: {said[-1][:200]}")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(proc.stdout), mode="r:") as tar:
        tar.extractall(dest, filter="tar")
