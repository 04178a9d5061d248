"""Where the kernel source comes from: a user's tree (never modified) or a Debian release.

A source has an identity string that changes whenever its content may have changed:
git HEAD plus a digest of uncommitted changes, a stat digest of an unpacked tree, or the
Debian package version.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from harness.cache import cache_dir, locked, staging_dir
from harness.errors import UsageError
from harness.kbuild.debian import PrivateApt

# release -> (Debian package, suites to try in order)
DEBIAN_RELEASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "7.3": ("linux-source-7.3", ("trixie-backports",)),
    "7.2": ("linux-source-7.2", ("sid", "trixie-backports")),
    "6.12": ("linux-source-6.12", ("trixie",)),
}
DEFAULT_RELEASE = "7.3"


@dataclass(frozen=True)
class KernelSource:
    """A kernel tree to build from, read-only, with the identity used in cache keys."""

    path: Path
    identity: str
    description: str
    is_git: bool
    kernel_version: str
    # A patched copy's tree of origin: builds of the copy and of its origin share a
    # lineage, so one can seed the other (only the patched files recompile).
    origin: Path | None = None
    # Set when this tree resolves every config exactly as another does (a series that
    # touches no Kconfig input): both share one merged .config and kconfig run.
    kconfig_identity: str | None = None

    @property
    def lineage_root(self) -> Path:
        return self.origin or self.path

    @property
    def config_identity(self) -> str:
        return self.kconfig_identity or self.identity


def kernel_version(tree: Path) -> str:
    """VERSION.PATCHLEVEL.SUBLEVEL from the top Makefile."""
    text = (tree / "Makefile").read_text(errors="replace")[:2000]
    fields = {}
    for key in ("VERSION", "PATCHLEVEL", "SUBLEVEL"):
        match = re.search(rf"^{key}\s*=\s*(\d*)", text, re.M)
        fields[key] = match.group(1) if match else ""
    version = f"{fields['VERSION']}.{fields['PATCHLEVEL']}"
    return f"{version}.{fields['SUBLEVEL']}" if fields["SUBLEVEL"] else version


def check_kernel_tree(tree: Path) -> None:
    markers = ("Makefile", "Kconfig", "scripts/Makefile.build", "include/linux/btf_ids.h")
    missing = [m for m in markers if not (tree / m).exists()]
    if not tree.is_dir() or missing:
        raise UsageError(f"{tree} is not a kernel tree (missing {', '.join(missing) or 'dir'})")
    if not (tree / "tools/bpf/resolve_btfids/main.c").exists():
        raise UsageError(f"{tree} has no tools/bpf/resolve_btfids: too old for this harness")


def _git(tree: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise UsageError(f"git {' '.join(args)} in {tree}: {proc.stderr.strip()[:200]}")
    return proc.stdout


def _is_git_tree(tree: Path) -> bool:
    proc = subprocess.run(["git", "-C", str(tree), "rev-parse", "--show-toplevel"],
                          capture_output=True, text=True)
    return proc.returncode == 0 and Path(proc.stdout.strip()).resolve() == tree.resolve()


def _git_identity(tree: Path) -> str:
    head = _git(tree, "rev-parse", "HEAD").strip()
    dirty = _git(tree, "diff", "HEAD", "--binary")
    untracked = _git(tree, "ls-files", "--others", "--exclude-standard", "-z")
    if not dirty and not untracked:
        return f"git-{head}"
    digest = hashlib.sha256(dirty.encode())
    for name in sorted(filter(None, untracked.split("\0"))):
        digest.update(name.encode() + b"\0")
        path = tree / name
        if path.is_file():
            digest.update(path.read_bytes())
    return f"git-{head}-dirty-{digest.hexdigest()[:12]}"


def _stat_identity(tree: Path) -> str:
    """Digest of every file's path, size and mtime: cheap enough for 90k files."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(tree):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            rel = os.path.relpath(full, tree)
            digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return f"tree-{digest.hexdigest()[:16]}"


def from_tree(path: str) -> KernelSource:
    tree = Path(path).expanduser().resolve()
    check_kernel_tree(tree)
    if _is_git_tree(tree):
        identity = _git_identity(tree)
        return KernelSource(tree, identity, f"git tree {tree} ({identity})", True,
                            kernel_version(tree))
    marker = tree / ".harness-debian-source"
    identity = marker.read_text().strip() if marker.exists() else _stat_identity(tree)
    return KernelSource(tree, identity, f"tree {tree}", False, kernel_version(tree))


def check_release(release: str) -> None:
    """A release we know how to fetch, checked before anything is downloaded."""
    if release not in DEBIAN_RELEASES:
        raise UsageError(f"unknown kernel release {release!r}: choose "
                         f"{', '.join(DEBIAN_RELEASES)} or --tree PATH")


def from_debian(release: str) -> KernelSource:
    """Fetch and unpack linux-source-<release> into the cache (once)."""
    check_release(release)
    package, suites = DEBIAN_RELEASES[release]
    apt = PrivateApt()
    last_error: Exception | None = None
    for suite in suites:
        try:
            version = apt.version(package, suite)
            break
        except Exception as exc:  # noqa: BLE001 - try the next suite, report the last
            last_error = exc
    else:
        raise UsageError(f"{package} is in none of {', '.join(suites)}: {last_error}")
    final = cache_dir("sources") / f"{package}_{version}"
    marker = final / ".harness-debian-source"
    if not marker.exists():
        deb = apt.download(package, suite)
        with locked(final):
            if not marker.exists():
                _unpack_source_deb(deb, final, f"debian-{package}-{version}")
    source = from_tree(str(final))
    return KernelSource(final, source.identity, f"Debian {package} {version} ({suite})",
                        False, source.kernel_version)


def _unpack_source_deb(deb: Path, final: Path, identity: str) -> None:
    print(f"harness: unpacking {deb.name}", file=sys.stderr, flush=True)
    with staging_dir(final) as tmp:
        inner = tmp / "inner"
        proc = subprocess.run(["dpkg-deb", "-x", str(deb), str(inner)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise UsageError(f"cannot unpack {deb.name}: {proc.stderr.strip()}")
        tarballs = list((inner / "usr/src").glob("linux-source-*.tar.*"))
        if len(tarballs) != 1:
            raise UsageError(f"{deb.name} holds no single kernel tarball")
        with tarfile.open(tarballs[0]) as archive:
            top = archive.next()
            archive.extractall(tmp, filter="tar")
        top_dir = tmp / (top.name.split("/")[0] if top else "")
        for child in top_dir.iterdir():
            child.rename(tmp / child.name)
        top_dir.rmdir()
        subprocess.run(["rm", "-rf", str(inner)], check=True)
        (tmp / ".harness-debian-source").write_text(identity + "\n")


def resolve(tree: str | None, release: str | None) -> KernelSource:
    if tree and release:
        raise UsageError("give --tree or --kernel, not both")
    if tree:
        return from_tree(tree)
    return from_debian(release or DEFAULT_RELEASE)
