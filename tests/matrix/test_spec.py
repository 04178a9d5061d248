"""matrix.toml: the repo's files load, cells expand as written, every broken file is one
precise line (file, entry, key), shards partition, --cells selects."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.matrix.spec import (
    Cell,
    MatrixError,
    load_matrix,
    parse_shard,
    select,
    shard,
)

REPO = Path(__file__).resolve().parents[2]
AXES = """
[axes]
kernel = ["6.12", "7.2", "7.3"]
pahole = ["1.24", "1.30", "1.32"]
btfids = ["c", "python"]
arch = ["x86_64", "arm64"]
"""
SMALL = """
[axes]
kernel = ["7.2", "7.3"]
pahole = ["1.32"]
btfids = ["c", "python"]
arch = ["x86_64"]
"""
INCLUDE_73 = '[[include]]\nkernel = "7.3"\npahole = "1.32"\nbtfids = "python"\n'


def write(tmp_path: Path, text: str, name: str = "matrix.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def ids(cells: list[Cell] | tuple[Cell, ...]) -> list[str]:
    return [cell.id for cell in cells]


def test_repo_matrix_is_the_full_product() -> None:
    matrix = load_matrix(REPO / "matrix.toml")
    assert len(matrix.cells) == 36 and len(set(ids(matrix.cells))) == 36
    assert {(c.kernel, c.pahole, c.btfids, c.arch) for c in matrix.cells} == {
        (k, p, b, a) for k in ("6.12", "7.2", "7.3") for p in ("1.24", "1.30", "1.32")
        for b in ("c", "python") for a in ("x86_64", "arm64")}
    broken = matrix.cell("7.2-pahole1.24-c-x86_64")
    assert [(e.verdict, e.entry) for e in broken.expects] == [("fail", "expect 1"),
                                                              ("error", "expect 2")]
    assert broken.expect_for("kfunc_implicit_args", "test_kfunc_implicit_arg").verdict == "fail"
    twin = matrix.cell("7.2-pahole1.24-python-x86_64")
    assert twin.expect_for("kfunc_implicit_args", "test_kfunc_implicit_arg").verdict == "pass"
    assert not matrix.cell("7.3-pahole1.32-c-x86_64").expects
    assert matrix.cell("7.3-pahole1.32-c-arm64").timeout == 120
    assert "upstream:kfunc_implicit_args" in broken.programs


def test_repo_nightly_is_small() -> None:
    matrix = load_matrix(REPO / "nightly.toml")
    assert ids(matrix.cells) == ["7.3-pahole1.32-python-x86_64", "7.3-pahole1.32-python-arm64",
                                 "7.2-pahole1.24-c-x86_64", "7.2-pahole1.24-python-x86_64"]
    assert [e.verdict for e in matrix.cells[2].expects] == ["fail", "error"]
    assert [e.verdict for e in matrix.cells[3].expects] == ["pass"]


def test_product_order_exclude_include(tmp_path: Path) -> None:
    path = write(tmp_path, SMALL + '[[exclude]]\nkernel = "7.2"\nbtfids = "c"\n'
                 '[[include]]\nkernel = "6.12"\npahole = "system"\nbtfids = "python"\n'
                 'arch = "aarch64"\n')
    matrix = load_matrix(path)
    assert matrix.path == path
    assert ids(matrix.cells) == ["7.2-pahole1.32-python-x86_64", "7.3-pahole1.32-c-x86_64",
                                 "7.3-pahole1.32-python-x86_64",
                                 "6.12-pahole-system-python-arm64"]
    assert matrix.cells[-1].arch == "arm64"  # stored by its canonical name
    assert all(c.timeout == 60 and c.programs == () and c.kconfigs == () for c in matrix.cells)


def test_exclude_with_alternatives_and_arch_spelling(tmp_path: Path) -> None:
    matrix = load_matrix(write(tmp_path, AXES + '[[exclude]]\nkernel = ["6.12", "7.2"]\n'
                               '[[exclude]]\narch = "aarch64"\nbtfids = "c"\n'))
    assert len(matrix.cells) == 9
    assert {c.kernel for c in matrix.cells} == {"7.3"}
    assert not [c for c in matrix.cells if c.arch == "arm64" and c.btfids == "c"]


def test_overrides_later_wins_and_kconfig_adds_up(tmp_path: Path) -> None:
    (tmp_path / "kconfigs").mkdir()
    for name in ("base.config", "arm.config", "old.config"):
        (tmp_path / "kconfigs" / name).write_text("CONFIG_X=y\n")
    text = AXES + """
[defaults]
timeout = 30
programs = ["bpf_progs/*"]
kconfig = ["kconfigs/base.config"]

[[override]]
match = { arch = "arm64" }
timeout = 120
kconfig = ["kconfigs/arm.config"]

[[override]]
match = { kernel = "6.12", arch = ["arm64"] }
timeout = 300
programs = ["upstream:wq*"]
kconfig = ["kconfigs/old.config", "kconfigs/arm.config"]
"""
    matrix = load_matrix(write(tmp_path, text))
    base = tmp_path / "kconfigs"
    x86 = matrix.cell("6.12-pahole1.24-c-x86_64")
    assert (x86.timeout, x86.programs, x86.kconfigs) == (30, ("bpf_progs/*",),
                                                         (base / "base.config",))
    arm = matrix.cell("7.3-pahole1.24-c-arm64")
    assert (arm.timeout, arm.kconfigs) == (120, (base / "base.config", base / "arm.config"))
    old_arm = matrix.cell("6.12-pahole1.32-python-arm64")
    assert (old_arm.timeout, old_arm.programs) == (300, ("upstream:wq*",))
    assert old_arm.kconfigs == (base / "base.config", base / "arm.config", base / "old.config")


def test_denylist_directories_relative_to_the_file(tmp_path: Path) -> None:
    for name in ("lists", "lists-arm"):
        (tmp_path / name).mkdir()
    text = SMALL + """
[defaults]
denylist = "lists"

[[override]]
match = { btfids = "c" }
denylist = "lists-arm"
"""
    matrix = load_matrix(write(tmp_path, text))
    assert matrix.cell("7.3-pahole1.32-python-x86_64").denylist == tmp_path / "lists"
    assert matrix.cell("7.2-pahole1.32-c-x86_64").denylist == tmp_path / "lists-arm"
    assert load_matrix(write(tmp_path, SMALL, "plain.toml")).cells[0].denylist is None
    with pytest.raises(MatrixError, match=r"defaults: denylist: no such lists directory "):
        load_matrix(write(tmp_path, SMALL + '[defaults]\ndenylist = "gone"\n', "bad.toml"))


def test_clang_setting(tmp_path: Path) -> None:
    own = tmp_path / "my-clang"
    own.write_text("#!/bin/sh\n")
    own.chmod(0o755)
    text = SMALL + """
[defaults]
clang = "system"

[[override]]
match = { kernel = "7.2" }
clang = "my-clang"
"""
    matrix = load_matrix(write(tmp_path, text))
    assert matrix.cell("7.3-pahole1.32-python-x86_64").clang == "system"
    assert matrix.cell("7.2-pahole1.32-c-x86_64").clang == str(own)
    assert load_matrix(write(tmp_path, SMALL, "plain.toml")).cells[0].clang == "21"
    with pytest.raises(MatrixError, match=r"defaults: clang: .*gone is not an executable clang"):
        load_matrix(write(tmp_path, SMALL + '[defaults]\nclang = "gone"\n', "bad.toml"))
    with pytest.raises(MatrixError, match=r"defaults: clang: expected system, 19, 21 or a path"):
        load_matrix(write(tmp_path, SMALL + "[defaults]\nclang = 21\n", "num.toml"))


def test_tree_include_is_named_by_its_directory(tmp_path: Path) -> None:
    (tmp_path / "linux-next").mkdir()
    (tmp_path / "fix.mbox").write_text("")
    text = SMALL + """
[[include]]
tree = "linux-next"
pahole = "1.32"
btfids = "python"
arch = "x86_64"

[[include]]
tree = "linux-next"
patches = "fix.mbox"
pahole = "1.32"
btfids = "python"
arch = "arm64"

[[override]]
match = { kernel = "linux-next+fix" }
timeout = 5
"""
    matrix = load_matrix(write(tmp_path, text))
    plain, patched = matrix.cells[-2:]
    assert (plain.kernel, plain.tree, plain.patches) == (
        None, (tmp_path / "linux-next").resolve(), None)
    assert plain.id == "linux-next-pahole1.32-python-x86_64"
    assert patched.id == "linux-next+fix-pahole1.32-python-arm64"
    assert patched.patches == tmp_path / "fix.mbox"
    assert (plain.timeout, patched.timeout) == (60, 5)
    assert ids(select(matrix.cells, "kernel=linux-next*")) == ids(matrix.cells[-2:])


def test_cell_id_is_filename_safe(tmp_path: Path) -> None:
    cell = Cell(kernel=None, tree=tmp_path / "my tree:x", patches=None, pahole="system",
                btfids="c", arch="x86_64")
    assert cell.id == "my_tree_x-pahole-system-c-x86_64"


def test_expect_covers_variants_and_checks_messages(tmp_path: Path) -> None:
    text = SMALL + """
[[expect]]
match = { kernel = "7.2", btfids = "c" }
programs = ["wq/wq_tc_plain", "kfunc_implicit_args/*"]
verdict = "fail"
message = "incompatible with kernel"
reason = "C resolve_btfids"

[[expect]]
programs = "wq/*"
verdict = "skip"
message = ["no such kfunc", "not supported"]
"""
    matrix = load_matrix(write(tmp_path, text))
    cell = matrix.cell("7.2-pahole1.32-c-x86_64")
    first, second = cell.expects
    assert (first.entry, first.messages, second.reason) == ("expect 1", (
        "incompatible with kernel",), "")
    assert first.covers("wq", "wq_tc_plain@rnd_hi32") and first.covers("wq", "wq_tc_plain")
    assert first.covers("kfunc_implicit_args", "test_kfunc_implicit_arg @unpriv")
    assert not first.covers("wq", "wq_tc_plain_x")
    assert cell.expect_for("wq", "wq_tc_plain") is second  # the later one wins
    assert cell.expect_for("kfunc_implicit_args", "x") is first
    assert cell.expect_for("stream", "x") is None
    assert first.check("fail", "libbpf: ... incompatible with kernel [12]") is None
    assert first.check("pass", "") == "expect 1: expected fail, got pass (C resolve_btfids)"
    assert first.check("fail", "verifier said no") == (
        "expect 1: fail without 'incompatible with kernel' (C resolve_btfids)")
    assert second.check("skip", "kfunc not supported here") is None
    assert second.check("skip", "other") == (
        "expect 2: skip without 'no such kfunc' or 'not supported' ()")
    assert [e.entry for e in matrix.cell("7.3-pahole1.32-c-x86_64").expects] == ["expect 2"]


@pytest.mark.parametrize(("text", "message"), [
    (AXES + "[axis]\nkernel = []\n",
     "unknown table 'axis' (known: axes, defaults, exclude, include, override, expect)"),
    (AXES + '[[exclude]]\nkernel = "6.12"\n[[exclude]]\nkernal = "7.2"\n',
     "exclude 2: unknown key 'kernal' (known: kernel, pahole, btfids, arch)"),
    (AXES + '[[exclude]]\nkernel = "7.9"\n',
     "exclude 1: kernel: unknown kernel release '7.9' (choose 7.3, 7.2, 6.12, "
     "or an include with tree = PATH)"),
    (AXES + "[[exclude]]\n", "exclude 1: names no axis key (kernel, pahole, btfids, arch)"),
    ('exclude = { kernel = "6.12" }\n' + AXES, "exclude: expected [[exclude]] entries"),
    (AXES.replace('"arm64"]', '"riscv"]'),
     "axes: arch: unknown arch 'riscv' (choose x86_64, amd64, x86, arm64, aarch64)"),
    (AXES.replace('"x86_64", "arm64"', '"x86_64", "amd64"'),
     "axes: arch: 'amd64' repeats 'x86_64'"),
    (AXES.replace('"1.30"', '"1.31"'),
     "axes: pahole: unknown pahole '1.31' (choose system, 1.24, 1.30, 1.32)"),
    (AXES.replace('["c", "python"]', "[]"),
     "axes: btfids: empty (a matrix needs at least one value)"),
    (AXES.replace('arch = ["x86_64", "arm64"]\n', ""), "axes: missing 'arch'"),
    (AXES.replace('["c", "python"]', '"c"'), "axes: btfids: expected a list, got 'c'"),
    (AXES + '[defaults]\ntimeout = 0\n',
     "defaults: timeout: expected a positive number of seconds, got 0"),
    (AXES + '[defaults]\nprograms = "bpf_progs/*"\n',
     "defaults: programs: expected a list of program selectors, got 'bpf_progs/*'"),
    (AXES + '[defaults]\nprograms = ["upstream:"]\n',
     "defaults: programs: 'upstream:' names no selftest"),
    (AXES + '[defaults]\nretries = 2\n',
     "defaults: unknown key 'retries' (known: timeout, programs, kconfig, denylist, clang)"),
    (AXES + INCLUDE_73 + 'arch = "x86_64"\nbtfids = "rust"\n',
     None),  # duplicate TOML key: tomllib refuses it (checked below by prefix)
    (AXES + INCLUDE_73.replace('"python"', '"rust"') + 'arch = "x86_64"\n',
     "include 1: btfids: unknown btfids 'rust' (choose c, python)"),
    (AXES + INCLUDE_73 + 'arch = "x86_64"\n',
     "include 1: duplicate cell 7.3-pahole1.32-python-x86_64 (already in the matrix)"),
    (SMALL + '[[exclude]]\nkernel = "7.3"\n' + INCLUDE_73 + 'arch = "x86_64"\n'
     + INCLUDE_73 + 'arch = "x86_64"\n',
     "include 2: duplicate cell 7.3-pahole1.32-python-x86_64 (already in the matrix)"),
    (AXES + INCLUDE_73, "include 1: missing 'arch'"),
    (AXES + '[[include]]\npahole = "1.32"\nbtfids = "c"\narch = "arm64"\n',
     "include 1: needs 'kernel' or 'tree' (one of them)"),
    (AXES + INCLUDE_73 + 'arch = "arm64"\npatches = "x.mbox"\n',
     "include 1: patches: patches apply to a tree (tree = PATH)"),
    (AXES + '[[override]]\nmatch = { btfids = "rust" }\ntimeout = 5\n',
     "override 1: match: btfids: unknown btfids 'rust' (choose c, python)"),
    (AXES + '[[override]]\nmatch = { arch = "arm64" }\n',
     "override 1: sets nothing (timeout, programs, kconfig, denylist, clang)"),
    (AXES + '[[override]]\ntimeout = 5\n[[override]]\nmatch = { arch = "arm64" }\n'
     'kconfig = ["nope.config"]\n', "override 2: kconfig: no such fragment {dir}/nope.config"),
    (AXES + '[[override]]\ntimeout = 5\nkconfig = "a.config"\n',
     "override 1: kconfig: expected a list of fragments, got 'a.config'"),
    (AXES + '[[expect]]\nprograms = "x/*"\nverdict = "crash"\n',
     "expect 1: verdict: 'crash' is not one of pass, fail, skip, error"),
    (AXES + '[[expect]]\nverdict = "fail"\n', "expect 1: missing 'programs'"),
    (AXES + '[[expect]]\nprograms = "x/*"\nverdict = "pass"\nmessage = "boom"\n',
     "expect 1: message: a pass has no failure message to match"),
    (AXES + '[[expect]]\nprograms = "x/*"\nverdict = "fail"\nwhy = "?"\n',
     "expect 1: unknown key 'why' (known: match, programs, verdict, message, reason)"),
    (AXES + '[[expect]]\nprograms = "x/*"\nverdict = "fail"\nmatch = { kernel = 7.2 }\n',
     "expect 1: match: kernel: expected a string or a list of strings, got 7.2"),
    (AXES + '[[expect]]\nprograms = ["x/*", ""]\nverdict = "fail"\n',
     "expect 1: programs: expected a non-empty string, got ''"),
    (SMALL + '[[exclude]]\npahole = "1.32"\n',
     "no cells (no [axes] product left and no [[include]])"),
    ("", "no cells (no [axes] product left and no [[include]])"),
])
def test_broken_matrix_is_one_precise_line(tmp_path: Path, text: str,
                                           message: str | None) -> None:
    path = write(tmp_path, text)
    with pytest.raises(MatrixError) as info:
        load_matrix(path)
    error = str(info.value)
    assert "\n" not in error
    if message is None:
        assert error.startswith(f"{path}: not valid TOML: ")
    else:
        assert error == f"{path}: {message.format(dir=tmp_path)}"


def test_tree_and_patches_must_exist(tmp_path: Path) -> None:
    path = write(tmp_path, '[[include]]\ntree = "gone"\npahole = "1.32"\nbtfids = "c"\n'
                 'arch = "x86_64"\n')
    with pytest.raises(MatrixError) as info:
        load_matrix(path)
    assert str(info.value) == f"{path}: include 1: tree: no such directory {tmp_path / 'gone'}"
    (tmp_path / "linux").mkdir()
    path.write_text('[[include]]\ntree = "linux"\npatches = "p"\npahole = "1.32"\n'
                    'btfids = "c"\narch = "x86_64"\n')
    with pytest.raises(MatrixError) as info:
        load_matrix(path)
    assert str(info.value) == (f"{path}: include 1: patches: no such file or directory "
                               f"{tmp_path / 'p'}")


def test_missing_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(MatrixError) as info:
        load_matrix(tmp_path / "none.toml")
    assert str(info.value) == f"{tmp_path / 'none.toml'}: no such matrix file"
    with pytest.raises(MatrixError) as info:
        load_matrix(tmp_path)
    assert str(info.value) == f"{tmp_path}: cannot read: Is a directory"
    path = write(tmp_path, "[axes\nkernel = 1\n")
    with pytest.raises(MatrixError) as info:
        load_matrix(path)
    assert str(info.value).startswith(f"{path}: not valid TOML: ")
    assert "\n" not in str(info.value)
    assert isinstance(info.value, UsageError) and info.value.exit_code == 2


@pytest.fixture
def cells() -> tuple[Cell, ...]:
    return load_matrix(REPO / "matrix.toml").cells


@pytest.mark.parametrize("count", [1, 2, 3, 5, 7, 36, 40])
def test_shards_partition_the_cells(cells: tuple[Cell, ...], count: int) -> None:
    shards = [shard(cells, index, count) for index in range(1, count + 1)]
    flat = [cell.id for part in shards for cell in part]
    assert sorted(flat) == sorted(ids(cells)) and len(flat) == len(set(flat))
    sizes = [len(part) for part in shards]
    assert max(sizes) - min(sizes) <= 1
    assert shards == [shard(cells, index, count) for index in range(1, count + 1)]


def test_shard_is_contiguous(cells: tuple[Cell, ...]) -> None:
    assert ids(shard(cells, 2, 3)) == ids(cells[12:24])
    assert ids(shard(cells[:5], 1, 2)) == ids(cells[:3])
    assert ids(shard(cells[:5], 2, 2)) == ids(cells[3:5])
    assert shard((), 1, 4) == []
    with pytest.raises(UsageError):
        shard(cells, 4, 3)


@pytest.mark.parametrize(("text", "expected"), [("2/3", (2, 3)), (" 1/1 ", (1, 1)),
                                                  ("10/12", (10, 12))])
def test_parse_shard(text: str, expected: tuple[int, int]) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["0/3", "4/3", "3", "a/b", "1/0", "1/2/3", "", "-1/2"])
def test_parse_shard_refuses(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_shard(text)
    assert str(info.value) == f"--shard {text!r}: expected I/N with 1 <= I <= N, e.g. 2/3"


@pytest.mark.parametrize(("expr", "count", "first"), [
    ("kernel=7.3", 12, "7.3-pahole1.24-c-x86_64"),
    ("kernel=7.2,pahole=1.24,btfids=c", 2, "7.2-pahole1.24-c-x86_64"),
    (" arch = aarch64 , btfids=python", 9, "6.12-pahole1.24-python-arm64"),
    ("kernel=7.*,pahole=1.3?,arch=x86_64", 8, "7.2-pahole1.30-c-x86_64"),
    ("*-arm64", 18, "6.12-pahole1.24-c-arm64"),
    ("7.3-pahole1.32-python-x86_64", 1, "7.3-pahole1.32-python-x86_64"),
])
def test_select(cells: tuple[Cell, ...], expr: str, count: int, first: str) -> None:
    chosen = select(cells, expr)
    assert len(chosen) == count and chosen[0].id == first
    assert ids(chosen) == [c.id for c in cells if c in chosen]  # matrix order kept


@pytest.mark.parametrize(("expr", "message"), [
    ("kern=7.3", "--cells 'kern=7.3': unknown key 'kern' (choose kernel, pahole, btfids, arch)"),
    ("kernel=7.3,arm64", "--cells 'kernel=7.3,arm64': 'arm64' is not key=value"),
    ("kernel=", "--cells 'kernel=': 'kernel=' is not key=value"),
    ("7.3-*,*-arm64", "--cells '7.3-*,*-arm64': a comma list takes key=value terms; "
                      "a plain filter is one glob over cell ids"),
    ("kernel=5.15", "--cells 'kernel=5.15' matches none of the 36 cells "
                    "(e.g. 6.12-pahole1.24-c-x86_64, 6.12-pahole1.24-c-arm64, "
                    "6.12-pahole1.24-python-x86_64)"),
    ("  ", "--cells: empty filter"),
])
def test_select_refuses(cells: tuple[Cell, ...], expr: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        select(cells, expr)
    assert str(info.value) == message


def test_an_error_can_be_expected_with_its_message(tmp_path: Path) -> None:
    """A source an older tree cannot compile: an `error` with clang's words, not a fail."""
    text = SMALL + """
[[expect]]
match = { kernel = "7.2" }
programs = "task_work/*"
verdict = "error"
message = "incomplete type 'struct bpf_task_work'"
"""
    cell = load_matrix(write(tmp_path, text)).cell("7.2-pahole1.32-c-x86_64")
    expect = cell.expect_for("task_work", "(compile)")
    assert expect is not None
    reason = "error: task_work.c: 9:23: error: field has incomplete type 'struct bpf_task_work'"
    assert expect.check("error", reason) is None
    assert "expected error, got fail" in str(expect.check("fail", reason))
