"""DENYLIST / DENYLIST.<uname -m> / ALLOWLIST, read and applied as test_progs -d/-a do."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.progs.lists import Entry, Lists, glob_match, load_lists, program_base

DENY = """\
# BPF CI denylist: tests that cannot pass here

   wq/wq_tc_plain    # trailing comment, surrounding whitespace
kfunc_implicit_args/test_*_legacy*
\tstream\t
#task_work
"""


def test_comments_blank_lines_and_whitespace() -> None:
    lists = Lists.parse({"DENYLIST": DENY})
    assert [(e.test, e.subtest, e.text, e.source) for e in lists.deny] == [
        ("wq", "wq_tc_plain", "wq/wq_tc_plain", "DENYLIST:3"),
        ("kfunc_implicit_args", "test_*_legacy*", "kfunc_implicit_args/test_*_legacy*",
         "DENYLIST:4"),
        ("stream", None, "stream", "DENYLIST:5"),
    ]
    assert lists.allow == () and bool(lists)
    assert not Lists.parse({"DENYLIST": "\n  # nothing\n\n", "ALLOWLIST": ""})


def test_test_versus_test_subtest() -> None:
    lists = Lists.parse({"DENYLIST": DENY})
    assert lists.decide("stream", "stream_stdout_line") == (
        False, "denied by DENYLIST:5: stream")  # the whole test
    assert lists.decide("wq", "wq_tc_plain") == (False, "denied by DENYLIST:3: wq/wq_tc_plain")
    assert lists.decide("wq", "wq_syscall_sleepable_cb") == (True, None)  # another subtest
    assert lists.decide("task_work", "tw_signal") == (True, None)  # commented out


def test_variants_share_the_subtest() -> None:
    lists = Lists.parse({"DENYLIST": DENY})
    assert lists.decide("wq", "wq_tc_plain@rnd_hi32") == (
        False, "denied by DENYLIST:3: wq/wq_tc_plain")
    assert lists.decide("wq", "wq_tc_plain @unpriv")[0] is False
    assert program_base("prog@rnd_hi32") == program_base("prog @unpriv") == "prog"


def test_globs_are_whole_name_and_star_only() -> None:
    lists = Lists.parse({"DENYLIST": DENY})
    assert lists.decide("kfunc_implicit_args", "test_kfunc_implicit_arg_legacy_impl")[0] is False
    assert lists.decide("kfunc_implicit_args", "test_kfunc_implicit_arg")[0] is True
    assert lists.decide("stream_extra", "x")[0] is True  # "stream" is no substring match
    assert glob_match("wq_failures", "wq*") and glob_match("wq", "wq*")
    assert glob_match("a.b", "a.b") and not glob_match("axb", "a.b")
    assert glob_match("a?", "a?") and not glob_match("ab", "a?")  # `?` is literal
    assert not glob_match("ab", "a[b]")
    assert glob_match("anything/at/all", "*")


def test_glob_over_tests_and_subtests() -> None:
    lists = Lists.parse({"DENYLIST": "wq*/*_sleepable_*\n*/stream_*\n"})
    assert lists.decide("wq_failures", "test_sleepable_cb")[0] is False
    assert lists.decide("wq", "wq_tc_plain")[0] is True
    assert lists.decide("stream", "stream_stdout_line") == (
        False, "denied by DENYLIST:2: */stream_*")


def test_allowlist_restricts() -> None:
    lists = Lists.parse({"ALLOWLIST": "wq/wq_tc_plain\ntask_work  # all of it\n"})
    assert lists.decide("wq", "wq_tc_plain@rnd_hi32") == (True, None)
    assert lists.decide("task_work", "tw_signal") == (True, None)
    assert lists.decide("wq", "wq_syscall_sleepable_cb") == (False, "not in ALLOWLIST")
    assert lists.decide("stream", "stream_stdout_line") == (False, "not in ALLOWLIST")


def test_deny_wins_over_allow() -> None:
    lists = Lists.parse({"DENYLIST": "wq/wq_tc_plain\n", "ALLOWLIST": "wq\n"})
    assert lists.decide("wq", "wq_tc_plain") == (False, "denied by DENYLIST:1: wq/wq_tc_plain")
    assert lists.decide("wq", "other") == (True, None)


def test_whole_test_entry_is_not_narrowed_by_a_subtest_entry() -> None:
    """test_progs merges same-spelled test patterns; here each line stands on its own."""
    lists = Lists.parse({"DENYLIST": "wq\n", "DENYLIST.aarch64": "wq/wq_tc_plain\n"})
    assert lists.decide("wq", "wq_syscall_sleepable_cb") == (False, "denied by DENYLIST:1: wq")
    assert lists.decide("wq", "wq_tc_plain") == (False, "denied by DENYLIST:1: wq")


def test_entry_splits_at_the_first_slash() -> None:
    (entry,) = Lists.parse({"DENYLIST": "a/b/c\n"}).deny
    assert entry == Entry("a", "b/c", "a/b/c", "DENYLIST:1")
    assert str(entry) == "DENYLIST:1: a/b/c"


def test_parse_refuses_other_names() -> None:
    with pytest.raises(UsageError) as info:
        Lists.parse({"SKIPLIST": "x\n"})
    assert str(info.value) == "SKIPLIST: not a DENYLIST or ALLOWLIST file"


def lists_dir(tmp_path: Path) -> Path:
    (tmp_path / "DENYLIST").write_text("stream  # everywhere\n")
    (tmp_path / "DENYLIST.aarch64").write_text("# arm64 only\nwq/wq_tc_plain\n")
    (tmp_path / "DENYLIST.x86_64").write_text("task_work\n")
    (tmp_path / "DENYLIST.s390x").write_text("*\n")
    return tmp_path


@pytest.mark.parametrize("arch", ["arm64", "aarch64"])
def test_arch_file_by_uname_spelling(tmp_path: Path, arch: str) -> None:
    lists = load_lists(lists_dir(tmp_path), arch)
    assert [e.source for e in lists.deny] == [f"{tmp_path}/DENYLIST:1",
                                              f"{tmp_path}/DENYLIST.aarch64:2"]
    assert lists.decide("wq", "wq_tc_plain") == (
        False, f"denied by {tmp_path}/DENYLIST.aarch64:2: wq/wq_tc_plain")
    assert lists.decide("task_work", "tw_signal") == (True, None)


@pytest.mark.parametrize("arch", ["x86_64", "amd64"])
def test_x86_reads_its_own_file(tmp_path: Path, arch: str) -> None:
    lists = load_lists(lists_dir(tmp_path), arch)
    assert lists.decide("task_work", "tw_signal") == (
        False, f"denied by {tmp_path}/DENYLIST.x86_64:1: task_work")
    assert lists.decide("wq", "wq_tc_plain") == (True, None)
    assert lists.decide("stream", "s")[1] == f"denied by {tmp_path}/DENYLIST:1: stream"


def test_allowlists_load(tmp_path: Path) -> None:
    (tmp_path / "ALLOWLIST").write_text("wq\n")
    (tmp_path / "ALLOWLIST.aarch64").write_text("stream/stream_stdout_line\n")
    lists = load_lists(tmp_path, "arm64")
    assert lists.decide("stream", "stream_stdout_line") == (True, None)
    assert lists.decide("task_work", "tw_signal") == (
        False, f"not in {tmp_path}/ALLOWLIST, {tmp_path}/ALLOWLIST.aarch64")
    assert load_lists(tmp_path, "x86_64").decide("stream", "stream_stdout_line")[0] is False


def test_missing_files_are_fine(tmp_path: Path) -> None:
    lists = load_lists(tmp_path, "x86_64")
    assert not lists and lists.decide("anything", "at_all") == (True, None)


def test_missing_directory_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        load_lists(tmp_path / "nope", "x86_64")
    assert str(info.value) == f"{tmp_path / 'nope'}: no such lists directory"
    (tmp_path / "DENYLIST.aarch64").mkdir()
    with pytest.raises(UsageError) as info:
        load_lists(tmp_path, "arm64")
    assert str(info.value) == f"{tmp_path}/DENYLIST.aarch64: cannot read: Is a directory"
    assert load_lists(tmp_path, "x86_64").deny == ()  # another arch's file is never read
    (tmp_path / "ALLOWLIST").write_bytes(b"wq\n\xff\xfe\n")
    with pytest.raises(UsageError) as info:
        load_lists(tmp_path, "x86_64")
    message = str(info.value)
    assert message.startswith(f"{tmp_path}/ALLOWLIST: cannot read: 'utf-8' codec can't decode")
    assert "\n" not in message


def test_unknown_arch_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown arch 'riscv64'"):
        load_lists(tmp_path, "riscv64")
