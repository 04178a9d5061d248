"""harness.bisect.tools without the real pahole: fake dwarves repositories (real git) whose
CMakeLists.txt is broken, pins lib/bpf, or builds a tiny `pahole` with the real cmake and
make; the cache is a tmp dir, nothing is downloaded."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness.bisect import tools
from harness.bisect.tools import StepTool, ToolBuildFailed
from harness.errors import UsageError
from harness.kbuild import toolchains

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Bisect Test", "GIT_AUTHOR_EMAIL": "bisect@example.invalid",
    "GIT_COMMITTER_NAME": "Bisect Test", "GIT_COMMITTER_EMAIL": "bisect@example.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}
HAVE_BUILD_TOOLS = all(shutil.which(t) for t in ("cmake", "make")) and any(
    shutil.which(cc) for cc in ("cc", "gcc", "clang"))
needs_cmake = pytest.mark.skipif(not HAVE_BUILD_TOOLS,
                                 reason="needs cmake, make and a C compiler")

CMAKE_PROJECT = """\
cmake_minimum_required(VERSION 3.10)
project(fake_dwarves C)
add_executable(pahole pahole.c)
"""
# No compiler: `make pahole` copies a script (cmake configures in ~0.1 s instead of ~0.4 s).
SCRIPT_PROJECT = """\
cmake_minimum_required(VERSION 3.10)
project(fake_dwarves NONE)
add_custom_target(pahole
  COMMAND ${CMAKE_COMMAND} -E copy ${CMAKE_SOURCE_DIR}/%s ${CMAKE_BINARY_DIR}/pahole%s)
"""
PAHOLE_C = """\
#include <stdio.h>
#include <string.h>
%s
int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--version") == 0)
		puts(VERSION);
	return 0;
}
"""


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV})
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


def commit(repo: Path, message: str, files: dict[str, str]) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
        if name.endswith(".sh"):
            (repo / name).chmod(0o755)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def init(path: Path) -> Path:
    git(path.parent, "init", "-q", "-b", "master", path.name)
    return path


class Fake:
    """libbpf: `pinned` has a version.sh printing v1.98, a later commit v1.97. dwarves:
    `broken` (invalid CMakeLists.txt), `good` (a C pahole printing v1.99), `pins` (lib/bpf
    gitlink to libbpf's `pinned`; its pahole is lib/bpf/version.sh)."""

    def __init__(self, root: Path) -> None:
        self.libbpf = init(root / "libbpf")
        self.libbpf_pinned = commit(self.libbpf, "libbpf: 1.98",
                                    {"version.sh": "#!/bin/sh\necho v1.98\n"})
        self.libbpf_head = commit(self.libbpf, "libbpf: 1.97",
                                  {"version.sh": "#!/bin/sh\necho v1.97\n"})
        self.dwarves = init(root / "dwarves")
        self.broken = commit(self.dwarves, "broken", {"CMakeLists.txt": "this is not cmake(\n",
                                                      "pahole.c": "int main(void) {}\n"})
        self.good = commit(self.dwarves, "good", {
            "CMakeLists.txt": CMAKE_PROJECT,
            "pahole.c": PAHOLE_C % '#define VERSION "v1.99"'})
        (self.dwarves / "CMakeLists.txt").write_text(SCRIPT_PROJECT % ("lib/bpf/version.sh", ""))
        git(self.dwarves, "add", "CMakeLists.txt")
        git(self.dwarves, "update-index", "--add", "--cacheinfo",
            f"160000,{self.libbpf_pinned},lib/bpf")
        git(self.dwarves, "commit", "-q", "-m", "pin lib/bpf")
        self.pins = git(self.dwarves, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Fake:
    return Fake(tmp_path_factory.mktemp("tools"))


@pytest.fixture(autouse=True)
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name, value in GIT_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(tools.LIBBPF_ENV, raising=False)
    monkeypatch.delenv("CMAKE_GENERATOR", raising=False)  # the build runs make
    return tmp_path / "cache"


def pahole_root(cache: Path) -> Path:
    return cache / "bisect/pahole"


def no_build(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pahole_at built again instead of using the cache")

    monkeypatch.setattr(tools, "_build_pahole", refuse)


# ---- pahole_at --------------------------------------------------------------------------------


@needs_cmake
def test_commit_that_does_not_build_is_cached_as_a_failure(
        fake: Fake, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = pahole_root(cache)
    with pytest.raises(ToolBuildFailed) as ei:
        tools.pahole_at(fake.dwarves, fake.broken, None, jobs=1)
    msg = str(ei.value)
    assert msg.startswith(f"pahole does not build at {fake.broken[:12]}: ")
    assert "\n" not in msg and "(cached)" not in msg
    log = ei.value.log
    assert log == root / f"{fake.broken}.failed.log" and log.is_file()
    text = log.read_text()
    assert text.startswith("$ cmake -S ")
    assert "CMake Error" in text
    assert not isinstance(ei.value, UsageError)
    assert not (root / fake.broken).exists()  # no half-built entry
    assert sorted(p.name for p in root.iterdir()) == [f"{fake.broken}.failed.log",
                                                       f"{fake.broken}.lock"]

    no_build(monkeypatch)
    start = time.monotonic()
    with pytest.raises(ToolBuildFailed) as again:
        tools.pahole_at(fake.dwarves, fake.broken, None, jobs=1)
    assert time.monotonic() - start < 0.5
    msg2 = str(again.value)
    assert msg2.startswith(f"pahole does not build at {fake.broken[:12]} (cached): ")
    assert "\n" not in msg2 and again.value.log == log
    assert not (root / fake.broken).exists()
    assert log.read_text() == text


def test_pinned_lib_bpf_needs_a_libbpf_repository(fake: Fake, cache: Path) -> None:
    for _ in range(2):  # a usage error is not cached as a build failure
        with pytest.raises(UsageError) as ei:
            tools.pahole_at(fake.dwarves, fake.pins, None)
        msg = str(ei.value)
        assert "--libbpf-repo" in msg and tools.LIBBPF_ENV in msg
        assert fake.pins[:12] in msg and fake.libbpf_pinned[:12] in msg and "\n" not in msg
    root = pahole_root(cache)
    assert sorted(p.name for p in root.iterdir()) == [f"{fake.pins}.lock"]


@needs_cmake
def test_pahole_built_with_cmake_and_cached(fake: Fake, cache: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    root = pahole_root(cache)
    step = tools.pahole_at(fake.dwarves, fake.good, None, jobs=1)
    assert isinstance(step, StepTool) and step.label == fake.good
    assert step.tool.version == "1.99"
    assert step.tool.path == root / fake.good / "pahole"
    assert os.access(step.tool.path, os.X_OK)
    assert step.tool.label == f"pahole 1.99 (dwarves {fake.good[:12]})"
    assert step.build_seconds > 0
    entry = root / fake.good
    assert sorted(p.name for p in entry.iterdir()) == ["build.log", "commit", "pahole"]
    assert (entry / "commit").read_text() == fake.good + "\n"
    assert not (root / f"{fake.good}.failed.log").exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no staging dir left

    no_build(monkeypatch)
    again = tools.pahole_at(fake.dwarves, fake.good, None, jobs=1)
    assert again.build_seconds == 0.0
    assert again.tool == step.tool and again.label == fake.good


@needs_cmake
def test_pinned_lib_bpf_comes_from_the_libbpf_repository(fake: Fake, cache: Path,
                                                         tmp_path: Path) -> None:
    bundle = tmp_path / "libbpf.bundle"
    git(fake.libbpf, "bundle", "create", "-q", str(bundle), "--all")
    libbpf = tools.libbpf_repo(fake.dwarves, str(bundle))
    assert libbpf is not None and libbpf.is_relative_to(cache)
    step = tools.pahole_at(fake.dwarves, fake.pins, libbpf, jobs=1)
    assert step.tool.version == "1.98"  # the pinned libbpf commit, not its head (1.97)


SHARED_PROJECT = {
    "CMakeLists.txt": """\
cmake_minimum_required(VERSION 3.10)
project(old_dwarves C)
add_library(dwarves SHARED dwarves.c)
set_target_properties(dwarves PROPERTIES VERSION 1.0.0 SOVERSION 1)
add_executable(pahole pahole.c)
target_link_libraries(pahole dwarves)
""",
    "dwarves.c": 'const char *dwarves_version(void) { return "v1.42"; }\n',
    "pahole.c": PAHOLE_C % "const char *dwarves_version(void);\n#define VERSION dwarves_version()",
}


@needs_cmake
def test_pahole_linked_to_its_shared_library_runs_from_the_cache(
        tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Old trees build libdwarves.so whatever BUILD_SHARED_LIBS says: the cached pahole is a
    wrapper finding the copied library after the build dir is gone."""
    dwarves = init(tmp_path / "old-dwarves")
    old = commit(dwarves, "shared libdwarves", SHARED_PROJECT)
    step = tools.pahole_at(dwarves, old, None, jobs=1)
    assert step.tool.version == "1.42" and step.build_seconds > 0
    entry = pahole_root(cache) / old
    assert step.tool.path == entry / "pahole"
    assert (entry / "lib/libdwarves.so.1").is_file()
    assert not (entry / "lib/libdwarves.so.1").is_symlink()
    assert not (entry / "build").exists() and not (entry / "src").exists()
    monkeypatch.setenv("LD_LIBRARY_PATH", str(tmp_path / "elsewhere"))
    no_build(monkeypatch)
    again = tools.pahole_at(dwarves, old, None, jobs=1)
    assert again.build_seconds == 0.0 and again.tool.version == "1.42"


@needs_cmake
def test_shared_library_wrapper_with_a_space_in_the_cache_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "my cache"))
    dwarves = init(tmp_path / "old-dwarves")
    lib = "\n  COMMAND ${CMAKE_COMMAND} -E touch ${CMAKE_BINARY_DIR}/libdwarves.so.1"
    old = commit(dwarves, "a libdwarves.so", {"CMakeLists.txt": SCRIPT_PROJECT % ("p.sh", lib),
                                              "p.sh": "#!/bin/sh\necho v1.42\n"})
    assert tools.pahole_at(dwarves, old, None, jobs=1).tool.version == "1.42"


def test_pinned_commit_missing_from_libbpf_is_a_build_failure(fake: Fake, tmp_path: Path) -> None:
    other = init(tmp_path / "other-libbpf")
    commit(other, "unrelated", {"version.sh": "#!/bin/sh\necho v0.1\n"})
    with pytest.raises(ToolBuildFailed, match=r"lib/bpf [0-9a-f]{12} not in"):
        tools.pahole_at(fake.dwarves, fake.pins, other)


# ---- libbpf_repo ------------------------------------------------------------------------------


@pytest.fixture
def clones(tmp_path: Path) -> dict[str, Path]:
    names = {"dwarves": tmp_path / "dw", "given": tmp_path / "given", "env": tmp_path / "env"}
    for path in names.values():
        init(path)
    names["own"] = tmp_path / "dw/.git/modules/lib/bpf"
    git(tmp_path, "init", "-q", "--bare", str(names["own"]))
    return names


def test_libbpf_repo_explicit_wins(clones: dict[str, Path],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tools.LIBBPF_ENV, str(clones["env"]))
    assert tools.libbpf_repo(clones["dwarves"], str(clones["given"])) == clones["given"].resolve()


def test_libbpf_repo_env_wins_over_the_clones_submodule(
        clones: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tools.LIBBPF_ENV, str(clones["env"]))
    assert tools.libbpf_repo(clones["dwarves"], None) == clones["env"].resolve()
    assert tools.libbpf_repo(clones["dwarves"], "") == clones["env"].resolve()


def test_libbpf_repo_from_the_clones_own_submodule(clones: dict[str, Path]) -> None:
    assert tools.libbpf_repo(clones["dwarves"], None) == clones["own"]


def test_libbpf_repo_of_a_bare_dwarves(tmp_path: Path) -> None:
    bare = tmp_path / "dwarves.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    assert tools.libbpf_repo(bare, None) is None
    git(tmp_path, "init", "-q", "--bare", str(bare / "modules/lib/bpf"))
    assert tools.libbpf_repo(bare, None) == bare / "modules/lib/bpf"


def test_libbpf_repo_none(tmp_path: Path) -> None:
    assert tools.libbpf_repo(init(tmp_path / "dw"), None) is None


def test_libbpf_repo_missing_explicit_path(clones: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such repository"):
        tools.libbpf_repo(clones["dwarves"], str(tmp_path / "nowhere"))


# ---- pahole_release ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["9.99", "1.2", "", "v1.32"])
def test_pahole_release_unknown(version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("pahole_release fetched something")

    monkeypatch.setattr(toolchains, "select_pahole", no_download)
    with pytest.raises(UsageError) as ei:
        tools.pahole_release(version)
    msg = str(ei.value)
    assert msg.startswith(f"no pinned pahole {version} (known releases: ")
    for known in toolchains.PAHOLE_RELEASES:
        assert known in msg
    assert "\n" not in msg


def test_btfids_at_needs_resolve_btfids_in_the_commit(tmp_path: Path, cache: Path) -> None:
    repo = init(tmp_path / "linux")
    sha = commit(repo, "no tools yet", {"README": "x\n"})
    with pytest.raises(ToolBuildFailed, match=f"no tools/bpf/resolve_btfids at {sha[:12]}"):
        tools.btfids_at(repo, sha)
    with pytest.raises(ToolBuildFailed, match="(cached)"):
        tools.btfids_at(repo, sha)


def test_python_btfids_at_runs_that_commits_package(tmp_path: Path, cache: Path) -> None:
    """The wrapper puts the exported harness/ first on PYTHONPATH: the commit's code runs,
    not the installed one."""
    repo = init(tmp_path / "harness-repo")
    old = commit(repo, "before the package", {"README": "x\n"})
    with pytest.raises(ToolBuildFailed, match=f"no Python resolve_btfids at {old[:12]}"):
        tools.python_btfids_at(repo, old)
    sha = commit(repo, "a transformer that says where it runs from", {
        "harness/__init__.py": "",
        "harness/btfids/__init__.py": "",
        "harness/btfids/__main__.py": "import harness\nprint('from', harness.__file__)\n",
    })
    wrapper, seconds = tools.python_btfids_at(repo, sha)
    out = subprocess.run([str(wrapper)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"from {cache}/bisect/pybtfids/{sha}/harness/__init__.py"
    assert seconds > 0 and tools.python_btfids_at(repo, sha) == (wrapper, 0.0)
