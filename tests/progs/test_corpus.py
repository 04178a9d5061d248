"""harness.progs.corpus: which of a tree's progs/*.c upstream judges through test_loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.progs.corpus import SELFTESTS, discover


def _tree(tmp_path: Path, prog_tests: dict[str, str], progs: list[str]) -> Path:
    st = tmp_path / SELFTESTS
    (st / "prog_tests").mkdir(parents=True)
    (st / "progs").mkdir()
    for name, text in prog_tests.items():
        (st / "prog_tests" / name).write_text(text)
    for name in progs:
        (st / "progs" / f"{name}.c").write_text("/* program */\n")
    return tmp_path


def test_sorts_every_program_file(tmp_path: Path) -> None:
    tree = _tree(tmp_path, {
        "a.c": "void test_a(void) { RUN_TESTS(plain); }\n/* RUN_TESTS(commented) */\n",
        "verifier.c": "#define RUN(skel) run_tests_aux(#skel, skel##__elf_bytes, NULL)\n"
                      "void test_v(void) { RUN(verifier_x); }\n"
                      'void test_cb(void) { run_tests_aux("verifier_cb", verifier_cb__elf_bytes,'
                      " init_maps); }\n",
        "b.c": '#include "driven.skel.h"\nvoid test_b(void) { }\n',
    }, ["plain", "commented", "verifier_x", "verifier_cb", "driven", "lone"])
    corpus = discover(tree)
    by = {e.name: e for e in corpus.entries}
    assert [e.name for e in corpus.judged] == ["plain", "verifier_x"]
    assert by["plain"].driver == "prog_tests/a.c:1 RUN_TESTS"
    assert by["verifier_x"].driver == "prog_tests/verifier.c:2 RUN"
    assert "init_maps()" in by["verifier_cb"].reason and not by["verifier_cb"].judged
    assert by["driven"].reason == "driven by prog_tests/b.c, not by its annotations"
    assert not by["commented"].judged and not by["lone"].judged
    assert "skel" not in by  # the RUN macro's own definition is not a run
    assert [e.name for e in corpus.select("verifier_*").entries] == ["verifier_cb", "verifier_x"]


def test_mixed_tests_and_guarded_runs(tmp_path: Path) -> None:
    """A test that attaches or runs traffic besides RUN_TESTS is mixed: test_progs is then
    asked for its test_loader subtests alone; a RUN_TESTS under a subtest needs that one."""
    tree = _tree(tmp_path, {
        "pure.c": "void test_pure(void)\n{\n\tRUN_TESTS(p1);\n\tRUN_TESTS(p2);\n}\n",
        "mixed.c": 'void test_mixed(void)\n{\n\tif (test__start_subtest("attach"))\n'
                   "\t\tdo_attach();\n\tRUN_TESTS(m1);\n"
                   '\tif (test__start_subtest("negative")) {\n\t\tRUN_TESTS(m2);\n\t}\n}\n'
                   "void test_after(void) { RUN_TESTS(p3); }\n",
        # helpers are no tests (tests.h lists `^void (serial_)?test_x(void)` only): their
        # RUN_TESTS belong to the test that calls them, under the subtest guarding the call
        "helper.c": "static void test_failure(void)\n{\n\tRUN_TESTS(h1);\n}\n"
                    "static void inner(void) { RUN_TESTS(h2); }\n"
                    "static void test_other(void) { inner(); }\n"
                    'void serial_test_parent(void)\n{\n\tif (test__start_subtest("failure"))'
                    "\n\t\ttest_failure();\n\ttest_other();\n}\n",
    }, ["p1", "p2", "m1", "m2", "p3", "h1", "h2"])
    by = {e.name: e for e in discover(tree).judged}
    assert [(n, by[n].test, by[n].whole_test, by[n].guard) for n in sorted(by)] == [
        ("h1", "parent", False, "failure"), ("h2", "parent", False, ""),
        ("m1", "mixed", False, ""), ("m2", "mixed", False, "negative"),
        ("p1", "pure", True, ""), ("p2", "pure", True, ""), ("p3", "after", True, "")]


def test_not_a_tree(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no progs/ and prog_tests/"):
        discover(tmp_path)


def test_the_73_tree(debian_tree_73) -> None:  # noqa: ANN001 - sources.KernelSource
    corpus = discover(debian_tree_73.path)
    by = {e.name: e for e in corpus.entries}
    assert len(corpus.judged) > 200 and len(corpus.entries) > 900
    assert by["verifier_arena"].judged and by["async_stack_depth"].judged
    assert by["kfunc_implicit_args"].judged and by["wq_failures"].judged
    assert not by["arena_htab"].judged and "prog_tests/arena_htab.c" in by["arena_htab"].reason
    assert not by["verifier_array_access"].judged
    assert all(e.source.is_file() for e in corpus.entries)
    # 7.3's kprobe_multi_test attaches besides RUN_TESTS(kprobe_multi_verifier)
    assert not by["kprobe_multi_verifier"].whole_test and by["verifier_and"].whole_test
    assert by["file_reader_fail"].guard == "negative"
    # static helpers: test_exceptions() calls test_exceptions_assertions(), ...
    assert (by["exceptions_assert"].test, by["exceptions_assert"].whole_test) == (
        "exceptions", False)
    assert (by["percpu_alloc_fail"].test, by["percpu_alloc_fail"].guard) == (
        "percpu_alloc", "failure_tests")
    assert all(e.test for e in corpus.judged)
