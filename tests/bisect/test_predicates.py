"""harness.bisect.predicates: parsing `KIND:TEXT`, `cmd:` with real /bin/sh, `btf:` and
`btf1:` on the real 7.3 vmlinux BTF (tests/data) and on a small synthetic BTF, judge_all."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.bisect import predicates
from harness.bisect.btf_expr import ExprError
from harness.bisect.engine import Outcome
from harness.bisect.predicates import (
    CMD_TIMEOUT,
    BtfPredicate,
    CmdPredicate,
    StepFiles,
    judge_all,
    parse,
)
from harness.btf import INT_SIGNED
from harness.btf.btf import Btf
from harness.errors import UsageError
from tests.helpers import testdata


def synthetic_btf1() -> bytes:
    """pahole's raw output for the case in point: bpf_wq_init without decl tags."""
    b = Btf()
    i = b.add_int("int", 4, INT_SIGNED)
    void_ptr = b.add_ptr(0)
    proto = b.add_func_proto(i)
    b.add_func_param("wq", void_ptr)
    b.add_func("bpf_wq_init", 1, proto)
    return b.to_bytes()


@pytest.fixture(scope="module")
def btf_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the real 7.3 .BTF, a synthetic .BTF.1), written once for the module."""
    d = tmp_path_factory.mktemp("btf")
    (d / "vmlinux.BTF").write_bytes(testdata.vmlinux_73())
    (d / "vmlinux.BTF.1").write_bytes(synthetic_btf1())
    return d / "vmlinux.BTF", d / "vmlinux.BTF.1"


def make_step(work: Path, btf: Path | None = None, btf1: Path | None = None) -> StepFiles:
    work.mkdir(parents=True, exist_ok=True)
    elf = work / "vmlinux"
    elf.write_bytes(b"\x7fELF not really")
    ids = work / "vmlinux.BTF_ids"
    ids.write_bytes(b"\0" * 8)
    return StepFiles(work=work, elf=elf, btf1=btf1 or work / "vmlinux.BTF.1",
                     btf=btf or work / "vmlinux.BTF", btf_ids=ids)


@pytest.fixture
def step(tmp_path: Path, btf_files: tuple[Path, Path]) -> StepFiles:
    return make_step(tmp_path / "step", *btf_files)


# ---- parse ------------------------------------------------------------------------------------


def test_parse_kinds() -> None:
    p = parse("btf:kfunc(bpf_wq_set_callback)")
    assert isinstance(p, BtfPredicate) and not p.raw
    assert p.text == "btf:kfunc(bpf_wq_set_callback)"
    assert p.expr.canonical() == "kfunc(bpf_wq_set_callback)"
    p1 = parse("btf1:func(a) and not kfunc(a)")
    assert isinstance(p1, BtfPredicate) and p1.raw
    assert p1.expr.canonical() == "func(a) and (not kfunc(a))"
    c = parse("cmd:test -s \"$HARNESS_BTF\" && echo a:b")
    assert c == CmdPredicate("cmd:test -s \"$HARNESS_BTF\" && echo a:b",
                             "test -s \"$HARNESS_BTF\" && echo a:b", CMD_TIMEOUT)


@pytest.mark.parametrize("text", ["", "btf", "kfunc(x)", "btf:", "btf1:", "cmd:", "cmd:   ",
                                  "btf: \t"])
def test_parse_needs_kind_and_text(text: str) -> None:
    with pytest.raises(UsageError) as ei:
        parse(text)
    msg = str(ei.value)
    assert msg == f"predicate {text!r}: write KIND:TEXT with KIND btf, btf1, cmd or run"
    assert ei.value.exit_code == 2


@pytest.mark.parametrize(("text", "kind"), [("foo:bar", "foo"), ("BTF:func(x)", "BTF"),
                                            (" btf:func(x)", " btf"), ("sh:true", "sh"),
                                            ("kfunc(x):y", "kfunc(x)")])
def test_parse_unknown_kind(text: str, kind: str) -> None:
    with pytest.raises(UsageError) as ei:
        parse(text)
    msg = str(ei.value)
    assert msg == f"predicate {text!r}: unknown kind {kind!r} (btf, btf1, cmd or run)"
    assert "\n" not in msg


@pytest.mark.parametrize(("text", "words"), [
    ("btf:kfunc(bpf_wq", "expected ')'"),
    ("btf1:frob(x)", "unknown predicate 'frob'"),
    ("btf:func(a) func(b)", "found 'func'"),
])
def test_parse_bad_btf_expression(text: str, words: str) -> None:
    with pytest.raises(ExprError) as ei:
        parse(text)
    assert isinstance(ei.value, UsageError)
    msg = str(ei.value)
    assert words in msg and "column" in msg and "\n" not in msg


# ---- cmd: -------------------------------------------------------------------------------------


def cmd(command: str, timeout: float = CMD_TIMEOUT) -> CmdPredicate:
    return CmdPredicate(f"cmd:{command}", command, timeout)


@pytest.mark.parametrize(("command", "outcome", "detail"), [
    ("true", "good", "cmd: exit 0"),
    ("echo first; echo last line", "good", "cmd: exit 0: last line"),
    ("echo cannot tell; exit 125", "skip", "cmd: exit 125 (skip): cannot tell"),
    ("exit 125", "skip", "cmd: exit 125 (skip)"),
    ("echo out; echo err >&2; exit 3", "bad", "cmd: exit 3: err"),
    ("printf 'no newline\\n\\n  \\n'; exit 1", "bad", "cmd: exit 1: no newline"),
    ("exit 124", "bad", "cmd: exit 124"),
    ("exit 126", "bad", "cmd: exit 126"),
    ("no-such-command-here", "bad", "cmd: exit 127: "),
])
def test_cmd_exit_status(step: StepFiles, command: str, outcome: Outcome, detail: str) -> None:
    got_outcome, got_detail = cmd(command).judge(step)
    assert got_outcome == outcome
    assert got_detail.startswith(detail) if detail.endswith(": ") else got_detail == detail


def test_cmd_last_line_is_cut(step: StepFiles) -> None:
    outcome, detail = cmd("printf '%0300d\\n' 0; exit 2").judge(step)
    assert outcome == "bad" and detail == "cmd: exit 2: " + "0" * 160


def test_cmd_environment_and_directory(step: StepFiles) -> None:
    script = ('printf "%s\\n" "$HARNESS_BTF" "$HARNESS_BTF1" "$HARNESS_BTF_IDS" "$HARNESS_ELF" '
              '"$HARNESS_STEP_DIR" "$(pwd -P)" > seen.txt; test -s "$HARNESS_BTF"')
    outcome, detail = cmd(script).judge(step)
    assert (outcome, detail) == ("good", "cmd: exit 0")
    seen = (step.work / "seen.txt").read_text().splitlines()
    assert seen == [str(step.btf), str(step.btf1), str(step.btf_ids), str(step.elf),
                    str(step.work), os.path.realpath(step.work)]


def test_cmd_log(step: StepFiles) -> None:
    command = "echo to stdout; echo to stderr >&2; exit 3"
    cmd(command).judge(step)
    assert (step.work / "cmd.log").read_text() == f"$ {command}\nto stdout\nto stderr\n"
    cmd("echo again").judge(step)  # each judgement rewrites it
    assert (step.work / "cmd.log").read_text() == "$ echo again\nagain\n"


def test_cmd_with_binary_output(step: StepFiles) -> None:
    outcome, detail = cmd('head -c 8 "$HARNESS_BTF"; exit 1').judge(step)
    assert outcome == "bad" and detail.startswith("cmd: exit 1")


def test_cmd_timeout_is_a_skip(step: StepFiles) -> None:
    start = time.monotonic()
    outcome, detail = cmd("echo started; sleep 5", timeout=0.3).judge(step)
    assert time.monotonic() - start < 2.5
    assert (outcome, detail) == ("skip", "cmd: did not finish within 0.3 s")


# ---- btf: and btf1: ---------------------------------------------------------------------------


def test_btf_on_the_real_kernel_btf(step: StepFiles) -> None:
    outcome, detail = parse("btf:kfunc(bpf_wq_set_callback)").judge(step)
    assert outcome == "good"
    assert detail.startswith("kfunc(bpf_wq_set_callback): FUNC [")
    assert detail.endswith("] bpf_wq_set_callback carries bpf_kfunc")
    assert parse("btf:kfunc(bpf_wq_init)").judge(step)[0] == "good"
    assert parse("btf:func(no_such_function_anywhere)").judge(step) == (
        "bad", "func(no_such_function_anywhere): no FUNC named no_such_function_anywhere")


def test_btf1_reads_paholes_output(step: StepFiles) -> None:
    assert parse("btf1:kfunc(bpf_wq_init)").judge(step) == (
        "bad", "kfunc(bpf_wq_init): FUNC [4] bpf_wq_init has no decl tag bpf_kfunc "
               "(no decl tags)")
    assert parse("btf1:func(bpf_wq_init)").judge(step) == (
        "good", "func(bpf_wq_init): FUNC [4] bpf_wq_init exists")
    assert parse("btf1:func(bpf_wq_set_callback)").judge(step)[0] == "bad"


@pytest.mark.parametrize("content", [b"garbage bytes\0" * 4, b"", None])
def test_btf_that_does_not_parse_is_bad(tmp_path: Path, btf_files: tuple[Path, Path],
                                        content: bytes | None) -> None:
    broken = tmp_path / "vmlinux.BTF"
    if content is not None:
        broken.write_bytes(content)
    step = make_step(tmp_path / "step", broken, btf_files[1])
    outcome, detail = parse("btf:func(bpf_wq_init)").judge(step)
    assert outcome == "bad"
    assert detail.startswith("vmlinux.BTF does not parse: ") and "\n" not in detail
    assert parse("btf1:func(bpf_wq_init)").judge(step)[0] == "good"  # the other file is fine


def test_step_files_parse_each_file_once(step: StepFiles,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[Path] = []
    real_load = predicates.load

    def counting(path: Path, *args: object, **kwargs: object) -> Btf:
        loads.append(Path(path))
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(predicates, "load", counting)
    preds = [parse(t) for t in ("btf:kfunc(bpf_wq_set_callback)", "btf1:func(bpf_wq_init)",
                                "btf:func(bpf_wq_init)", "btf1:kfunc(bpf_wq_init)",
                                "btf:not func(nope)")]
    outcome, _ = judge_all(preds, step)
    assert outcome == "bad"  # btf1:kfunc(bpf_wq_init)
    judge_all(preds, step)
    assert sorted(loads) == sorted([step.btf, step.btf1])
    assert step.parsed(step.btf) is step.parsed(step.btf)
    assert len(loads) == 2


# ---- judge_all --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fixed:
    text: str
    outcome: Outcome

    def judge(self, step: StepFiles) -> tuple[Outcome, str]:
        return self.outcome, f"{self.text} said {self.outcome}"


@pytest.mark.parametrize(("outcomes", "combined"), [
    (["good"], "good"),
    (["good", "good"], "good"),
    (["skip"], "skip"),
    (["good", "skip", "good"], "skip"),
    (["bad"], "bad"),
    (["skip", "bad"], "bad"),
    (["bad", "skip"], "bad"),
    (["good", "skip", "bad", "good"], "bad"),
])
def test_judge_all_combines(tmp_path: Path, outcomes: list[Outcome], combined: Outcome) -> None:
    preds = [Fixed(f"p{i}", o) for i, o in enumerate(outcomes)]
    outcome, detail = judge_all(preds, make_step(tmp_path))
    assert outcome == combined
    assert detail == "; ".join(f"p{i} said {o}" for i, o in enumerate(outcomes))


def test_judge_all_runs_every_predicate_in_order(step: StepFiles) -> None:
    preds = [parse("cmd:echo one; exit 3"), parse("btf1:func(bpf_wq_init)"),
             parse("cmd:exit 125")]
    assert judge_all(preds, step) == (
        "bad", "cmd: exit 3: one; func(bpf_wq_init): FUNC [4] bpf_wq_init exists; "
               "cmd: exit 125 (skip)")


def test_run_names_a_bpf_progs_file_or_a_path(tmp_path: Path) -> None:
    from harness.bisect.predicates import RunPredicate
    from harness.progs.runner import BPF_PROGS_DIR

    for text in ("run:wq.c", "run:wq", f"run:{BPF_PROGS_DIR / 'wq.c'}"):
        predicate = parse(text)
        assert isinstance(predicate, RunPredicate) and predicate.source == BPF_PROGS_DIR / "wq.c"
    with pytest.raises(UsageError, match="run:nope.c: no such BPF source"):
        parse("run:nope.c")


def test_a_bad_cheap_predicate_spares_the_boot(step: StepFiles) -> None:
    """judge_all runs run: predicates last and not at all once a cheap one said bad."""
    from harness.bisect.predicates import RunPredicate

    unbound = parse("run:wq.c")
    assert isinstance(unbound, RunPredicate)
    outcome, detail = judge_all([unbound, parse("cmd:exit 1")], step)
    assert outcome == "bad" and detail == "cmd: exit 1"
    with pytest.raises(UsageError, match="needs a kernel build request"):
        judge_all([unbound, parse("cmd:exit 0")], step)
