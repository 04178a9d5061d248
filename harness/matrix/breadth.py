"""The breadth report: each cell's BTF facts next to its verdicts, and a stored baseline.

Why: a matrix over kernel x pahole x resolve_btfids x arch exists to see what each
toolchain makes of the same kfuncs, so every cell carries what our BTF library reads from
its vmlinux (how many kfuncs, how many got an `_impl`, the `bpf_kfunc`/`bpf_fastcall`
tags, arena attributes, implicit-argument kfuncs with and without the prototype they
need), not only whether programs loaded. And a nightly job has to fail on a *change*, not
on a state everyone already knows: `--baseline FILE` compares this run with a stored one
(`baseline.json`, which every run writes next to its reports) cell by cell: status, each
program's verdict, each fact. Cells missing from either side are not changes (a shard
runs a part of the cells; a new cell has no history yet), only noted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from harness.btf.errors import BTFError
from harness.btf.kfuncs import kfuncs_of
from harness.errors import UsageError
from harness.kfunc_abi import DECL_TAG_FASTCALL, DECL_TAG_KFUNC, KF_IMPLICIT_ARGS

BASELINE_VERSION = 1
Facts = dict[str, int | str]


def btf_facts(vmlinux: str | Path) -> Facts:
    """What a cell's kernel tells BPF programs about its kfuncs, as counts and a digest.

    `kfunc_digest` changes when any kfunc's name, BPF-visible prototype, kernel
    prototype, flags or tags change: the fact to diff when the counts stay equal.
    """
    kfuncs = kfuncs_of(vmlinux, arg_flags=False)
    implicit = [k for k in kfuncs if (k.flags or 0) & KF_IMPLICIT_ARGS]
    digest = hashlib.sha256()
    for k in kfuncs:
        digest.update(json.dumps([k.name, k.proto, k.impl, k.flags, sorted(k.tags),
                                  k.arg_tags, k.arena]).encode())
    return {
        "kfuncs": len(kfuncs),
        "impl": sum(k.impl is not None for k in kfuncs),
        "bpf_kfunc_tags": sum(DECL_TAG_KFUNC in k.tags for k in kfuncs),
        "bpf_fastcall_tags": sum(DECL_TAG_FASTCALL in k.tags for k in kfuncs),
        "arena": sum(bool(k.arena) for k in kfuncs),
        "implicit_args": len(implicit),
        "implicit_without_impl": sum(k.impl is None for k in implicit),
        "kfunc_digest": digest.hexdigest()[:16],
    }


def try_btf_facts(vmlinux: str | Path) -> tuple[Facts, str | None]:
    """(facts, None), or ({}, why) when the BTF cannot be read: a cell's note, not a crash."""
    try:
        return btf_facts(vmlinux), None
    except (BTFError, OSError) as exc:
        return {}, f"BTF facts: {exc}"


def cell_record(status: str, verdicts: Mapping[str, str], facts: Mapping[str, object]
                ) -> dict[str, object]:
    return {"status": status, "verdicts": dict(sorted(verdicts.items())), "btf": dict(facts)}


def baseline_json(cells: Mapping[str, Mapping[str, object]]) -> bytes:
    """The baseline file a run writes: {version, cells: {id: {status, verdicts, btf}}}."""
    return (json.dumps({"version": BASELINE_VERSION, "cells": cells}, indent=1,
                       sort_keys=True) + "\n").encode()


def load_baseline(path: str | Path) -> dict[str, dict[str, object]]:
    """A stored baseline's cells; a missing, unreadable or foreign file is one line."""
    path = Path(path).expanduser()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--baseline {path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise UsageError(f"--baseline {path}: not a baseline file: {why}") from None
    cells = data.get("cells") if isinstance(data, dict) else None
    if (not isinstance(data, dict) or data.get("version") != BASELINE_VERSION
            or not isinstance(cells, dict)
            or not all(isinstance(c, dict) for c in cells.values())):
        raise UsageError(f"--baseline {path}: not a version {BASELINE_VERSION} baseline "
                         "(written as baseline.json by harness matrix)")
    return cells


def changes(before: Mapping[str, object], after: Mapping[str, object]) -> list[str]:
    """One cell's differences, one line each: status, then verdicts, then BTF facts."""
    lines = []
    if before.get("status") != after.get("status"):
        lines.append(f"status {before.get('status')} -> {after.get('status')}")
    old = _mapping(before.get("verdicts"))
    new = _mapping(after.get("verdicts"))
    for test in sorted(old.keys() | new.keys()):
        if old.get(test) != new.get(test):
            lines.append(f"{test}: {old.get(test, 'absent')} -> {new.get(test, 'absent')}")
    old_facts, new_facts = _mapping(before.get("btf")), _mapping(after.get("btf"))
    for key in sorted(old_facts.keys() | new_facts.keys()):
        if old_facts.get(key) != new_facts.get(key):
            lines.append(f"btf {key}: {old_facts.get(key, 'absent')} -> "
                         f"{new_facts.get(key, 'absent')}")
    return lines


def compare(baseline: Mapping[str, Mapping[str, object]],
            current: Mapping[str, Mapping[str, object]]) -> tuple[dict[str, list[str]],
                                                                 list[str]]:
    """({cell id: changes} for cells in both, [cell ids this run has and the baseline not])."""
    changed = {cell: lines for cell, record in current.items() if cell in baseline
               and (lines := changes(baseline[cell], record))}
    return changed, [cell for cell in current if cell not in baseline]


def _mapping(value: object) -> dict[str, object]:
    return dict(value) if isinstance(value, dict) else {}


def fact_columns(facts: Iterable[Mapping[str, object]]) -> list[str]:
    """The fact names in the order btf_facts() gives them, for a table's columns."""
    seen: dict[str, None] = {}
    for item in facts:
        seen.update(dict.fromkeys(item))
    return list(seen)
