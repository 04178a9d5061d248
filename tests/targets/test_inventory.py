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
    ("[[board]]\nname='a'\narch='arm64'\nhost='h'\nprot=22\n", "unknown key 'prot'"),
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


def test_a_full_board_entry(tmp_path: Path) -> None:
    path = tmp_path / "lab" / "lab.toml"
    path.parent.mkdir()
    path.write_text(
        "[defaults]\nknown_hosts = 'known_hosts'\nboot_timeout = 240\n"
        "[[board]]\nname = 'rk'\narch = 'aarch64'\nhost = '10.0.0.5'\nkey = 'keys/rk'\n"
        "host_key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ'\njump = 'ci@bastion:2222'\n"
        "power_cycle = 'pdu-ctl --outlet 3 cycle'\ndeploy = 'scripts/flash.sh {image} "
        "{modules}'\ntags = ['lse', 'no-jit']\nkey_passphrase_env = 'LAB_KEY_PASS'\n")
    (board,) = load_inventory(path)
    assert board.arch == "arm64" and board.key == path.parent / "keys/rk"
    assert board.known_hosts == path.parent / "known_hosts" and board.boot_timeout == 240
    assert board.tags == ("lse", "no-jit") and board.jump == "ci@bastion:2222"
    assert board.deploy.startswith("scripts/flash.sh") and board.address == "root@10.0.0.5:22"


def test_board_kconfig_fragments_are_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    (tmp_path / "rk.config").write_text("CONFIG_VIRTIO_NET=y\n")
    path.write_text("[[board]]\nname='rk'\narch='arm64'\nhost='h'\nkconfig=['rk.config']\n")
    (board,) = load_inventory(path)
    assert board.kconfig == (tmp_path / "rk.config",)


def test_secrets_stay_out_of_the_file_and_the_repr(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "lab.toml"
    path.write_text("[[board]]\nname='a'\narch='arm64'\nhost='h'\npassword='hunter2'\n")
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert "secrets do not belong in lab.toml" in str(info.value)
    assert "hunter2" not in str(info.value)
    path.write_text("[[board]]\nname='a'\narch='arm64'\nhost='h'\n"
                    "key_passphrase_env='LAB_PASS'\n")
    (board,) = load_inventory(path)
    monkeypatch.setenv("LAB_PASS", "s3cr3t-pass")
    assert board.key_passphrase() == "s3cr3t-pass"
    assert "s3cr3t" not in repr(board) and "LAB_PASS" not in repr(board)
    monkeypatch.delenv("LAB_PASS")
    with pytest.raises(InventoryError, match="LAB_PASS .* is not set"):
        board.key_passphrase()


@pytest.mark.parametrize(("extra", "needle"), [
    ("host_key='AAAA'\n", "host_key must be 'TYPE BASE64'"),
    ("deploy='dd of=/dev/mmcblk0'\n", "deploy is 'kexec' or a command using {image}"),
    ("boot_timeout=0\n", "boot_timeout must be positive"),
    ("tags='lse'\n", "tags: expected list"),
    ("jump=22\n", "jump: expected str"),
    ("kconfig='board.config'\n", "kconfig: expected list"),
    ("kconfig=['nope.config']\n", "kconfig: no such fragment"),
])
def test_broken_new_keys_are_one_line(tmp_path: Path, extra: str, needle: str) -> None:
    path = tmp_path / "lab.toml"
    path.write_text("[[board]]\nname='a'\narch='arm64'\nhost='h'\n" + extra)
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert needle in str(info.value) and f"{path}: board 'a'" in str(info.value)
