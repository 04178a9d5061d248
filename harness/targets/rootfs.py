"""Guest root filesystems built once per arch into the cache from Debian packages.

Both arches boot on a tree of their own (the host's root stays available with
root="host"). mmdebstrap's `extract` variant unpacks the packages without running any
target binary (no binfmt/qemu-user for arm64), and the few things maintainer scripts
would have made are added by hand. The tree holds what virtme-ng's init needs (sh,
mount, busybox for poweroff) and what the guest agent needs (python3 with its stdlib,
libelf1 and zlib1g for the libbpf.so it loads, kmod for bpf_testmod). A build runs in a
temp dir renamed into place under a lock, so parallel workers build once and a failed
build is never taken as cached.

Boot speed under TCG, where every exec costs 40-110 ms: virtme-ng's init starts udevd,
triggers a coldplug and waits for it to settle, and runs systemd-tmpfiles if the root
has it. On the host's root that was ~3 s of udev and ~1.3 s of tmpfiles in a 5.8 s
x86_64 boot; all the guest needs from udev is the /dev/virtio-ports names of vng's
script I/O ports, which a static stand-in (guest/udev-standin.c) makes in one exec,
and the tree has no systemd. A foreign-arch guest runs vng's bash init (its Rust one
ships for x86_64 only), ~100 execs: busybox-static's applets come first in PATH
(/usr/local/sbin) for the commands it runs. The stdlib's .pyc files are written at
build time, or the agent's Python compiles them every boot. The guests the harness boots
on this tree skip vng's init altogether (guest/harness-init.sh, see install_init and
vng.qemu_command): the stand-in and the applets serve vng's init where
it still runs (a root given by path, --rwdir mounts, loopback boards).
"""

from __future__ import annotations

import compileall
import contextlib
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.arch import lookup
from harness.cache import atomic_write, cache_root, locked, staging_dir
from harness.procs import spawn, stop
from harness.targets.errors import RootfsBuildError, TargetSetupError

RECIPE = 3  # bump when the package list or the fix-ups change
PACKAGES = (
    "bash", "dash", "coreutils", "util-linux", "mount", "grep", "sed", "findutils",
    "procps", "kmod", "busybox-static", "python3", "libc-bin", "base-files", "base-passwd",
    # libbpf.so (built from the tree, loaded by the agent through ctypes) links these.
    "libelf1", "zlib1g",
)
# The commands virtme-ng's init and the guest loop run, served by busybox-static first.
FAST_APPLETS = (
    "base64", "basename", "cat", "chmod", "chown", "cp", "cut", "dirname", "env", "grep",
    "head", "hostname", "id", "install", "ln", "ls", "mkdir", "mknod", "mktemp", "mount",
    "mv", "readlink", "realpath", "rm", "sed", "sleep", "stat", "tee", "touch", "tr",
    "umount", "uname", "wc",
)
UDEV_STANDIN = Path(__file__).with_name("guest") / "udev-standin.c"
GUEST_INIT = Path(__file__).with_name("guest") / "harness-init.sh"
SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
BUILD_TIMEOUT = 1800.0


def debian_mirror(sources: Path = SOURCES) -> tuple[str, str]:
    """(mirror URI, suite) of the system's main Debian stanza (not -security/-updates)."""
    if not sources.is_file():
        raise TargetSetupError(f"{sources} not found: cannot tell which Debian mirror to use")
    for stanza in re.split(r"\n\s*\n", sources.read_text()):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith(("#", " ")):
                key, value = line.split(":", 1)
                fields[key.strip().lower()] = value.strip()
        uris = fields.get("uris", "").split()
        suites = [s for s in fields.get("suites", "").split() if "-" not in s]
        if uris and suites and not uris[0].rstrip("/").endswith("-security"):
            return uris[0], suites[0]
    raise TargetSetupError(f"no Debian main-suite stanza in {sources}")


def rootfs_path(arch: str) -> Path:
    """Where the tree for `arch` lives (or will live) in the cache."""
    uri, suite = debian_mirror()
    digest = hashlib.sha256(f"{RECIPE} {suite} {' '.join(PACKAGES)}".encode()).hexdigest()
    return cache_root() / "rootfs" / f"{arch}-{suite}-{digest[:12]}"


def _complete(tree: Path) -> bool:
    return (tree / ".harness-rootfs-ok").is_file()


def ensure_rootfs(arch: str) -> Path:
    """The cached root tree for `arch`, building it first if needed."""
    arch = lookup(arch).name
    final = rootfs_path(arch)
    if _complete(final):
        _prune_vng_scripts(final)
        return final
    with locked(final):
        if _complete(final):  # another worker built it while we waited
            return final
        with staging_dir(final) as tmp:
            _build(arch, tmp)
            _fix_up(tmp)
            _speed_up_init(arch, tmp)
            _check(tmp)
            (tmp / ".harness-rootfs-ok").write_text(f"recipe {RECIPE}\n")
    return final


def install_init(tree: Path) -> str:
    """This checkout's guest init (guest/harness-init.sh) in `tree`; its path in the guest.

    Named by its content, so checkouts of different versions sharing the cache each boot
    their own, and a guest never sees a half-written file (it is renamed into place)."""
    text = GUEST_INIT.read_bytes()
    name = f"usr/local/sbin/harness-init-{hashlib.sha256(text).hexdigest()[:12]}"
    if not (tree / name).is_file():
        atomic_write(tree / name, text, chmod=0o755)
    return f"/{name}"


def _prune_vng_scripts(tree: Path, max_age: float = 600.0) -> None:
    """Remove the init scripts vng left in the tree's top dir.

    vng writes /virtme-init-XXXX into a --root tree for each boot and deletes it at exit,
    which a killed vng never reaches. Only old ones go: a booting guest still needs its own.
    """
    cutoff = time.time() - max_age
    for script in tree.glob("virtme-init-*"):
        with contextlib.suppress(OSError):
            if script.is_file() and script.stat().st_mtime < cutoff:
                script.unlink()


def _build(arch: str, tree: Path) -> None:
    uri, suite = debian_mirror()
    if shutil.which("mmdebstrap") is None:
        raise TargetSetupError("mmdebstrap not found (apt-get install mmdebstrap)")
    argv = [
        "mmdebstrap", "--variant=extract", f"--architectures={lookup(arch).debian}",
        f"--include={','.join(PACKAGES)}", "--quiet", suite, str(tree),
        f"deb {uri} {suite} main",
    ]
    proc = spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        stop(proc, (signal.SIGKILL,))
        raise RootfsBuildError(
            f"mmdebstrap for {arch} did not finish within {BUILD_TIMEOUT:.0f} s"
        ) from None
    except BaseException:  # Ctrl-C: an interrupt, not a timeout
        stop(proc, (signal.SIGKILL,))
        raise
    if proc.returncode != 0:
        last = [ln for ln in out.decode("utf-8", "replace").splitlines() if ln.strip()]
        raise RootfsBuildError(
            f"mmdebstrap for {arch} failed (rc={proc.returncode}): {last[-1] if last else ''}"
        )


def _link(tree: Path, rel: str, target: str) -> None:
    path = tree / rel
    if not path.exists() and not path.is_symlink():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)


def _fix_up(tree: Path) -> None:
    """Make by hand what unrun maintainer scripts would have made."""
    for name in ("bin", "sbin", "lib"):  # merged /usr, in case the tree lacks it
        if not (tree / name).exists() and (tree / "usr" / name).is_dir():
            (tree / name).symlink_to(f"usr/{name}")
    for name in ("opt", "srv", "tmp", "run", "proc", "sys", "dev", "root", "home", "mnt"):
        (tree / name).mkdir(exist_ok=True)
    os.chmod(tree / "tmp", 0o1777)
    # virtme-init powers off with `poweroff -f`; systemd's poweroff is absent here.
    if not any(os.path.lexists(tree / d / "poweroff") for d in ("sbin", "usr/sbin")):
        _link(tree, "sbin/poweroff", "/bin/busybox")
    if not (tree / "bin/sh").exists():
        _link(tree, "bin/sh", "dash")
    etc = tree / "etc"
    for name, text in (
        ("passwd", "root:x:0:0:root:/root:/bin/bash\n"),
        ("group", "root:x:0:\n"),
        ("shadow", "root:*:19000:0:99999:7:::\n"),
        ("hostname", "harness-guest\n"),
    ):
        if not (etc / name).exists():
            (etc / name).write_text(text)
    os.chmod(etc / "shadow", 0o640)


def _speed_up_init(arch: str, tree: Path) -> None:
    """Busybox applets first in PATH and the udev stand-in (see the module docstring)."""
    for name in FAST_APPLETS:
        _link(tree, f"usr/local/sbin/{name}", "/bin/busybox")
    compiler = f"{lookup(arch).cross_prefix}gcc"
    standin = tree / "bin/udevadm"
    proc = subprocess.run([compiler, "-static", "-Os", "-s", "-o", str(standin),
                           str(UDEV_STANDIN)], capture_output=True, text=True)
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RootfsBuildError(f"cannot build the {arch} udev stand-in with {compiler}: "
                               f"{detail} (scripts/setup.sh installs the cross libc)")
    _link(tree, "lib/systemd/systemd-udevd", "/bin/udevadm")  # no udev package: nothing there
    _precompile_stdlib(tree)


def _precompile_stdlib(tree: Path) -> None:
    """Write the guest Python's .pyc files now, with this host's CPython of the same version.

    The extract variant runs no maintainer scripts, so the tree has no .pyc at all and
    every guest boot compiled each stdlib module the agent imports from source again
    (the root is read-only; its tmpfs overlay is gone at the next boot). Bytecode depends
    on the CPython version, not on the architecture.
    """
    lib = tree / "usr/lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    if sys.implementation.name != "cpython" or not lib.is_dir():
        return  # another Python in the guest: it compiles at run time, as before
    compileall.compile_dir(lib, quiet=2, workers=0, stripdir=str(tree), prependdir="/",
                           rx=re.compile(r"/(test|idlelib|tkinter|lib2to3)/"))


def _check(tree: Path) -> None:
    """Refuse to cache a tree that lacks what the guest loop and the agent need."""
    needed = ("python3", "bash", "sh", "head", "base64", "busybox", "udevadm", "poweroff")
    dirs = ("bin", "usr/bin", "sbin", "usr/sbin")
    missing = [n for n in needed if not any(os.path.lexists(tree / d / n) for d in dirs)]
    if missing:
        raise RootfsBuildError(f"root tree lacks {', '.join(missing)}")
