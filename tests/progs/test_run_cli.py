"""`harness run` argument handling (no build, no guest) and the result table it prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import UsageError
from harness.progs.cli import parse_arches
from harness.progs.results import ProgResult, table
from harness.progs.suite import console_excerpt


def test_parse_arches() -> None:
    assert parse_arches("x86_64") == ["x86_64"]
    assert parse_arches(" arm64 , x86_64,arm64") == ["arm64", "x86_64"]
    assert parse_arches("amd64,aarch64,x86") == ["x86_64", "arm64"]
    for bad in ("", "riscv64", "x86_64,mips"):
        with pytest.raises(UsageError):
            parse_arches(bad)


def test_user_errors_are_one_line_before_any_build(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--arch", "x86_64,sparc"]) == 2
    err = capsys.readouterr().err
    assert err == ("harness: error: unknown arch 'sparc': choose x86_64 (amd64/x86), "
                   "arm64 (aarch64)\n")
    assert main(["run", "--prog", "/nonexistent/p.c"]) == 2
    assert capsys.readouterr().err == "harness: error: no such BPF source: /nonexistent/p.c\n"


def test_board_errors_are_one_line_before_any_build(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lab = tmp_path / "lab.toml"
    lab.write_text("[[board]]\nname = 'rk'\narch = 'arm64'\nhost = '10.0.0.5'\n")
    cases = [
        (["run", "--board", "nuc", "--lab", str(lab)],
         "no board 'nuc' in the inventory (known: rk)"),
        (["run", "--board", "rk", "--lab", str(lab), "--arch", "x86_64"],
         "board 'rk' is arm64: --arch x86_64 cannot run on it"),
        (["run", "--no-deploy"], "--no-deploy goes with --board"),
        (["run", "--board", "rk", "--lab", str(tmp_path / "none.toml")],
         f"{tmp_path / 'none.toml'}: no such lab inventory"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        assert capsys.readouterr().err == f"harness: error: {message}\n"


def test_target_offers_only_targets_that_boot_the_built_kernel(
        capsys: pytest.CaptureFixture[str]) -> None:
    """`local` is registered (protocol tests use it) but would judge the host's kernel."""
    for verb in (["run"], ["progs", "watch", "x.c"]):
        with pytest.raises(SystemExit) as exit_info:
            main([*verb, "--target", "local"])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err  # newer argparse versions quote the choices
        assert re.search(r"invalid choice: 'local' \(choose from '?qemu'?, '?board'?\)", err), err


def test_table_has_program_by_arch_columns() -> None:
    rows = [ProgResult("wq", "wq_tc_plain", "x86_64", "pass", "success retval=0", time_ms=3.5),
            ProgResult("wq", "wq_tc_plain", "arm64", "fail", "success retval=0",
                       reason="Unexpected retval: 1 != 0", time_ms=9.0),
            ProgResult("hid", "hid_drop", "x86_64", "skip", "success hid", reason="no uhid")]
    text = table(rows)
    head = text.splitlines()[0]
    assert head.index("arm64 verdict") < head.index("x86_64 verdict")
    line = next(ln for ln in text.splitlines() if ln.startswith("wq/wq_tc_plain"))
    assert "fail" in line and "pass" in line and "3.5" in line
    assert "wq/wq_tc_plain[arm64]: fail: Unexpected retval: 1 != 0" in text
    assert "1 fail, 1 pass, 1 skip" in text


def test_console_excerpt_drops_overlayfs_noise() -> None:
    console = ("overlayfs: failed to set xattr on upper\nBUG: x\n\n"
               "[    2.583236] overlayfs: ...falling back\nlast\n")
    assert console_excerpt(console) == "BUG: x\nlast"
    assert console_excerpt("\n".join(str(i) for i in range(100)), 3) == "97\n98\n99"
