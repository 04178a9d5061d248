"""A kernel-tree git history whose resolve_btfids changes behaviour at a known commit.

Made from the real Debian 7.2 and 7.3 sources: the first commit holds 7.2's
tools/bpf/resolve_btfids and everything its Makefile builds from, two unrelated commits
follow, then CHANGE_COMMIT swaps in 7.3's (kfuncs found from the BTF_SET8_KFUNCS sets
and tagged by resolve_btfids itself, where 7.2's relied on pahole's tags), then two more
unrelated commits. Dates and identity are fixed, so the commit ids are the same on every
machine and the bisect cache keeps each commit's build across runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from harness.bisect.tools import BTFIDS_PATHS

CHANGE_SUBJECT = "resolve_btfids: find kfuncs from BTF_SET8_KFUNCS sets (7.3)"
_ENV = {"GIT_AUTHOR_NAME": "harness", "GIT_AUTHOR_EMAIL": "harness@example.org",
        "GIT_COMMITTER_NAME": "harness", "GIT_COMMITTER_EMAIL": "harness@example.org",
        "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}


def _git(repo: Path, *args: str, day: int = 1) -> str:
    stamp = f"2026-01-{day:02d}T12:00:00+0000"
    env = dict(os.environ, **_ENV, GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp)
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


def _take(tree: Path, repo: Path) -> None:
    """Replace BTFIDS_PATHS in `repo` with `tree`'s."""
    for rel in BTFIDS_PATHS:
        dest = repo / rel
        if dest.is_dir():
            shutil.rmtree(dest)
        elif dest.exists():
            dest.unlink()
        src = tree / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest, symlinks=True,
                            ignore=shutil.ignore_patterns("*.o", "*.a", "*.cmd", "FEATURE-DUMP*",
                                                          "feature"))
        elif src.exists():
            shutil.copy2(src, dest)


def make_history(dest: Path, tree_72: Path, tree_73: Path) -> list[str]:
    """The six commits, oldest first; index 3 is the behaviour change."""
    dest.mkdir(parents=True)
    _git(dest, "init", "-q", "-b", "master")
    commits = []
    steps = [("7.2", "resolve_btfids as in 7.2"), ("note", "Documentation: a note"),
             ("note", "Documentation: another note"), ("7.3", CHANGE_SUBJECT),
             ("note", "Documentation: a third note"), ("note", "Documentation: last note")]
    for day, (what, subject) in enumerate(steps, 1):
        if what == "note":
            notes = dest / "Documentation/notes.txt"
            notes.parent.mkdir(exist_ok=True)
            with open(notes, "a") as handle:
                handle.write(f"{subject}\n")
        else:
            _take(tree_72 if what == "7.2" else tree_73, dest)
        _git(dest, "add", "-A")
        _git(dest, "commit", "-q", "-m", subject, day=day)
        commits.append(_git(dest, "rev-parse", "HEAD"))
    return commits
