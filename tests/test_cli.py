"""The command line's vocabulary: every verb's --help, --json that parses, --arch spelt
the same way everywhere, loud failures of a broken verb module."""

from __future__ import annotations

import argparse
import json

import pytest

from harness import cli
from harness.cli import build_parser, main


def _verbs(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
           ) -> list[tuple[str, ...]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((*prefix, name))
                found += _verbs(sub, (*prefix, name))
    return found


VERBS = _verbs(build_parser())


def test_every_top_level_verb_is_there() -> None:
    top = {verb[0] for verb in VERBS}
    assert {"build", "cache", "btf", "btfids", "boot", "run", "progs", "bisect",
            "bisect-step"} <= top


@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_help_of_every_verb(verb: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*verb, "--help"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: harness " + " ".join(verb))


def test_a_verb_module_that_fails_to_import_is_named(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "STAGE_MODULES", (*cli.STAGE_MODULES, "harness.no_such_verbs"))
    assert main(["--help"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("harness: error: cannot load the verbs of harness.no_such_verbs: "
                          "ModuleNotFoundError") and err.count("\n") == 1


def test_build_dry_run_json_parses_and_takes_an_arch_list(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Needs the Debian 7.3 source in the cache: without it the plan cannot be made."""
    from harness.kbuild import sources

    if not any(sources.cache_dir("sources").glob("linux-source-7.3_*")):
        pytest.skip("no Debian linux-source-7.3 in the cache (a kernel-tier test fetches it)")
    assert main(["build", "--dry-run", "--json"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert one["arch"] == "x86_64" and one["cache_key"] and one["make"][0] == "make"
    assert main(["build", "--dry-run", "--json", "--arch", "amd64,aarch64"]) == 0
    both = json.loads(capsys.readouterr().out)
    assert [b["arch"] for b in both] == ["x86_64", "arm64"]


@pytest.mark.parametrize("verb", [["build", "--dry-run"], ["run"]])
def test_an_unknown_arch_is_one_line_on_list_verbs(
        verb: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*verb, "--arch", "x86_64,sparc"]) == 2
    assert capsys.readouterr().err == ("harness: error: unknown arch 'sparc': choose "
                                       "x86_64 (amd64/x86), arm64 (aarch64)\n")


@pytest.mark.parametrize("verb", [
    ["boot", "--image", "bzImage"], ["progs", "watch", "x.c"],
    ["bisect", "pahole", "--versions", "1.24,1.30", "-p", "btf:func(x)"],
])
def test_one_arch_verbs_read_the_same_spellings_and_refuse_a_list(
        verb: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*verb, "--arch", "x86_64,arm64"])
    assert info.value.code == 2
    assert "runs one arch at a time" in capsys.readouterr().err
    parser = build_parser()
    assert parser.parse_args([*verb, "--arch", "aarch64"]).arch == "arm64"


def test_boot_takes_an_image_and_warns_on_the_old_spelling(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["boot", "--kernel", "/nonexistent/bzImage"]) != 0
    err = capsys.readouterr().err
    assert "`boot --kernel IMAGE` is deprecated, use --image" in err
    assert "kernel image /nonexistent/bzImage does not exist" in err


def test_cache_is_a_top_level_verb_with_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "show", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert set(shown) == {"root", "bytes"}


def test_compiling_needs_a_tree_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["progs", "compile", "x.c"]) == 2
    assert "compiling BPF C needs --tree" in capsys.readouterr().err
