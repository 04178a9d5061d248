"""The QEMU command the harness runs for a cached-tree guest, taken from the real vng.

vng's --dry-run prints its QEMU command without booting, so these run in the fast tier;
booting on it is what the guest tier's QEMU tests do.
"""

from __future__ import annotations

import base64
import glob
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from harness.targets import rootfs
from harness.targets.errors import TargetSetupError
from harness.targets.vng import (
    BootSpec,
    _dry_run,
    clear_command_cache,
    own_init,
    qemu_command,
    vng_command,
)

pytestmark = pytest.mark.skipif(shutil.which("vng") is None, reason="vng not installed")


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The commands these fake kernels get are kept in a cache dir of the test's own."""
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    clear_command_cache()
    return tmp_path / "cache" / "vng-commands"


@pytest.fixture
def spec(tmp_path: Path) -> BootSpec:
    kernel = tmp_path / "Image"
    kernel.write_bytes(b"not booted: vng only names it")
    root = tmp_path / "root"
    root.mkdir()
    return BootSpec(arch="arm64", kernel=kernel, root=root, cache_root=True)


def test_qemu_command_is_vngs_with_our_script_and_init(spec: BootSpec) -> None:
    before = set(glob.glob("/tmp/virtme_ret*"))
    script = "echo 'a script with `quotes`'; exit 3\n" * 5
    argv = qemu_command(spec, script, "/sbin/our-init")
    assert Path(argv[0]).name == "qemu-system-aarch64"
    assert argv.count("-append") == 1
    line = argv[argv.index("-append") + 1]
    assert line.endswith(" init=/sbin/our-init") and line.count("init=") == 1
    assert "virtme.exec=`" + base64.b64encode(script.encode()).decode() + "`" in line
    assert "console=ttyAMA0" in line and "panic=-1" in line  # the rest is vng's
    assert "file,id=ret,path=/dev/null" in argv
    assert set(glob.glob("/tmp/virtme_ret*")) <= before  # vng's dry run leaves one behind
    # one dry run per spec: the second boot's command costs no vng start-up
    calls = _dry_run.cache_info().hits
    again = qemu_command(spec, "true", "/sbin/our-init")
    assert _dry_run.cache_info().hits == calls + 1
    assert again[:argv.index("-append")] == argv[:argv.index("-append")]


def test_the_command_is_kept_for_the_next_process(spec: BootSpec, own_cache: Path) -> None:
    """A one-shot run (a new process) reads vng's command from the cache dir instead of
    starting vng; a rebuilt kernel file or an unreadable entry is asked about again."""
    first = qemu_command(spec, "true", "/sbin/our-init")
    [kept] = own_cache.glob("*.json")
    argv = json.loads(kept.read_text())
    assert argv[0] == first[0] and "-append" in argv
    kept.write_text(json.dumps([*argv, "-name", "from-the-cache"]))
    clear_command_cache()  # as a new process starts
    assert qemu_command(spec, "true", "/sbin/our-init")[-2:] == ["-name", "from-the-cache"]

    spec.kernel.write_bytes(b"a rebuilt kernel at the same path, another size")
    clear_command_cache()
    assert "from-the-cache" not in qemu_command(spec, "true", "/sbin/our-init")
    for entry in own_cache.glob("*.json"):
        entry.write_text('["half a command"')
    clear_command_cache()
    assert qemu_command(spec, "true", "/sbin/our-init") == first
    rewritten = [e for e in own_cache.glob("*.json") if e.read_text() != '["half a command"']
    assert len(rewritten) == 1 and json.loads(rewritten[0].read_text())[0] == first[0]


def test_only_a_plain_cached_tree_gets_our_init(spec: BootSpec) -> None:
    assert own_init(spec)
    assert not own_init(replace(spec, cache_root=False))  # the host's root: vng's init
    assert not own_init(replace(spec, root=None))
    assert not own_init(replace(spec, rwdirs=("/tmp/x=/y",)))  # vng mounts those
    assert not own_init(replace(spec, extra_qemu_opts=("-netdev", "user,id=n0")))
    assert not own_init(replace(spec, vng_init=True))  # benchmarks' yardstick


def test_a_script_too_long_for_the_kernel_command_line_is_refused(spec: BootSpec) -> None:
    """The kernel would cut the line short and the guest run half a script."""
    with pytest.raises(TargetSetupError, match="command line"):
        qemu_command(spec, "x" * 4000, "/sbin/our-init")


def test_a_vng_that_fails_is_a_setup_error(spec: BootSpec) -> None:
    bad = replace(spec, root=spec.root / "missing")  # type: ignore[operator]
    with pytest.raises(TargetSetupError, match="not a directory"):
        vng_command(bad, "true")
    with pytest.raises(TargetSetupError, match=r"vng --dry-run gave no QEMU command \(rc=1\)"):
        qemu_command(spec, "true", "/sbin/our-init", vng="false")
    with pytest.raises(TargetSetupError, match="vng --dry-run failed"):
        qemu_command(spec, "true", "/sbin/our-init", vng="/nonexistent/vng")


def test_each_version_of_the_guest_init_has_its_own_name(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkouts sharing a cache must not swap each other's init under a booting guest."""
    tree = tmp_path / "tree"
    mine = rootfs.install_init(tree)
    assert mine == rootfs.install_init(tree)  # installed once
    installed = tree / mine.lstrip("/")
    assert installed.read_bytes() == rootfs.GUEST_INIT.read_bytes()
    assert installed.stat().st_mode & 0o777 == 0o755
    other = tmp_path / "other-init.sh"
    other.write_text("#!/bin/sh\n# another checkout's init\n")
    monkeypatch.setattr(rootfs, "GUEST_INIT", other)
    theirs = rootfs.install_init(tree)
    assert theirs != mine and installed.is_file()
    assert (tree / theirs.lstrip("/")).read_text().endswith("another checkout's init\n")
