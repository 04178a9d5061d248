"""The breadth report's BTF facts (read from real BTF) and the --baseline comparison."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import UsageError
from harness.matrix.breadth import (
    baseline_json,
    btf_facts,
    cell_record,
    changes,
    compare,
    load_baseline,
    try_btf_facts,
)

HOST_BTF = Path("/sys/kernel/btf/vmlinux")
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not HOST_BTF.exists(), reason="no host kernel BTF")
def test_facts_of_the_host_kernel() -> None:
    """Raw BTF (no .BTF_ids, so no flags): kfuncs found by their bpf_kfunc tags."""
    facts = btf_facts(HOST_BTF)
    assert list(facts) == ["kfuncs", "impl", "bpf_kfunc_tags", "bpf_fastcall_tags", "arena",
                           "implicit_args", "implicit_without_impl", "kfunc_digest"]
    assert isinstance(facts["kfuncs"], int) and facts["kfuncs"] > 50
    assert facts["bpf_kfunc_tags"] == facts["kfuncs"]
    assert facts["implicit_args"] == 0  # flags live in .BTF_ids, which raw BTF lacks
    assert len(str(facts["kfunc_digest"])) == 16 and btf_facts(HOST_BTF) == facts


def test_unreadable_btf_is_a_note_not_a_crash(tmp_path: Path) -> None:
    bad = tmp_path / "vmlinux"
    bad.write_bytes(b"\x7fELF" + b"\xff" * 60)
    facts, why = try_btf_facts(bad)
    assert facts == {} and why is not None and why.startswith("BTF facts: ")
    assert "\n" not in why
    assert try_btf_facts(tmp_path / "gone")[1] is not None


BEFORE = cell_record("pass", {"wq/a[x86_64]": "pass", "wq/b[x86_64]": "fail"},
                     {"kfuncs": 190, "bpf_kfunc_tags": 190})


def test_changes_name_status_verdicts_and_facts() -> None:
    assert changes(BEFORE, BEFORE) == []
    after = cell_record("fail", {"wq/a[x86_64]": "fail", "wq/c[x86_64]": "pass"},
                        {"kfuncs": 190, "bpf_kfunc_tags": 0, "arena": 3})
    assert changes(BEFORE, after) == [
        "status pass -> fail",
        "wq/a[x86_64]: pass -> fail",
        "wq/b[x86_64]: fail -> absent",
        "wq/c[x86_64]: absent -> pass",
        "btf arena: absent -> 3",
        "btf bpf_kfunc_tags: 190 -> 0",
    ]


def test_compare_ignores_cells_one_side_lacks() -> None:
    """A shard runs part of the cells; a new cell has no history: neither is a change."""
    baseline = {"x": BEFORE, "gone": BEFORE}
    current = {"x": BEFORE, "new": BEFORE}
    assert compare(baseline, current) == ({}, ["new"])
    moved = dict(BEFORE, status="infra")
    assert compare(baseline, {"x": moved}) == ({"x": ["status pass -> infra"]}, [])


def test_baseline_round_trips_and_refuses_foreign_files(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    path.write_bytes(baseline_json({"x": BEFORE}))
    assert load_baseline(path) == {"x": BEFORE}
    for text, message in [("{", "not a baseline file"),
                          ('{"version": 2, "cells": {}}', "not a version 1 baseline"),
                          ('{"version": 1, "cells": []}', "not a version 1 baseline"),
                          ("[]", "not a version 1 baseline")]:
        path.write_text(text)
        with pytest.raises(UsageError, match=message):
            load_baseline(path)
    with pytest.raises(UsageError, match="no such file"):
        load_baseline(tmp_path / "none.json")


def test_matrix_refuses_a_bad_baseline_before_anything_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "b.json").write_text(json.dumps({"version": 1}))
    assert main(["matrix", str(REPO / "nightly.toml"), "--baseline",
                 str(tmp_path / "b.json"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "not a version 1 baseline" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
