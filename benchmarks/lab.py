"""Lab board costs on a loopback board (harness/targets/loopback.py), against QEMU's channel.

    python benchmarks/lab.py [--runs 3]

A loopback board is a TCG guest on this host reached over SSH, so its figures are the
SSH path's own costs plus TCG, not a real board's; the QEMU figures of the same run, on
the same kernel (the board kernel: kconfigs/board.config), are the yardstick:
- connect: SSH handshake + key auth + work dir (SshTarget.start), median;
- command round trip: `true` over SSH vs over QEMU's virtio-serial command loop;
- deploy (kexec): upload + `kexec -s -l` + jump + reboot + reconnect + boot-id/uname/BTF
  checks (BoardTarget.start), median, against a plain QEMU boot of the same kernel;
- first verdict: one program, compile cached, from opening the target to its verdict,
  on the running board (no deploy) and on a fresh QEMU guest;
- whole suite: suite seconds per program (execute() only, the target already up), board
  against QEMU: the per-program overhead of SSH + SFTP against the QEMU channel.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness.kbuild.build import Builder, BuildRequest, make_plan
from harness.progs.suite import run_arch
from harness.targets import loopback
from harness.targets.board import BoardTarget
from harness.targets.inventory import find_board, load_inventory
from harness.targets.qemu import QemuTarget
from harness.targets.ssh import SshTarget

REPO = Path(__file__).resolve().parents[1]
PROGRAM = REPO / "bpf_progs" / "implicit_args.c"
ONE_PROGRAM = "implicit_plain"


def median_of(runs: int, once: Callable[[], float]) -> float:
    return statistics.median(once() for _ in range(runs))


def timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def expect_pass(where: str, run: object) -> None:
    results, error = run.results, run.error  # type: ignore[attr-defined]
    if error or not results or any(r.verdict != "pass" for r in results):
        raise SystemExit(f"{where}: {error or [(r.program, r.verdict) for r in results]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    request = BuildRequest(arch="x86_64", kconfigs=[str(loopback.BOARD_FRAGMENT)])
    artifacts = Builder(make_plan(request), quiet=True).build()
    figures: list[tuple[str, float, float | None]] = []  # name, board, qemu yardstick

    with tempfile.TemporaryDirectory(prefix="harness-bench-lab-") as work:
        made = loopback.create(Path(work) / "board", artifacts.boot_image)
        loopback.power_on(made)
        try:
            loopback.wait_ssh(made)
            board = find_board(load_inventory(made.lab_toml), made.name)

            def connect() -> float:
                target = SshTarget(board)
                seconds = timed(target.start)
                target.close()
                return seconds

            connect_s = median_of(args.runs, connect)
            qemu_boot = []
            with QemuTarget(artifacts, boot_timeout=180) as guest:
                qemu_boot.append(guest.boot_seconds or 0.0)
                qemu_rtt = median_of(20, lambda: timed(lambda: guest.run("true")))
            with SshTarget(board) as target:
                ssh_rtt = median_of(20, lambda: timed(lambda: target.run("true")))
            figures.append(("connect (s)", connect_s, None))
            figures.append(("command round trip (ms)", ssh_rtt * 1000, qemu_rtt * 1000))

            deploys, reboots = [], []
            for _ in range(max(1, args.runs - 1)):
                target = BoardTarget(board, artifacts)
                deploys.append(timed(target.start))
                assert target.deployment is not None
                reboots.append(target.deployment.reboot_seconds)
                target.close()
            for _ in range(max(1, args.runs - 1) - 1):
                with QemuTarget(artifacts, boot_timeout=180) as guest:
                    qemu_boot.append(guest.boot_seconds or 0.0)
            figures.append(("deploy by kexec / QEMU boot (s)", statistics.median(deploys),
                            statistics.median(qemu_boot)))
            figures.append(("  of it: kexec to SSH again (s)", statistics.median(reboots),
                            None))

            options = {"board": board, "deploy": False}
            first_board = median_of(args.runs, lambda: _first_verdict(
                artifacts, "board", options))
            first_qemu = median_of(args.runs, lambda: _first_verdict(artifacts, "qemu", {}))
            figures.append(("first verdict, one program (s)", first_board, first_qemu))

            on_board = run_arch(artifacts, target_name="board", target_options=options)
            expect_pass("board suite", on_board)
            on_qemu = run_arch(artifacts)
            expect_pass("qemu suite", on_qemu)
            n = len(on_board.results)
            figures.append(("suite per program (ms)", 1000 * (on_board.suite_s or 0) / n,
                            1000 * (on_qemu.suite_s or 0) / len(on_qemu.results)))
        finally:
            loopback.power_off(made)

    print(f"loopback board vs QEMU, x86_64 TCG, {artifacts.kernel_release} board kernel, "
          f"runs={args.runs}")
    for name, value, yardstick in figures:
        ratio = f"  {value / yardstick:5.2f}x QEMU ({yardstick:.2f})" if yardstick else ""
        print(f"  {name:34s} {value:8.2f}{ratio}")


def _first_verdict(artifacts: object, target: str, options: dict) -> float:
    started = time.monotonic()
    run = run_arch(artifacts, [PROGRAM], only=ONE_PROGRAM, target_name=target,
                   target_options=options)
    expect_pass(f"first verdict on {target}", run)
    return time.monotonic() - started


if __name__ == "__main__":
    main()
