"""Kbuild's BTF stage replayed outside make: pahole, then resolve_btfids, on a built ELF.

Why: scripts/gen-btf.sh runs `pahole -J $(PAHOLE_FLAGS) --btf_encode_detached=<elf>.BTF.1
<elf>` and `resolve_btfids --btf <elf>.BTF.1 <elf>` on `.tmp_vmlinux1`; the differential
check and every bisect step need exactly that with another pahole or another
resolve_btfids, on a kernel that stays fixed, in seconds rather than a relink.

PAHOLE_FLAGS come from the tree's own scripts/Makefile.btf, evaluated by make with the
build's auto.conf, so they follow the tree; `pahole_version` evaluates it for another
pahole than the one the kernel was configured with (kbuild gates flags on the version:
`decl_tag_kfuncs` from 1.26, `attributes` from 1.30, ...).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

# As harness builds set it: Makefile.btf then asks for reproducible pahole output.
BUILD_TIMESTAMP = "Thu Jan  1 00:00:00 UTC 2026"
VMLINUX_INPUT = ".tmp_vmlinux1"  # the ELF gen-btf.sh gives pahole for vmlinux


class StageError(HarnessError):
    """A build dir the BTF stage cannot be replayed on, or a tool in it that failed."""


def read_config(build: Path) -> dict[str, str]:
    """CONFIG_* values of a make O= dir's .config (quotes stripped)."""
    out = {}
    try:
        text = (build / ".config").read_text()
    except OSError as exc:
        raise StageError(f"{build}: no .config ({exc.strerror})") from None
    for line in text.splitlines():
        m = re.match(r"(CONFIG_\w+)=(.*)", line)
        if m:
            out[m.group(1)] = m.group(2).strip('"')
    return out


def source_tree(build: Path) -> Path:
    """The kernel source of a make O= dir (the `source` link kbuild leaves there)."""
    src = build / "source"
    if src.exists():
        return src.resolve()
    makefile = build / "Makefile"
    if makefile.exists():
        m = re.search(r"-C\s+(\S+)", makefile.read_text())
        if m and Path(m.group(1)).exists():
            return Path(m.group(1))
    if (build / "scripts/Makefile.btf").exists():
        return build
    raise StageError(f"{build}: cannot find the kernel source tree")


def version_number(version: str) -> int:
    """pahole's version as Kconfig's CONFIG_PAHOLE_VERSION spells it: "1.26" -> 126."""
    m = re.fullmatch(r"v?(\d+)\.(\d+)", version.strip())
    if not m:
        raise StageError(f"not a pahole version: {version!r}")
    return int(m.group(1)) * 100 + int(m.group(2))


def _evaluate_makefile_btf(build: Path, pahole_version: str | None,
                           config: Path | None) -> tuple[str, str]:
    src = source_tree(build)
    auto = config or build / "include/config/auto.conf"
    if not auto.is_file():
        raise StageError(f"{build}: no include/config/auto.conf (not a configured build dir)")
    override = ""
    if pahole_version is not None:
        override = f"CONFIG_PAHOLE_VERSION := {version_number(pahole_version)}\n"
    with tempfile.NamedTemporaryFile("w", suffix=".mk", delete=False) as mk:
        mk.write(f"srctree := {src}\ninclude $(srctree)/scripts/Kbuild.include\n"
                 f"include {auto}\n{override}include $(srctree)/scripts/Makefile.btf\n"
                 "all: ; @printf '%s\\n%s\\n' '$(PAHOLE_FLAGS)' '$(RESOLVE_BTFIDS_FLAGS)'\n")
    try:
        env = dict(os.environ, KBUILD_BUILD_TIMESTAMP=BUILD_TIMESTAMP)
        env.pop("MAKEFLAGS", None)
        proc = subprocess.run(["make", "-s", "-f", mk.name], capture_output=True, text=True,
                              env=env)
    finally:
        os.unlink(mk.name)
    lines = proc.stdout.split("\n")
    if proc.returncode or len(lines) < 2:
        raise StageError(f"cannot evaluate {src}/scripts/Makefile.btf: "
                         f"{proc.stderr.strip()[:200]}")
    return lines[0], lines[1]


def pahole_flags(build: Path, pahole_version: str | None = None, jobs: int = 1,
                 config: Path | None = None) -> list[str]:
    """PAHOLE_FLAGS as the tree's scripts/Makefile.btf computes them for this build.

    `pahole_version`: evaluate for that pahole instead of the configured
    CONFIG_PAHOLE_VERSION. `config`: a kernel's own .config (make reads it as it reads
    auto.conf) instead of the build dir's auto.conf, which follows whichever pahole last
    relinked a build dir that several builds share. A bare `-j` (make's job count)
    becomes `-j<jobs>`; with KBUILD_BUILD_TIMESTAMP set, Makefile.btf only asks for -j
    together with reproducible_build, so the output does not depend on it.
    """
    flags = _evaluate_makefile_btf(build, pahole_version, config)[0]
    return [f"-j{jobs}" if f == "-j" else f for f in flags.split()]


def resolve_btfids_flags(build: Path, config: Path | None = None) -> list[str]:
    """RESOLVE_BTFIDS_FLAGS for vmlinux (`--fatal_warnings` with CONFIG_WERROR)."""
    return _evaluate_makefile_btf(build, None, config)[1].split()


@dataclass(frozen=True)
class StageOutput:
    """One replay's files and timings; `btf` is what gets linked into vmlinux as .BTF."""

    elf: Path
    btf1: Path  # pahole's output
    btf: Path  # resolve_btfids' output
    btf_ids: Path
    pahole_seconds: float
    btfids_seconds: float


def _tail(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"


def replay(elf: Path, work: Path, *, pahole: Path, pahole_args: list[str],
           btfids: list[str], btfids_args: list[str], timeout: float = 1800.0) -> StageOutput:
    """Run pahole then resolve_btfids on `elf` as gen-btf.sh does, outputs in `work`.

    The ELF is linked into `work` by a symlink (resolve_btfids writes `<elf>.BTF` and
    `<elf>.BTF_ids` next to the path it is given, and never modifies the ELF with
    --btf), so the kernel's build dir is only read. A failing tool raises StageError
    with its last output line; its full output is in `work`/<tool>.log.
    """
    work.mkdir(parents=True, exist_ok=True)
    local = work / "vmlinux"
    if local.is_symlink() or local.exists():
        local.unlink()
    local.symlink_to(elf.resolve())
    btf1 = work / "vmlinux.BTF.1"
    steps = (
        ("pahole", [str(pahole), "-J", *pahole_args, f"--btf_encode_detached={btf1}",
                    str(local)]),
        ("resolve_btfids", [*btfids, *btfids_args, "--btf", str(btf1), str(local)]),
    )
    seconds = []
    for name, cmd in steps:
        start = time.monotonic()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  cwd=work)
        except subprocess.TimeoutExpired:
            raise StageError(f"{name} did not finish within {timeout:g} s") from None
        except OSError as exc:
            raise StageError(f"cannot run {name} ({cmd[0]}): {exc.strerror}") from None
        seconds.append(time.monotonic() - start)
        (work / f"{name}.log").write_text(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
        if proc.returncode:
            raise StageError(f"{name} failed (exit {proc.returncode}): "
                             f"{_tail(proc.stderr or proc.stdout)}")
    out = StageOutput(local, btf1, work / "vmlinux.BTF", work / "vmlinux.BTF_ids",
                      seconds[0], seconds[1])
    for produced in (out.btf1, out.btf, out.btf_ids):
        if not produced.is_file():
            raise StageError(f"the BTF stage wrote no {produced.name} (see {work}/*.log)")
    return out
