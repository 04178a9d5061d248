"""SideMakes: the tool builds that run alongside the kernel make, with real make."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from harness.kbuild.make import MakeError, SideMakes


def makefile(where: Path, recipes: dict[str, str]) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{target}:\n\t{recipe}\n" for target, recipe in recipes.items())
    (where / "Makefile").write_text(text)
    return where


def side(tmp_path: Path, *targets: str) -> SideMakes:
    work = tmp_path / "work"
    cmds = [(["make", "-s", "-C", str(work), target], tmp_path) for target in targets]
    return SideMakes(cmds, tmp_path / "build.tools.log", dict(os.environ))


def test_side_makes_run_in_order_niced_and_land_in_the_build_log(tmp_path: Path) -> None:
    makefile(tmp_path / "work", {"first": "@echo first niceness=$$(nice)",
                                 "second": "@echo second"})
    build_log = tmp_path / "build.log"
    build_log.write_text("kernel lines\n")
    job = side(tmp_path, "first", "second")
    job.start()
    job.finish(build_log)
    text = build_log.read_text()
    assert text.startswith("kernel lines\n")
    assert f"niceness={min(os.nice(0) + 19, 19)}" in text  # the lowest priority
    assert text.index("first niceness") < text.index("second")
    assert text.count("$ make -s -C") == 2  # the benchmark replays these lines
    assert not (tmp_path / "build.tools.log").exists()


def test_a_failing_side_make_is_raised_by_finish_and_its_log_kept(tmp_path: Path) -> None:
    makefile(tmp_path / "work", {"broken": "@echo 'libbpf.c:1: error: boom' && false",
                                 "after": "@echo never"})
    build_log = tmp_path / "build.log"
    job = side(tmp_path, "broken", "after")
    job.start()
    with pytest.raises(MakeError) as failure:
        job.finish(build_log)
    message = str(failure.value)
    assert "libbpf.c:1: error: boom" in message.splitlines()[0]
    assert str(tmp_path / "build.tools.log") in message
    assert (tmp_path / "build.tools.log").exists()
    assert "never" not in build_log.read_text()


def test_cancel_stops_the_running_side_make_and_the_rest(tmp_path: Path) -> None:
    marker = f"sidemake-{os.getpid()}-{time.monotonic_ns()}"
    makefile(tmp_path / "work", {"slow": f"@sleep 300 # {marker}",
                                 "after": f"@touch {tmp_path}/after-ran"})
    job = side(tmp_path, "slow", "after")
    job.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the side make never started its recipe")
    started = time.monotonic()
    job.cancel()
    assert time.monotonic() - started < 15
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
    assert left.stdout.strip() == ""
    assert not (tmp_path / "after-ran").exists()
