"""Bad input through the real CLI: one line on stderr, non-zero exit, no traceback."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cache import cache_root
from harness.kbuild.toolchains import DEFAULT_PAHOLE
from tests.helpers.terminal import default_sigint

HARNESS = [sys.executable, "-m", "harness"]


def run(args: list[str], env: dict[str, str] | None = None,
        timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HARNESS, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess[str], code: int, needle: str) -> None:
    assert proc.returncode == code, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("harness: error:")]
    assert len(errors) == 1, proc.stderr
    assert needle in errors[0], errors[0]
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def tree(debian_tree_73) -> str:  # noqa: ANN001
    return str(debian_tree_73.path)


def test_not_a_kernel_tree(tmp_path: Path) -> None:
    one_line_error(run(["build", "--tree", str(tmp_path)]), 2, "is not a kernel tree")


def test_unknown_release() -> None:
    one_line_error(run(["build", "--kernel", "5.99"]), 2, "unknown kernel release '5.99'")


def test_fragment_typo(tmp_path: Path, tree: str) -> None:
    typo = tmp_path / "typo.config"
    typo.write_text("CONFIG_BPF_SYSCALL=y\nCONFIG_BPF_SYSCAL=y\n")
    one_line_error(run(["build", "--tree", tree, "--kconfig", str(typo), "--dry-run"]), 2,
                   "typo.config:2: CONFIG_BPF_SYSCAL is not a Kconfig symbol")


def test_patch_that_does_not_apply(tmp_path: Path, tree: str) -> None:
    bad = tmp_path / "0001-bad.patch"
    bad.write_text("--- a/kernel/bpf/helpers.c\n+++ b/kernel/bpf/helpers.c\n"
                   "@@ -1,3 +1,3 @@\n-no such line\n+replacement\n context\n context\n")
    one_line_error(run(["build", "--tree", tree, "--patches", str(bad)]), 2,
                   "patch 0001-bad.patch does not apply")


@pytest.mark.kernel  # the plan fetches the 7.3 source before the compiler check
def test_missing_cross_compiler(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = dict(os.environ, PATH=str(bin_dir))
    one_line_error(run(["build", "--arch", "arm64"], env=env), 1,
                   "cross compiler aarch64-linux-gnu-gcc not found")


def test_full_disk(tmp_path: Path, tree: str) -> None:
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200M", "tmpfs", str(small)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        # share the pinned pahole (not the other toolchains: clang alone is bigger than
        # this 200 MB cache)
        pahole = cache_root() / "toolchains" / f"pahole-{DEFAULT_PAHOLE}"
        if pahole.is_dir():
            shutil.copytree(pahole, small / "toolchains" / pahole.name, symlinks=True)
        env = dict(os.environ, HARNESS_CACHE=str(small))
        proc = run(["build", "--tree", tree], env=env)
        one_line_error(proc, 1, "MiB free under")
        assert not list((small / "artifacts").glob("*/artifacts.json"))
    finally:
        subprocess.run(["umount", "-l", str(small)])


def test_ctrl_c_stops_make_and_caches_nothing(tmp_path: Path, tree: str) -> None:
    extra = tmp_path / "ctrlc.config"
    extra.write_text(f"CONFIG_NR_CPUS={64 + os.getpid() % 100}\n")  # a fresh compile key
    proc = subprocess.Popen([*HARNESS, "build", "--tree", tree, "--kconfig", str(extra)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            # xdist workers ignore SIGINT; a terminal's harness does not
                            preexec_fn=default_sigint)
    deadline = time.monotonic() + 3000  # other workers may hold the build lock
    seen = ""
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen += line
        if "building 7.3" in line or not line:
            break
    time.sleep(8)  # let make get going
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (seen + out, err)
    assert "harness: interrupted" in err and "Traceback" not in err
    build_dir = next(ln.split(" in ", 1)[1] for ln in seen.splitlines() if "building 7.3" in ln)
    leftovers = subprocess.run(["pgrep", "-f", f"O={build_dir}"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""
    recorded = [p for p in (cache_root() / "artifacts").glob("*/artifacts.json")
                if build_dir in p.read_text()]
    assert recorded == []


def test_ctrl_c_while_kconfig_runs_stops_the_tools_made_alongside(tmp_path: Path,
                                                                  tree: str) -> None:
    """A cold build makes libbpf while Kconfig runs: Ctrl-C stops both makes, and the
    half-made tools dir is not marked complete (the next build starts it afresh)."""
    cache = tmp_path / "cache"
    env = dict(os.environ, HARNESS_CACHE=str(cache))
    proc = subprocess.Popen([*HARNESS, "build", "--tree", tree, "--pahole", "system"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True,
                            preexec_fn=default_sigint)
    assert proc.stdout is not None
    seen = ""
    while "making libbpf" not in seen:
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
    assert "making libbpf" in seen, seen
    time.sleep(1.5)  # both makes under way (a fresh libbpf takes several seconds)
    running = [subprocess.run(["pgrep", "-f", pattern], capture_output=True,
                              text=True).stdout.split()
               for pattern in (f"OUTPUT={cache}/tools", f"O={cache}/kconfig")]
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (seen + out, err)
    assert "harness: interrupted" in err and "Traceback" not in err
    assert all(running), f"libbpf's make and Kconfig's were not both running: {running}"
    leftovers = subprocess.run(["pgrep", "-f", str(cache)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""
    tools = [p for p in (cache / "tools").iterdir() if p.is_dir()]
    assert tools and not any((p / ".harness-complete").exists() for p in tools)
    assert not list((cache / "artifacts").glob("*/artifacts.json"))
