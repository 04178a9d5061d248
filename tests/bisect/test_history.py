"""harness.bisect.history on real git: repositories made here with `git init`, commits,
tags, a merge, a bundle and a submodule gitlink; nothing is checked out or downloaded."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from harness.bisect import history
from harness.errors import UsageError

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Bisect Test", "GIT_AUTHOR_EMAIL": "bisect@example.invalid",
    "GIT_COMMITTER_NAME": "Bisect Test", "GIT_COMMITTER_EMAIL": "bisect@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}
LIBBPF_PIN = "0123456789abcdef0123456789abcdef01234567"


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV})
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


def commit(repo: Path, message: str, files: dict[str, str] | None = None) -> str:
    for name, text in (files or {}).items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


class Repo:
    """A history with tags, a merged side branch and a gitlink (oldest first):

        R ── A(v1.0) ── B(v1.1) ── M ── M2 ── E ── G   main (G pins lib/bpf)
        │     └── D ───────────────┘    │            side
        └── S ──────────────────────────┘            other
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        git(path.parent, "init", "-q", "-b", "main", path.name)
        self.R = commit(path, "R: root", {"README": "r0\n"})
        run = path / "tools/run.sh"
        run.parent.mkdir()
        run.write_text("#!/bin/sh\necho run\n")
        run.chmod(0o755)
        self.A = commit(path, "A: data and a script", {"sub/dir/data.txt": "data at A\n"})
        git(path, "tag", "-a", "-m", "release 1.0", "v1.0")
        self.B = commit(path, "B: readme", {"README": "B\n"})
        git(path, "tag", "v1.1")  # lightweight: describe --tags sees it
        git(path, "checkout", "-q", "-b", "side", self.A)
        self.D = commit(path, "D: side", {"side.txt": "side\n"})
        git(path, "checkout", "-q", "-b", "other", self.R)
        self.S = commit(path, "S: other", {"other.txt": "other\n"})
        git(path, "checkout", "-q", "main")
        git(path, "merge", "-q", "--no-ff", "-m", "M: merge side", "side")
        self.M = git(path, "rev-parse", "HEAD")
        git(path, "merge", "-q", "--no-ff", "-m", "M2: merge other", "other")
        self.M2 = git(path, "rev-parse", "HEAD")
        self.E = commit(path, "E: readme again", {"README": "E\n",
                                                  "sub/dir/data.txt": "data at E\n"})
        git(path, "update-index", "--add", "--cacheinfo", f"160000,{LIBBPF_PIN},lib/bpf")
        git(path, "commit", "-q", "-m", "G: pin lib/bpf")
        (path / "lib/bpf").mkdir(parents=True)  # an uninitialised submodule's empty dir
        self.G = git(path, "rev-parse", "HEAD")


@pytest.fixture(autouse=True)
def _git_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in GIT_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    return Repo(tmp_path_factory.mktemp("history") / "work")


def state(path: Path) -> dict[str, str]:
    """What a user would notice changing in their checkout."""
    return {
        "head": git(path, "rev-parse", "HEAD"),
        "branch": git(path, "symbolic-ref", "HEAD"),
        "status": git(path, "status", "--porcelain", "--ignored"),
        "worktrees": git(path, "worktree", "list", "--porcelain"),
        "branches": git(path, "for-each-ref", "--format=%(refname) %(objectname)"),
        "stash": git(path, "stash", "list"),
    }


# ---- open_repo --------------------------------------------------------------------------------


def test_open_repo_work_tree_and_bare(repo: Repo, tmp_path: Path) -> None:
    assert history.open_repo(repo.path) == repo.path.resolve()
    assert history.open_repo(str(repo.path)) == repo.path.resolve()
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo.path), str(bare))
    opened = history.open_repo(bare)
    assert opened == bare.resolve()
    assert history.resolve(opened, "v1.0") == repo.A
    assert history.resolve(opened, "main") == repo.G


def test_open_repo_bundle_is_mirrored_once(repo: Repo, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "dwarves.bundle"
    git(repo.path, "bundle", "create", "-q", str(bundle), "--all")
    mirror = history.open_repo(bundle)
    repos = tmp_path / "cache/bisect/repos"
    assert mirror.parent == repos and mirror.name.startswith("dwarves-")
    assert mirror.name.endswith(".git")
    assert git(mirror, "rev-parse", "--is-bare-repository") == "true"
    assert history.resolve(mirror, "v1.0") == repo.A
    assert history.resolve(mirror, "side") == repo.D
    assert history.gitlink(mirror, repo.G, "lib/bpf") == LIBBPF_PIN
    assert history.describe(mirror, repo.B) == "v1.1"

    calls: list[list[str]] = []
    real_run = subprocess.run

    def spy(cmd, *args, **kwargs):  # noqa: ANN001, ANN202 - subprocess.run's signature
        calls.append(list(cmd))
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(history.subprocess, "run", spy)
    assert history.open_repo(bundle) == mirror
    assert not [c for c in calls if "clone" in c], calls
    entries = [p.name for p in repos.iterdir() if not p.name.endswith(".lock")]
    assert entries == [mirror.name]  # one mirror, no staging dir left


def test_open_repo_missing_path_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as ei:
        history.open_repo(tmp_path / "nowhere")
    assert str(ei.value) == f"no such repository: {tmp_path / 'nowhere'}"
    assert ei.value.exit_code == 2


def test_open_repo_plain_directory_is_one_line(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "file.txt").write_text("not git\n")
    with pytest.raises(UsageError) as ei:
        history.open_repo(plain)
    assert str(ei.value) == f"{plain} is not a git repository"


def test_open_repo_file_that_is_no_bundle(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bundle"
    junk.write_text("not a bundle\n")
    with pytest.raises(UsageError, match="is not a git repository or bundle"):
        history.open_repo(junk)
    assert not (tmp_path / "cache/bisect/repos").exists() or not [
        p for p in (tmp_path / "cache/bisect/repos").iterdir() if not p.name.endswith(".lock")]


def test_open_repo_file_that_is_no_bundle_is_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bundle"
    junk.write_text("not a bundle\n")
    with pytest.raises(UsageError) as ei:
        history.open_repo(junk)
    assert "\n" not in str(ei.value)


def test_open_repo_subdirectory_exports_the_whole_tree(repo: Repo, tmp_path: Path) -> None:
    try:
        inner = history.open_repo(repo.path / "sub")
    except UsageError:
        return  # refusing a subdirectory is a fix too
    history.export(inner, repo.G, tmp_path / "out")
    assert (tmp_path / "out/README").is_file(), sorted(os.listdir(tmp_path / "out"))


# ---- revisions --------------------------------------------------------------------------------


def test_resolve(repo: Repo) -> None:
    assert history.resolve(repo.path, "v1.0") == repo.A  # annotated tag: the commit, peeled
    assert history.resolve(repo.path, "v1.1") == repo.B
    assert history.resolve(repo.path, "side") == repo.D
    assert history.resolve(repo.path, "main") == repo.G
    assert history.resolve(repo.path, repo.M2[:8]) == repo.M2
    assert history.resolve(repo.path, "main~1") == repo.E
    assert history.resolve(repo.path, repo.S) == repo.S


@pytest.mark.parametrize("rev", ["nope", "v9.9", "HEAD:README", "0" * 40, "main~99"])
def test_resolve_unknown_revision(repo: Repo, rev: str) -> None:
    with pytest.raises(UsageError) as ei:
        history.resolve(repo.path, rev)
    assert str(ei.value) == f"unknown revision {rev!r} in {repo.path}"


def test_is_ancestor(repo: Repo) -> None:
    assert history.is_ancestor(repo.path, repo.A, repo.G)
    assert not history.is_ancestor(repo.path, repo.G, repo.A)
    assert history.is_ancestor(repo.path, repo.D, repo.M)
    assert not history.is_ancestor(repo.path, repo.D, repo.B)
    assert not history.is_ancestor(repo.path, repo.B, repo.D)
    assert history.is_ancestor(repo.path, repo.B, repo.B)


def test_commits_between_linear(repo: Repo) -> None:
    assert history.commits_between(repo.path, repo.A, repo.B) == [repo.A, repo.B]
    assert history.commits_between(repo.path, repo.R, repo.B) == [repo.R, repo.A, repo.B]
    assert history.commits_between(repo.path, repo.E, repo.G) == [repo.E, repo.G]
    assert history.commits_between(repo.path, repo.B, repo.B) == [repo.B]


def test_commits_between_merges_ancestry_path_topo_order(repo: Repo) -> None:
    got = history.commits_between(repo.path, repo.A, repo.G)
    # S (from R, merged at M2) and R are ancestors of G but not descendants of A
    assert sorted(got) == sorted([repo.A, repo.B, repo.D, repo.M, repo.M2, repo.E, repo.G])
    assert got[0] == repo.A and got[-1] == repo.G
    assert len(set(got)) == len(got)
    for i, sha in enumerate(got):
        for parent in git(repo.path, "rev-list", "--parents", "-n1", sha).split()[1:]:
            if parent in got:
                assert got.index(parent) < i, f"{sha[:8]} before its parent {parent[:8]}"
    # from the side branch: only what descends from D
    assert history.commits_between(repo.path, repo.D, repo.E) == [repo.D, repo.M, repo.M2,
                                                                   repo.E]
    assert history.commits_between(repo.path, repo.S, repo.M2) == [repo.S, repo.M2]


@pytest.mark.parametrize(("old", "new"), [("B", "A"), ("G", "R"), ("B", "D"), ("D", "B")])
def test_commits_between_needs_the_older_first(repo: Repo, old: str, new: str) -> None:
    older, newer = getattr(repo, old), getattr(repo, new)
    with pytest.raises(UsageError) as ei:
        history.commits_between(repo.path, older, newer)
    msg = str(ei.value)
    assert "not an ancestor" in msg and older[:12] in msg and newer[:12] in msg
    assert "\n" not in msg


def test_subject(repo: Repo) -> None:
    assert history.subject(repo.path, repo.B) == "B: readme"
    assert history.subject(repo.path, repo.M) == "M: merge side"
    assert history.subject(repo.path, repo.G) == "G: pin lib/bpf"


def test_describe(repo: Repo) -> None:
    assert history.describe(repo.path, repo.A) == "v1.0"
    assert history.describe(repo.path, repo.B) == "v1.1"  # lightweight tags count
    got = history.describe(repo.path, repo.G)
    match = re.fullmatch(r"v1\.1-(\d+)-g([0-9a-f]{7,40})", got)
    assert match, got
    assert int(match.group(1)) > 0 and repo.G.startswith(match.group(2))
    assert got == git(repo.path, "describe", "--tags", repo.G)  # git's own count
    assert re.fullmatch(r"v1\.0-1-g[0-9a-f]{7,40}", history.describe(repo.path, repo.D))
    # no tag precedes the root or the other branch: the short id
    assert history.describe(repo.path, repo.R) == repo.R[:12]
    assert history.describe(repo.path, repo.S) == repo.S[:12]


def test_gitlink(repo: Repo) -> None:
    assert history.gitlink(repo.path, repo.G, "lib/bpf") == LIBBPF_PIN
    assert history.gitlink(repo.path, repo.E, "lib/bpf") is None  # before the pin
    assert history.gitlink(repo.path, repo.G, "lib") is None  # a tree
    assert history.gitlink(repo.path, repo.G, "README") is None  # a blob
    assert history.gitlink(repo.path, repo.G, "no/such/path") is None


# ---- export -----------------------------------------------------------------------------------


def tree_of(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        out[rel] = "<dir>" if path.is_dir() else path.read_text()
    return out


def test_export_writes_the_commit_tree(repo: Repo, tmp_path: Path) -> None:
    dest = tmp_path / "g"
    history.export(repo.path, repo.G, dest)
    assert tree_of(dest) == {
        "README": "E\n", "lib": "<dir>", "lib/bpf": "<dir>", "other.txt": "other\n",
        "side.txt": "side\n", "sub": "<dir>", "sub/dir": "<dir>",
        "sub/dir/data.txt": "data at E\n", "tools": "<dir>",
        "tools/run.sh": "#!/bin/sh\necho run\n",
    }
    mode = (dest / "tools/run.sh").stat().st_mode
    assert mode & stat.S_IXUSR and os.access(dest / "tools/run.sh", os.X_OK)
    assert not (dest / "README").stat().st_mode & stat.S_IXUSR


def test_export_of_an_older_commit_and_a_subdir(repo: Repo, tmp_path: Path) -> None:
    history.export(repo.path, repo.B, tmp_path / "b")
    assert tree_of(tmp_path / "b") == {
        "README": "B\n", "sub": "<dir>", "sub/dir": "<dir>",
        "sub/dir/data.txt": "data at A\n", "tools": "<dir>",
        "tools/run.sh": "#!/bin/sh\necho run\n",
    }
    assert os.access(tmp_path / "b/tools/run.sh", os.X_OK)
    history.export(repo.path, repo.D, tmp_path / "d", subdir="sub")
    assert tree_of(tmp_path / "d") == {"sub": "<dir>", "sub/dir": "<dir>",
                                       "sub/dir/data.txt": "data at A\n"}


def test_export_leaves_the_repository_untouched(repo: Repo, tmp_path: Path) -> None:
    before = state(repo.path)
    assert before["status"] == "" and before["branch"] == "refs/heads/main"
    assert len([ln for ln in before["worktrees"].splitlines() if ln.startswith("worktree ")]) == 1
    for name in ("G", "B", "D", "R"):
        history.export(repo.path, getattr(repo, name), tmp_path / name)
    assert state(repo.path) == before
    assert (repo.path / "README").read_text() == "E\n"  # the checkout kept HEAD's files
    assert not (repo.path / ".git/worktrees").exists()


def test_export_keeps_uncommitted_work(tmp_path: Path) -> None:
    work = tmp_path / "dirty"
    git(tmp_path, "init", "-q", "-b", "main", work.name)
    first = commit(work, "one", {"f.txt": "one\n"})
    commit(work, "two", {"f.txt": "two\n"})
    (work / "f.txt").write_text("edited\n")
    (work / "new.txt").write_text("untracked\n")
    git(work, "add", "new.txt")
    before = state(work)
    history.export(work, first, tmp_path / "out")
    assert (tmp_path / "out/f.txt").read_text() == "one\n"
    assert not (tmp_path / "out/new.txt").exists()
    assert state(work) == before
    assert (work / "f.txt").read_text() == "edited\n"


@pytest.mark.parametrize(("rev", "subdir"), [("0" * 40, None), ("HEAD", "no-such-dir")])
def test_export_failure_is_a_history_error(repo: Repo, tmp_path: Path, rev: str,
                                           subdir: str | None) -> None:
    with pytest.raises(history.HistoryError):
        history.export(repo.path, rev, tmp_path / "out", subdir=subdir)
