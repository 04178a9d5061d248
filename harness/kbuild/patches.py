"""Apply a patch series onto a private copy of the tree: the user's tree is never touched.

A git tree is cloned with --shared (no change to the user's .git), its uncommitted
changes carried over, then each patch is applied with `git am` (mails) or `git apply`.
Any other tree is hardlink-copied and patched with `patch -p1`, which replaces files
rather than writing through the links.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.cache import cache_dir, locked, staging_dir
from harness.errors import UsageError
from harness.kbuild.sources import KernelSource

PATCH_SUFFIXES = (".patch", ".diff", ".mbox", ".eml")


class PatchError(UsageError):
    """A patch of the series does not apply."""


@dataclass(frozen=True)
class Patch:
    name: str
    text: bytes


def _split_mbox(data: bytes, stem: str) -> list[Patch]:
    """Split an mbox into its messages (lines starting `From ` after a blank line)."""
    chunks = re.split(rb"(?m)^(?=From \S+ .*\d{4}\s*$)", data)
    messages = [c for c in chunks if c.strip()]
    if len(messages) <= 1:
        return [Patch(stem, data)]
    patches = []
    for index, message in enumerate(messages, 1):
        subject = re.search(rb"(?m)^Subject:\s*(.*)$", message)
        title = subject.group(1).decode(errors="replace").strip() if subject else ""
        patches.append(Patch(f"{stem}#{index} {title}".strip(), message))
    return patches


def read_series(spec: str) -> list[Patch]:
    """A directory (its `series` file's order, else sorted names) or one mbox/patch file."""
    path = Path(spec).expanduser()
    if path.is_dir():
        series = path / "series"
        if series.exists():
            names = [ln.split("#")[0].strip() for ln in series.read_text().splitlines()]
            files = [path / n for n in names if n]
        else:
            files = sorted(p for p in path.iterdir() if p.suffix in PATCH_SUFFIXES)
        if not files:
            raise UsageError(f"--patches {spec}: no *.patch, *.diff or series file in it")
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise UsageError(f"--patches {spec}: series names missing files {missing}")
        return [Patch(f.name, f.read_bytes()) for f in files]
    if path.is_file():
        return _split_mbox(path.read_bytes(), path.name)
    raise UsageError(f"--patches {spec}: no such file or directory")


def series_digest(patches: list[Patch]) -> str:
    digest = hashlib.sha256()
    for patch in patches:
        digest.update(hashlib.sha256(patch.text).digest())
    return digest.hexdigest()[:16]


def _first_rejected_hunk(output: str) -> str:
    """The most useful line of patch/git output: which file and hunk failed."""
    for pattern in (r"error: patch failed: (\S+)", r"Hunk #\d+ FAILED at \d+.*",
                    r"error: (\S+): does not exist in index", r"can't find file to patch.*",
                    r"error: corrupt patch at line \d+", r"Only garbage was found.*",
                    r"Reversed \(or previously applied\) patch detected.*"):
        match = re.search(pattern, output)
        if match:
            text = match.group(0)
            current = re.findall(r"(?:patching|checking) file (\S+)", output[: match.start()])
            if current and "FAILED" in text:
                text = f"{current[-1]}: {text}"
            return text
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def _run(cmd: list[str], cwd: Path, stdin: bytes | None = None) -> tuple[int, str]:
    proc = subprocess.run(cmd, cwd=cwd, input=stdin, capture_output=True)
    return proc.returncode, (proc.stdout + proc.stderr).decode(errors="replace")


def _is_mail(text: bytes) -> bool:
    head = text[:4096]
    return bool(re.search(rb"(?m)^From:", head) and re.search(rb"(?m)^Subject:", head))


_GIT_ID = ["-c", "user.name=kfunc-harness", "-c", "user.email=harness@localhost",
           "-c", "commit.gpgsign=false"]


def _prepare_git_copy(source: KernelSource, dest: Path) -> None:
    rc, out = _run(["git", "clone", "-q", "--shared", "--no-checkout", str(source.path),
                    str(dest)], dest.parent)
    if rc:
        raise UsageError(f"cannot clone {source.path}: {out.strip()[:200]}")
    head = subprocess.run(["git", "-C", str(source.path), "rev-parse", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    rc, out = _run(["git", "checkout", "-q", "--detach", head], dest)
    if rc:
        raise UsageError(f"cannot check out {head} of {source.path}: {out.strip()[:200]}")
    _copy_clean_mtimes(source.path, dest)
    dirty = subprocess.run(["git", "-C", str(source.path), "diff", "HEAD", "--binary"],
                           capture_output=True).stdout
    if dirty:
        rc, out = _run(["git", "apply", "--index", "-"], dest, stdin=dirty)
        if rc:
            raise UsageError(f"cannot carry uncommitted changes of {source.path}: {out[:200]}")
        _run(["git", *_GIT_ID, "commit", "-q", "-m", "uncommitted changes of the source"],
             dest)


def _copy_clean_mtimes(origin: Path, copy: Path) -> None:
    """Give the checked-out files the mtimes of their clean originals.

    A checkout stamps every file with the current time, which would make kbuild
    recompile the whole tree in a build dir seeded from the origin's build; a file git
    reports unchanged from HEAD has the same bytes in both trees, so its origin's mtime
    is the truthful one.
    """
    listed = subprocess.run(["git", "-C", str(origin), "ls-files", "-z"],
                            capture_output=True).stdout
    dirty = subprocess.run(["git", "-C", str(origin), "diff", "HEAD", "--name-only", "-z"],
                           capture_output=True).stdout
    changed = set(dirty.split(b"\0"))
    for name in listed.split(b"\0"):
        if not name or name in changed:
            continue
        rel = os.fsdecode(name)
        try:
            stat = os.lstat(origin / rel)
            os.utime(copy / rel, ns=(stat.st_atime_ns, stat.st_mtime_ns), follow_symlinks=False)
        except OSError:
            continue  # deleted in the origin's worktree, or a symlink utime cannot follow


def _apply_git(patch: Patch, tree: Path) -> None:
    with tempfile.NamedTemporaryFile(suffix=".patch") as handle:
        handle.write(patch.text)
        handle.flush()
        if _is_mail(patch.text):
            rc, out = _run(["git", *_GIT_ID, "am", "-q", "--keep-cr", handle.name], tree)
            if rc:
                _run(["git", "am", "--abort"], tree)
        else:
            rc, out = _run(["git", "apply", "--index", handle.name], tree)
            if not rc:
                _run(["git", *_GIT_ID, "commit", "-q", "-m", f"harness: {patch.name}"], tree)
    if rc:
        raise PatchError(f"patch {patch.name} does not apply: {_first_rejected_hunk(out)}")


def _apply_plain(patch: Patch, tree: Path) -> None:
    base = ["patch", "-p1", "--forward", "--batch", "--no-backup-if-mismatch",
            "--reject-file=-"]
    # A dry run first: a failing patch leaves no half-applied files behind.
    for extra in (["--dry-run"], ["--silent"]):
        rc, out = _run([*base, *extra], tree, stdin=patch.text)
        if rc:
            raise PatchError(f"patch {patch.name} does not apply: {_first_rejected_hunk(out)}")


def touched_paths(patches: list[Patch]) -> set[str]:
    """Tree-relative paths the series' diffs name (first path component stripped, as -p1)."""
    paths: set[str] = set()
    for patch in patches:
        text = patch.text.decode(errors="replace")
        for match in re.finditer(r"(?m)^diff --git (\S+) (\S+)$", text):
            paths.update(m.split("/", 1)[-1] for m in match.groups())
        for match in re.finditer(r"(?m)^(?:---|\+\+\+) ([^\t\n]+)", text):
            name = match.group(1).strip()
            if name != "/dev/null" and "/" in name:
                paths.add(name.split("/", 1)[1])
    return paths


def changes_kconfig(patches: list[Patch]) -> bool:
    """Whether the series may change how a .config resolves: Kconfig files, the config
    fragments tinyconfig merges, or scripts/ (Kconfig runs helpers from there)."""
    paths = touched_paths(patches)
    return not paths or any(
        path.rsplit("/", 1)[-1].startswith("Kconfig") or path.startswith("scripts/")
        or "/configs/" in f"/{path}" for path in paths)


def changes_tools(patches: list[Patch]) -> bool:
    """Whether the series may change libbpf or bpftool: anything under tools/, or the
    kernel's BPF disassembler that bpftool compiles in."""
    paths = touched_paths(patches)
    return not paths or any(path.startswith(("tools/", "kernel/bpf/disasm."))
                            for path in paths)


def patched_source(source: KernelSource, patches: list[Patch]) -> KernelSource:
    """The copy of `source` with `patches` applied, as it will be: one per tree and series.

    Pure: --dry-run shows its path and keys without applying anything. A series that
    leaves every Kconfig input alone shares its tree's merged config (no kconfig run).
    """
    digest = series_digest(patches)
    key = hashlib.sha256(f"{source.identity}\0{digest}".encode()).hexdigest()[:16]
    return KernelSource(cache_dir("trees") / key, f"{source.identity}+patches-{digest}",
                        f"{source.description} + {len(patches)} patches", source.is_git,
                        source.kernel_version, origin=source.path,
                        kconfig_identity=None if changes_kconfig(patches)
                        else source.config_identity)


def patched_tree(source: KernelSource, patches: list[Patch],
                 progress: bool = True) -> KernelSource:
    """A cached copy of `source` with `patches` applied; `source` itself when none given."""
    if not patches:
        return source
    copy = patched_source(source, patches)
    final = copy.path
    done = final / ".harness-patched"
    if not done.exists():
        with locked(final):
            if not done.exists():
                with staging_dir(final) as tmp:
                    tmp.rmdir()
                    if source.is_git:
                        _prepare_git_copy(source, tmp)
                    else:
                        rc, out = _run(["cp", "-al", str(source.path), str(tmp)], final.parent)
                        if rc:
                            raise UsageError(f"cannot copy {source.path}: {out.strip()[:200]}")
                        (tmp / ".harness-debian-source").unlink(missing_ok=True)
                    for index, patch in enumerate(patches, 1):
                        if progress:
                            print(f"harness: applying [{index}/{len(patches)}] {patch.name}",
                                  file=sys.stderr, flush=True)
                        (_apply_git if source.is_git else _apply_plain)(patch, tmp)
                    (tmp / ".harness-patched").write_text(copy.identity + "\n")
    return copy
