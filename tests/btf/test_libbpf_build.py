"""libbpf.so built from the real libbpf history at the pinned commit, through the cache.

Real builds, no mocks: tests 1-2 share one build in a module-wide cache, the parallel test
builds once more in an empty cache, and the failure tests stop before (or early in) make.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.libbpf_build import LIBBPF_COMMIT, LibbpfBuildError, build_libbpf

REPO = Path(__file__).resolve().parents[2]
BTF_MAGIC = 0xEB9F


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One isolated cache for the tests that may share a build."""
    return tmp_path_factory.mktemp("libbpf_cache")


def toolchain_dirs(cache: Path) -> list[str]:
    """Every directory under cache/toolchains, staging leftovers (dot-names) included."""
    toolchains = cache / "toolchains"
    if not toolchains.is_dir():
        return []
    return sorted(p.name for p in toolchains.iterdir() if p.is_dir())


class BtfNewOpts(ctypes.Structure):
    _fields_ = [("sz", ctypes.c_size_t), ("base_btf", ctypes.c_void_p),
                ("add_layout", ctypes.c_bool)]


def test_built_library_writes_kind_layout(shared_cache: Path, monkeypatch: pytest.MonkeyPatch):
    """The pinned commit has btf__new_empty_opts(add_layout): BTF with a layout section."""
    monkeypatch.setenv("HARNESS_CACHE", str(shared_cache))
    so_path = build_libbpf()
    entry = shared_cache / "toolchains" / f"libbpf-{LIBBPF_COMMIT[:12]}"
    assert so_path == entry / "libbpf.so"
    # Small entry: the checkout and objects were left in the staging dir.
    assert sorted(os.listdir(entry)) == ["include", "libbpf.so", "source.json"]
    assert (entry / "include/bpf/btf.h").is_file()
    assert (entry / "include/linux/btf.h").is_file()
    source = json.loads((entry / "source.json").read_text())
    assert source["commit"] == LIBBPF_COMMIT
    assert source["repo"]
    assert toolchain_dirs(shared_cache) == [entry.name]

    lib = ctypes.CDLL(str(so_path))
    assert hasattr(lib, "btf__new_empty_opts")
    lib.btf__new_empty_opts.restype = ctypes.c_void_p
    lib.btf__new_empty_opts.argtypes = [ctypes.POINTER(BtfNewOpts)]
    lib.btf__add_int.restype = ctypes.c_int
    lib.btf__add_int.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
    lib.btf__raw_data.restype = ctypes.c_void_p
    lib.btf__raw_data.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32)]
    lib.btf__free.restype = None
    lib.btf__free.argtypes = [ctypes.c_void_p]

    opts = BtfNewOpts(sz=ctypes.sizeof(BtfNewOpts), base_btf=None, add_layout=True)
    btf = lib.btf__new_empty_opts(ctypes.byref(opts))
    assert btf
    try:
        assert lib.btf__add_int(btf, b"int", 4, 1) == 1
        size = ctypes.c_uint32()
        data = lib.btf__raw_data(btf, ctypes.byref(size))
        assert data
        raw = ctypes.string_at(data, size.value)
    finally:
        lib.btf__free(btf)
    magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", raw)
    assert magic == BTF_MAGIC
    assert hdr_len > 24, "a 24-byte header: this libbpf predates BTF kind layouts"
    layout_len = struct.unpack_from("<I", raw, 28)[0]  # after type_off/len, str_off/len, off
    assert layout_len > 0


def test_second_call_is_a_cache_hit(shared_cache: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HARNESS_CACHE", str(shared_cache))
    first = build_libbpf()  # builds only if the test above did not run
    mtime = first.stat().st_mtime_ns
    start = time.monotonic()
    second = build_libbpf()
    elapsed = time.monotonic() - start
    assert second == first
    assert second.stat().st_mtime_ns == mtime
    assert elapsed < 2.0, f"cache hit took {elapsed:.1f}s"


def test_parallel_callers_build_once(tmp_path: Path):
    """Two processes on an empty cache: one builds, the other waits for the lock and
    reuses the entry. `make` runs through a shim on PATH that counts its invocations."""
    cache = tmp_path / "cache"
    real_make = shutil.which("make")
    assert real_make
    shim_dir = tmp_path / "bin"
    shim_dir.mkdir()
    counter = tmp_path / "make-calls"
    shim = shim_dir / "make"
    shim.write_text(f'#!/bin/sh\necho "$$" >> {counter}\nexec {real_make} "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ, HARNESS_CACHE=str(cache),
               PATH=f"{shim_dir}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO),
                                                        os.environ.get("PYTHONPATH")])))
    code = (
        "import time; start = time.time()\n"
        "from tests.helpers.libbpf_build import build_libbpf\n"
        "so = build_libbpf()\n"
        "print(so, so.stat().st_ino, start, time.time())\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.strip().splitlines()[-1:]
        path, ino, start, end = out.split()
        results.append((path, int(ino), float(start), float(end)))
    (path_a, ino_a, start_a, end_a), (path_b, ino_b, start_b, end_b) = results
    assert start_a < end_b and start_b < end_a, "the two calls did not overlap"
    assert path_a == path_b
    assert ino_a == ino_b == Path(path_a).stat().st_ino
    assert len(counter.read_text().split()) == 1, "make ran more than once"
    assert toolchain_dirs(cache) == [f"libbpf-{LIBBPF_COMMIT[:12]}"]


def test_missing_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    missing = tmp_path / "no-such-libbpf"
    with pytest.raises(LibbpfBuildError) as info:
        build_libbpf(repo=str(missing))
    message = str(info.value)
    assert "\n" not in message
    assert str(missing) in message and "HARNESS_LIBBPF_REPO" in message
    assert toolchain_dirs(tmp_path) == []


def test_missing_repository_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    monkeypatch.setenv("HARNESS_LIBBPF_REPO", str(tmp_path / "elsewhere"))
    with pytest.raises(LibbpfBuildError, match="elsewhere not found"):
        build_libbpf()
    assert toolchain_dirs(tmp_path) == []


def test_unknown_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    with pytest.raises(LibbpfBuildError) as info:
        build_libbpf("0" * 40)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"commit {'0' * 40} not in ")
    assert toolchain_dirs(tmp_path) == []


def test_failed_make_keeps_log_and_no_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A compile error (forced through make's EXTRA_CFLAGS) fails on the first object:
    one-line message naming the log, the log kept next to where the entry would be."""
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    monkeypatch.setenv("EXTRA_CFLAGS", "-include harness-no-such-header.h")
    with pytest.raises(LibbpfBuildError) as info:
        build_libbpf()
    message = str(info.value)
    log = tmp_path / "toolchains" / f"libbpf-{LIBBPF_COMMIT[:12]}.log"
    assert "\n" not in message
    assert message.startswith(f"make -C src failed at {LIBBPF_COMMIT[:12]}: ")
    assert "harness-no-such-header.h" in message
    assert str(log) in message
    assert "harness-no-such-header.h" in log.read_text()
    assert toolchain_dirs(tmp_path) == []
