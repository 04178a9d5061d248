"""Splat detection on real report shapes: kernel formats match, user-space noise does not."""

from __future__ import annotations

import pytest

from harness.targets.errors import KernelPanic, KernelSplat
from harness.targets.splat import check_console, find_splats

WARN = """\
[    5.100000] ------------[ cut here ]------------
[    5.100001] WARNING: CPU: 0 PID: 77 at kernel/bpf/verifier.c:1234 check_foo+0x12/0x40
[    5.100002] Modules linked in: bpf_testmod(O)
[    5.100003] Call Trace:
[    5.100004]  <TASK>
[    5.100009] ---[ end trace 0000000000000000 ]---
after
"""

CASES = [
    (WARN, "WARNING"),
    ("Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100", "panic"),
    ("Oops: general protection fault, probably for non-canonical address", "Oops"),
    ("Internal error: Oops: 0000000096000004 [#1] SMP", "Oops"),
    ("BUG: kernel NULL pointer dereference, address: 0000000000000000", "BUG"),
    ("kernel BUG at mm/slub.c:123!", "BUG"),
    ("BUG: KASAN: slab-use-after-free in bpf_wq_work+0x1/0x2", "KASAN"),
    # 7.2+'s head (seen on 7.3 under bpf_testmod's WARN_ON_ONCE kfunc)
    ("WARNING: bpf_testmod.c:1043 at bpf_kfunc_call_test_offset+0x5/0x8 [bpf_testmod], "
     "CPU#0: python3/65", "WARNING"),
    ("WARNING: possible circular locking dependency detected", "lockdep"),
    ("WARNING: inconsistent lock state", "lockdep"),
    ("rcu: INFO: rcu_sched detected stalls on CPUs/tasks:", "RCU stall"),
    ("rcu: INFO: rcu_preempt self-detected stall on CPU", "RCU stall"),
    ("INFO: task kworker/0:1:12 blocked for more than 120 seconds.", "hung task"),
]


@pytest.mark.parametrize(("text", "kind"), CASES)
def test_kinds(text: str, kind: str) -> None:
    splats = find_splats(f"boot ok\n[   1.0] {text}\nmore\n")
    assert [s.kind for s in splats] == [kind]
    assert any(text.split("\n")[0][:20] in line or "cut here" in line for line in splats[0].lines)


def test_warning_report_lines_end_at_marker() -> None:
    (only,) = find_splats(WARN)
    assert only.lines[0].endswith("[ cut here ]------------")
    assert only.lines[-1].endswith("---[ end trace 0000000000000000 ]---")
    assert "after" not in only.lines
    assert only.head.startswith("[    5.100001] WARNING: CPU: 0")


@pytest.mark.parametrize(("text", "pid"), [
    (WARN, 77),
    ("WARNING: bpf_testmod.c:1043 at bpf_kfunc_call_test_offset+0x5/0x8 [bpf_testmod], "
     "CPU#1: kworker/1:2/218", 218),
    ("BUG: kernel NULL pointer dereference, address: 0000000000000000\n"
     "#PF: supervisor read access in kernel mode\n"
     "CPU: 1 UID: 0 PID: 4242 Comm: python3 Tainted: G O 7.3.0 #1\n", 4242),
    ("Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100", None),
])
def test_the_task_a_report_names(text: str, pid: int | None) -> None:
    """Which process a report ran in: isolation.py puts it on the job with that PID."""
    (splat,) = find_splats(text)
    assert splat.pid == pid


@pytest.mark.parametrize(
    "noise",
    [
        "WARNING: unable to write kernel messages, try to run vng with a valid PTS",
        "virtme-ng-init: BUG: none here? no",
        "test passed: no Oops, no panic",
        "echo 'Kernel panic' is just a word here",
    ],
)
def test_user_space_noise_is_not_a_splat(noise: str) -> None:
    assert find_splats(noise) == []


def test_oops_then_panic_raises_panic_with_both_reports() -> None:
    text = (
        "Oops: general protection fault [#1] SMP\nRIP: 0010:foo+0x1/0x2\n"
        "---[ end trace 0 ]---\nKernel panic - not syncing: Fatal exception\n"
    )
    with pytest.raises(KernelPanic) as info:
        check_console(text, context="during boot")
    assert info.value.kind == "panic"
    assert "Fatal exception" in str(info.value)
    assert info.value.lines[0].startswith("Oops:")
    assert "\n" not in str(info.value)


def test_non_fatal_splat_raises_kernel_splat() -> None:
    with pytest.raises(KernelSplat) as info:
        check_console(WARN)
    assert not isinstance(info.value, KernelPanic)
    assert info.value.kind == "WARNING"
    assert len(info.value.lines) == 6


def test_clean_console_passes() -> None:
    check_console("Linux version 7.3.4\nRun /init as init process\n")


def test_a_splat_taint_with_no_report_we_know_still_fails() -> None:
    from harness.targets.splat import unreported_taint

    unreported_taint(0x1000, 0x1000, "quiet")  # O (out-of-tree module): no splat
    unreported_taint(-1, 0x200, "unreadable before")
    with pytest.raises(KernelSplat, match=r"taint went 0x1000 -> 0x1200 .* recognises"):
        unreported_taint(0x1000, 0x1200, "some new report format\n", "during run")
