"""test_progs as the reference: its result lines read back, paired with ours by subtest."""

from __future__ import annotations

from pathlib import Path

from harness.progs.corpus import Corpus, Entry
from harness.progs.reference import allowlist, compare, subtest_name, verdicts
from harness.progs.results import ProgResult

# test_progs' own lines (print_subtest_name / print_test_result), with the noise around them
OUTPUT = """\
bpf_testmod.ko is already unloaded.
Loading bpf_testmod.ko...
Successfully loaded bpf_testmod.ko.
#512/1   verifier_and/invalid and of negative number:OK
#512/2   verifier_and/invalid range check:OK
#512/3   verifier_and/check known subreg with unknown reg @unpriv:SKIP
#512     verifier_and:OK
libbpf: prog 'test_call_wq_set_callback_with_bad_arg': failed to load: -13
#98/2    failures_wq/test_call_wq_set_callback_with_bad_arg:FAIL
#98      failures_wq:FAIL
#7       align:SKIP
Summary: 2/3 PASSED, 2 SKIPPED, 1 FAILED
"""


def test_result_lines_are_read_by_test_and_subtest() -> None:
    found = verdicts(OUTPUT)
    assert found[("verifier_and", "invalid range check")].result == "OK"
    assert found[("verifier_and", "check known subreg with unknown reg @unpriv")].result == "SKIP"
    failed = found[("failures_wq", "test_call_wq_set_callback_with_bad_arg")]
    assert failed.result == "FAIL" and failed.log.endswith("failed to load: -13")
    assert found[("verifier_and", "invalid range check")].log == ""  # nothing in between
    assert found[("verifier_and", "")].result == "OK" and found[("align", "")].result == "SKIP"
    assert len(found) == 7


def _ours(obj: str, program: str, verdict: str, description: str | None = None) -> ProgResult:
    return ProgResult(obj, program, "x86_64", verdict, "success", description=description)


def test_ours_pair_with_theirs_by_test_loader_subtest_name() -> None:
    corpus = Corpus(Path("/tree"), [
        Entry("verifier_and", Path("verifier_and.c"), "RUN", True, test="verifier_and"),
        Entry("wq_failures", Path("wq_failures.c"), "RUN_TESTS", True, test="failures_wq"),
    ])
    ours = [
        # described programs are named by their __description, as test_loader names them
        _ours("verifier_and", "invalid_and_of_negative_number", "pass",
              "invalid and of negative number"),
        _ours("verifier_and", "invalid_range_check", "fail", "invalid range check"),
        _ours("verifier_and", "known_subreg_with_unknown_reg @unpriv", "skip",
              "check known subreg with unknown reg @unpriv"),
        _ours("wq_failures", "test_call_wq_set_callback_with_bad_arg", "error"),
        _ours("wq_failures", "test_call_wq_set_callback_with_bad_arg@rnd_hi32", "pass"),
        _ours("wq_failures", "(compile)", "error"),
    ]
    assert subtest_name(ours[4]) is None and subtest_name(ours[5]) is None
    pairs = {(p.test, p.subtest): p for p in compare(ours, verdicts(OUTPUT), corpus)}
    assert pairs[("verifier_and", "invalid and of negative number")].agrees
    assert not pairs[("verifier_and", "invalid range check")].agrees  # fail vs OK
    assert pairs[("verifier_and", "check known subreg with unknown reg @unpriv")].agrees
    assert pairs[("failures_wq", "test_call_wq_set_callback_with_bad_arg")].agrees  # err~FAIL
    assert len(pairs) == 4  # align is no test of this corpus; the whole-test lines are not


def test_a_test_progs_crash_costs_only_that_test() -> None:
    """A batch the kernel dies under is halved until the killer is alone; its subtests
    pair with our own crash verdict, and everything else is judged as usual."""
    from harness.progs.reference import CRASH, run_isolated
    from harness.targets.errors import KernelPanic

    tests = [f"t{n}" for n in range(6)]
    calls: list[list[str]] = []
    restarts: list[int] = []

    def run_batch(some: list[str]) -> str:
        calls.append(some)
        if "t4" in some:
            raise KernelPanic("panic", ["Kernel panic - not syncing: Fatal exception"])
        return "".join(f"#{n}/1 {t}/sub:OK\n" for n, t in enumerate(some))

    ran = run_isolated(tests, run_batch, lambda: restarts.append(1), batch=4)
    assert calls == [["t0", "t1", "t2", "t3"], ["t4", "t5"], ["t4"], ["t5"]]
    assert list(ran.crashed) == ["t4"] and "kernel panic" in ran.crashed["t4"]
    assert ran.restarts == len(restarts) == 2
    assert {t for t, _ in ran.verdicts} == {"t0", "t1", "t2", "t3", "t5"}
    corpus = Corpus(Path("/tree"), [Entry("p4", Path("p4.c"), "RUN", True, test="t4")])
    ours = [ProgResult("p4", "killer", "x86_64", "error", "success",
                       reason="the target died under this program: KernelPanic: ..."),
            ProgResult("p4", "quiet", "x86_64", "pass", "success")]
    pairs = {p.subtest: p for p in compare(ours, ran.verdicts, corpus, ran.crashed)}
    assert pairs["killer"].theirs.result == CRASH and pairs["killer"].agrees
    assert not pairs["quiet"].agrees  # test_progs never judged it: the kernel went first


def test_mixed_tests_are_asked_for_their_test_loader_programs_only() -> None:
    corpus = Corpus(Path("/tree"), [
        Entry("verifier_and", Path("verifier_and.c"), "RUN", True, test="verifier_and"),
        Entry("kprobe_multi_verifier", Path("k.c"), "RUN_TESTS", True,
              test="kprobe_multi_test", whole_test=False),
        Entry("file_reader_fail", Path("f.c"), "RUN_TESTS", True, test="file_reader",
              whole_test=False, guard="negative"),
    ])
    ours = [_ours("verifier_and", "invalid_range_check", "pass", "invalid range check"),
            _ours("kprobe_multi_verifier", "kprobe_session_return_0", "pass",
                  "kprobe, session, return 0"),
            _ours("kprobe_multi_verifier", "kprobe_session_return_0@rnd_hi32", "pass"),
            _ours("kprobe_multi_verifier", "kprobe_session_return_0 @unpriv", "skip"),
            _ours("file_reader_fail", "on_nanosleep_unreleased_ref", "pass")]
    allow = allowlist(corpus, ours)
    assert allow.items == [
        "verifier_and", "kprobe_multi_test/kprobe_session_return_0",
        "kprobe_multi_test/kprobe_session_return_0 @unpriv",
        "file_reader/on_nanosleep_unreleased_ref"]
    # the guard goes with its programs into whichever batch they land in
    assert allow.lines(["verifier_and"]) == ["verifier_and"]
    assert allow.lines(["file_reader/on_nanosleep_unreleased_ref"]) == [
        "file_reader/negative", "file_reader/on_nanosleep_unreleased_ref"]
    # a crash under one such item is that program's, not its whole test's
    from harness.progs.reference import CRASH

    crashed = {"kprobe_multi_test/kprobe_session_return_0": "KernelPanic: ..."}
    theirs = verdicts("#9/1 file_reader/negative:OK\n"
                      "#9/2 file_reader/on_nanosleep_unreleased_ref:OK\n")
    pairs = {p.subtest: p for p in compare(ours, theirs, corpus, crashed)}
    assert pairs["kprobe, session, return 0"].theirs.result == CRASH
    assert pairs["on_nanosleep_unreleased_ref"].agrees
    assert "negative" not in pairs  # the subtest a RUN_TESTS sits under is no program
    # a test that never reached its RUN_TESTS: the one-sided pair carries the test's verdict
    setup_failed = verdicts("#3 kprobe_multi_test:FAIL\n")
    pairs = {p.subtest: p for p in compare(ours, setup_failed, corpus)}
    assert pairs["kprobe, session, return 0"].theirs is None
    assert pairs["kprobe, session, return 0"].theirs_test == "FAIL"
    assert pairs["on_nanosleep_unreleased_ref"].theirs_test is None
    assert pairs["kprobe_session_return_0 @unpriv"].theirs is None


def test_the_console_of_a_kernel_test_progs_took_down_is_kept() -> None:
    from harness.progs.reference import run_isolated
    from harness.targets.errors import KernelPanic

    console = ["[    1.0] booted\n"]

    def run_batch(some: list[str]) -> str:
        if "bad" in some:
            console.append("[   13.1] BUG: kernel NULL pointer dereference, address: 0\n"
                           "[   13.2] Kernel panic - not syncing: Fatal exception\n")
            raise KernelPanic("panic", ["Kernel panic - not syncing: Fatal exception"])
        return f"#1/1 {some[0]}/s:OK\n"

    ran = run_isolated(["bad"], run_batch, lambda: console.clear(),
                       console=lambda: "".join(console))
    assert "first splat: " in ran.crashed["bad"]
    assert "NULL pointer dereference" in ran.crashed["bad"]
    assert len(ran.consoles) == 1 and "booted" not in ran.consoles[0]


def test_one_sided_subtests_are_listed_by_test() -> None:
    from harness.progs.cli import _one_sided
    from harness.progs.reference import Pair, Verdict

    ours = _ours("iters", "p", "pass")
    pairs = [Pair("iters", "a", ours, None), Pair("iters", "b", ours, None),
             Pair("dynptr", "x", None, Verdict("dynptr", "x", "OK")),
             Pair("dynptr", "y", ours, Verdict("dynptr", "y", "OK"))]
    assert _one_sided(pairs, shown=1) == ["  only ours: iters (2): a, ... (1 more)",
                                          "  only test_progs': dynptr (1): x"]


def test_a_disagreement_shows_both_logs() -> None:
    from harness.progs.cli import _disagreement
    from harness.progs.reference import Pair

    theirs = verdicts(OUTPUT)[("failures_wq", "test_call_wq_set_callback_with_bad_arg")]
    ours = ProgResult("wq_failures", "test_call_wq_set_callback_with_bad_arg", "x86_64",
                      "pass", "failure 1 msg", verifier_log="0: R1=ctx()\nprocessed 5 insns")
    lines = _disagreement(Pair("failures_wq", theirs.subtest, ours, theirs))
    assert lines[0] == ("  failures_wq/test_call_wq_set_callback_with_bad_arg: ours pass, "
                        "test_progs FAIL")
    assert "    our verifier log (last 2 lines):" in lines and "      processed 5 insns" in lines
    assert "    test_progs' log (last 1 lines):" in lines
    assert lines[-1].endswith("failed to load: -13")


def test_a_jited_run_test_progs_skips_for_want_of_llvm_is_ours_alone() -> None:
    """The reference test_progs is built with SKIP_LLVM=1: its SKIP of a __jited run is no
    verdict to agree or disagree with; any other SKIP still is one."""
    from harness.progs.reference import NO_LLVM

    corpus = Corpus(Path("/tree"), [Entry("arena_kfunc_jit", Path("a.c"), "RUN_TESTS", True,
                                          test="arena_kfunc_jit")])
    ours = [ProgResult("arena_kfunc_jit", "jit_rebase", "x86_64", "pass", "success 5 jited"),
            ProgResult("arena_kfunc_jit", "plain", "x86_64", "pass", "success")]
    theirs = verdicts("#1/1 arena_kfunc_jit/jit_rebase:SKIP\n#1/2 arena_kfunc_jit/plain:SKIP\n")
    pairs = {p.subtest: p for p in compare(ours, theirs, corpus)}
    jited, plain = pairs["jit_rebase"], pairs["plain"]
    assert jited.theirs is None and jited.unjudged == NO_LLVM and jited.theirs_test is None
    assert plain.theirs is not None and not plain.agrees
