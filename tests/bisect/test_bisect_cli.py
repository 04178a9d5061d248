"""`harness bisect pahole` end to end: usage errors before any build, then real bisects
over pinned Debian releases and over the real dwarves history, on a fixed 7.2 kernel."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.bisect.engine import max_steps
from harness.cli import main
from harness.kbuild.artifacts import BuildArtifacts
from tests.helpers.terminal import default_sigint

SHARED = Path(__file__).resolve().parents[3] / "shared" / "bisect"
# The 7.2 tree asks pahole >= 1.26 for --btf_features=...,decl_tag_kfuncs, which pahole
# learnt in the 1.27 cycle; 7.2's C resolve_btfids finds kfuncs by those tags, so with
# an older pahole the kfuncs lose their tags and `bpf_wq_set_callback_impl` is missing.
# (The Python transformer would find them from the BTF_SET8 sets and mask it.)
PAHOLE_TAGS = "btf:kfunc(bpf_wq_init) and func(bpf_wq_set_callback_impl)"
KERNEL_72 = ["--kernel", "7.2", "--btfids", "c"]


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["bisect", "pahole", *args])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize(("args", "message"), [
    (["--versions", "1.24", "-p", "btf:func(x)"], "needs at least two releases"),
    (["--versions", "1.24,1.99", "-p", "btf:func(x)"], "no pinned pahole 1.99"),
    (["--versions", "1.24,1.30", "-p", "nope:x"], "unknown kind 'nope'"),
    (["--versions", "1.24,1.30", "-p", "btf:kfunc("], "btf: expected"),
    (["--versions", "1.24,1.30", "--good", "v1", "-p", "btf:func(x)"], "go with --repo"),
    (["--repo", "/nonexistent/dwarves", "--good", "a", "--bad", "b", "-p", "btf:func(x)"],
     "no such repository"),
])
def test_usage_errors_are_one_line_before_any_build(
        capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    rc, out, err = _run(capsys, *args)
    assert rc == 2 and out == ""
    assert err.startswith("harness: error: ") and err.count("\n") == 1 and message in err, err


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c",
                           "user.email=t@t", *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_the_ends_of_a_commit_range_are_checked_before_any_build(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "dwarves"
    repo.mkdir()
    _git(repo, "init", "-q")
    for n in range(3):
        (repo / "f").write_text(str(n))
        _git(repo, "add", "f")
        _git(repo, "commit", "-qm", f"c{n}")
        _git(repo, "tag", f"t{n}")
    base = ["--repo", str(repo), "-p", "btf:func(x)"]
    rc, _, err = _run(capsys, *base, "--good", "t2", "--bad", "t0")
    assert rc == 2 and "is not an ancestor of --bad" in err and "add --find-fix" in err
    rc, _, err = _run(capsys, *base, "--good", "t0", "--bad", "t2", "--find-fix")
    assert rc == 2 and "--bad" in err and "is not an ancestor of --good" in err
    rc, _, err = _run(capsys, *base, "--good", "t0", "--bad", "nosuch")
    assert rc == 2 and "unknown revision 'nosuch'" in err
    assert _git(repo, "status", "--porcelain") == ""


@pytest.fixture(scope="module")
def kernel_72(kernel_builder: Callable[..., BuildArtifacts]) -> BuildArtifacts:
    """7.2 x86_64, pahole 1.32, the tree's C resolve_btfids (what KERNEL_72 selects)."""
    return kernel_builder("x86_64", kernel="7.2", btfids="c")


def test_releases_name_the_first_good_one_and_rerun_from_the_cache(
        kernel_72: BuildArtifacts, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--versions", "1.32,1.24,1.30", *KERNEL_72, "-p", PAHOLE_TAGS, "--find-fix"]
    rc, out, err = _run(capsys, *args)
    assert rc == 0, err
    assert "first good: 1.30" in out
    rc, out, _ = _run(capsys, *args, "--json")
    report = json.loads(out)
    assert report["result"]["first_new"] == "1.30" and report["result"]["last_old"] == "1.24"
    assert [s["candidate"] for s in report["steps"]] == ["1.24", "1.32", "1.30"]
    assert all(s["cached"] and s["stage_seconds"] == 0 for s in report["steps"])
    assert Path(report["log_dir"], "report.json").is_file()
    # Without --find-fix the old end must be good: said before any middle step.
    rc, _, err = _run(capsys, *args[:-1])
    assert rc == 1 and "is bad at the old end 1.24" in err and "add --find-fix" in err


def _bundles() -> tuple[Path, Path]:
    dwarves = Path(os.environ.get("HARNESS_DWARVES_REPO", SHARED / "dwarves.bundle"))
    libbpf = Path(os.environ.get("HARNESS_LIBBPF_REPO", SHARED / "libbpf.bundle"))
    if not (dwarves.exists() and libbpf.exists()):
        pytest.skip(f"no dwarves/libbpf history at {dwarves}, {libbpf} "
                    "(set HARNESS_DWARVES_REPO and HARNESS_LIBBPF_REPO)")
    return dwarves, libbpf


@pytest.mark.slow
def test_dwarves_history_finds_the_commit_that_injects_kfunc_decl_tags(
        kernel_72: BuildArtifacts, capsys: pytest.CaptureFixture[str]) -> None:
    dwarves, libbpf = _bundles()
    rc, out, err = _run(capsys, "--repo", str(dwarves), "--libbpf-repo", str(libbpf),
                        "--good", "v1.27", "--bad", "v1.26", "--find-fix", *KERNEL_72,
                        "-p", PAHOLE_TAGS, "--json")
    assert rc == 0, err
    report = json.loads(out)
    result = report["result"]
    assert result["first_new"].startswith("72e88f29c6f7")
    assert report["subjects"][result["first_new"]] == "pahole: Inject kfunc decl tags into BTF"
    assert len(report["steps"]) <= max_steps(len(result["candidates"]))
    assert "bpf_kfunc" in report["diff"]


@pytest.mark.guest
@pytest.mark.slow
def test_a_run_predicate_relinks_and_boots_each_step(
        kernel_72: BuildArtifacts, capsys: pytest.CaptureFixture[str]) -> None:
    """The shortest history that shows it: two releases, one boot each. With pahole 1.24
    7.2's wq.c programs that call implicit-args kfuncs fail to load; with 1.30 all pass."""
    rc, out, err = _run(capsys, "--versions", "1.24,1.30", *KERNEL_72, "-p", "run:wq.c",
                        "--find-fix", "--json")
    assert rc == 0, err
    report = json.loads(out)
    old, new = report["steps"]
    assert old["outcome"] == "bad" and "fail" in old["detail"], old
    assert new["outcome"] == "good" and re.search(r"run:wq.c: (\d+)/\1 pass", new["detail"])
    assert report["result"]["first_new"] == "1.30"


def _btfids_run(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    rc = main(["bisect", "btfids", *args, "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out)


@pytest.mark.slow
def test_btfids_history_finds_the_commit_that_brings_7_3s_tool(
        kernel_builder: Callable[..., BuildArtifacts], debian_tree_73: object,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """On a fixed 7.3 kernel (pahole 1.30), 7.2's resolve_btfids emits no arena
    address_space(1) attributes and 7.3's does: the bisect names the commit bringing it."""
    from harness.kbuild import sources
    from tests.helpers.btfids_history import CHANGE_SUBJECT, make_history

    kernel_builder("x86_64", kernel="7.3", pahole="1.30", btfids="c")
    commits = make_history(tmp_path / "linux", sources.from_debian("7.2").path,
                           debian_tree_73.path)  # type: ignore[attr-defined]
    report = _btfids_run(capsys, "--repo", str(tmp_path / "linux"), "--good", commits[-1],
                         "--bad", commits[0], "--find-fix", "--kernel", "7.3", "--pahole",
                         "1.30", "--btfids", "c", "-p", "btf:arena(bpf_arena_alloc_pages)")
    result = report["result"]
    assert result["first_new"] == commits[3]
    assert report["subjects"][commits[3]] == CHANGE_SUBJECT
    assert len(report["steps"]) <= max_steps(len(commits))
    built = [s for s in report["steps"] if s["tool_seconds"] > 0]
    assert all(s["stage_seconds"] < 15 for s in report["steps"] if not s["cached"]), built


def test_python_history_finds_the_commit_that_changed_the_transformer(
        x86_build: BuildArtifacts, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """This repository's own history, plus three commits on top: the middle one makes the
    transformer write address_space(2) for arena pointers, a real change of its output."""
    repo = tmp_path / "harness"
    here = Path(__file__).resolve().parents[2]
    subprocess.run(["git", "clone", "-q", "--no-local", str(here), str(repo)], check=True)
    notes = ["a note", None, "another note"]
    for n, note in enumerate(notes):
        if note is None:
            transform = repo / "harness/kfunc_abi.py"
            text = transform.read_text()
            changed = text.replace('ARENA_ATTR = "address_space(1)"',
                                   'ARENA_ATTR = "address_space(2)"')
            assert changed != text
            transform.write_text(changed)
            subject = "btfids: arena kfuncs point to address space 2"
        else:
            (repo / "NOTES").write_text(note)
            subject = f"notes {n}"
        _git(repo, "add", "-A")
        _git(repo, "commit", "-qm", subject)
    head = _git(repo, "rev-parse", "HEAD")
    report = _btfids_run(capsys, "--python", str(repo), "--good", "HEAD~3", "--bad", head,
                         "-p", "btf:arena(bpf_arena_alloc_pages)")
    assert report["subjects"][report["result"]["first_new"]] == (
        "btfids: arena kfuncs point to address space 2")
    assert [s["outcome"] for s in report["steps"]][:2] == ["good", "bad"]


@pytest.mark.slow
def test_bisect_step_drives_a_real_git_bisect_run(
        kernel_72: BuildArtifacts, tmp_path: Path) -> None:
    """In a dwarves clone: `git bisect run harness bisect-step pahole` with git's own
    terms finds the commit that injects kfunc decl tags; the exit codes are git's."""
    dwarves, libbpf = _bundles()
    clone = tmp_path / "dwarves"
    subprocess.run(["git", "clone", "-q", str(dwarves), str(clone)], check=True)
    step = ["python3", "-m", "harness", "bisect-step", "pahole", "--libbpf-repo", str(libbpf),
            *KERNEL_72, "-p", f"btf:not ({PAHOLE_TAGS[4:]})"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    one = subprocess.run([*step, "--rev", "v1.27"], cwd=clone, env=env, capture_output=True,
                         text=True)
    assert one.returncode == 1 and "bisect-step: v1.27: bad" in one.stdout, one.stderr
    _git(clone, "bisect", "start", "--term-old=untagged", "--term-new=tagged", "v1.27",
         "v1.26")
    run = subprocess.run(["git", "bisect", "run", *step], cwd=clone, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "72e88f29c6f7e14201756e65bd66157427a61aaf is the first tagged commit" in run.stdout
    aborted = subprocess.run([*step[:5], "--rev", "nosuch", *step[5:]], cwd=clone, env=env,
                             capture_output=True, text=True)
    assert aborted.returncode == 128 and "unknown revision 'nosuch'" in aborted.stderr


@pytest.mark.slow
def test_ctrl_c_during_a_tool_build_leaves_nothing_behind(
        kernel_72: BuildArtifacts, tmp_path: Path) -> None:
    """SIGINT to the whole process group (a terminal's Ctrl-C) while pahole v1.20 builds:
    exit 130, the user's clone untouched, no half-built cache entry, no child left."""
    import signal
    import time

    from harness.bisect import history
    from harness.cache import cache_root
    from harness.procs import group_members

    dwarves, libbpf = _bundles()
    clone = tmp_path / "dwarves"
    subprocess.run(["git", "clone", "-q", str(dwarves), str(clone)], check=True)
    head = _git(clone, "rev-parse", "HEAD")
    commit = history.resolve(clone, "v1.20")
    root = cache_root() / "bisect/pahole"
    # v1.20 is built by this test alone, and never to the end unless a run ignored the
    # Ctrl-C (SIGINT ignored in its process): then it is cached and there is no build
    # left to interrupt.
    shutil.rmtree(root / commit, ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen(
        ["python3", "-m", "harness", "bisect", "pahole", "--repo", str(clone),
         "--libbpf-repo", str(libbpf), "--good", "v1.20", "--bad", "v1.21", *KERNEL_72,
         "-p", PAHOLE_TAGS], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True, preexec_fn=default_sigint)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "testing v1.20" in line:
            break
    time.sleep(2.0)  # inside cmake/make
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "harness: interrupted" in err, err[-1000:]
    assert not (root / commit).exists()
    assert not list(root.glob(f".{commit}.tmp-*"))
    deadline = time.monotonic() + 10
    while group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert group_members(proc.pid) == []  # nothing of the group still runs
    assert _git(clone, "rev-parse", "HEAD") == head
    assert _git(clone, "status", "--porcelain") == ""
    assert _git(clone, "worktree", "list").count("\n") == 0

