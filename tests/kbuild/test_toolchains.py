"""pahole selection: pinned Debian releases run through their own loader, paths, errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.kbuild import toolchains


@pytest.mark.kernel  # fetches the pinned pahole releases
@pytest.mark.parametrize("release", ["1.24", "1.30", "1.32"])
def test_pinned_pahole_reports_its_release(release: str) -> None:
    tool = toolchains.select_pahole(release)
    assert tool.version == release
    out = subprocess.run([str(tool.path), "--version"], capture_output=True, text=True)
    assert out.stdout.strip() == f"v{release}"
    # it really runs through the fetched loader, not the system's libraries
    assert "ld-linux" in tool.path.read_text()


@pytest.mark.kernel  # fetches pahole 1.30
def test_pahole_by_path_and_bad_path(tmp_path: Path) -> None:
    pinned = toolchains.select_pahole("1.30")
    by_path = toolchains.select_pahole(str(pinned.path))
    assert by_path.version == "1.30"
    not_exec = tmp_path / "pahole"
    not_exec.write_text("")
    with pytest.raises(UsageError, match="not an executable"):
        toolchains.select_pahole(str(not_exec))
    with pytest.raises(UsageError, match="unknown pahole '9.99'"):
        toolchains.select_pahole("9.99")


def test_pahole_that_is_not_pahole(tmp_path: Path) -> None:
    fake = tmp_path / "notpahole"
    fake.write_text("#!/bin/sh\necho hello\n")
    fake.chmod(0o755)
    with pytest.raises(toolchains.ToolchainError, match="not a pahole version"):
        toolchains.select_pahole(str(fake))


def test_cross_compiler_found_or_named() -> None:
    assert toolchains.cross_compiler("arm64").path.name == "aarch64-linux-gnu-gcc"
    with pytest.raises(UsageError):
        toolchains.cross_compiler("mips")


_REWRITE_WRAPPER = """
import os
from harness.kbuild import toolchains
for i in range(300):  # a stale wrapper (atomically replaced), then the real one again
    path = toolchains.cache_dir("bin") / "resolve_btfids-python"
    stale = path.with_name(f"stale-{os.getpid()}")
    stale.write_text(f"#!/bin/sh\\n# stale {i}\\n")
    os.replace(stale, path)
    toolchains.python_btfids_wrapper()
"""


def test_btfids_wrapper_written_by_parallel_workers(tmp_path: Path) -> None:
    """xdist workers planning their first builds at once each (re)write the wrapper."""
    import os
    import sys

    env = dict(os.environ, HARNESS_CACHE=str(tmp_path))
    repo = Path(__file__).resolve().parents[2]
    procs = [subprocess.Popen([sys.executable, "-c", _REWRITE_WRAPPER], cwd=repo, env=env,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    assert os.access(tmp_path / "bin" / "resolve_btfids-python", os.X_OK)
    leftovers = [*(tmp_path / "bin").glob(".*tmp*"), *(tmp_path / "bin").glob("stale-*")]
    assert leftovers == []


ADDR_SPACE_PROG = """\
/* only a clang >= 18 defines this: the selftests' __arena needs it */
int probe(void) { return __BPF_FEATURE_ADDR_SPACE_CAST; }
"""


@pytest.mark.kernel  # fetches clang 21 from trixie-backports
def test_pinned_clang_21_is_newer_than_the_system_one(tmp_path: Path) -> None:
    tool = toolchains.select_clang("21")
    assert "clang version 21." in tool.version and "trixie-backports" in tool.label
    # its own loader, not the system's libraries: patched into the binary itself
    binary = Path(tool.path.read_text().split("exec ", 1)[1].split()[0])
    interp = subprocess.run(["readelf", "-l", str(binary)], capture_output=True, text=True)
    assert "toolchains/clang-21/root/" in interp.stdout and "ld-linux" in interp.stdout
    src = tmp_path / "probe.c"
    src.write_text(ADDR_SPACE_PROG)
    cmd = ["--target=bpf", "-O2", "-c", str(src), "-o", str(tmp_path / "probe.o")]
    new = subprocess.run([str(tool.path), *cmd], capture_output=True, text=True)
    assert new.returncode == 0, new.stderr
    system = toolchains.select_clang("system")
    if "clang version 1" in system.version and int(
            system.version.split("clang version ")[1].split(".")[0]) < 18:
        old = subprocess.run([str(system.path), *cmd], capture_output=True, text=True)
        assert old.returncode != 0 and "__BPF_FEATURE_ADDR_SPACE_CAST" in old.stderr


def test_clang_choices_fail_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"unknown clang '17': choose system, 19, 21"):
        toolchains.select_clang("17")
    not_exec = tmp_path / "clang"
    not_exec.write_text("")
    with pytest.raises(UsageError, match="not an executable file"):
        toolchains.select_clang(str(not_exec))
    system = toolchains.select_clang("system")
    assert toolchains.select_clang(str(system.path)).version == system.version


@pytest.mark.kernel  # fetches clang 21 from trixie-backports
def test_pinned_clang_links_several_files(tmp_path: Path) -> None:
    """The driver re-executes itself for a link (as the selftests' urandom_read is built):
    run through the loader it took `-cc1` for a program name; patched, it links."""
    tool = toolchains.select_clang("21")
    for name, body in (("one.c", "int one(void) { return 1; }\n"),
                       ("two.c", "int one(void);\nint main(void) { return one() - 1; }\n")):
        (tmp_path / name).write_text(body)
    out = tmp_path / "prog"
    proc = subprocess.run([str(tool.path), str(tmp_path / "one.c"), str(tmp_path / "two.c"),
                           "-o", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert subprocess.run([str(out)]).returncode == 0
