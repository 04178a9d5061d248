"""The loopback board end to end: lab.toml + SSH to a guest on the board kernel, a kexec
deploy verified by boot id, release and BTF hash, and the deploy's refusals."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.kbuild.artifacts import BuildArtifacts
from harness.targets import loopback
from harness.targets.base import BOOT_ID
from harness.targets.deploy import DeployFailed, build_btf_sha256, deploy
from harness.targets.ssh import SshTarget
from tests.targets.loopback_fixtures import inventory_board, powered_board

pytestmark = pytest.mark.guest
REJECTED = Path(__file__).resolve().parents[2] / "bpf_progs" / "implicit_args.c"


def test_board_answers_through_its_inventory(loopback_board: loopback.LoopbackBoard,
                                             board_build: BuildArtifacts) -> None:
    board = inventory_board(loopback_board)
    assert board.kconfig == (loopback.BOARD_FRAGMENT,)
    with SshTarget(board) as target:
        ident = target.identity()
        assert ident.release == board_build.kernel_release
        assert ident.btf_sha256 == build_btf_sha256(board_build.vmlinux)
        assert target.run("id -u").out.strip() == "0"
        boot_id = target.run(f"cat {BOOT_ID}").out.strip()
    assert f"{boot_id} sshd on " in loopback_board.events_log.read_text()
    assert "Server listening on 0.0.0.0 port 22" in loopback_board.console_log.read_text()


def test_kexec_deploy_reboots_into_the_build(loopback_board: loopback.LoopbackBoard,
                                             board_build: BuildArtifacts) -> None:
    board = inventory_board(loopback_board)
    with SshTarget(board) as target:
        before = target.run(f"cat {BOOT_ID}").out.strip()
        done = deploy(target, board_build)
        after = target.run(f"cat {BOOT_ID}").out.strip()
        assert after != before
        assert done.method == "kexec"
        assert done.identity.btf_sha256 == build_btf_sha256(board_build.vmlinux)
    events = loopback_board.events_log.read_text()
    assert f"{before} sshd on " in events and f"{after} sshd on " in events


def test_a_board_on_another_kernel_is_an_infra_error(
        loopback_board: loopback.LoopbackBoard, board_build: BuildArtifacts,
        x86_build: BuildArtifacts) -> None:
    """Deploying a build whose BTF differs from what comes back fails loudly: here the
    image of the board kernel under the record of the suite's (other) kernel."""
    assert build_btf_sha256(x86_build.vmlinux) != build_btf_sha256(board_build.vmlinux)
    impostor = dataclasses.replace(x86_build, boot_image=board_build.boot_image)
    board = inventory_board(loopback_board)
    with SshTarget(board) as target, pytest.raises(DeployFailed) as caught:
        deploy(target, impostor)
    message = str(caught.value)
    assert "came back on another kernel" in message and "\n" not in message


def test_repro_on_the_board_prints_what_qemu_prints(
        loopback_board: loopback.LoopbackBoard, capsys: pytest.CaptureFixture[str]) -> None:
    """Same kernel (the board kernel, on the board and in a QEMU guest), same rejected
    program: the verifier logs are identical, and only the target differs in the header."""
    args = ["repro", str(REJECTED), "--prog", "implicit_generated_impl", "--json"]
    on_board = [*args, "--board", loopback_board.name, "--lab", str(loopback_board.lab_toml),
                "--no-deploy"]
    assert main(on_board) == 0
    board = json.loads(capsys.readouterr().out)
    assert main([*args, "--kconfig", str(loopback.BOARD_FRAGMENT)]) == 0
    qemu = json.loads(capsys.readouterr().out)
    assert board["header"]["target"] == f"board {loopback_board.name}"
    assert qemu["header"]["target"] == "qemu"
    assert board["header"]["btf sha256"] == qemu["header"]["btf sha256"]
    (on_b,), (on_q,) = board["results"], qemu["results"]
    assert on_b["verifier_log"].startswith("cannot find address for kernel function")
    assert on_b["verifier_log"] == on_q["verifier_log"]


def test_a_deploy_hook_flashes_and_power_cycles(board_build: BuildArtifacts,
                                                tmp_path: Path) -> None:
    """`deploy = "<flash tool> {image}"` then the board's power_cycle: the board cold-boots
    the flashed image, checked like a kexec (new boot id, release, BTF hash)."""
    with powered_board(tmp_path / "board", board_build) as made:
        hook = f"{sys.executable} -m harness.targets.loopback flash {made.dir} {{image}}"
        text = made.lab_toml.read_text().replace('deploy = "kexec"',
                                                 f"deploy = {json.dumps(hook)}")
        made.lab_toml.write_text(text)
        board = inventory_board(made)
        with SshTarget(board) as target:
            before = target.run(f"cat {BOOT_ID}").out.strip()
            done = deploy(target, board_build)
            assert done.method == hook
            assert target.run(f"cat {BOOT_ID}").out.strip() != before
            assert done.identity.btf_sha256 == build_btf_sha256(board_build.vmlinux)
        assert loopback.load(made.dir).kernel == made.dir / "flash" / "bzImage"


def test_watch_rounds_on_the_board_go_through_its_agent_server(
        loopback_board: loopback.LoopbackBoard, board_build: BuildArtifacts) -> None:
    """`progs watch` on a board: the first round's agent forks into a server without
    holding the SSH command open, and the next rounds go through it with the same
    verdicts; the server is the board's only leftover, and it goes when idle."""
    from harness.progs.agent_server import server_of  # noqa: PLC0415
    from harness.progs.watch import judge_once  # noqa: PLC0415

    board = inventory_board(loopback_board)
    with SshTarget(board) as target:
        rounds = [judge_once(board_build, target, [REJECTED], only="implicit_plain")
                  for _ in range(3)]
        server = server_of(target)
        assert server is not None
        pid = target.run(f"cat {server.sdir}/pid").out.strip()
        assert target.run(f"kill {pid}").rc == 0
    verdicts = [[(r.program, r.verdict) for r in rnd.results] for rnd in rounds]
    assert all(rnd.error is None for rnd in rounds), [rnd.error for rnd in rounds]
    assert verdicts[0] and verdicts[1] == verdicts[0] and verdicts[2] == verdicts[0]
    assert server.next_id == 3  # rounds 2 and 3 were served
    assert rounds[0].seconds < 60 and rounds[1].seconds < rounds[0].seconds
