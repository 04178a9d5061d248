"""Behaviour profiles: which tree's resolve_btfids the transformer behaves as.

Why profiles: the C tool changed between releases and kbuild of a tree
expects that tree's tool. A drop-in must write the bytes the tree's own tool
would write, so the behaviour is chosen per tree:

- `7.2`: kfuncs are the functions pahole tagged `bpf_kfunc`; only the
  KF_IMPLICIT_ARGS rewrite; no dedup; then distill (--distill_base) and sort.
- `7.3`: kfuncs come from BTF_SET8_KFUNCS sets; `bpf_kfunc`/`bpf_fastcall`
  decl tags and arena `address_space(1)` attributes are emitted;
  KF_IMPLICIT_ARGS; btf__dedup on every output; distill; sort.
- `next`: the newest upstream tool. Upstream's last change to kfunc handling is
  5e31d32843d3 "resolve_btfids: Emit arena attributes from kfunc parameter suffixes"
  (bpf-next, in torvalds/linux master on 2026-08-20, the 7.3 merge window), after
  692393104909 (bpf_kfunc/bpf_fastcall decl tags), 27a78c2e7eee (KF_ARENA_*) and
  3d72aca40b83 (btf__dedup in finalize_btf); 7.3's main.c already holds all four, byte
  for byte the newest stored copy, so `next` behaves as `7.3` and is there to be named
  in bisects and to move on its own when upstream does.
- `6.12`: the tool before kbuild's split into `--btf` outputs and `--patch_btfids`
  (7.0; tools/bpf/resolve_btfids of 6.12 and earlier): BTF is pahole's, untouched and
  unsorted; the resolved `.BTF_ids` are written into the ELF in place, no file is
  emitted. A 6.12 tree's link-vmlinux.sh runs `resolve_btfids vmlinux` and nothing
  after it, so a tool that wrote `vmlinux.BTF_ids` instead leaves every ID zero.

How the profile is chosen (first that applies):

1. `--profile 7.2|7.3`;
2. the kernel version inside the ELF: `linux_banner` ("Linux version X.Y...")
   for vmlinux, `vermagic=X.Y...` in `.modinfo` for modules — the object itself
   says which tree built it, also when run by hand on a copied file;
3. kbuild's environment: when make runs us it exports VERSION and PATCHLEVEL
   together with srctree/objtree;
4. otherwise `7.3`, the newest behaviour.

Versions below 7.0 map to `6.12` (only 6.12 is measured against its C tool here),
7.0 and 7.1 to `7.2` (the oldest tool with --btf/sort/distill), above 7.3 to `7.3`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from harness.btfids.errors import BtfidsUsageError


@dataclass(frozen=True)
class Profile:
    """What one tree's resolve_btfids does, as switches the pipeline reads."""

    name: str
    kfuncs_from_sets: bool  # 7.3 collect_kfuncs() vs 7.2's decl-tag walk
    emit_tags: bool  # bpf_kfunc / bpf_fastcall decl tags and arena attributes
    dedup: bool  # btf__dedup() before distill and sort
    impl_lookup_own: bool  # `_impl` looked up among own types only (7.3) or base too (7.2)
    btf2btf: bool = True  # rewrite, finalize and emit BTF (7.x), or leave pahole's (6.12)
    in_place: bool = False  # write .BTF_ids into the ELF itself, emit no files (6.12)
    sort: str = "7.3"  # harness.btf.sort's name order: whose btf__permute comparison
    checker: str | None = None  # harness.btf.kernel_rules.RULES: the tree's btf.c, if modelled


PROFILES: dict[str, Profile] = {
    "6.12": Profile("6.12", kfuncs_from_sets=False, emit_tags=False, dedup=False,
                    impl_lookup_own=False, btf2btf=False, in_place=True),
    "7.2": Profile("7.2", kfuncs_from_sets=False, emit_tags=False, dedup=False,
                   impl_lookup_own=False, sort="7.2"),
    "7.3": Profile("7.3", kfuncs_from_sets=True, emit_tags=True, dedup=True,
                   impl_lookup_own=True, checker="7.3"),
    "next": Profile("next", kfuncs_from_sets=True, emit_tags=True, dedup=True,
                    impl_lookup_own=True, checker="7.3"),
}
DEFAULT_PROFILE = "7.3"


def for_version(major: int, minor: int) -> str:
    """The profile name for kernel version major.minor."""
    if (major, minor) >= (7, 3):
        return "7.3"
    if (major, minor) < (7, 0):
        return "6.12"
    return "7.2"


def version_from_env(env: Mapping[str, str]) -> tuple[int, int] | None:
    """(VERSION, PATCHLEVEL) when we run under kbuild (it exports both, and srctree)."""
    if not ("srctree" in env or "objtree" in env):
        return None
    try:
        return int(env["VERSION"]), int(env["PATCHLEVEL"])
    except (KeyError, ValueError):
        return None


def choose(explicit: str | None, elf_version: tuple[int, int] | None,
           env: Mapping[str, str] | None = None) -> tuple[Profile, str]:
    """The profile to use and a phrase saying why (for --verbose)."""
    if explicit is not None:
        if explicit not in PROFILES:
            raise BtfidsUsageError(
                f"unknown profile {explicit!r}: choose {', '.join(sorted(PROFILES))}")
        return PROFILES[explicit], "--profile"
    if elf_version is not None:
        name = for_version(*elf_version)
        return PROFILES[name], f"kernel {elf_version[0]}.{elf_version[1]} in the ELF"
    kbuild = version_from_env(os.environ if env is None else env)
    if kbuild is not None:
        name = for_version(*kbuild)
        return PROFILES[name], f"kbuild VERSION/PATCHLEVEL {kbuild[0]}.{kbuild[1]}"
    return PROFILES[DEFAULT_PROFILE], "default"
