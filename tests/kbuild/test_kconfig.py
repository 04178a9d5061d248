"""Fragment parsing, merge order and the post-olddefconfig check, on the real 7.3 tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.kbuild import kconfig
from harness.kbuild.build import Builder, BuildRequest, make_plan
from harness.kbuild.sources import from_debian


def frag(tmp_path: Path, name: str, text: str) -> kconfig.Fragment:
    path = tmp_path / name
    path.write_text(text)
    return kconfig.Fragment(name, path, text)


def test_later_fragment_wins_and_keeps_origin(tmp_path: Path) -> None:
    a = frag(tmp_path, "a.config", "CONFIG_FOO=y\n# CONFIG_BAR is not set\nCONFIG_N=3\n")
    b = frag(tmp_path, "b.config", "# comment\n# CONFIG_FOO is not set\nCONFIG_BAR=m\n")
    merged = kconfig.merge([a, b])
    assert merged["FOO"].value == "n" and merged["FOO"].origin == "b.config:2"
    assert merged["BAR"].value == "m"
    assert merged["N"].value == "3" and merged["N"].origin == "a.config:3"


def test_malformed_line_names_fragment_and_line(tmp_path: Path) -> None:
    bad = frag(tmp_path, "bad.config", "CONFIG_OK=y\nCONFIG_BPF_SYSCALL y\n")
    with pytest.raises(kconfig.ConfigError, match=r"bad.config:2: not a Kconfig assignment"):
        kconfig.parse_fragment(bad)


@pytest.mark.kernel  # the 7.3 source, Kconfig runs
def test_project_fragments_declare_only_real_symbols() -> None:
    tree = from_debian("7.3").path
    for arch in ("x86_64", "arm64"):
        merged = kconfig.merge(kconfig.standard_fragments(arch))
        assert "BPF_SYSCALL" in merged and "DEBUG_INFO_BTF" in merged
        unknown, promptless = kconfig.unreachable_pins(tree, merged)
        assert unknown == []
        # every symbol we pin off is one a user can set in 7.3 (promptless ones we want on,
        # like DYNAMIC_FTRACE, follow their defaults and the drift check still covers them)
        assert [r for r in promptless if r.value == "n"] == []


@pytest.mark.kernel  # the 7.3 source, Kconfig runs
def test_typo_is_reported_with_origin(tmp_path: Path) -> None:
    tree = from_debian("7.3").path
    typo = frag(tmp_path, "typo.config", "CONFIG_BPF_SYSCAL=y\n")
    unknown, _ = kconfig.unreachable_pins(tree, kconfig.merge([typo]))
    assert [(u.symbol, u.origin) for u in unknown] == [("BPF_SYSCAL", "typo.config:1")]


def test_promptless_symbols_are_told_apart_from_settable_ones(tmp_path: Path) -> None:
    """6.12's AF_UNIX_OOB has no prompt (7.3's has one): a pin-off there is the tree's call."""
    tree = tmp_path / "tree"
    (tree / "net").mkdir(parents=True)
    (tree / "net/Kconfig").write_text(
        'config UNIX\n\ttristate "Unix domain sockets"\n\tdefault y\n\n'
        "config\tAF_UNIX_OOB\n\tbool\n\tdepends on UNIX\n\tdefault y\n\n"
        "if UNIX\nconfig UNIX_DIAG\n\ttristate\n\tprompt \"diag\" if UNIX\nendif\n"
        "menuconfig NET_X\n\tbool\n\nconfig NET_X\n\tbool \"now with a prompt\"\n")
    declared, settable = kconfig.kconfig_symbols(tree)
    assert declared == {"UNIX", "AF_UNIX_OOB", "UNIX_DIAG", "NET_X"}
    assert settable == {"UNIX", "UNIX_DIAG", "NET_X"}
    pins = kconfig.merge([frag(tmp_path, "p.config", "# CONFIG_AF_UNIX_OOB is not set\n"
                                                    "# CONFIG_UNIX_DIAG is not set\n")])
    unknown, promptless = kconfig.unreachable_pins(tree, pins)
    assert unknown == [] and [r.symbol for r in promptless] == ["AF_UNIX_OOB"]


def test_drift_lists_name_wanted_and_got() -> None:
    requests = kconfig.merge([kconfig.Fragment("f", Path("f"), "CONFIG_A=y\nCONFIG_B=m\n"
                                                                "# CONFIG_C is not set\n")])
    final = {"A": "y", "B": "y"}
    assert [str(d) for d in kconfig.drift(requests, final)] == [
        "CONFIG_B (wanted m, got y; f:2)"]


@pytest.mark.kernel  # the 7.3 source, Kconfig runs
def test_merged_config_checks_every_symbol_after_olddefconfig(tmp_path: Path) -> None:
    """A request Kconfig cannot honour (HID_BPF without HID) fails, unless drift is allowed."""
    impossible = tmp_path / "nohid.config"
    impossible.write_text("# CONFIG_HID is not set\nCONFIG_HID_BPF=y\n")
    plan = make_plan(BuildRequest(kconfigs=[str(impossible)]))
    builder = Builder(plan, quiet=True)
    with pytest.raises(kconfig.ConfigError, match=r"CONFIG_HID_BPF \(wanted y, got"):
        builder.merged_config(plan.source)
    lenient = make_plan(BuildRequest(kconfigs=[str(impossible)], allow_config_drift=True))
    text = Builder(lenient, quiet=True).merged_config(lenient.source)
    assert "CONFIG_BPF_SYSCALL=y" in text and "CONFIG_HID_BPF=y" not in text


@pytest.mark.kernel  # the 7.3 source, Kconfig runs
def test_default_config_takes_every_request() -> None:
    plan = make_plan(BuildRequest())
    text = Builder(plan, quiet=True).merged_config(plan.source)
    final = kconfig.read_config_text(text)
    assert kconfig.drift(kconfig.merge(plan.fragments), final) == []
    assert final["IPV6"] == "n" and final["WIRELESS"] == "n"  # pinned off over tinyconfig


@pytest.mark.kernel  # the 7.3 source, Kconfig runs
def test_pinning_off_a_symbol_the_tree_lacks_is_not_a_typo(tmp_path: Path) -> None:
    """7.2 has no SERIAL_8250_MOXA_PCIE; `is not set` for it must not fail the build."""
    absent = tmp_path / "absent.config"
    absent.write_text("# CONFIG_NO_SUCH_SYMBOL_XYZ is not set\n")
    plan = make_plan(BuildRequest(kconfigs=[str(absent)]))
    text = Builder(plan, quiet=True).merged_config(plan.source)
    assert "NO_SUCH_SYMBOL_XYZ" not in text


@pytest.mark.kernel  # the 7.3 source, Kconfig runs
def test_pinning_off_a_symbol_the_tree_sets_itself_passes_fresh_and_cached(tmp_path: Path) -> None:
    """DYNAMIC_FTRACE has no prompt in 7.3 (as AF_UNIX_OOB has none in 6.12): a pin-off is
    the tree's call, on the run that merges the config and on the one that reads it back."""
    pin = tmp_path / "pin.config"
    pin.write_text("# CONFIG_DYNAMIC_FTRACE is not set\n")
    plan = make_plan(BuildRequest(kconfigs=[str(pin)]))
    first = Builder(plan, quiet=True).merged_config(plan.source)
    again = Builder(plan, quiet=True).merged_config(plan.source)
    assert first == again and "CONFIG_DYNAMIC_FTRACE=y" in first


def _tree_with_selftests_config(tmp_path: Path, files: dict[str, str]) -> Path:
    tree = tmp_path / "tree"
    folder = tree / kconfig.SELFTESTS_DIR
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return tree


def test_selftests_fragments_are_the_trees_own_in_vmtests_order(tmp_path: Path) -> None:
    tree = _tree_with_selftests_config(tmp_path, {
        "config": "CONFIG_BPF_LSM=y\n", "config.vm": "CONFIG_VIRTIO_FS=y\n",
        "config.aarch64": "CONFIG_ARM64_BTI=y\n", "config.x86_64": "CONFIG_AGP=y\n"})
    frags = kconfig.user_fragments(kconfig.SELFTESTS, tree, "aarch64")
    assert [f.name for f in frags] == ["selftests/config", "selftests/config.vm",
                                       "selftests/config.aarch64"]
    assert all(r.advisory for f in frags for r in kconfig.parse_fragment(f))
    assert "trim.config" not in [f.name for f in kconfig.standard_fragments(
        "arm64", trimmed=False)]
    assert "trim.config" in [f.name for f in kconfig.standard_fragments("arm64")]
    with pytest.raises(UsageError, match=r"--kconfig selftests: .*/config does not exist"):
        kconfig.user_fragments(kconfig.SELFTESTS, tmp_path / "empty", "x86_64")


def test_the_trees_choice_wins_over_ours(tmp_path: Path) -> None:
    tree = _tree_with_selftests_config(tmp_path, {"config": ""})
    (tree / "Kconfig").write_text(
        'choice\n\tprompt "DWARF version"\nconfig DWARF_DEFAULT\n\tbool "default"\n'
        'config DWARF4\n\tbool "4"\nconfig DWARF5\n\tbool "5"\nendchoice\n'
        'config OTHER\n\tbool "other"\n')
    scan = kconfig.scan_kconfig(tree)
    assert scan.choice_of.keys() == {"DWARF_DEFAULT", "DWARF4", "DWARF5"}
    ours = kconfig.Fragment("base.config", Path("base.config"), "CONFIG_DWARF5=y\n"
                            "CONFIG_OTHER=y\n")
    theirs = kconfig.Fragment("selftests/config", Path("config"), "CONFIG_DWARF4=y\n"
                              "CONFIG_DWARF_DEFAULT=y\n", advisory=True)
    requests = kconfig.merge([ours, theirs])
    # the tree's last pick in the choice (its config.x86_64's DEFAULT over its DWARF4)
    # makes ours go; OTHER is no choice member and stays ours
    assert [r.symbol for r in kconfig.yield_to_tree(tree, requests)] == ["DWARF5"]
    assert kconfig.yield_to_tree(tree, kconfig.merge([ours])) == []


@pytest.mark.kernel  # the 7.3 source, Kconfig runs
@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_the_trees_selftests_config_merges_over_ours(arch: str) -> None:
    plan = make_plan(BuildRequest(arch=arch, kconfigs=[kconfig.SELFTESTS]))
    names = [f.name for f in plan.fragments]
    assert "trim.config" not in names and names[-3:-1] == ["selftests/config",
                                                           "selftests/config.vm"]
    text = Builder(plan).merged_config(plan.source)  # its stale symbols are notes
    final = kconfig.read_config_text(text)
    for symbol in ("BPF_LSM", "CGROUP_BPF", "NET_SCH_BPF", "XDP_SOCKETS", "DEBUG_INFO_BTF",
                   "FUNCTION_ERROR_INJECTION", "MODULES"):
        assert final.get(symbol) == "y", symbol
