"""lab.toml: the example parses; broken inventories fail with one precise line."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.targets.inventory import InventoryError, load_inventory

REPO = Path(__file__).resolve().parents[2]


def test_example_inventory_parses() -> None:
    boards = load_inventory(REPO / "lab.toml")
    assert [(b.name, b.arch, b.user, b.port) for b in boards] == [
        ("rock5b", "arm64", "root", 22), ("nuc", "x86_64", "ci", 22)]
    assert boards[0].baud == 1500000 and boards[1].reboot.startswith("pdu-ctl")


@pytest.mark.parametrize(("text", "needle"), [
    ("[[board]\nname='x'", "not valid TOML"),
    ("[defaults]\nuser='a'\n", "no [[board]] entries"),
    ("[[board]]\nname='a'\narch='riscv'\nhost='h'\n", "arch 'riscv' is not one of"),
    ("[[board]]\nname='a'\narch='arm64'\n", "board 1: missing 'host'"),
    ("[[board]]\nname='a'\narch='arm64'\nhost='h'\nport=70000\n", "port 70000 out of range"),
    ("[[board]]\nname='a'\narch='arm64'\nhost='h'\nprot=22\n", "unknown field 'prot'"),
    ("[[board]]\nname='a'\narch='arm64'\nhost='h'\n[[board]]\nname='a'\narch='x86_64'\n"
     "host='g'\n", "board name 'a' appears twice"),
    ("[[board]]\nname='a'\narch='arm64'\nhost='h'\nport='22'\n", "port: expected int"),
])
def test_broken_inventory_is_one_line(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "lab.toml"
    path.write_text(text)
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_missing_inventory(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="no such lab inventory"):
        load_inventory(tmp_path / "nope.toml")
