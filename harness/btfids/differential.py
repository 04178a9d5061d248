"""Differential check: the Python resolve_btfids against the tree's C tool, on build dirs.

Why: "byte-identical to the C tool" is the transformer's whole contract, and
the only convincing evidence is running both on the same inputs from real
builds. For every object kbuild feeds resolve_btfids in a build dir (the
make O= dir, harness-managed or not), this recreates the pahole output with
the flags the tree's scripts/Makefile.btf computes for the build's
CONFIG_PAHOLE_VERSION, runs the C tool and the Python one on separate links
or copies of the same ELF, and compares every output file:

- vmlinux (`.tmp_vmlinux1`): `<elf>.BTF`, `<elf>.BTF_ids`;
- every in-tree module (`modules.order`), on `--btf_base vmlinux`;
- `harness-tools/test_kmods/bpf_testmod.ko` with `--distill_base` (`.BTF.base` too);
- `--patch_btfids` of each produced `.BTF_ids` into copies of the module (whole
  files compared).

    python -m harness.btfids.differential BUILD_DIR... [--pahole PATH] [--keep]

prints one line per case and `BUILD: N/N identical`; exit status 1 if any
case differs.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.btfids.stage import pahole_flags, read_config
from harness.errors import HarnessError

TOOLCHAINS = Path(os.environ.get("HARNESS_CACHE", str(Path.home() / ".cache/kfunc-harness"))
                  ) / "toolchains"
OUTPUT_SUFFIXES = (".BTF", ".BTF_ids", ".BTF.base")


class DifferentialError(HarnessError):
    """A build dir this script cannot use (no C tool, no pahole, no vmlinux)."""


@dataclass
class Case:
    """One resolve_btfids invocation kbuild makes: an ELF, maybe a base, maybe distilled."""

    name: str
    elf: Path
    base: Path | None = None
    distill: bool = False


@dataclass
class CaseResult:
    """Outcome of one case: which outputs matched, and how long each tool took."""

    case: Case
    identical: bool
    details: list[str] = field(default_factory=list)
    c_seconds: float = 0.0
    py_seconds: float = 0.0


# ---- reading the build dir ---------------------------------------------------------------

def find_pahole(build: Path, override: str | None) -> Path:
    """The pahole that matches the build's CONFIG_PAHOLE_VERSION (pinned copies first)."""
    if override:
        return Path(override)
    ver = read_config(build).get("CONFIG_PAHOLE_VERSION", "")
    if not ver.isdigit():
        raise DifferentialError(f"{build}: CONFIG_PAHOLE_VERSION missing from .config")
    release = f"{int(ver) // 100}.{int(ver) % 100:02d}"
    pinned = TOOLCHAINS / f"pahole-{release}" / "pahole"
    if pinned.exists():
        return pinned
    system = shutil.which("pahole")
    if system:
        out = subprocess.run([system, "--version"], capture_output=True, text=True).stdout
        if out.strip().lstrip("v") == release:
            return Path(system)
    raise DifferentialError(f"{build}: no pahole {release} (pinned or system); pass --pahole")


def find_c_tool(build: Path) -> Path:
    tool = build / "tools/bpf/resolve_btfids/resolve_btfids"
    if not tool.exists():
        raise DifferentialError(f"{build}: no C resolve_btfids at {tool}")
    return tool


def find_cases(build: Path) -> list[Case]:
    """vmlinux, every in-tree module and bpf_testmod, as kbuild hands them to resolve_btfids."""
    cases: list[Case] = []
    for name in (".tmp_vmlinux1", "vmlinux.unstripped", "vmlinux"):
        if (build / name).exists():
            cases.append(Case("vmlinux", build / name))
            break
    vmlinux = build / "vmlinux"
    order = build / "modules.order"
    if vmlinux.exists() and order.exists():
        for line in order.read_text().split():
            ko = build / (line[:-2] + ".ko" if line.endswith(".o") else line)
            if ko.exists():
                cases.append(Case(ko.name, ko, base=vmlinux))
    testmod = build / "harness-tools/test_kmods/bpf_testmod.ko"
    if vmlinux.exists() and testmod.exists():
        cases.append(Case("bpf_testmod.ko (distilled)", testmod, base=vmlinux, distill=True))
    if not cases:
        raise DifferentialError(f"{build}: no vmlinux or modules to compare")
    return cases


# ---- running one case ------------------------------------------------------------------------

def _python_cmd() -> list[str]:
    """The Python tool as a strict drop-in: kfunc discovery on BTF without bpf_kfunc tags
    (on by default for a 7.2 tree built with pahole < 1.26) is a deliberate difference
    from the C tool, so it is off here."""
    return [sys.executable, "-m", "harness.btfids", "--no-discover-kfuncs"]


def _place(src: Path, dest: Path, big: bool) -> None:
    """A symlink for huge read-only inputs, a copy otherwise (modules get patched)."""
    if big:
        dest.symlink_to(src.resolve())
    else:
        shutil.copyfile(src, dest)


def run_case(case: Case, work: Path, c_tool: Path, pahole: Path, flags: list[str]) -> CaseResult:
    """pahole once, then the C and the Python tool on their own copy; compare all outputs."""
    work.mkdir(parents=True, exist_ok=True)
    btf1 = work / "input.BTF.1"
    cmd = [str(pahole), "-J", *flags]
    if case.base:
        cmd += ["--btf_base", str(case.base)]
    cmd += [f"--btf_encode_detached={btf1}", str(case.elf)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode or not btf1.exists():
        return CaseResult(case, False, [f"pahole failed: {proc.stderr.strip()[:200]}"])
    big = case.base is None
    args = []
    if case.distill:
        args.append("--distill_base")
    if case.base:
        args += ["--btf_base", str(case.base)]
    args += ["--btf", str(btf1)]
    runs = {}
    for label, tool in (("c", [str(c_tool)]), ("py", _python_cmd())):
        d = work / label
        d.mkdir(exist_ok=True)
        elf = d / case.elf.name
        _place(case.elf, elf, big)
        t0 = time.perf_counter()
        proc = subprocess.run([*tool, *args, str(elf)], capture_output=True, text=True)
        runs[label] = (proc, time.perf_counter() - t0, elf)
    details = []
    (cp, ct, celf), (pp, pt, pelf) = runs["c"], runs["py"]
    if cp.returncode != pp.returncode:
        details.append(f"exit status C {cp.returncode} != Python {pp.returncode}: "
                       f"{(pp.stderr or cp.stderr).strip()[:300]}")
    for suffix in OUTPUT_SUFFIXES:
        cf, pf = Path(f"{celf}{suffix}"), Path(f"{pelf}{suffix}")
        if cf.exists() != pf.exists():
            details.append(f"{suffix}: written by {'C' if cf.exists() else 'Python'} only")
        elif cf.exists() and not filecmp.cmp(cf, pf, shallow=False):
            details.append(f"{suffix}: differs ({cf.stat().st_size} vs {pf.stat().st_size} bytes)")
    ids_blob = Path(f"{celf}.BTF_ids")
    if not big and ids_blob.exists() and not details:
        details += _compare_patch(ids_blob, case.elf, c_tool, work)
    return CaseResult(case, not details, details, ct, pt)


def _compare_patch(blob: Path, elf: Path, c_tool: Path, work: Path) -> list[str]:
    """--patch_btfids with the same blob into two copies; the patched files must match."""
    outs = []
    for label, tool in (("c", [str(c_tool)]), ("py", _python_cmd())):
        dest = work / f"patch-{label}-{elf.name}"
        shutil.copyfile(elf, dest)
        proc = subprocess.run([*tool, "--patch_btfids", str(blob), str(dest)],
                              capture_output=True, text=True)
        outs.append((proc.returncode, dest))
    if outs[0][0] != outs[1][0]:
        return [f"--patch_btfids exit status C {outs[0][0]} != Python {outs[1][0]}"]
    if not filecmp.cmp(outs[0][1], outs[1][1], shallow=False):
        return ["--patch_btfids: patched ELF files differ"]
    return []


# ---- driver ------------------------------------------------------------------------------------

def check_build(build: Path, *, pahole: str | None = None, keep: bool = False,
                out=sys.stdout) -> tuple[int, int]:  # noqa: ANN001 - a text stream
    """Run every case of one build dir; print one line per case; (identical, total)."""
    c_tool = find_c_tool(build)
    pahole_path = find_pahole(build, pahole)
    flags = pahole_flags(build)
    cases = find_cases(build)
    work = Path(tempfile.mkdtemp(prefix="btfids-diff-"))
    identical = 0
    try:
        for i, case in enumerate(cases):
            res = run_case(case, work / f"{i:04d}", c_tool, pahole_path, flags)
            identical += res.identical
            state = "identical" if res.identical else "DIFFERENT"
            print(f"  {case.name}: {state} (C {res.c_seconds:.2f} s, Python "
                  f"{res.py_seconds:.2f} s)", file=out)
            for d in res.details:
                print(f"    {d}", file=out)
    finally:
        if keep:
            print(f"  work dir kept: {work}", file=out)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{build}: {identical}/{len(cases)} identical", file=out)
    return identical, len(cases)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.btfids.differential",
        description="Compare the Python resolve_btfids with the tree's C tool on build dirs.")
    parser.add_argument("builds", nargs="+", type=Path, help="make O= dirs")
    parser.add_argument("--pahole", help="pahole to recreate the inputs with "
                        "(default: the pinned one matching CONFIG_PAHOLE_VERSION)")
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    args = parser.parse_args(argv)
    bad = 0
    for build in args.builds:
        try:
            same, total = check_build(build, pahole=args.pahole, keep=args.keep)
        except HarnessError as exc:
            print(f"{build}: error: {exc}", file=sys.stderr)
            bad += 1
            continue
        bad += same != total
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
