"""`harness repro` on a QEMU guest: the header names the kernel, and the verifier log of a
rejected program (the generated `_impl` twin called directly) is the kernel's own."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.cli import main
from harness.kbuild.artifacts import BuildArtifacts
from harness.progs.compile import compile_prog, toolchain_for

SOURCE = Path(__file__).resolve().parents[2] / "bpf_progs" / "implicit_args.c"


@pytest.mark.guest
def test_repro_prints_the_kernels_own_verifier_log(
        x86_build: BuildArtifacts, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["repro", str(SOURCE), "--prog", "implicit_generated_impl"]
    assert main(args) == 0  # the rejection is what the annotations expect
    text = capsys.readouterr().out
    assert "# kernel: 7.3" in text and "# btf sha256: " in text and "# libbpf: 1." in text
    assert "implicit_generated_impl: pass (expected failure" in text
    assert "cannot find address for kernel function bpf_kfunc_implicit_arg_impl" in text
    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    (result,) = data["results"]
    assert result["verifier_log"].startswith("cannot find address for kernel function")
    assert re.fullmatch(r"[0-9a-f]{64}", data["header"]["btf sha256"])
    obj = compile_prog(SOURCE, toolchain_for(x86_build))  # an object, as a user may have
    assert main(["repro", str(obj), "--prog", "implicit_generated_impl", "--json"]) == 0
    (from_obj,) = json.loads(capsys.readouterr().out)["results"]
    assert from_obj["verifier_log"] == result["verifier_log"]


def test_repro_of_a_missing_source_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["repro", "/nonexistent/prog.c"]) == 2
    assert capsys.readouterr().err == "harness: error: no such BPF source: /nonexistent/prog.c\n"
