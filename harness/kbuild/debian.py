"""Fetch Debian packages into the cache through a private apt state.

The system's apt configuration is never touched: apt runs with its own sources file,
lists and archive dirs under the cache, so a bookworm host can take packages from
trixie, trixie-backports or sid.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

from harness.arch import ARCHES
from harness.cache import atomic_write, cache_dir, locked
from harness.errors import HarnessError

SUITES = ("bookworm", "trixie", "trixie-backports", "sid")
DEBIAN_ARCHES = tuple(a.debian for a in ARCHES.values())  # what the private apt may fetch
LISTS_MAX_AGE = 24 * 3600
DEFAULT_MIRROR = "http://deb.debian.org/debian"


class DebianFetchError(HarnessError):
    """A package could not be fetched or unpacked."""


def system_mirror() -> str:
    """The Debian mirror the machine already uses (DESIGN: take it from its own sources)."""
    candidates = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for path in candidates:
        for match in re.finditer(r"^URIs:\s*(\S+)", path.read_text(errors="replace"), re.M):
            uri = match.group(1).rstrip("/")
            if uri.endswith("/debian"):
                return uri
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for match in re.finditer(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", legacy.read_text(), re.M):
            uri = match.group(1).rstrip("/")
            if uri.endswith("/debian"):
                return uri
    return DEFAULT_MIRROR


class PrivateApt:
    """apt-get with a state dir of its own under the cache."""

    def __init__(self) -> None:
        self.root = cache_dir("apt")
        self.sources = self.root / "harness.sources"
        self.lists = self.root / "lists"
        self.debs = cache_dir("debs")

    def _options(self) -> list[str]:
        opts = [
            "-o", f"Dir::Etc::sourcelist={self.sources}",
            "-o", "Dir::Etc::sourceparts=-",
            "-o", f"Dir::State::Lists={self.lists}",
            "-o", f"Dir::Cache={self.root / 'cache'}",
            "-o", f"Dir::State::status={self.root / 'status'}",
            "-o", "Debug::NoLocking=1",
            "-o", "APT::Sandbox::User=root",
            "-o", "Acquire::Retries=3",
        ]
        for index, arch in enumerate(DEBIAN_ARCHES):
            opts += ["-o", f"APT::Architectures::{index}={arch}"]
        return opts

    def _apt(self, tool: str, *args: str, cwd: Path | None = None) -> str:
        cmd = [tool, "-q", *self._options(), *args]
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["?"]
            raise DebianFetchError(f"{tool} {' '.join(args)} failed: {last[0]}")
        return proc.stdout

    def update(self, force: bool = False) -> None:
        """Refresh the package lists at most once a day (they are ~100 MB)."""
        stamp = self.root / "updated"
        with locked(self.root):
            fresh = stamp.exists() and time.time() - stamp.stat().st_mtime < LISTS_MAX_AGE
            if fresh and not force:
                return
            (self.lists / "partial").mkdir(parents=True, exist_ok=True)
            (self.root / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
            status = self.root / "status"
            if not status.exists():
                status.write_text("")
            self.sources.write_text(
                "Types: deb\n"
                f"URIs: {system_mirror()}\n"
                f"Suites: {' '.join(SUITES)}\n"
                "Components: main\n"
                "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
            )
            print("harness: refreshing Debian package lists", file=sys.stderr, flush=True)
            self._apt("apt-get", "update")
            atomic_write(stamp, "")

    def version(self, package: str, suite: str) -> str:
        """The version `suite` offers for `package` (arch-qualified names allowed)."""
        self.update()
        memo_path = self.root / "versions.json"
        stamp = (self.root / "updated").stat().st_mtime
        memo: dict = {}
        if memo_path.exists():
            memo = json.loads(memo_path.read_text() or "{}")
            if memo.get("stamp") != stamp:
                memo = {}
        key = f"{package}@{suite}"
        if key in memo:
            return memo[key]
        versions = self._suite_versions(package)
        if suite not in versions:
            raise DebianFetchError(f"{package} is not in Debian {suite}")
        memo.update({"stamp": stamp, key: versions[suite]})
        atomic_write(memo_path, json.dumps(memo))
        return versions[suite]

    def _suite_versions(self, package: str) -> dict[str, str]:
        out = self._apt("apt-cache", "madison", package)
        found: dict[str, str] = {}
        for line in out.splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) < 3:
                continue
            version, origin = parts[1], parts[2]
            suite = origin.split()[1].split("/")[0] if len(origin.split()) > 1 else ""
            found.setdefault(suite, version)
        return found

    def download(self, package: str, suite: str) -> Path:
        """Download `package` from `suite` into cache/debs (once) and return the .deb."""
        version = self.version(package, suite)
        name, _, arch = package.partition(":")
        pattern = f"{name}_{version.replace(':', '%3a')}_*.deb"
        with locked(self.debs):
            existing = [p for p in self.debs.glob(pattern) if not arch or f"_{arch}." in p.name
                        or p.name.endswith("_all.deb")]
            if existing:
                return existing[0]
            print(f"harness: downloading {package} {version} from Debian {suite}",
                  file=sys.stderr, flush=True)
            self._apt("apt-get", "download", f"{package}={version}", cwd=self.debs)
            got = [p for p in self.debs.glob(pattern) if not arch or f"_{arch}." in p.name
                   or p.name.endswith("_all.deb")]
            if not got:
                raise DebianFetchError(f"apt-get download {package} produced no .deb")
            return got[0]


def unpack_deb(deb: Path, dest: Path) -> None:
    """dpkg -x into dest (no maintainer scripts, no system changes)."""
    proc = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise DebianFetchError(f"cannot unpack {deb.name}: {proc.stderr.strip()}")
