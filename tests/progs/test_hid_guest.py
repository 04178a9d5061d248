"""HID plumbing in a real guest, and proof that a HID scenario can fail.

The suite (test_suite_guest.py) shows bpf_progs/hid.c passing; these tests
show the pass means something: without a program the device passes reports
through unchanged, a wrong expectation is reported with the report that did
come back, and a program whose rewrite disagrees with its ``__hid`` scenario
is judged ``fail`` with the steps in the details.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.progs.compile import compile_prog, toolchain_for
from harness.progs.runner import AGENT, HIDTOOL, REMOTE_DIR, run_objects
from harness.targets.base import Target
from harness.targets.registry import open_target
from tests.helpers.kernels import suite_kernel
from tests.progs.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.guest]

_WRONG = r"""
// SPDX-License-Identifier: GPL-2.0
#include "%(misc)s"
char _license[] SEC("license") = "GPL";
extern __u8 *hid_bpf_get_data(struct hid_bpf_ctx *ctx, unsigned int offset,
	const size_t __sz) __weak __ksym;

SEC("struct_ops/hid_device_event")
__success
__hid("send 01 10 00 00 00 00 00 00 00; read 01 10 00 00 00 00 00 00 00")
int BPF_PROG(hid_says_one_thing, struct hid_bpf_ctx *hctx, enum hid_report_type type,
	__u64 source)
{
	__u8 *data = hid_bpf_get_data(hctx, 0, 9);

	if (data && data[0] == 1)
		data[1] = 0x99;	/* the scenario above does not expect this */
	return 0;
}

SEC(".struct_ops.link")
struct hid_bpf_ops says_one_thing_ops = {
	.hid_device_event = (void *)hid_says_one_thing,
};
"""


@pytest.fixture(scope="module", params=["x86_64", "arm64"])
def guest(request: pytest.FixtureRequest, arches: list[str]) -> Iterator[tuple]:
    arch = request.param
    if arch not in arches:
        pytest.skip(f"--arch does not include {arch}")
    artifacts = suite_kernel(arch, request.config)
    with open_target("qemu", artifacts, arch, memory="1G", cpus=1) as target:
        target.run(f"mkdir -p {REMOTE_DIR}", timeout=30)
        target.put(AGENT, f"{REMOTE_DIR}/agent.py", timeout=60)
        target.put(HIDTOOL, f"{REMOTE_DIR}/hidtool.py", timeout=60)
        yield artifacts, target


def _hid(target: Target, *args: str) -> tuple[int, dict]:
    quoted = " ".join(f"'{a}'" for a in args)
    res = target.run(f"python3 {REMOTE_DIR}/agent.py hid {quoted}", timeout=120)
    return res.rc, json.loads(res.out)


def test_probe_finds_the_device_and_its_hidraw(guest: tuple) -> None:
    _, target = guest
    rc, info = _hid(target, "probe")
    assert rc == 0 and info["usable"], info
    assert info["hidraw"].startswith(("/dev/hidraw", "/tmp/hidraw"))
    assert 2 in info["events"]  # UHID_START


def test_reports_pass_through_unchanged_without_a_program(guest: tuple) -> None:
    _, target = guest
    rc, res = _hid(target, "run", "send 01 2a 00 00 00 00 00 00 07;"
                   "read 01 2a .. .. .. .. .. .. 07; quiet 100")
    assert rc == 0 and res["ok"], res
    rc, res = _hid(target, "run", "send 01 2a 00 00 00 00 00 00 00;"
                   "read 01 2f 00 00 00 00 00 00 00")
    assert rc == 1 and not res["ok"]
    assert res["error"] == ("report 01 2a 00 00 00 00 00 00 00 != wanted "
                            "01 2f 00 00 00 00 00 00 00")


def test_a_program_that_disagrees_with_its_scenario_fails(guest: tuple, tmp_path: Path) -> None:
    artifacts, target = guest
    src = tmp_path / "hid_wrong.c"
    src.write_text(_WRONG % {"misc": REPO / "bpf_progs" / "harness_misc.h"})
    obj = compile_prog(src, toolchain_for(artifacts))
    (result,) = [r for r in run_objects([obj], artifacts.libbpf_so, target)
                 if "@" not in r.program]
    assert result.verdict == "fail", result.failure_text()
    assert result.reason == ("hid: report 01 99 00 00 00 00 00 00 00 != wanted "
                             "01 10 00 00 00 00 00 00 00")
    assert "  send 01 10 00 00 00 00 00 00 00" in result.details
